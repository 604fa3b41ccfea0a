"""The values passed between the receiver's pipeline and its notification channels."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol


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


@dataclass(frozen=True)
class SendResult:
    """The outcome of one delivery attempt."""

    ok: bool
    retry_after: float | None = None  # seconds the channel asked us to wait
    permanent: bool = False  # retrying cannot help
    detail: str = ""  # short, secret-free outcome for the history


class Channel(Protocol):
    """A notification target; send() never raises for delivery problems."""

    name: str
    type: str  # "slack" | "email" | "heartbeat"

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
