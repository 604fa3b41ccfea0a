"""Argument checks for the telemetry API: each raises ValueError naming the argument it rejects."""
from __future__ import annotations

import math
from numbers import Real

from exporter.catalog import LABEL_VALUE_MAX_BYTES


def text(name: str, value: object) -> str:
    """`value` if it is a non-empty string that fits a label value (LABEL_VALUE_MAX_BYTES, nothing JSON escapes)."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate: not text Prometheus could store
        raise ValueError(f"{name} must be valid Unicode text, got {value!r}") from None
    if size > LABEL_VALUE_MAX_BYTES:
        raise ValueError(f"{name} must be at most {LABEL_VALUE_MAX_BYTES} bytes of UTF-8, got {size}")
    odd = next((ch for ch in value if ord(ch) < 0x20 or ord(ch) == 0x7F or ch in _ESCAPED), None)
    if odd is not None:
        raise ValueError(f"{name} must not contain control characters or any of {_ESCAPED}, got {value!r}")
    return value


# JSON escapes these (Go's encoder writes < > & as \u003c etc.): six bytes each in Alertmanager's posts,
# which the rule generator sizes from LABEL_VALUE_MAX_BYTES. Names, types and paths have no use for them.
_ESCAPED = '"\\<>&'


def number(name: str, value: object, minimum: float = 0.0, maximum: float | None = None) -> float:
    """`value` as a float if it is a finite number within [minimum, maximum]."""
    # bool is a Real, but True as a byte count is a bug at the call site, not a number.
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"between {minimum:g} and {maximum:g}" if maximum is not None else f">= {minimum:g}"
        raise ValueError(f"{name} must be {bounds}, got {value!r}")
    return float(value)


def whole(name: str, value: object) -> int:
    """`value` if it is a whole number >= 0 (a count of events)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
    return value


def not_above(name: str, value: float, limit_name: str, limit: float) -> None:
    """Reject `value` greater than `limit` (a used amount above its total)."""
    if value > limit:
        raise ValueError(f"{name} must not exceed {limit_name} ({limit:g}), got {value:g}")
