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
class Message:
    """What one send() delivers to one channel."""

    channel: str
    events: Sequence[AlertEvent]
    history_url: str
    digest: bool = False  # an alert storm folded into one message: render a summary
    left_out: int = 0     # alerts of the same groups that Alertmanager cut from its posts (max_alerts)


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
