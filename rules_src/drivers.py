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


def label_set(labels: tuple[str, ...], fixed: dict[str, str], avoid: list[dict[str, str]], variant: int) -> dict[str, str]:
    """Values for `labels`: `fixed` first, then canned values that no override in `avoid` matches."""
    out = {}
    for name in labels:
        value = fixed.get(name, LABEL_VALUES.get(name, f"{name}-a"))
        if name not in fixed and any(m.get(name) == value for m in avoid):
            value += "-other"
        out[name] = value
    if "machine_id" in out:
        out["machine_id"] = f"{out.get('machine_type', 'machine')}-{variant + 1}"
    elif labels and labels[0] not in fixed and variant:
        out[labels[0]] += f"-{variant + 1}"
    return out


def series(driver: Driver, labels: dict[str, str], phases: list[tuple[float, int]], interval: float) -> list[dict]:
    """promtool input_series making the alert's value phases[i][0] for phases[i][1] evaluation steps."""
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
    per_phase = [_cumulative(driver.buckets, driver.quantile, v) for v, _ in phases]
    return _bucket_series(driver, labels, per_phase, [n for _, n in phases])


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
