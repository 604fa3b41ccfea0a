"""Parse the history's query parameters into a HistoryQuery; errors name the parameter."""
from __future__ import annotations

import base64
import json

from werkzeug.datastructures import MultiDict

from webhook_receiver.payload import STATUSES, canonical_time, epoch
from webhook_receiver.store.base import HistoryQuery

PARAMS = ("alertname", "severity", "status", "channel", "label", "since", "until", "limit", "cursor")
MAX_LIMIT = 500
_QUOTED = json.JSONDecoder()


class QueryError(ValueError):
    """A history parameter that cannot be used."""


def encode_cursor(before_id: int) -> str:
    """An opaque cursor for the page after the entry `before_id`."""
    return base64.urlsafe_b64encode(f"v1:{before_id}".encode()).decode().rstrip("=")


def _decode_cursor(text: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        version, _, number = raw.partition(":")
        if version == "v1" and number.isdigit():
            return int(number)
    except ValueError:
        pass
    raise QueryError("cursor: not a cursor this API returned")


def _label(text: str) -> tuple[str, str]:
    """(name, value) of `name=value`, split at the first `=`; a name holding `=` is written as a JSON string."""
    # Alertmanager 0.27+ takes any UTF-8 label name, `=` and quotes included; a JSON string says where it ends.
    if text.startswith('"'):
        try:
            name, end = _QUOTED.raw_decode(text)
        except ValueError:
            raise QueryError(f'label: expected "name"=value with the name a JSON string, got {text!r}') from None
        if text[end:end + 1] != "=":
            raise QueryError(f'label: expected = after the quoted name, got {text!r}')
        value = text[end + 1:]
    else:
        name, equals, value = text.partition("=")
        if not equals:
            raise QueryError(f"label: expected name=value, got {text!r}")
    if not name:
        raise QueryError(f"label: empty label name in {text!r}")
    return name, value


def _time(name: str, text: str) -> float:
    try:
        return epoch(canonical_time(text))
    except ValueError:
        raise QueryError(f"{name}: expected an RFC3339 time like 2024-05-01T12:00:00Z, got {text!r}") from None


def parse_query(args: MultiDict) -> HistoryQuery:
    """A HistoryQuery from request args; empty values count as absent (an HTML form sends them)."""
    unknown = sorted(set(args) - set(PARAMS))
    if unknown:
        raise QueryError(f"{unknown[0]}: unknown parameter (known: {', '.join(PARAMS)})")
    values = {key: args.get(key) or None for key in PARAMS if key != "label"}
    for key in ("alertname", "severity", "status", "channel", "since", "until", "limit", "cursor"):
        if len([v for v in args.getlist(key) if v]) > 1:
            raise QueryError(f"{key}: given more than once")
    if values["status"] is not None and values["status"] not in STATUSES:
        raise QueryError(f'status: expected "firing" or "resolved", got {values["status"]!r}')
    labels = [_label(text) for text in args.getlist("label") if text]
    limit = 50
    if values["limit"] is not None:
        if not values["limit"].isdigit() or not 1 <= int(values["limit"]) <= MAX_LIMIT:
            raise QueryError(f"limit: expected an integer from 1 to {MAX_LIMIT}, got {values['limit']!r}")
        limit = int(values["limit"])
    return HistoryQuery(
        alertname=values["alertname"], severity=values["severity"], status=values["status"],
        channel=values["channel"], labels=tuple(labels),
        since=_time("since", values["since"]) if values["since"] else None,
        until=_time("until", values["until"]) if values["until"] else None,
        limit=limit,
        before_id=_decode_cursor(values["cursor"]) if values["cursor"] else None,
    )
