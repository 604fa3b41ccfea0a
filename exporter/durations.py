"""Durations in Prometheus notation (`500ms`, `30s`, `1h30m`): the one grammar every component reads.

It lives beside the metric catalog for the same reason: the generator and the receiver import it from here.
"""
from __future__ import annotations

import re

# Prometheus' own model.ParseDuration grammar: units largest first, each at most once.
_DURATION = re.compile(r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$")
_UNIT_SECONDS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)


def parse_duration(text: object) -> float | None:
    """Seconds in a Prometheus duration such as `30s`, `5m`, `1h30m`; None when `text` is not one."""
    if not isinstance(text, str) or not text:
        return None
    match = _DURATION.match(text)
    if match is None or not any(match.groups()):
        return None
    return float(sum(int(amount) * unit for amount, unit in zip(match.groups(), _UNIT_SECONDS) if amount))


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
