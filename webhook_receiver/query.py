"""Parse the history's query parameters into a HistoryQuery; errors name the parameter."""
from __future__ import annotations

import base64
import binascii
import json
import re

from werkzeug.datastructures import MultiDict

from webhook_receiver.payload import STATUSES, canonical_time, epoch, is_unicode
from webhook_receiver.store.base import HistoryQuery

PARAMS = ("alertname", "severity", "status", "channel", "label", "since", "until", "limit", "cursor", "suppressed")
ALERTS_PARAMS = ("limit", "cursor")  # /api/v1/alerts
MAX_LIMIT = 500
MAX_ID = 2**63 - 1  # SQLite's largest rowid: a cursor past it cannot be bound to a query
_QUOTED = json.JSONDecoder()
# ASCII digits only: str.isdigit() also takes "²" and other scripts' digits, which int() then refuses or reads.
_NUMBER = re.compile(r"[0-9]{1,19}\Z")
# The cursor of /api/v1/alerts: the last alert's canonical startsAt (payload.canonical_time) and event id.
_ALERTS_CURSOR = re.compile(r"a1:(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z):([0-9]{1,19})\Z", re.ASCII)


class QueryError(ValueError):
    """A history parameter that cannot be used."""


def encode_cursor(before_id: int) -> str:
    """An opaque cursor for the page after the entry `before_id`."""
    return base64.urlsafe_b64encode(f"v1:{before_id}".encode()).decode().rstrip("=")


def _unbase64(text: str) -> str | None:
    try:
        return base64.urlsafe_b64decode(text.encode("ascii") + b"=" * (-len(text) % 4)).decode("ascii")
    except (ValueError, binascii.Error):  # non-ASCII text or bytes, bad padding
        return None


def _decode_cursor(text: str) -> int:
    raw = _unbase64(text) or ""
    version, _, number = raw.partition(":")
    if version == "v1" and _NUMBER.match(number) and 1 <= int(number) <= MAX_ID:
        return int(number)
    raise QueryError("cursor: not a cursor this API returned")


def encode_alerts_cursor(starts_at: str, event_id: int) -> str:
    """An opaque cursor for the page of /api/v1/alerts after the alert with this startsAt and event id."""
    return base64.urlsafe_b64encode(f"a1:{starts_at}:{event_id}".encode()).decode().rstrip("=")


def _decode_alerts_cursor(text: str) -> tuple[str, int]:
    match = _ALERTS_CURSOR.match(_unbase64(text) or "")
    if match is None or not 1 <= int(match.group(2)) <= MAX_ID:
        raise QueryError("cursor: not a cursor this API returned")
    return match.group(1), int(match.group(2))


def _limit(text: str | None) -> int:
    if text is None:
        return 50
    if not _NUMBER.match(text) or not 1 <= int(text) <= MAX_LIMIT:
        raise QueryError(f"limit: expected an integer from 1 to {MAX_LIMIT}, got {text[:40]!r}")
    return int(text)


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
    if not is_unicode(name):  # a JSON string's \ud800 escape: no stored label can have it, and SQLite cannot bind it
        raise QueryError("label: the name is not valid Unicode (a lone UTF-16 surrogate)")
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
    for key in ("alertname", "severity", "status", "channel", "since", "until", "limit", "cursor", "suppressed"):
        if len([v for v in args.getlist(key) if v]) > 1:
            raise QueryError(f"{key}: given more than once")
    if values["status"] is not None and values["status"] not in STATUSES:
        raise QueryError(f'status: expected "firing" or "resolved", got {values["status"]!r}')
    if values["suppressed"] not in (None, "true", "false"):
        raise QueryError(f'suppressed: expected "true" or "false", got {values["suppressed"]!r}')
    labels = [_label(text) for text in args.getlist("label") if text]
    limit = _limit(values["limit"])
    return HistoryQuery(
        alertname=values["alertname"], severity=values["severity"], status=values["status"],
        channel=values["channel"], labels=tuple(labels),
        since=_time("since", values["since"]) if values["since"] else None,
        until=_time("until", values["until"]) if values["until"] else None,
        limit=limit,
        before_id=_decode_cursor(values["cursor"]) if values["cursor"] else None,
        suppressed=None if values["suppressed"] is None else values["suppressed"] == "true",
    )


def parse_alerts_query(args: MultiDict) -> tuple[int, tuple[str, int] | None]:
    """(limit, cursor position) of /api/v1/alerts from request args; the position is None on the first page."""
    unknown = sorted(set(args) - set(ALERTS_PARAMS))
    if unknown:
        raise QueryError(f"{unknown[0]}: unknown parameter (known: {', '.join(ALERTS_PARAMS)})")
    for key in ALERTS_PARAMS:
        if len([v for v in args.getlist(key) if v]) > 1:
            raise QueryError(f"{key}: given more than once")
    cursor = args.get("cursor") or None
    return _limit(args.get("limit") or None), _decode_alerts_cursor(cursor) if cursor else None
