"""Generated promtool cases of the shapes beyond a plain threshold: fixed alerts, series that vanish,
predictions, and an age whose timestamp series stops being reported.

Like the threshold cases, each states its scenario in a comment, takes its numbers from the contract
where the contract states them, and has negative cases: a rule that reads another window, horizon or
guard than promised, or forgets a retired machine, fails `promtool test rules`.
"""
from __future__ import annotations

import json
import math
import re

from exporter import catalog

from . import units
from .drivers import as_written, label_set, linear_series
from .expectations import Tiers, duration, expected_alert
from .model import Alert, Spec

_ABSENT = re.compile(r"^\s*absent(?:_over_time)?\(\s*[A-Za-z_:][A-Za-z0-9_:]*\s*\{([^}]*)\}")
_EQUALS = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!=|!~|=)\s*"((?:[^"\\]|\\.)*)"')
REPORTED = 1.0  # the value a vanishing series reports before it stops
_CROSS = 2  # a prediction crosses its threshold halfway between evaluations 2 and 3 (2 samples for a slope)


def _steps(seconds: float, interval: float) -> int:
    return int(math.ceil(seconds / interval - 1e-9))


def _series_text(name: str, labels: dict[str, str]) -> str:
    return name + "{" + ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items())) + "}"


def absent_labels(expr: str) -> dict[str, str]:
    """The labels absent(x{a="b"}) gives its one sample: the selector's equality matchers."""
    match = _ABSENT.match(expr)
    if not match:
        return {}
    return {name: json.loads(f'"{value}"') for name, op, value in _EQUALS.findall(match.group(1)) if op == "="}


def fixed_cases(spec: Spec, alert: Alert) -> list[tuple[str, dict]]:
    """A fixed alert (Watchdog, absent()) fires with no input at all once `for` has passed, and never stops."""
    interval = spec.evaluation_interval
    wait = _steps(alert.for_, interval) * interval
    expect = expected_alert(alert, absent_labels(alert.expr), 1.0, None, alert.expected_severity)
    evals = [{"eval_time": duration(wait - interval), "alertname": alert.name, "exp_alerts": []}] \
        if alert.for_ >= interval else []
    evals += [{"eval_time": duration(wait), "alertname": alert.name, "exp_alerts": [expect]},
              {"eval_time": duration(wait + 10 * interval), "alertname": alert.name, "exp_alerts": [expect]}]
    after = f" after `for` ({duration(alert.for_)})" if alert.for_ else " from the first evaluation"
    return [(f"{alert.name}: with no input at all, fires{after} with its labels, and never stops.",
             {"name": f"{alert.name}: fires with no input", "interval": duration(interval), "input_series": [],
              "alert_rule_test": evals})]


def _retired_series(alert: Alert, labels: dict[str, str], steps: int) -> list[dict]:
    """A retired mark for the series with `labels`: the metric `retired`, sharing the labels of `retired_on`."""
    family = catalog.BY_NAME[alert.retired]
    own = {**label_set(family.labels, {}, [], 0), **{k: labels[k] for k in alert.retired_on}}
    return [{"series": _series_text(alert.retired, own), "values": f"1000000000x{steps}"}]


def _target_down(alert: Alert, name: str, labels: dict[str, str], values: str, interval: float,
                 step: int) -> tuple[str, dict]:
    """The series stops because its target's scrape fails (`up` is 0): TargetDown pages for that, this alert not."""
    scraped = {**labels, **label_set(("job", "instance"), {}, [], 0)}
    up = _series_text("up", label_set(("job", "instance"), {}, [], 0))
    return (f"{alert.name}: the series stops because its target cannot be scraped (up is 0): silent, TargetDown "
            f"pages once for the whole target.",
            {"name": f"{alert.name}: silent while the target is down", "interval": duration(interval),
             "input_series": [{"series": _series_text(name, scraped), "values": values},
                              {"series": up, "values": f"1x2 0x{step}"}],
             "alert_rule_test": [{"eval_time": duration(step * interval), "alertname": alert.name, "exp_alerts": []}]})


def vanished_cases(spec: Spec, alert: Alert) -> list[tuple[str, dict]]:
    """Silent while reported; fires `for` after the series stops, until it is reported again or its last
    report leaves the window; never for a series retired on purpose."""
    interval, window = spec.evaluation_interval, alert.expected_window
    name = alert.value.replace("${selector}", "")
    labels = label_set(catalog.BY_NAME[name].labels, {}, [], 0)
    reported = 3  # samples at 0, 1 and 2 intervals; a staleness marker at the third
    wait = _steps(alert.for_, interval)
    fire = reported + wait
    back = fire + 2
    total = back + 3
    gone = reported - 1 + _steps(window, interval) + 1  # the last report has left [t - window, t]
    series_name = _series_text(name, labels)
    expect = expected_alert(alert, labels, REPORTED, None, alert.expected_severity)

    def at(step: int, alerts: list) -> dict:
        return {"eval_time": duration(step * interval), "alertname": alert.name, "exp_alerts": alerts}
    stops_then_returns = f"{units.number(REPORTED)}x{reported - 1} stale _x{back - reported - 1} " \
                         f"{units.number(REPORTED)}x{total - back}"
    checks = ([at(fire - 1, [])] if alert.for_ >= interval else []) + [at(fire, [expect]), at(back + 1, [])]
    cases = [
        (f"{alert.name}: {name} is reported, then stops: fires after `for` ({duration(alert.for_)}) with the "
         f"series' labels, and resolves once the series is reported again.",
         {"name": f"{alert.name}: fires when the series stops, resolves when it is back",
          "interval": duration(interval), "input_series": [{"series": series_name, "values": stops_then_returns}],
          "alert_rule_test": checks}),
        (f"{alert.name}: a series reported all along never fires.",
         {"name": f"{alert.name}: silent while reported", "interval": duration(interval),
          "input_series": [{"series": series_name, "values": f"{units.number(REPORTED)}x{total}"}],
          "alert_rule_test": [at(total, [])]}),
    ]
    if gone > fire:
        stops = f"{units.number(REPORTED)}x{reported - 1} stale"
        cases.append((
            f"{alert.name}: it looks for a stopped series for {duration(window)}: still firing when the last report "
            f"is that old, silent one evaluation later.",
            {"name": f"{alert.name}: the window is {duration(window)}", "interval": duration(interval),
             "input_series": [{"series": series_name, "values": stops}],
             "alert_rule_test": [at(gone - 1, [expect]), at(gone, [])]}))
    if alert.retired:
        cases.append((
            f"{alert.name}: a series retired on purpose ({alert.retired} is set for it) stops without firing.",
            {"name": f"{alert.name}: silent for a retired series", "interval": duration(interval),
             "input_series": [{"series": series_name, "values": f"{units.number(REPORTED)}x{reported - 1} stale"}]
             + _retired_series(alert, labels, total),
             "alert_rule_test": [at(fire, []), at(fire + 2, [])]}))
    cases.append(_target_down(alert, name, labels, f"{units.number(REPORTED)}x{reported - 1} stale", interval, fire))
    return cases


def age_vanish_cases(spec: Spec, alert: Alert) -> list[tuple[str, dict]]:
    """An age whose timestamp series stops being reported keeps growing: the alert fires once it passes the
    threshold for `for`, exactly as if the series were still there; a retired series never fires."""
    interval, drv = spec.evaluation_interval, alert.driver
    labels = label_set(drv.labels, {}, [dict(o.match) for o in alert.overrides], 0)
    thresholds = tuple(t.expected for t in alert.tiers)
    reported = 3
    last = (reported - 1) * interval - drv.normal  # the timestamp of the last report
    horizon = _steps(max(thresholds) + max(t.for_ for t in alert.tiers), interval) + reported + 4
    values = [drv.normal if k < reported else k * interval - last for k in range(horizon)]
    tiers = Tiers(alert, thresholds, interval)
    fire = next(k for k in range(horizon) if tiers.firing(values, k * interval) == [len(alert.tiers) - 1])
    name = drv.metrics[0]
    series = [{"series": _series_text(name, labels),
               "values": f"{units.number(-drv.normal)}+{units.number(interval)}x{reported - 1} stale"}]
    shown = [(labels, values)]
    cases = [(
        f"{alert.name}: {name} stops being reported; its age keeps growing and fires once beyond "
        f"{units.humane(alert.unit, thresholds[-1])} for `for` ({duration(alert.tiers[-1].for_)}).",
        {"name": f"{alert.name}: fires when the series stops being reported", "interval": duration(interval),
         "input_series": series,
         "alert_rule_test": [tiers.check((fire - 1) * interval, shown), tiers.check(fire * interval, shown)]})]
    if alert.retired:
        cases.append((
            f"{alert.name}: a series retired on purpose ({alert.retired} is set for it) stops without firing.",
            {"name": f"{alert.name}: silent for a retired series", "interval": duration(interval),
             "input_series": series + _retired_series(alert, labels, horizon),
             "alert_rule_test": [{"eval_time": duration(fire * interval), "alertname": alert.name, "exp_alerts": []}]}))
    cases.append(_target_down(alert, name, labels, series[0]["values"], interval, fire))
    return cases


def prediction_cases(spec: Spec, alert: Alert) -> list[tuple[str, dict]]:
    """The prediction crosses the contract's threshold `horizon` ahead: fires after `for`, resolves once the
    growth stopped a regression window ago; silent just short of it, and (with a guard) until the value
    itself passes the guard."""
    interval, drv, tier = spec.evaluation_interval, alert.driver, alert.tiers[0]
    threshold, horizon, guard = tier.expected, alert.expected_horizon, alert.expected_guard
    sign = 1 if alert.op.startswith(">") else -1
    start = guard + sign * 2 * units.step(guard) if guard is not None else drv.normal
    labels = label_set(drv.labels, {}, [], 0)
    carried = {k: labels[k] for k in alert.carries}
    wait = _steps(tier.for_, interval)

    def run(first: float, slope: float, steps: int, flat: int = 0) -> tuple[list[dict], list[float], list[float]]:
        """Input series growing by `slope` a second from `first`, then flat; the value and prediction per step."""
        delta = as_written(drv, slope * interval)
        values = [first + delta * min(k, steps - 1) for k in range(steps + flat)]
        slope_now = [delta / interval if 1 <= k < steps else None for k in range(steps + flat)]
        predicted = [v + s * horizon if s is not None else math.nan for v, s in zip(values, slope_now)]
        return linear_series(drv, labels, [(first, delta, steps)] + ([(values[-1], 0.0, flat)] if flat else [])), \
            values, predicted

    def fires(values, predicted) -> list[bool]:
        return [not math.isnan(p) and units.compare(p, alert.op, threshold)
                and (guard is None or units.compare(v, alert.op[0], guard)) for v, p in zip(values, predicted)]

    def first_firing(holds: list[bool]) -> int:
        run_start = None
        for k, ok in enumerate(holds):
            run_start = (run_start if run_start is not None else k) if ok else None
            if run_start is not None and k - run_start >= wait:
                return k
        raise ValueError(f"{alert.name}: the generated prediction case never fires (horizon too short?)")

    def at(step: int, alerts: list) -> dict:
        return {"eval_time": duration(step * interval), "alertname": alert.name, "exp_alerts": alerts}

    def firing_alert(values, predicted, step) -> dict:
        return expected_alert(alert, carried, predicted[step], threshold, tier.expected_severity)

    cross = (_CROSS + 0.5) * interval
    slope = (threshold - start) / (cross + horizon)
    grow = _CROSS + 1 + wait + 2
    flat = _steps(alert.window + alert.keep_firing_for, interval) + 3
    inputs, values, predicted = run(start, slope, grow, flat)
    fire = first_firing(fires(values, predicted))
    checks = ([at(fire - 1, [])] if wait else []) + [at(fire, [firing_alert(values, predicted, fire)]),
                                                       at(grow + flat - 1, [])]
    cases = [(
        f"{alert.name}: the value grows from {_show(alert, start)} so that, {duration(horizon)} ahead, it is predicted "
        f"to pass {_show(alert, threshold)} between {duration(_CROSS * interval)} and "
        f"{duration((_CROSS + 1) * interval)}: fires after `for` ({duration(tier.for_)}); resolves once it stopped "
        f"growing {duration(alert.window)} ago.",
        {"name": f"{alert.name}: fires when the prediction crosses", "interval": duration(interval),
         "input_series": inputs, "alert_rule_test": checks})]
    end = grow + flat - 1
    short = threshold - sign * units.step(threshold)
    inputs, values, predicted = run(start, (short - start) / (end * interval + horizon), end + 1)
    cases.append((
        f"{alert.name}: the value grows so that the prediction only reaches {_show(alert, short)}, short of "
        f"{alert.op} {_show(alert, threshold)}: silent.",
        {"name": f"{alert.name}: silent just short of the threshold", "interval": duration(interval),
         "input_series": inputs, "alert_rule_test": [at(end, [])]}))
    if guard is not None:
        fast = 2 * (threshold - guard) / horizon
        first = guard - fast * (_CROSS + 2.5) * interval
        inputs, values, predicted = run(first, fast, grow + 4)
        fire = first_firing(fires(values, predicted))
        cases.append((
            f"{alert.name}: predicted beyond {_show(alert, threshold)} from the start, but the value itself passes "
            f"the guard ({alert.op[0]} {_show(alert, guard)}) only between {duration((_CROSS + 2) * interval)} and "
            f"{duration((_CROSS + 3) * interval)}: silent until then, fires `for` after it.",
            {"name": f"{alert.name}: the guard holds it back", "interval": duration(interval), "input_series": inputs,
             "alert_rule_test": [at(fire - 1, []), at(fire, [firing_alert(values, predicted, fire)])]}))
    return cases


def _show(alert: Alert, value: float) -> str:
    return units.humane(alert.unit, value)
