"""The values passed between the receiver's pipeline and its notification channels."""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import Protocol

# Retry-After as delay-seconds (RFC 9110 10.2.3 says digits; a fraction or an exponent is read too, so `1e9`
# is a long wait rather than garbage) and the named infinities, which mean "wait as long as you allow".
_DELAY = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_INFINITE = ("inf", "+inf", "infinity", "+infinity")


@dataclass(frozen=True)
class AlertEvent:
    """One alert state change to tell people about."""

    fingerprint: str
    status: str  # "firing" | "resolved"
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: str  # RFC3339 as sent by Alertmanager
    ends_at: str | None
    generator_url: str = ""
    episode: int = 0  # which firing of this startsAt (a re-fire after a resolution is the next): identity with the above
    # The channel's reference of the message that told this episode's firing (a Slack ts), for a later change of
    # the episode to reply to; None for a firing, or when the firing did not reach the channel.
    thread: str | None = None


@dataclass(frozen=True)
class StormSummary:
    """Counts by alertname and severity, and a few examples, for a digest or an oversized message."""

    total: int
    firing: int
    resolved: int
    groups: tuple[tuple[str, str, int, int], ...]  # (alertname, severity, firing, resolved), worst first
    hidden_groups: int
    examples: tuple[AlertEvent, ...]
    names: tuple[str, ...]     # every alertname, in the order of the state changes (the headline's)
    worst: str | None          # severity of the first most severe state change; None without any
    worst_firing: str | None   # the same among the firing ones; None when all are resolved


@dataclass(frozen=True)
class Message:
    """What one send() delivers to one channel."""

    channel: str
    events: Sequence[AlertEvent]
    history_url: str
    digest: bool = False  # an alert storm folded into one message: render a summary
    left_out: int = 0     # alerts of the same groups cut from their posts: by Alertmanager (max_alerts), the receiver
    cut_by_receiver: int = 0      # of those, the alerts the receiver cut from posts larger than its limit
    max_body_bytes: int | None = None  # that limit
    # A digest's summary when the relay built it from the database; `events` then holds only its examples.
    summary: StormSummary | None = None
    receiver_url: str = ""  # the receiver's external_url: base of each alert's page (<receiver_url>/alerts/<fp>)
    # A threaded reply's parent as it stands now (its alerts' newest state), for a channel that updates the
    # first message of a thread (Slack's update_parent); None otherwise.
    parent: Message | None = None


@dataclass(frozen=True)
class SendResult:
    """The outcome of one delivery attempt."""

    ok: bool
    retry_after: float | None = None  # seconds the channel asked us to wait
    permanent: bool = False  # retrying cannot help
    detail: str = ""  # short, secret-free outcome for the history
    reference: str | None = None  # the channel's id of the delivered message (a Slack ts), stored with its rows


def parse_retry_after(value: str | None, now: float, cap: float) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or HTTP date), in [0, cap]; None if unusable.

    Garbage, a negative number and `nan` are no Retry-After at all (the answer is then an ordinary failure);
    a huge number, `inf` or a date further ahead than `cap` is `cap`; a date in the past is 0 (now).
    """
    if value is None:
        return None
    text = value.strip()
    if _DELAY.fullmatch(text):
        seconds = float(text)  # digits only: finite or, for absurd exponents, inf (capped below)
    elif text.lower() in _INFINITE:
        seconds = math.inf
    else:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:  # asctime() dates carry no zone: RFC 9110 dates are all GMT
            when = when.replace(tzinfo=timezone.utc)
        seconds = max(when.timestamp() - now, 0.0)
    return clamp_delay(seconds, cap)


def clamp_delay(seconds: float | None, cap: float) -> float | None:
    """`seconds` bounded to [0, cap]; None for None, nan or a negative number."""
    if seconds is None or isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        return None
    if math.isnan(seconds) or seconds < 0:
        return None
    return float(min(seconds, cap))


class Channel(Protocol):
    """A notification target; send() never raises for delivery problems."""

    name: str
    type: str  # "slack" | "email" | "webhook" | "pagerduty" | "heartbeat"
    # Whether a storm may be folded into one digest of counts and examples (Message.digest). A channel whose
    # receiver needs every state change (a paging service's incidents) says False: it gets batches only.
    digests: bool
    # Optional `threads = True`: later changes of an episode reply to the message that told its firing
    # (AlertEvent.thread), so the relay sends one message per thread (relay/threads.py).

    def send(self, message: Message) -> SendResult: ...


@dataclass(frozen=True)
class DeadmanConfig:
    """Which heartbeat channel to watch, how long silence may last, and whom to tell."""

    channel: str
    timeout_seconds: float
    notify: tuple[str, ...]


@dataclass(frozen=True)
class ChannelSet:
    """Everything channels.yml configures."""

    channels: Mapping[str, Channel]
    deadman: DeadmanConfig | None
    quiet_on_reconcile: frozenset[str] = frozenset()  # relay_reconciled: false
