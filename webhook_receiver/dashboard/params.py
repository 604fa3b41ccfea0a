"""The dashboard API's query parameters: each one checked, a bad one named in the 400's message."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping
from zoneinfo import ZoneInfo

from webhook_receiver.config import zone_info
from webhook_receiver.payload import canonical_time, epoch


class ParamError(ValueError):
    """A query parameter the API cannot use; `parameter` names it."""

    def __init__(self, parameter: str, message: str):
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


@dataclass(frozen=True)
class SavingsParams:
    """When the savings are read for (`at`, Unix seconds) and in which zone."""

    at: float
    zone: ZoneInfo


def check_known(args: Mapping[str, str], known: tuple[str, ...]) -> None:
    """Refuse a parameter the endpoint does not take: a misspelt `tz` must not silently mean UTC."""
    for name in args:
        if name not in known:
            accepted = ", ".join(known) if known else "none"
            raise ParamError(name, f"unknown parameter (this endpoint takes: {accepted})")


def savings_params(args: Mapping[str, str], now: float, default_zone: str) -> SavingsParams:
    """`tz` (an IANA zone, default the configured one) and `time` (RFC 3339 or Unix seconds, default now)."""
    check_known(args, ("tz", "time"))
    try:
        zone = zone_info(args.get("tz", default_zone))
    except ValueError as exc:
        raise ParamError("tz", str(exc)) from None
    at = now
    if "time" in args:
        at = parse_time(args["time"])
        if at > now:
            raise ParamError("time", "is in the future: savings are only known up to now")
    return SavingsParams(at, zone)


def parse_time(text: str) -> float:
    """Unix seconds from RFC 3339 (`2026-10-25T19:00:00+01:00`) or a Unix time (`1792951200`), as Prometheus takes."""
    try:
        value = float(text)
    except ValueError:
        try:
            return epoch(canonical_time(text))
        except ValueError:
            raise ParamError("time", f"expected RFC 3339 or Unix seconds, got {text[:64]!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ParamError("time", f"expected a Unix time after 1970, got {text[:64]!r}")
    return value
