"""Durations in Prometheus notation, threshold units, and how values are written for people."""
from __future__ import annotations

import math

from exporter.durations import format_duration, parse_duration  # noqa: F401 (re-exported)


def threshold_value(unit: str, raw) -> float | None:
    """The number a threshold compares against, or None when `raw` is not valid for `unit`."""
    if unit == "seconds":
        return parse_duration(raw)
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
        return None
    if unit == "ratio" and not 0 <= raw <= 1:
        return None
    if unit == "usd_per_hour" and raw < 0:
        return None
    return float(raw)


UNIT_RULE = {
    "ratio": "must be a number between 0 and 1",
    "seconds": "must be a duration such as 30s, 5m or 1h",
    "usd_per_hour": "must be a number of US dollars per hour, 0 or more",
    "number": "must be a number",
}


def humane(unit: str, value: float) -> str:
    """A threshold as people read it: `80%`, `5m`, `1.00 USD/h`, `0`."""
    if unit == "ratio":
        return f"{value * 100:g}%"
    if unit == "seconds":
        return format_duration(value)
    if unit == "usd_per_hour":
        return f"{value:.2f} USD/h"
    return f"{value:g}"


def number(value: float) -> str:
    """A number as PromQL and promtool read it: no trailing `.0`, no float noise."""
    value = round(value, 9)
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def step(threshold: float) -> float:
    """One unit of the threshold's second significant digit: how far "just above" and "just below" sit."""
    if threshold == 0:
        return 1.0
    return 10.0 ** (math.floor(math.log10(abs(threshold))) - 1)


def compare(value: float, op: str, threshold: float) -> bool:
    """`value op threshold` as PromQL's comparison filters it."""
    return {">": value > threshold, ">=": value >= threshold, "<": value < threshold,
            "<=": value <= threshold, "==": value == threshold}[op]
