"""What the receiver needs from its database, so a PostgreSQL backend can follow the SQLite one."""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Mapping, Sequence

from webhook_receiver.channels.model import AlertEvent
from webhook_receiver.payload import Alert, Notification
from webhook_receiver.store.stats_facts import StatsFacts, StatsQuery
from webhook_receiver.store.wakeup import Wakeup

# Outbox row states; "sending" is a claim the relay takes before calling a channel.
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
# How a state change reached the history (events.origin).
WEBHOOK, RECONCILIATION, RECEIVER = "webhook", "reconciliation", "receiver"
# An alert's suppression as Alertmanager's API says it (sightings.state, suppression_changes.state).
ACTIVE, SILENCED, INHIBITED = "active", "silenced", "inhibited"


class StorageError(Exception):
    """The database could not do what was asked; a retry later may succeed."""


@dataclass(frozen=True)
class IngestResult:
    """What one webhook changed: new alert state changes, messages queued, alerts already known."""

    new_events: int
    queued: int
    duplicates: int


@dataclass(frozen=True)
class OutboxItem:
    """One queued message for one channel, with the state change it announces."""

    id: int
    channel: str
    attempts: int
    received_at: float
    event: AlertEvent | None  # None from claim_digest: the digest's summary speaks for the row
    group_key: str | None = None  # Alertmanager's group of the post that queued it (None: the receiver's own)
    truncated_alerts: int = 0     # alerts of that group left out of the post: by Alertmanager (max_alerts), the receiver
    cut_alerts: int = 0           # of those, how many the receiver cut (the post was over max_body_bytes)
    cut_max_body_bytes: int | None = None  # the receiver's limit that post passed
    error: str | None = None      # the row could not be read into an event (event None): it is failed, not sent


@dataclass(frozen=True)
class RowUpdate:
    """The relay's verdict on one outbox row after an attempt."""

    id: int
    state: str          # PENDING (retry at due_at), DELIVERED or FAILED
    due_at: float
    counted: bool = True  # uses up one of the row's attempts (a deferral the channel asked for does not)
    detail: str | None = None  # this row's own outcome text (None: the attempt's detail)
    reference: str | None = None  # DELIVERED: the channel's id of the message that carried it (outbox.reference)


@dataclass(frozen=True)
class HistoryQuery:
    """Filters of the history feed; times are Unix seconds, `before_id` is the decoded cursor."""

    alertname: str | None = None
    severity: str | None = None
    status: str | None = None
    channel: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    since: float | None = None
    until: float | None = None
    limit: int = 50
    before_id: int | None = None
    suppressed: bool | None = None  # True: only changes stored while suppressed (never relayed); False: the others


@dataclass(frozen=True)
class TrackedAlert:
    """A firing alert as the store holds it, with what reconciliation last saw of it."""

    fingerprint: str
    event_id: int         # its firing
    starts_at: str
    suppressed: bool      # that firing is known only from Alertmanager's API while suppressed: never relayed
    state: str            # ACTIVE, SILENCED or INHIBITED as last recorded (ACTIVE when never seen)
    detail: str           # the JSON recorded with `state`
    last_seen: float | None  # when an Alertmanager last listed it (None: reconciliation never saw it)


@dataclass(frozen=True)
class Suppression:
    """An alert's suppression changed: `state` with `detail` (silences, inhibiting alerts), as a JSON text."""

    fingerprint: str
    state: str
    detail: str


@dataclass(frozen=True)
class Reconciliation:
    """What one reconciliation pass writes, atomically.

    `seen`: (fingerprint, firing event id, when listed) of tracked alerts an Alertmanager listed; `suppressed_firings`: alerts
    Alertmanager holds suppressed that the history lacks, each with its suppression; `suppressions`: changes of
    tracked alerts; `resolutions`: (tracked alert, its resolution's endsAt) for alerts no Alertmanager holds;
    `relay_channels`: the channels that want such a resolution when their firing reached them.
    """

    now: float
    seen: Sequence[tuple[str, int, float]] = ()
    suppressed_firings: Sequence[tuple[Alert, Suppression]] = ()
    suppressions: Sequence[Suppression] = ()
    resolutions: Sequence[tuple[TrackedAlert, str]] = ()
    relay_channels: Sequence[str] = ()


@dataclass(frozen=True)
class ReconcileResult:
    """What a reconciliation pass stored: firings seen only suppressed, suppression changes, resolutions, and
    messages queued for those resolutions."""

    suppressed_firings: int = 0
    suppressions: int = 0
    resolutions: int = 0
    queued: int = 0


class Store(abc.ABC):
    """Alert history, the outbox, heartbeats and shared counters, each write one transaction."""

    @abc.abstractmethod
    def migrate(self) -> int:
        """Apply pending migrations (idempotent); the schema version afterwards."""

    @abc.abstractmethod
    def schema_version(self) -> int:
        """The applied schema version (0 when none); raises StorageError when unreachable."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release every connection."""

    # -- ingest
    @abc.abstractmethod
    def ingest(self, channel: str, notification: Notification, now: float) -> IngestResult:
        """Store the notification and its state changes, and queue a message per change new to the channel, atomically.

        The messages and the alerts' newest state may reach the outbox and active_alerts() later (see
        apply_intake), but every read and the relay see them as if they had.
        """

    @abc.abstractmethod
    def record_heartbeat(self, channel: str, now: float, alerts: int) -> None:
        """Note that a heartbeat channel heard from Alertmanager (`alerts` alerts) at `now`."""

    @abc.abstractmethod
    def last_heartbeat(self, channel: str) -> float | None:
        """When `channel` last heard a heartbeat, or None."""

    @abc.abstractmethod
    def count(self, name: str, label: str, amount: int = 1) -> None:
        """Add to a shared counter, soon: other processes see it within about a second, and never raises."""

    # -- reads
    @abc.abstractmethod
    def history(self, query: HistoryQuery) -> tuple[list[dict], int | None]:
        """State changes matching `query`, newest first, and the cursor id of the next page."""

    @abc.abstractmethod
    def active_alerts(self) -> list[dict]:
        """Alerts whose newest known state is firing."""

    @abc.abstractmethod
    def active_alerts_page(self, limit: int, after: tuple[str, int] | None,
                           clip: int) -> tuple[list[dict], tuple[str, int] | None]:
        """Up to `limit` firing alerts after position `after` (startsAt, event id), newest startsAt first, and the
        position of the last one when more follow (else None). Each annotation longer than `clip` characters is
        cut to `clip` and ends in "…"; `annotations_clipped` maps each cut one to its full length."""

    @abc.abstractmethod
    def timeline(self, fingerprint: str) -> list[dict]:
        """Every stored state change of one alert, oldest first, with each delivery attempt."""

    @abc.abstractmethod
    def counters(self) -> dict[tuple[str, str], int]:
        """Every shared counter by (name, label), as written (count()s of the last second may be missing)."""

    @abc.abstractmethod
    def outbox_depth(self) -> dict[str, int]:
        """Undelivered outbox rows per channel."""

    @abc.abstractmethod
    def active_by_severity(self) -> dict[str, int]:
        """Firing alerts per severity."""

    # -- relay
    @abc.abstractmethod
    def apply_intake(self) -> int:
        """Move every queued message into the outbox and apply the alerts' newest state; messages moved."""

    @abc.abstractmethod
    def wakeup(self) -> Wakeup:
        """A new listener for the relay to wait on: rung after every commit that queued messages (store/wakeup.py)."""

    @abc.abstractmethod
    def become_relay(self) -> None:
        """Take the database's one relay lock for this store's lifetime; StorageError if another relay has it."""

    @abc.abstractmethod
    def checkpoint(self) -> None:
        """Move what was written into the main database file, off the webhook path (the relay calls it)."""

    @abc.abstractmethod
    def release_claims(self) -> int:
        """Make rows claimed by a relay that died due again; how many."""

    @abc.abstractmethod
    def due_counts(self, now: float) -> dict[str, int]:
        """Pending rows due at `now`, per channel."""

    @abc.abstractmethod
    def claim(self, channel: str, now: float, limit: int | None) -> list[OutboxItem]:
        """Mark up to `limit` (None: all) due rows of `channel` as sending, oldest first, and return them.

        A row whose change follows its episode's firing carries, as `event.thread`, the reference of the message
        that told that firing on the same channel (None when it was not delivered there)."""

    @abc.abstractmethod
    def claim_digest(self, channel: str, now: float, limit: int, examples: int,
                     severities: Sequence[str]) -> tuple[list[OutboxItem], list[tuple], list[AlertEvent]]:
        """Claim like claim(), for one digest, without reading every row's labels: the rows (event None), their
        counts as (alertname, severity, status, count, first row id) by label values as stored, and up to
        `examples` of them, firing first, then in the order of `severities` (worst first), then oldest."""

    @abc.abstractmethod
    def finish(self, channel: str, now: float, ok: bool, digest: bool, detail: str,
               updates: Sequence[RowUpdate], state: Mapping[str, str] | None = None) -> None:
        """Record one attempt and each row's new state (with its `reference` once delivered), and save `state`
        (the channel's health) with them."""

    @abc.abstractmethod
    def thread_start(self, channel: str, reference: str, limit: int) -> list[OutboxItem]:
        """Up to `limit` rows of `channel` that the message `reference` carried, oldest first, each with its
        episode's newest state change (its resolution once stored) as the event."""

    @abc.abstractmethod
    def resend_facts(self, ids: Sequence[int]) -> dict[int, tuple[float, bool]]:
        """Per outbox row: when it was first attempted (else queued), and whether its alert still fires with it.

        "Still fires": the row's state change is its alert's newest and is a firing.
        """

    @abc.abstractmethod
    def heartbeat_marker(self, channel: str) -> tuple | None:
        """A value that changes with every heartbeat `channel` hears, whatever the wall clock does; None if none."""

    @abc.abstractmethod
    def set_state(self, values: Mapping[str, str]) -> None:
        """Save durable relay facts (its heartbeat), one transaction."""

    @abc.abstractmethod
    def state_items(self, prefix: str) -> dict[str, str]:
        """Every durable relay fact whose key starts with `prefix`."""

    @abc.abstractmethod
    def add_system_event(self, alert: Alert, channels: Sequence[str], now: float,
                         state: Mapping[str, str]) -> None:
        """Store the receiver's own state change, queue it to `channels` and save `state`, atomically."""

    @abc.abstractmethod
    def get_state(self, key: str) -> str | None:
        """A durable relay fact, or None."""

    # -- reconciliation
    @abc.abstractmethod
    def tracked_alerts(self) -> list[TrackedAlert]:
        """Every firing alert an Alertmanager brought (not the receiver's own), with its last sighting."""

    @abc.abstractmethod
    def reconcile(self, changes: Reconciliation) -> ReconcileResult:
        """Write one pass's sightings, suppressed firings, suppression changes and resolutions, atomically.

        Idempotent against a concurrent pass (several relays on PostgreSQL): a change already written, or an
        alert whose newest state moved on since it was read, is skipped.
        """

    @abc.abstractmethod
    def suppression_changes(self, fingerprint: str) -> list[dict]:
        """Every recorded suppression change of one alert, oldest first."""

    @abc.abstractmethod
    def prune(self, cutoff: float) -> int:
        """Delete finished history older than `cutoff`, never undelivered rows; how many rows went."""

    # -- analytics
    @abc.abstractmethod
    def stats(self, query: StatsQuery) -> StatsFacts:
        """The alerting analytics of `query`'s window, drill alerts left out (definitions: store/stats_facts.py)."""
