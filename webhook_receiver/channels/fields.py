"""Tiny checks for channels.yml values: each returns the usable value or raises Invalid saying why."""
from __future__ import annotations

import re
from typing import Any

from exporter.durations import parse_duration


class Invalid(Exception):
    """A value is unusable; the message never quotes a value that could be a secret."""


def string(value: Any) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise Invalid("must be a non-empty string")
    return value


def boolean(value: Any) -> bool:
    """true or false (not "yes", not 1)."""
    if not isinstance(value, bool):
        raise Invalid("must be true or false")
    return value


def duration(value: Any) -> float:
    """A positive Prometheus duration (`30s`, `5m`, `1h30m`), in seconds."""
    seconds = parse_duration(value)
    if seconds is None:
        raise Invalid(f"must be a duration like 30s, 5m or 1h, got {value!r}")
    if seconds <= 0:
        raise Invalid("must be longer than 0s")
    return float(seconds)


def address(value: Any) -> str:
    """An email address (only the shape `local@domain` is checked)."""
    if not isinstance(value, str) or not re.fullmatch(r"[^@\s]+@[^@\s]+", value):
        raise Invalid(f"must be an email address, got {value!r}")
    return value


def addresses(value: Any) -> list[str]:
    """A non-empty list of email addresses."""
    if not isinstance(value, list) or not value:
        raise Invalid("must be a non-empty list of email addresses")
    for i, item in enumerate(value):
        try:
            address(item)
        except Invalid as exc:
            raise Invalid(f"item {i}: {exc}") from None
    return value


def hostport(value: Any) -> tuple[str, int]:
    """`host:port` (or `[v6addr]:port`) with a port from 1 to 65535."""
    host, _, port = value.rpartition(":") if isinstance(value, str) else ("", "", "")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise Invalid(f"must be host:port, got {value!r}")
    return host, int(port)


def names(value: Any) -> tuple[str, ...]:
    """A non-empty list of strings."""
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise Invalid("must be a non-empty list of channel names")
    return tuple(value)
