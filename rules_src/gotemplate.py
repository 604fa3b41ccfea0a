"""The subset of Prometheus' Go templates that annotations may use, evaluated as Prometheus would.

The generated tests compare annotations exactly, so the generator must know what Prometheus will
print. Annotations are limited to `{{ $labels.NAME }}` and `{{ $value }}`, optionally piped through
humanize, humanizePercentage, humanizeDuration or `printf "%.Nf"`; validate.py rejects anything else.
"""
from __future__ import annotations

import math
import re

ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}")
_FORM = re.compile(r'^(\$labels\.[A-Za-z_][A-Za-z0-9_]*|\$value)'
                   r'(?:\s*\|\s*(humanize|humanizePercentage|humanizeDuration|printf\s+"%\.\d+f"))?$')


def unsupported(text: str) -> list[str]:
    """The template actions in `text` this module cannot evaluate."""
    return [m.group(0) for m in ACTION.finditer(text) if not _FORM.match(m.group(1))]


def expand(text: str, labels: dict[str, str], value: float) -> str:
    """`text` as Prometheus expands it for an alert with `labels` and `value`."""
    def one(match: re.Match) -> str:
        subject, func = _FORM.match(match.group(1)).groups()
        if subject != "$value":
            return labels.get(subject[len("$labels."):], "")
        if func is None:
            return _go_float(value)
        if func.startswith("printf"):
            return func.split('"')[1] % value
        return {"humanize": humanize, "humanizePercentage": lambda v: _g4(v * 100) + "%",
                "humanizeDuration": humanize_duration}[func](value)
    return ACTION.sub(one, text)


def _g4(v: float) -> str:
    return "%.4g" % v


def _go_float(v: float) -> str:
    """Go's %v for a float64: the shortest repr, exponent form from 1e21."""
    if v == int(v) and abs(v) < 1e21:
        return str(int(v))
    return repr(v)


def humanize(v: float) -> str:
    """Go's humanize: SI prefixes, 4 significant digits."""
    if v == 0 or math.isnan(v) or math.isinf(v):
        return _g4(v)
    prefix = ""
    if abs(v) >= 1:
        for p in ("k", "M", "G", "T", "P", "E", "Z", "Y"):
            if abs(v) < 1000:
                break
            prefix, v = p, v / 1000
    else:
        for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
            if abs(v) >= 1:
                break
            prefix, v = p, v * 1000
    return _g4(v) + prefix


def humanize_duration(v: float) -> str:
    """Go's humanizeDuration: `1d 2h 3m 4s` from a minute up, `4.5s` and `20ms` below."""
    if math.isnan(v) or math.isinf(v):
        return _g4(v)
    sign, v = ("-", -v) if v < 0 else ("", v)
    if v >= 1:
        whole = int(v)
        days, hours, minutes, seconds = whole // 86400, whole // 3600 % 24, whole // 60 % 60, whole % 60
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{_g4(v)}s"
    if v == 0:
        return f"{_g4(v)}s"
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if v >= 1:
            break
        prefix, v = p, v * 1000
    return f"{sign}{_g4(v)}{prefix}s"
