"""Input series for the generated tests: catalog metrics that make an alert's value what a case needs."""
from __future__ import annotations

import math

from . import units
from .model import Driver

# Label values of the test series; machine_id follows machine_type so a cpu override reads naturally.
LABEL_VALUES = {"machine_type": "gpu", "mount": "/data", "direction": "gpu_to_cpu", "provider": "vast",
                "component": "sync", "category": "spot", "job": "dumont-exporter", "instance": "exporter:9877"}
RATIO_TOTAL = 1000.0  # denominator of ratio drivers: small round numbers keep the ratio exact
OBSERVATIONS = 100.0  # histogram observations per evaluation interval


def label_set(labels: tuple[str, ...], fixed: dict[str, str], avoid: list[dict[str, str]], variant: int,
              vary: str = "") -> dict[str, str]:
    """Values for `labels`: `fixed` first, then canned values that no override in `avoid` matches.

    Variant n > 0 differs in machine_id, and in `vary` (a label the alert keeps, so that an
    aggregation such as `sum by (provider)` does not add the variants up), else in the first label.
    """
    out = {}
    for name in labels:
        value = fixed.get(name, LABEL_VALUES.get(name, f"{name}-a"))
        if name not in fixed and any(m.get(name) == value for m in avoid):
            value += "-other"
        out[name] = value
    if "machine_id" in out:
        out["machine_id"] = f"{out.get('machine_type', 'machine')}-{variant + 1}"
    varied = vary if vary in out else ("" if "machine_id" in out or not labels else labels[0])
    if varied and varied != "machine_id" and varied not in fixed and variant:
        out[varied] += f"-{variant + 1}"
    return out


def series(driver: Driver, labels: dict[str, str], phases: list[tuple[float, int]], interval: float) -> list[dict]:
    """promtool input_series making the alert's value phases[i][0] for phases[i][1] evaluation steps.

    Values that read a window (histogram, increase, rate) reach a phase's value once the window holds
    only that phase's samples: `trajectory` says what they are before.
    """
    def selector(name: str, extra: dict | None = None) -> str:
        return _series_name(name, {**labels, **(extra or {})})
    kind = driver.kind
    if kind == "gauge":
        return [{"series": selector(driver.metrics[0]), "values": _segments([(v, 0.0, n) for v, n in phases])}]
    if kind == "ratio":
        return [{"series": selector(driver.metrics[0]),
                 "values": _segments([(v * RATIO_TOTAL, 0.0, n) for v, n in phases])},
                {"series": selector(driver.metrics[1]), "values": _segments([(RATIO_TOTAL, 0.0, sum(n for _, n in phases))])}]
    if kind == "age":  # the timestamp trails evaluation time by the wanted age
        segs, step = [], 0
        for v, n in phases:
            segs.append((step * interval - v, interval, n))
            step += n
        return [{"series": selector(driver.metrics[0]), "values": _segments(segs)}]
    if kind in ("increase", "rate"):
        return [{"series": selector(driver.metrics[0]), "values": _segments(_counter_segments(driver, phases, interval))}]
    per_phase = [_cumulative(driver.buckets, driver.quantile, v) for v, _ in phases]
    return _bucket_series(driver, labels, per_phase, [n for _, n in phases])


def _increment(driver: Driver, value: float, interval: float) -> float:
    """What the counter grows by per step so that its increase (or rate) over `window` is `value`."""
    per_second = value if driver.kind == "rate" else value / driver.window
    return per_second * interval


def _counter_segments(driver: Driver, phases: list[tuple[float, int]], interval: float) -> list[tuple[float, float, int]]:
    """A counter from 0 growing at each phase's pace, restarting (a reset, as after an exporter restart)
    halfway through the first phase: increase() and rate() must see through it."""
    segs, total = [], 0.0
    for index, (value, n) in enumerate(phases):
        inc = _increment(driver, value, interval)
        start = 0.0 if index == 0 else total + inc
        if index == 0 and n >= 4 and inc > 0:
            half = n // 2
            segs += [(0.0, inc, half), (inc, inc, n - half)]  # after the reset: the step's events counted from 0
            total = inc + inc * (n - half - 1)
        else:
            segs.append((start, inc, n))
            total = start + inc * (n - 1)
    return segs


def trajectory(driver: Driver, value: float, steps: int, interval: float) -> list[float | None]:
    """The alert's value at each of the first `steps` evaluations of a series that starts at `value` at 0s.

    None where it has none yet (a histogram's rate needs two samples); a counter's increase or rate
    counts from the counter's first sample, so it climbs until its window holds only this phase.
    """
    if driver.kind == "histogram":
        return [None] + [value] * (steps - 1)
    if driver.kind in ("increase", "rate"):
        window_steps = int(round(driver.window / interval))
        return [value * min(k, window_steps) / window_steps for k in range(steps)]
    return [value] * steps


def step_histogram(driver: Driver, labels: dict[str, str], phases: list[tuple[float, int]]) -> list[dict]:
    """promtool input_series of a histogram whose observations all land in the bucket with upper bound
    phases[i][0] for phases[i][1] evaluation steps (OBSERVATIONS per step): a quantile reads that bucket
    for as long as its share of the rate window is large enough."""
    bounds = list(driver.buckets) + [math.inf]
    per_phase = [{le: OBSERVATIONS if bound <= le else 0.0 for le in bounds} for bound, _ in phases]
    return _bucket_series(driver, labels, per_phase, [n for _, n in phases])


def _bucket_series(driver: Driver, labels: dict[str, str], per_phase: list[dict[float, float]],
                   steps: list[int]) -> list[dict]:
    """One cumulative series per `le`, growing by per_phase[i][le] each step for steps[i] steps."""
    out = []
    for le in per_phase[0]:
        segs, total = [], 0.0
        for index, (counts, n) in enumerate(zip(per_phase, steps)):
            start = 0.0 if index == 0 else total + counts[le]
            segs.append((start, counts[le], n))
            total = start + counts[le] * (n - 1)
        out.append({"series": _series_name(driver.metrics[0] + "_bucket", {**labels, "le": _le_text(le)}),
                    "values": _segments(segs)})
    return out


def _series_name(name: str, labels: dict[str, str]) -> str:
    """`name{a="1",b="2"}`, labels sorted: promtool's input series notation."""
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def _le_text(le: float) -> str:
    """A bucket's `le` label as client libraries write it: `20.0`, `+Inf`."""
    return "+Inf" if math.isinf(le) else repr(float(le))


def _segments(segs: list[tuple[float, float, int]]) -> str:
    """promtool's expanding notation: `start+deltaxN` gives N+1 values."""
    parts = []
    for start, delta, count in segs:
        sign = "-" if delta < 0 else "+"
        step = f"{sign}{units.number(abs(delta))}" if units.number(delta) != "0" else ""
        parts.append(f"{units.number(start)}{step}x{count - 1}")
    return " ".join(parts)


def reachable(buckets: tuple[float, ...], value: float) -> bool:
    """Whether a histogram with these bucket bounds can put a quantile exactly at `value` (see _cumulative)."""
    return bool(buckets) and buckets[0] < value <= buckets[-1]


def _cumulative(buckets: tuple[float, ...], q: float, value: float) -> dict[float, float]:
    """Per-step increments of each `le` bucket that put histogram_quantile(q) exactly at `value`.

    All observations go to value's bucket, plus either some to the first bucket (pulling the
    interpolated quantile down) or to +Inf (pushing it up); histogram_quantile interpolates linearly.
    """
    if not reachable(buckets, value):  # validate.py rejects such values; this guards the renderer
        raise ValueError(f"{value} is not between the histogram's first and last finite bucket")
    bounds = list(buckets) + [math.inf]
    k = next(i for i, b in enumerate(bounds) if value <= b)
    lo, hi = bounds[k - 1], bounds[k]
    f = (value - lo) / (hi - lo)
    counts = dict.fromkeys(bounds, 0.0)
    extra = OBSERVATIONS * (q - f) / (1 - f) if f <= q else OBSERVATIONS * (1 - q / f)
    counts[bounds[0] if f <= q else math.inf] += extra
    counts[hi] += OBSERVATIONS - extra
    running, out = 0.0, {}
    for b in bounds:
        running += counts[b]
        out[b] = round(running, 6)
    return out


def linear_series(driver: Driver, labels: dict[str, str], segments: list[tuple[float, float, int]]) -> list[dict]:
    """promtool input_series making a gauge or ratio value run along `segments`: (start, change per step, steps)."""
    if driver.kind == "gauge":
        return [{"series": _series_name(driver.metrics[0], labels), "values": _segments(segments)}]
    if driver.kind != "ratio":
        raise ValueError(f"a {driver.kind} test cannot make a value grow linearly (use gauge or ratio)")
    scaled = [(start * RATIO_TOTAL, delta * RATIO_TOTAL, n) for start, delta, n in segments]
    return [{"series": _series_name(driver.metrics[0], labels), "values": _segments(scaled)},
            {"series": _series_name(driver.metrics[1], labels),
             "values": _segments([(RATIO_TOTAL, 0.0, sum(n for _, _, n in segments))])}]


def as_written(driver: Driver, delta: float) -> float:
    """A change per step as the input series state it (rounded like every number written), in the value's terms."""
    scale = RATIO_TOTAL if driver.kind == "ratio" else 1.0
    return float(units.number(delta * scale)) / scale
