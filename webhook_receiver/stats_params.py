"""Parse GET /api/v1/stats's (and the /stats page's) query parameters into a StatsQuery; errors name the parameter."""
from __future__ import annotations

import re
from dataclasses import dataclass

from werkzeug.datastructures import MultiDict

from webhook_receiver.config import parse_duration
from webhook_receiver.query import QueryError
from webhook_receiver.query import _label as parse_label  # the history's label=name=value syntax, quoted names too
from webhook_receiver.query import _time as parse_time    # the history's since/until: RFC3339, any offset
from webhook_receiver.store.stats_facts import StatsQuery

PARAMS = ("since", "until", "alertname", "label", "flap", "top")
DEFAULT_WINDOW = 30 * 86400.0
DEFAULT_FLAP = 900.0          # 15 minutes
MAX_FLAP = 86400.0
DEFAULT_TOP, MAX_TOP = 10, 100
_NUMBER = re.compile(r"[0-9]{1,3}\Z")


@dataclass(frozen=True)
class StatsRequest:
    """A parsed stats request: what to ask the store, and how many of the noisiest alerts and machines to list."""

    query: StatsQuery
    top: int


def parse_stats_query(args: MultiDict, now: float) -> StatsRequest:
    """A StatsRequest from request args (empty values count as absent: an HTML form sends them)."""
    unknown = sorted(set(args) - set(PARAMS))
    if unknown:
        raise QueryError(f"{unknown[0]}: unknown parameter (known: {', '.join(PARAMS)})")
    for key in PARAMS:
        if key != "label" and len([value for value in args.getlist(key) if value]) > 1:
            raise QueryError(f"{key}: given more than once")
    values = {key: args.get(key) or None for key in PARAMS if key != "label"}
    until = parse_time("until", values["until"]) if values["until"] else now
    since = parse_time("since", values["since"]) if values["since"] else until - DEFAULT_WINDOW
    if since >= until:
        raise QueryError(f"since: must be before until ({values['since'] or 'until - 30d'} is not)")
    return StatsRequest(
        StatsQuery(since=since, until=until, now=now, flap=_flap(values["flap"]), alertname=values["alertname"],
                   labels=tuple(parse_label(text) for text in args.getlist("label") if text)),
        _top(values["top"]))


def _flap(text: str | None) -> float:
    if text is None:
        return DEFAULT_FLAP
    try:
        seconds = parse_duration(text)
    except ValueError:
        seconds = None
    if seconds is None or not 0 <= seconds <= MAX_FLAP or text.strip() != text:
        raise QueryError(f"flap: expected a duration from 0s to 1d like 15m, got {text[:40]!r}")
    return seconds


def _top(text: str | None) -> int:
    if text is None:
        return DEFAULT_TOP
    if not _NUMBER.match(text) or not 1 <= int(text) <= MAX_TOP:
        raise QueryError(f"top: expected an integer from 1 to {MAX_TOP}, got {text[:40]!r}")
    return int(text)
