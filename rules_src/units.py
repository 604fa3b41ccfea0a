"""Durations in Prometheus notation, threshold units, and how values are written for people."""
from __future__ import annotations

import math
import re

_DURATION = re.compile(r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$")
_FACTORS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)

def parse_duration(text) -> float | None:
    """Seconds in a Prometheus duration such as `30s`, `5m`, `1h30m`; None when it is not one."""
    if not isinstance(text, str) or not text:
        return None
    match = _DURATION.match(text)
    if match is None or not any(match.groups()):
        return None
    return sum(int(g) * f for g, f in zip(match.groups(), _FACTORS) if g)


def format_duration(seconds: float) -> str:
    """Prometheus notation for `seconds`, largest units first (`90` -> `1m30s`, `0` -> `0s`)."""
    if seconds == 0:
        return "0s"
    millis = round(seconds * 1000)
    out = ""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, millis = divmod(millis, size)
        out += f"{count}{unit}" if count else ""
    return out


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
