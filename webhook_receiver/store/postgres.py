"""The PostgreSQL store: any number of receivers (web workers and relays) on one database.

Same behaviour as the SQLite store behind the same interface, with PostgreSQL's own tools instead of the SQLite
machinery: a webhook is one transaction that takes a transaction-scoped advisory lock per alert (so the episode
decision of store/episodes.py is made by one transaction at a time, whichever receiver got the post) and writes
its outbox rows with `INSERT ... ON CONFLICT DO NOTHING` (a redelivery or the HA peer's copy queues nothing).
Relays claim rows with `FOR UPDATE SKIP LOCKED` (store/postgres_relay.py); pruning and the dead man's switch
take advisory locks so they happen once. Connections come from a psycopg pool, one per process.
"""
from __future__ import annotations

import json
import logging
import os
import random
import threading
from contextlib import contextmanager
from typing import Iterator

import psycopg
import psycopg_pool

from webhook_receiver.payload import Alert, Notification
from webhook_receiver.store import postgres_schema
from webhook_receiver.store.base import RECEIVER, WEBHOOK, IngestResult, StorageError, Store
from webhook_receiver.store.counts import BufferedCounts
from webhook_receiver.store.episodes import STORED_COLUMNS, place, same_start
from webhook_receiver.store.postgres_reads import ReadQueries
from webhook_receiver.store.postgres_reconcile import ReconcileQueries
from webhook_receiver.store.postgres_wakeup import NOTIFY, ListenWakeup
from webhook_receiver.store.postgres_relay import APPLY_ALERT, COUNT, RelayQueries, text
from webhook_receiver.store.postgres_stats import StatsQueries

log = logging.getLogger(__name__)
ALERT_LOCK = 0x64756D70  # ("dump", hashtext(fingerprint)): one transaction at a time decides an alert's changes
STATE_LOCK = (0x64756D71, 0)  # system events (the dead man's switch) and the state they flip, one at a time
POOL_SIZE = 12  # connections per process: gunicorn's threads (8) or a relay's threads, with room to spare

_json_text = json.JSONEncoder(sort_keys=True).encode  # labels as stored and compared: keys sorted (as SQLite's)
# Every fingerprint of a transaction locked in one statement, in hash order, so two webhooks with the same alerts
# in another order cannot deadlock. Hash collisions only make two alerts take turns.
_LOCK_ALERTS = ("SELECT count(pg_advisory_xact_lock(%s, h)) FROM"
                " (SELECT DISTINCT hashtext(f) AS h FROM unnest(%s::text[]) AS f ORDER BY 1) AS locks")
_STORED = f"SELECT {STORED_COLUMNS} FROM events WHERE fingerprint = %s AND starts_at BETWEEN %s AND %s"
_INSERT_NOTIFICATION = (
    "INSERT INTO notifications (channel, receiver, status, group_key, group_labels, truncated_alerts,"
    " external_url, received_at, cut_alerts, cut_body_bytes, cut_max_body_bytes)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id")
_INSERT_EVENT = (
    "INSERT INTO events (fingerprint, status, starts_at, ends_at, alertname, severity, labels, annotations,"
    " generator_url, received_at, episode, origin, suppressed)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id")
_QUEUE = ("INSERT INTO outbox (channel, event_id, notification_id, due_at, created_at) VALUES (%s, %s, %s, %s, %s)"
          " ON CONFLICT (event_id, channel) DO NOTHING")
_SET_STATE = ("INSERT INTO state (key, value) VALUES (%s, %s)"
              " ON CONFLICT (key) DO UPDATE SET value = excluded.value")


def _event_row(alert: Alert, now: float) -> tuple:
    """_INSERT_EVENT's parameters but the episode."""
    return (text(alert.fingerprint), alert.status, alert.starts_at, alert.ends_at,
            text(alert.labels.get("alertname", "")), text(alert.labels.get("severity", "")),
            _json_text(alert.labels), _json_text(alert.annotations), text(alert.generator_url), now)


def describe(exc: BaseException) -> str:
    """A database error as one line for logs and StorageError; never a password (libpq's messages hold none)."""
    message = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {message[0] if message else ''}"


class PostgresStore(BufferedCounts, ReadQueries, RelayQueries, ReconcileQueries, StatsQueries, Store):
    """Store on one PostgreSQL database, shared by any number of receivers."""

    _event_row = staticmethod(_event_row)

    def __init__(self, url: str, password: str | None = None, busy_timeout: float = 5.0,
                 claim_timeout: float = 300.0, pool_size: int = POOL_SIZE):
        self.url = url
        self.busy_timeout = busy_timeout
        self.claim_timeout = claim_timeout  # a claim older than this is due again (its relay hung or is gone)
        self.pool_size = pool_size
        # Given to libpq apart from the URL, so it is in no string this code builds, logs or raises.
        self._connect_kwargs = {"password": password} if password else {}
        self._lock = threading.Lock()
        self._pool: psycopg_pool.ConnectionPool | None = None
        self._pool_pid: int | None = None
        self._init_counts()
        self._closing = threading.Event()
        # This store's identity as a relay: its claims carry it; a session advisory lock on it says it is alive.
        self.relay_id = random.SystemRandom().randrange(1, 2 ** 31)
        self._relay_conn: psycopg.Connection | None = None

    # -- connections
    def connect(self) -> psycopg.Connection:
        """A new connection of its own (autocommit), outside the pool; the caller closes it."""
        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=max(int(self.busy_timeout) + 1, 2),
                                   **self._connect_kwargs)
        except psycopg.Error as exc:
            raise StorageError(f"cannot connect to {self.url}: {describe(exc)}") from exc

    def _get_pool(self) -> psycopg_pool.ConnectionPool:
        if self._pool_pid != os.getpid():  # per process: gunicorn forks workers, and a pool's sockets and threads
            with self._lock:               # are not the child's (the parent's is left alone, never closed here)
                if self._pool_pid != os.getpid():
                    self._pool = psycopg_pool.ConnectionPool(
                        self.url, min_size=1, max_size=self.pool_size, open=True, name="dumont-store",
                        kwargs={"autocommit": True, **self._connect_kwargs},
                        timeout=max(self.busy_timeout, 2.0), configure=self._configure,
                        # a connection broken by a database restart is replaced, not handed out
                        check=psycopg_pool.ConnectionPool.check_connection)
                    self._pool_pid = os.getpid()
        return self._pool

    def _configure(self, conn: psycopg.Connection) -> None:
        # A lock wait (another transaction on the same alert, a relay on the same rows) is bounded like SQLite's
        # busy_timeout: past it the webhook answers 503 and Alertmanager retries. Set here rather than in the
        # connection's `options`, which would replace any the URL gives.
        conn.execute(f"SET lock_timeout = {max(int(self.busy_timeout * 1000), 1)}")

    @contextmanager
    def _read(self) -> Iterator[psycopg.Connection]:
        """A pooled connection (autocommit); any database failure becomes StorageError."""
        try:
            with self._get_pool().connection() as conn:
                yield conn
        except psycopg_pool.PoolTimeout as exc:
            # Say why: the pool only knows it waited. A direct attempt gives libpq's reason (refused, auth...).
            probe = self.connect()
            probe.close()
            raise StorageError(f"no database connection free within {max(self.busy_timeout, 2.0):g}s") from exc
        except psycopg.Error as exc:
            raise StorageError(describe(exc)) from exc

    @contextmanager
    def _write(self) -> Iterator[psycopg.Connection]:
        """One transaction; any failure rolls it back (database failures become StorageError)."""
        with self._read() as conn:
            with conn.transaction():
                yield conn

    def close(self) -> None:
        with self._lock:  # the flusher stops; a store used again after close() starts a new one
            self._closing.set()
            flusher = self._flusher if self._flusher_pid == os.getpid() else None
            self._closing, self._flusher, self._flusher_pid = threading.Event(), None, None
        if flusher is not None:
            flusher.join(self.busy_timeout + 1)
        self.flush_counts()
        with self._lock:
            if self._pool is not None and self._pool_pid == os.getpid():
                self._pool.close()
            self._pool = self._pool_pid = None
            self._leave_relay()

    def wakeup(self) -> ListenWakeup:
        return ListenWakeup(self.connect)

    # -- schema
    def migrate(self) -> int:
        with self._read() as conn:
            return postgres_schema.apply(conn)

    def schema_version(self) -> int:
        with self._read() as conn:
            return postgres_schema.version(conn)

    def checkpoint(self) -> None:
        """Nothing to do: PostgreSQL checkpoints on its own, off every client's path."""

    # -- ingest
    def ingest(self, channel: str, notification: Notification, now: float) -> IngestResult:
        n = notification
        cut = (n.cut.alerts, n.cut.body_bytes, n.cut.max_body_bytes) if n.cut is not None else (None, None, None)
        notification_row = (channel, text(n.receiver), n.status, text(n.group_key), _json_text(n.group_labels),
                            n.truncated_alerts, text(n.external_url), now, *cut)
        event_rows = [_event_row(alert, now) for alert in n.alerts]
        new_events = queued = 0
        with self._write() as conn:
            self._lock_alerts(conn, [row[0] for row in event_rows])
            notification_id = None
            for event_row in event_rows:
                event_id, new = self._insert_event(conn, event_row)
                new_events += new
                if event_id is None:
                    continue
                if notification_id is None:  # only a post that queues something leaves a notification
                    notification_id = conn.execute(_INSERT_NOTIFICATION, notification_row).fetchone()[0]
                if self._queue(conn, event_id, channel, notification_id, now):
                    queued += 1
            if notification_id is not None and not queued:  # nothing new for this channel: no trace in history
                conn.execute("DELETE FROM notifications WHERE id = %s", (notification_id,))
            if queued:  # delivered to every listening relay when this transaction commits
                conn.execute(NOTIFY)
        self.count("received", channel, len(n.alerts))
        if len(n.alerts) - queued:
            self.count("duplicate", channel, len(n.alerts) - queued)
        return IngestResult(new_events, queued, len(n.alerts) - queued)

    @staticmethod
    def _lock_alerts(conn: psycopg.Connection, fingerprints: list[str]) -> None:
        if fingerprints:
            conn.execute(_LOCK_ALERTS, (ALERT_LOCK, fingerprints))

    @staticmethod
    def _insert_event(conn: psycopg.Connection, event_row: tuple, origin: str = WEBHOOK,
                      suppressed: bool = False) -> tuple[int | None, bool]:
        """The event id of the alert's state change (None: a late copy, nothing to tell), and whether it is new.

        The caller holds the alert's advisory lock, so no other transaction decides for the same alert meanwhile.
        """
        fingerprint, status, starts_at, ends_at = event_row[:4]
        rows = conn.execute(_STORED, (fingerprint, *same_start(starts_at))).fetchall()
        placement = place(status, ends_at, starts_at, rows, posted=origin == WEBHOOK)
        if placement.unsuppress is not None:
            conn.execute("UPDATE events SET suppressed = false WHERE id = %s", (placement.unsuppress,))
        if not placement.verdict.new:
            return placement.verdict.existing, False
        row = (fingerprint, status, placement.starts_at, *event_row[3:])
        return conn.execute(_INSERT_EVENT, (*row, placement.verdict.episode, origin, suppressed)).fetchone()[0], True

    @staticmethod
    def _queue(conn: psycopg.Connection, event_id: int, channel: str, notification_id: int | None,
               now: float) -> bool:
        """Queue the change for `channel` unless it is queued already; apply it to the alert's state if so."""
        if conn.execute(_QUEUE, (channel, event_id, notification_id, now, now)).rowcount == 0:
            return False
        conn.execute(APPLY_ALERT, (event_id,))
        return True

    def add_system_event(self, alert, channels, now, state) -> None:
        """Store the receiver's own state change, queue it and save `state`, only if `state` flips (set or unset).

        Every relay runs the dead man's switch: the first to flip the state announces; the others, whose view
        was taken before, find it flipped already and store nothing (a compare-and-set under an advisory lock).
        """
        row = _event_row(alert, now)
        with self._write() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", STATE_LOCK)
            stored = dict(conn.execute("SELECT key, value FROM state WHERE key = ANY(%s)", (list(state),)).fetchall())
            if any(bool(stored.get(key)) == bool(value) for key, value in state.items()):
                log.info("store.system_event_already_announced alertname=%s status=%s",
                         alert.labels.get("alertname"), alert.status)
                return
            self._lock_alerts(conn, [row[0]])
            event_id, _ = self._insert_event(conn, row, origin=RECEIVER)
            if event_id is not None:
                for channel in channels:
                    self._queue(conn, event_id, channel, None, now)
            for key, value in state.items():
                conn.execute(_SET_STATE, (key, value))

    def apply_intake(self) -> int:
        """Nothing to apply: a webhook writes its outbox rows and the alerts' state in its own transaction."""
        return 0

    def record_heartbeat(self, channel: str, now: float, alerts: int) -> None:
        with self._write() as conn:
            conn.execute("INSERT INTO heartbeats (channel, last_at) VALUES (%s, %s) ON CONFLICT (channel)"
                         " DO UPDATE SET last_at = greatest(heartbeats.last_at, excluded.last_at)", (channel, now))
            conn.execute(COUNT, ("received", channel, alerts))

    # -- counters
    def _add_counts(self, deltas) -> None:
        with self._write() as conn:
            # In key order: two processes flushing the same counters lock their rows in the same order.
            for (name, label), amount in sorted(deltas.items()):
                conn.execute(COUNT, (name, label, amount))
