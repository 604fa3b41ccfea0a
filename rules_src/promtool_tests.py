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

from . import promql, shape_cases, units
from .drivers import label_set, series, step_histogram, trajectory
from .expectations import Tiers, duration as _duration, selector
from .model import Alert, Record, Spec
from .yamltext import dump

_SCENARIO_VALUES = {  # op -> (firing value, silent values), as offsets in threshold steps
    ">": (1, (0, -1)), ">=": (0, (-1,)), "<": (-1, (0, 1)), "<=": (0, (1,)), "==": (0, (1,)),
}


def test_files(spec: Spec) -> dict[str, str]:
    """One promtool test file per alert and per tested recording rule: {file name: YAML text, a comment per case}."""
    files = {}
    for alert in spec.alerts:
        files[f"{alert.name}.yml"] = _file(spec, spec.evaluation_interval, alert_cases(spec, alert))
    # A recording rule's test evaluates the rules every test.interval (promtool ignores a group's own
    # interval): the rule has recorded a sample at exactly `at`, and a year is not millions of evaluations.
    for record in (r for group in spec.recording for r in group.records if r.test):
        files[record_test_file(record.name)] = _file(spec, record.test.interval, [_record_case(record)])
    return files


def alert_cases(spec: Spec, alert: Alert) -> list[tuple[str, dict]]:
    """Every generated case of one alert, by its shape."""
    if alert.shape == "fixed":
        return shape_cases.fixed_cases(spec, alert)
    if alert.shape == "vanished":
        return shape_cases.vanished_cases(spec, alert)
    if alert.shape == "prediction":
        return shape_cases.prediction_cases(spec, alert)
    cases = _threshold_cases(spec, alert)
    if alert.driver.kind == "histogram":
        cases.append(_window_case(spec, alert))
    if alert.driver.vanishes:
        cases += shape_cases.age_vanish_cases(spec, alert)
    return cases


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


def _threshold_cases(spec: Spec, alert: Alert) -> list[tuple[str, dict]]:
    avoid = [dict(o.match) for o in alert.overrides]
    targets = [("", {}, tuple(t.expected for t in alert.tiers), avoid)]
    targets += [(o.name, dict(o.match), o.expected, avoid[:i]) for i, o in enumerate(alert.overrides)]
    cases = []
    for override, fixed, thresholds, avoided in targets:
        for index, tier in enumerate(alert.tiers):
            cases += _tier_cases(spec, alert, override, fixed, avoided, thresholds, index)
    return cases


def _tier_cases(spec, alert, override, fixed, avoided, thresholds, index) -> list[tuple[str, dict]]:
    """Fires just beyond one tier's threshold (silent before its `for`, resolved once normal again), and
    silent on the safe side of it; what the other tiers do meanwhile is expected too."""
    interval, tier, threshold = spec.evaluation_interval, alert.tiers[index], thresholds[index]
    step = units.step(threshold)
    fire_off, silent_offs = _SCENARIO_VALUES[alert.op]
    if alert.driver.kind in ("histogram", "increase", "rate"):
        # An interpolated quantile, or a sum of increments, is only near a value: keep a step away.
        direction = 1 if alert.op.startswith(">") else -1
        firing, silent = threshold + direction * step, [threshold - direction * step]
    else:
        firing, silent = threshold + fire_off * step, [threshold + off * step for off in silent_offs]
    wait = math.ceil(tier.for_ / interval) * interval
    values = trajectory(alert.driver, firing, int(round(wait / interval)) + 64, interval)
    start = interval * next(k for k, v in enumerate(values) if v is not None and units.compare(v, alert.op, threshold))
    fire_at = start + wait + interval
    switch_at = fire_at + interval
    settle = math.ceil((alert.driver.window + alert.keep_firing_for) / interval) * interval
    resolved_at = switch_at + settle + interval
    steps = int(round(resolved_at / interval)) + 2
    switch_steps = int(round(switch_at / interval))
    who = f"override {override} ({selector(fixed)})" if override else "default threshold"
    if len(alert.tiers) > 1:
        who += f", tier {tier.severity}"
    labels = label_set(alert.driver.labels, fixed, avoided, 0)
    carried = {k: labels[k] for k in alert.carries}
    states = Tiers(alert, thresholds, interval)
    evals = []
    if tier.for_ >= interval:
        evals.append(states.check(start + wait - interval, [(carried, values)]))
    evals += [states.check(fire_at, [(carried, values)]),
              {"eval_time": _duration(resolved_at), "alertname": alert.name, "exp_alerts": []}]
    others = " (a series fires one tier at a time)" if len(alert.tiers) > 1 else ""
    cases = [(
        f"{alert.name}, {who}: the value sits at {_show(alert, firing)} ({alert.op} {_show(alert, threshold)}); "
        f"silent while `for` ({_duration(tier.for_)}) runs, fires after it{others}, resolves once the value is back "
        f"to {_show(alert, alert.driver.normal)}.",
        {"name": f"{alert.name} {override or 'default'}{_tier_name(alert, tier)}: fires and resolves",
         "interval": _duration(interval),
         "input_series": series(alert.driver, labels, [(firing, switch_steps), (alert.driver.normal, steps - switch_steps)],
                                interval),
         "alert_rule_test": evals})]
    inputs, seen = [], []
    for variant, value in enumerate(silent):
        variant_labels = label_set(alert.driver.labels, fixed, avoided, variant, _told_apart_by(alert))
        inputs += series(alert.driver, variant_labels, [(value, steps)], interval)
        seen.append(({k: variant_labels[k] for k in alert.carries}, trajectory(alert.driver, value, steps, interval)))
    milder = " (a milder tier may fire)" if index < len(alert.tiers) - 1 else ""
    cases.append((
        f"{alert.name}, {who}: silent at " + " and ".join(_show(alert, v) for v in silent) +
        f", which do not satisfy {alert.op} {_show(alert, threshold)}, long after `for`{milder}.",
        {"name": f"{alert.name} {override or 'default'}{_tier_name(alert, tier)}: silent on the safe side",
         "interval": _duration(interval), "input_series": inputs,
         "alert_rule_test": [states.check(resolved_at, seen)]}))
    return cases


def _told_apart_by(alert: Alert) -> str:
    """The label whose values keep the alert's series apart (machine_id where it carries it)."""
    return "machine_id" if "machine_id" in alert.carries or not alert.carries else alert.carries[0]


def _tier_name(alert: Alert, tier) -> str:
    return f" {tier.severity}" if len(alert.tiers) > 1 else ""


def _window_case(spec: Spec, alert: Alert) -> tuple[str, dict]:
    """The quantile's rate window is as long as the test spec says (driver.window): slow syncs still count
    at 80% of it after the last one, and no longer one interval past it."""
    if not alert.op.startswith(">"):
        raise ValueError(f"{alert.name}: the window test drives a histogram up, so its op must be > or >=")
    interval, window, threshold = spec.evaluation_interval, alert.driver.window, alert.tiers[-1].expected
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
    carried = selector({k: labels[k] for k in alert.carries})
    expr = f"{promql.operand(alert.value.replace('${selector}', ''))} > bool {units.number(threshold)}"
    return (f"{alert.name}: its value reads syncs of the last {_duration(window)}. After a spell of slow ones,"
            f" it is still above {_show(alert, threshold)} {_duration(still - last_slow)} later and back below it"
            f" {_duration(gone - last_slow)} later.",
            {"name": f"{alert.name}: the rate window is {_duration(window)}", "interval": _duration(interval),
             "input_series": step_histogram(alert.driver, labels, [(slow, slow_steps),
                                                                   (fast, int(round(gone / interval)) - slow_steps + 2)]),
             "promql_expr_test": [{"expr": expr, "eval_time": _duration(still), "exp_samples": [{"labels": carried, "value": 1}]},
                                  {"expr": expr, "eval_time": _duration(gone), "exp_samples": [{"labels": carried, "value": 0}]}]})


def _show(alert: Alert, value: float) -> str:
    return units.humane(alert.unit, value)
