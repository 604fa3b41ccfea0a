"""Parse and validate Alertmanager's webhook body (version "4"); errors name the offending field.

Every version-4 body of Alertmanager 0.16 and later is taken: `fingerprint` (0.19) and `truncatedAlerts`
(0.21) may be missing; fields newer releases add (`routeLabels`, `notification_reason`) are ignored. No
release sends a map as null (template.Data() makes every one, even empty), so null stays an error.
"""
from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from webhook_receiver.fingerprint import label_fingerprint

# Alertmanager marks "not resolved yet" with Go's zero time.
ZERO_TIME = "0001-01-01T00:00:00.000000000Z"
# ASCII digits only: \d also matches other scripts' digits, which int() reads and RFC3339 does not allow.
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})\Z", re.ASCII)
STATUSES = ("firing", "resolved")
# A fire drill's synthetic alerts carry this label (its value names the drill run): messages say "drill",
# the history marks them, analytics leave them out.
DRILL_LABEL = "dumont_drill"
# truncatedAlerts: Go sends a uint64, but no group holds 2^31 alerts; the bound keeps sums of it within SQLite's
# 64-bit integers (a value past 2^63 could not even be stored: it answered 500).
MAX_TRUNCATED = 2**31 - 1
# JSON's \ud800 escapes (and json.loads' surrogatepass decoding of raw bytes) can yield lone UTF-16 surrogates:
# not Unicode, so no UTF-8 encoder (SQLite's, Jinja's page, the email) can write them.
_SURROGATE = re.compile("[\ud800-\udfff]")
_MISSING = object()


class PayloadError(ValueError):
    """A webhook body that is not a valid Alertmanager version 4 payload."""


@dataclass(frozen=True)
class Alert:
    """One alert of a notification; times are canonical RFC3339 (UTC, nanoseconds), ends_at None while firing."""

    fingerprint: str
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: str
    ends_at: str | None
    generator_url: str


@dataclass(frozen=True)
class BodyCut:
    """What the receiver left out of a post larger than max_body_bytes: `alerts` of a body of `body_bytes`."""

    alerts: int
    body_bytes: int
    max_body_bytes: int


@dataclass(frozen=True)
class Notification:
    """One webhook body: a group of alerts Alertmanager routed to one receiver."""

    receiver: str
    status: str
    group_key: str
    group_labels: dict[str, str]
    common_labels: dict[str, str]
    common_annotations: dict[str, str]
    external_url: str
    truncated_alerts: int         # alerts of the group left out of what is stored: Alertmanager's and the receiver's
    alerts: tuple[Alert, ...]
    cut: BodyCut | None = None     # set when the receiver kept only the first alerts of an oversized post


# The same few times recur in every webhook (a rule's alerts share a startsAt, firing ones Go's zero time).
@functools.lru_cache(maxsize=4096)
def canonical_time(text: str) -> str:
    """`text` (RFC3339, any offset, up to nanoseconds) as UTC with nine fraction digits, so equal instants compare equal."""
    match = _RFC3339.match(text)
    if not match:
        raise ValueError(f"not an RFC3339 time: {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    nanos = (match.group(7) or "").ljust(9, "0")
    offset = match.group(8)
    try:
        moment = datetime(year, month, day, hour, minute, second)
        if offset not in ("Z", "z"):
            sign = 1 if offset[0] == "+" else -1
            moment -= sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))
    except (ValueError, OverflowError):
        if year == 1:  # Go's zero time written with an offset lands before year 1
            return ZERO_TIME
        raise ValueError(f"not an RFC3339 time: {text!r}") from None
    return _format(moment, nanos)


def _format(moment: datetime, nanos: str) -> str:
    # Not strftime: glibc writes year 1 (Go's zero time) as "1", not "0001".
    return (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
            f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}.{nanos}Z")


def epoch(canonical: str) -> float:
    """Unix seconds of a canonical time."""
    moment = datetime.strptime(canonical[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    return moment.timestamp() + int(canonical[20:29]) / 1e9


def micros(seconds: float | None) -> int | None:
    """Unix seconds as whole microseconds, rounded the way the store's time filters round them."""
    # Not round(): SQLite must reproduce this bit for bit, and CAST(x * 1000000 + 0.5 AS INTEGER) does.
    return None if seconds is None else int(seconds * 1000000 + 0.5)


def format_epoch(seconds: float) -> str:
    """A canonical time from Unix seconds, to the microsecond."""
    # Microseconds: a float of Unix seconds carries no finer digits honestly.
    whole, fraction = divmod(micros(seconds), 10**6)
    moment = datetime.fromtimestamp(whole, tz=timezone.utc)
    return _format(moment, f"{fraction:06d}000")


def is_unicode(text: str) -> bool:
    """Whether `text` is valid Unicode: no lone UTF-16 surrogate, which JSON's escapes can smuggle in."""
    return text.isascii() or _SURROGATE.search(text) is None


def _not_unicode(where: str) -> PayloadError:
    return PayloadError(f"{where}: not valid Unicode (a lone UTF-16 surrogate such as \\ud800)")


def _field(obj: Mapping[str, Any], key: str, path: str, kind: type, kind_name: str) -> Any:
    value = obj.get(key, _MISSING)
    # JSON decodes to exact types, never subclasses: one identity check (it also keeps bool out of int).
    if type(value) is kind:
        if kind is str and not is_unicode(value):
            raise _not_unicode(f"{path}{key}")
        return value
    if value is _MISSING:
        raise PayloadError(f"{path}{key}: required")
    raise PayloadError(f"{path}{key}: expected {kind_name}, got {_json_type(value)}")


def _json_type(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number",
            float: "number", type(None): "null"}.get(type(value), type(value).__name__)


def _string_map(obj: Mapping[str, Any], key: str, path: str) -> dict[str, str]:
    value = _field(obj, key, path, dict, "an object")
    if not all(type(item) is str for item in value.values()):  # JSON gives str, never a subclass
        name, item = next((name, item) for name, item in value.items() if type(item) is not str)
        raise PayloadError(f"{path}{key}.{name}: expected a string, got {_json_type(item)}")
    # One pass over all names and all values (joined in C); only a map that fails is searched name by name.
    if not (is_unicode("".join(value)) and is_unicode("".join(value.values()))):
        for name, item in value.items():
            if not is_unicode(name):
                raise _not_unicode(f"{path}{key}: the name {ascii(name)}")
            if not is_unicode(item):
                raise _not_unicode(f"{path}{key}.{name}")
    return value


def _status(obj: Mapping[str, Any], path: str) -> str:
    status = _field(obj, "status", path, str, "a string")
    if status not in STATUSES:
        raise PayloadError(f'{path}status: expected "firing" or "resolved", got {status!r}')
    return status


def _time(obj: Mapping[str, Any], key: str, path: str) -> str:
    text = _field(obj, key, path, str, "a string")
    try:
        return canonical_time(text)
    except ValueError as exc:
        raise PayloadError(f"{path}{key}: {exc}") from None


def _alert(obj: Any, path: str) -> Alert:
    if not isinstance(obj, dict):
        raise PayloadError(f"{path[:-1]}: expected an object, got {_json_type(obj)}")
    status = _status(obj, path)
    labels = _string_map(obj, "labels", path)
    annotations = _string_map(obj, "annotations", path)
    starts_at = _time(obj, "startsAt", path)
    ends_at = _time(obj, "endsAt", path)
    generator_url = _field(obj, "generatorURL", path, str, "a string")
    if "fingerprint" in obj:
        fingerprint = _field(obj, "fingerprint", path, str, "a string")
        if not fingerprint:
            raise PayloadError(f"{path}fingerprint: must not be empty")
    else:  # Alertmanager before 0.19: the value it would have sent
        fingerprint = label_fingerprint(labels)
    return Alert(fingerprint, status, labels, annotations, starts_at,
                 None if ends_at == ZERO_TIME else ends_at, generator_url)


def decode_json(text: bytes | bytearray, field: str = "") -> Any:
    """`text` decoded as JSON, or PayloadError naming the `field` it is (if any) and the problem."""
    prefix = f"{field}: " if field else ""
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(f"{prefix}malformed JSON: {exc}") from None
    except RecursionError:
        raise PayloadError(f"{prefix}malformed JSON: nested too deeply") from None


def parse_webhook(body: bytes) -> Notification:
    """The Notification in `body`, or PayloadError saying what is wrong."""
    return notification_from(decode_json(body))


def notification_from(obj: Any, cut: BodyCut | None = None) -> Notification:
    """The Notification of a decoded body; `cut` adds what the receiver left out of it to truncated_alerts."""
    if not isinstance(obj, dict):
        raise PayloadError(f"body: expected a JSON object, got {_json_type(obj)}")
    version = _field(obj, "version", "", str, "a string")
    if version != "4":
        raise PayloadError(f'version: expected "4", got {version!r}')
    alerts = _field(obj, "alerts", "", list, "an array")
    if not alerts:
        raise PayloadError("alerts: must not be empty")
    truncated = _field(obj, "truncatedAlerts", "", int, "an integer") if "truncatedAlerts" in obj else 0  # < 0.21
    if not 0 <= truncated <= MAX_TRUNCATED:
        raise PayloadError(f"truncatedAlerts: expected an integer from 0 to {MAX_TRUNCATED}")
    return Notification(
        receiver=_field(obj, "receiver", "", str, "a string"),
        status=_status(obj, ""),
        group_key=_field(obj, "groupKey", "", str, "a string"),
        group_labels=_string_map(obj, "groupLabels", ""),
        common_labels=_string_map(obj, "commonLabels", ""),
        common_annotations=_string_map(obj, "commonAnnotations", ""),
        external_url=_field(obj, "externalURL", "", str, "a string"),
        truncated_alerts=truncated + (cut.alerts if cut else 0),
        alerts=tuple(_alert(item, f"alerts[{i}].") for i, item in enumerate(alerts)),
        cut=cut,
    )
