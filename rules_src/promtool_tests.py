"""promtool unit tests for every alert, derived from the contract's thresholds and the alert's durations,
and for every recording rule that has a `test` in recording.yaml.

The values straddle the threshold the contract states (rules_src/contract.yaml), not the one the rule
renders, so a threshold changed in only one of the two places fails a test. Each threshold gets: fires
after `for` just beyond it, with exact labels and annotations; silent before `for`; resolved after the
value returns to normal; silent at the threshold (when the driver is exact) and just on the safe side.
A histogram-driven alert also gets a case that holds its rate window to the one its `test` states.
A recording rule's test is written out as stated: its expected samples are never derived from the rule.
"""
from __future__ import annotations

import math

from . import gotemplate, promql, units
from .drivers import label_set, series, step_histogram
from .model import Alert, Record, Spec
from .yamltext import dump

_SCENARIO_VALUES = {  # op -> (firing value, silent values), as offsets in threshold steps
    ">": (1, (0, -1)), ">=": (0, (-1,)), "<": (-1, (0, 1)), "<=": (0, (1,)), "==": (0, (1,)),
}


def test_files(spec: Spec) -> dict[str, str]:
    """One promtool test file per alert and per tested recording rule: {file name: YAML text, a comment per case}."""
    files = {}
    for alert in spec.alerts:
        cases = _watchdog_cases(spec, alert) if alert.expr else _threshold_cases(spec, alert)
        if alert.driver is not None and alert.driver.kind == "histogram":
            cases.append(_window_case(spec, alert))
        files[f"{alert.name}.yml"] = _file(spec, spec.evaluation_interval, cases)
    # A recording rule's test evaluates the rules every test.interval (promtool ignores a group's own
    # interval): the rule has recorded a sample at exactly `at`, and a year is not millions of evaluations.
    for record in (r for group in spec.recording for r in group.records if r.test):
        files[record_test_file(record.name)] = _file(spec, record.test.interval, [_record_case(record)])
    return files


def record_test_file(record: str) -> str:
    """`level.metric.operations.yml`: no colon in a file name, and no alert's name has a dot."""
    return record.replace(":", ".") + ".yml"


def _file(spec: Spec, evaluation_interval: float, cases: list[tuple[str, dict]]) -> str:
    text = dump({"rule_files": [f"../rules/{group}.yml" for group in spec.groups],
                 "evaluation_interval": units.format_duration(evaluation_interval)})
    text += "tests:\n"
    for comment, case in cases:
        body = dump([case])
        text += f"  # {comment}\n" + "".join(f"  {line}\n" for line in body.splitlines())
    return text


def _record_case(record: Record) -> tuple[str, dict]:
    test = record.test
    samples = [{"labels": promql.render_series(record.name, dict(labels)), "value": _plain_number(value)}
               for labels, value in test.expected]
    return (f"{record.name}: from the input series below, the rule records exactly these samples at "
            f"{_duration(test.at)} (rules_src/recording.yaml states them).",
            {"name": f"{record.name}: records the stated samples", "interval": _duration(test.interval),
             "input_series": [{"series": series, "values": values} for series, values in test.inputs],
             "promql_expr_test": [{"expr": record.name, "eval_time": _duration(test.at), "exp_samples": samples}]})


def _plain_number(value: float) -> float | int:
    return int(value) if value == int(value) and abs(value) < 1e15 else value


def _duration(seconds: float) -> str:
    return units.format_duration(seconds)


def _expected(alert: Alert, labels: dict, value: float, threshold: float, override: str) -> dict:
    humane = units.humane(alert.unit, threshold)
    exp_labels = {**labels, "severity": alert.expected_severity, **dict(alert.labels)}
    if override:
        exp_labels["override"] = override
    annotations = {key: gotemplate.expand(promql.substitute(text, {"threshold": humane})[0], labels, value)
                   for key, text in (("summary", alert.summary), ("description", alert.description))}
    return {"exp_labels": exp_labels, "exp_annotations": {**annotations, "runbook_url": alert.runbook_url}}


def _threshold_cases(spec: Spec, alert: Alert) -> list[tuple[str, dict]]:
    interval = spec.evaluation_interval
    avoid = [dict(o.match) for o in alert.overrides]
    targets = [("", {}, alert.expected, avoid)] + [(o.name, dict(o.match), o.expected, avoid[:i])
                                                   for i, o in enumerate(alert.overrides)]
    cases = []
    for override, fixed, threshold, avoided in targets:
        step = units.step(threshold)
        fire_off, silent_offs = _SCENARIO_VALUES[alert.op]
        if alert.driver.kind == "histogram":  # an interpolated quantile is only near a value: keep a step away
            direction = 1 if alert.op.startswith(">") else -1
            firing, silent = threshold + direction * step, [threshold - direction * step]
        else:
            firing, silent = threshold + fire_off * step, [threshold + off * step for off in silent_offs]
        # The first evaluation with a value: a histogram's rate needs two samples.
        start = interval if alert.driver.kind == "histogram" else 0.0
        wait = math.ceil(alert.for_ / interval) * interval
        fire_at = start + wait + interval
        switch_at = fire_at + interval
        settle = math.ceil((alert.driver.window + alert.keep_firing_for) / interval) * interval
        resolved_at = switch_at + settle + interval
        steps = int(round(resolved_at / interval)) + 2
        switch_steps = int(round(switch_at / interval))
        who = f"override {override} ({promql_selector(fixed)})" if override else "default threshold"
        labels = label_set(alert.driver.labels, fixed, avoided, 0)
        expect = _expected(alert, {k: labels[k] for k in alert.carries}, firing, threshold, override)
        evals = []
        if alert.for_ >= interval:
            evals.append({"eval_time": _duration(start + wait - interval), "alertname": alert.name, "exp_alerts": []})
        evals += [{"eval_time": _duration(fire_at), "alertname": alert.name, "exp_alerts": [expect]},
                  {"eval_time": _duration(resolved_at), "alertname": alert.name, "exp_alerts": []}]
        cases.append((
            f"{alert.name}, {who}: the value sits at {_show(alert, firing)} ({alert.op} {_show(alert, threshold)}); "
            f"silent while `for` ({_duration(alert.for_)}) runs, fires after it, resolves once the value is back "
            f"to {_show(alert, alert.driver.normal)}.",
            {"name": f"{alert.name} {override or 'default'}: fires and resolves", "interval": _duration(interval),
             "input_series": series(alert.driver, labels, [(firing, switch_steps), (alert.driver.normal, steps - switch_steps)],
                                    interval),
             "alert_rule_test": evals}))
        inputs = []
        for variant, value in enumerate(silent):
            inputs += series(alert.driver, label_set(alert.driver.labels, fixed, avoided, variant), [(value, steps)], interval)
        cases.append((
            f"{alert.name}, {who}: silent at " + " and ".join(_show(alert, v) for v in silent) +
            f", which do not satisfy {alert.op} {_show(alert, threshold)}, long after `for`.",
            {"name": f"{alert.name} {override or 'default'}: silent on the safe side", "interval": _duration(interval),
             "input_series": inputs,
             "alert_rule_test": [{"eval_time": _duration(resolved_at), "alertname": alert.name, "exp_alerts": []}]}))
    return cases


def _window_case(spec: Spec, alert: Alert) -> tuple[str, dict]:
    """The quantile's rate window is as long as the test spec says (driver.window): slow syncs still count
    at 80% of it after the last one, and no longer one interval past it."""
    if not alert.op.startswith(">"):
        raise ValueError(f"{alert.name}: the window test drives a histogram up, so its op must be > or >=")
    interval, window, threshold = spec.evaluation_interval, alert.driver.window, alert.expected
    bounds = list(alert.driver.buckets) + [math.inf]
    # Slow observations in the bucket just above the threshold, fast ones in the bucket of the normal value:
    # the quantile reads the slow bucket, above the threshold, while slow ones are more than 1 - q of the window.
    slow = bounds[next(i for i, b in enumerate(bounds) if b >= threshold) + 1]
    fast = next(b for b in bounds if b >= alert.driver.normal)
    slow_steps = math.ceil(window / interval) + 1  # the window is full of slow syncs at the last one
    last_slow = (slow_steps - 1) * interval
    still = last_slow + math.floor(0.8 * window / interval) * interval
    gone = last_slow + math.ceil(window / interval) * interval + interval
    labels = label_set(alert.driver.labels, {}, [dict(o.match) for o in alert.overrides], 0)
    carried = promql_selector({k: labels[k] for k in alert.carries})
    expr = f"{promql.operand(alert.value.replace('${selector}', ''))} > bool {units.number(threshold)}"
    return (f"{alert.name}: its value reads syncs of the last {_duration(window)}. After a spell of slow ones,"
            f" it is still above {_show(alert, threshold)} {_duration(still - last_slow)} later and back below it"
            f" {_duration(gone - last_slow)} later.",
            {"name": f"{alert.name}: the rate window is {_duration(window)}", "interval": _duration(interval),
             "input_series": step_histogram(alert.driver, labels, [(slow, slow_steps),
                                                                   (fast, int(round(gone / interval)) - slow_steps + 2)]),
             "promql_expr_test": [{"expr": expr, "eval_time": _duration(still), "exp_samples": [{"labels": carried, "value": 1}]},
                                  {"expr": expr, "eval_time": _duration(gone), "exp_samples": [{"labels": carried, "value": 0}]}]})


def promql_selector(match: dict) -> str:
    """`{machine_type="cpu"}` for an override's labels."""
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(match.items())) + "}"


def _show(alert: Alert, value: float) -> str:
    return units.humane(alert.unit, value)


def _watchdog_cases(spec: Spec, alert: Alert) -> list[tuple[str, dict]]:
    later = _duration(10 * spec.evaluation_interval)
    expect = {"exp_labels": {"severity": alert.expected_severity, **dict(alert.labels)},
              "exp_annotations": {"summary": gotemplate.expand(alert.summary, {}, 1.0),
                                  "description": gotemplate.expand(alert.description, {}, 1.0),
                                  "runbook_url": alert.runbook_url}}
    return [(f"{alert.name}: fires from the first evaluation and never stops, with no input at all.",
             {"name": f"{alert.name}: always fires", "interval": _duration(spec.evaluation_interval),
              "input_series": [],
              "alert_rule_test": [{"eval_time": "0s", "alertname": alert.name, "exp_alerts": [expect]},
                                  {"eval_time": later, "alertname": alert.name, "exp_alerts": [expect]}]})]
