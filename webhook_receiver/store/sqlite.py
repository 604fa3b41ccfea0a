"""The SQLite store: WAL mode, one connection per thread, every write one IMMEDIATE transaction."""
from __future__ import annotations

import json
import sqlite3
import threading
from contextlib import contextmanager
from typing import Iterator

from webhook_receiver.payload import Alert, Notification
from webhook_receiver.store import migrations
from webhook_receiver.store.base import IngestResult, StorageError, Store
from webhook_receiver.store.sqlite_reads import ReadQueries
from webhook_receiver.store.sqlite_relay import COUNT, RelayQueries

_INSERT_NOTIFICATION = (
    "INSERT INTO notifications (channel, receiver, status, group_key, group_labels, truncated_alerts,"
    " external_url, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
_INSERT_EVENT = (
    "INSERT OR IGNORE INTO events (fingerprint, status, starts_at, ends_at, alertname, severity, labels,"
    " annotations, generator_url, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
_FIND_EVENT = "SELECT id FROM events WHERE fingerprint = ? AND status = ? AND starts_at = ?"
# Keep the newest state: a later episode, or the resolution of the same episode; never go back.
_UPSERT_ALERT = (
    "INSERT INTO alerts (fingerprint, event_id, status, starts_at, severity) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (fingerprint) DO UPDATE SET event_id = excluded.event_id, status = excluded.status,"
    " starts_at = excluded.starts_at, severity = excluded.severity"
    " WHERE excluded.starts_at > alerts.starts_at"
    " OR (excluded.starts_at = alerts.starts_at AND excluded.status = 'resolved')")
_QUEUE = ("INSERT OR IGNORE INTO outbox (channel, event_id, notification_id, due_at, created_at)"
          " VALUES (?, ?, ?, ?, ?)")


class SQLiteStore(ReadQueries, RelayQueries, Store):
    """Store on one SQLite file."""

    def __init__(self, path: str, busy_timeout: float = 5.0):
        self.path = path
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()

    # -- connections
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                # Reused per thread: opening and configuring a connection per request costs throughput.
                conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                                       check_same_thread=False)
                conn.execute("PRAGMA synchronous = NORMAL")  # durable across crashes in WAL mode
                conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            except sqlite3.Error as exc:
                raise StorageError(f"cannot open {self.path}: {exc}") from exc
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; any SQLite failure rolls it back and becomes StorageError."""
        conn = self._conn()
        # Threads of one process queue here rather than in SQLite's busy handler, which sleeps in
        # steps of milliseconds and so turns contention into latency.
        with self._write_lock:
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise StorageError(str(exc)) from exc
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        try:
            yield self._conn()
        except sqlite3.Error as exc:
            raise StorageError(str(exc)) from exc

    # -- schema
    def migrate(self) -> int:
        with self._read() as conn:
            conn.execute("PRAGMA journal_mode = WAL")  # persistent: set once for every later connection
            return migrations.apply(conn)

    def schema_version(self) -> int:
        with self._read() as conn:
            if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'schema_version'").fetchone():
                return 0
            return conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]

    # -- ingest
    def ingest(self, channel: str, notification: Notification, now: float) -> IngestResult:
        n = notification
        with self._write() as conn:
            notification_id = conn.execute(_INSERT_NOTIFICATION, (
                channel, n.receiver, n.status, n.group_key, json.dumps(n.group_labels, sort_keys=True),
                n.truncated_alerts, n.external_url, now)).lastrowid
            new_events = queued = 0
            for alert in n.alerts:
                event_id, new = self._insert_event(conn, alert, now)
                new_events += new
                queued += conn.execute(_QUEUE, (channel, event_id, notification_id, now, now)).rowcount
            if not queued:  # nothing new for this channel: a redelivery leaves no trace in history
                conn.execute("DELETE FROM notifications WHERE id = ?", (notification_id,))
            duplicates = len(n.alerts) - queued
            conn.execute(COUNT, ("received", channel, len(n.alerts)))
            if duplicates:
                conn.execute(COUNT, ("duplicate", channel, duplicates))
        return IngestResult(new_events, queued, duplicates)

    @staticmethod
    def _insert_event(conn: sqlite3.Connection, alert: Alert, now: float) -> tuple[int, bool]:
        """The event id of the alert's state change, and whether it is new."""
        cursor = conn.execute(_INSERT_EVENT, (
            alert.fingerprint, alert.status, alert.starts_at, alert.ends_at,
            alert.labels.get("alertname", ""), alert.labels.get("severity", ""),
            json.dumps(alert.labels, sort_keys=True), json.dumps(alert.annotations, sort_keys=True),
            alert.generator_url, now))
        if not cursor.rowcount:
            return conn.execute(_FIND_EVENT, (alert.fingerprint, alert.status, alert.starts_at)).fetchone()[0], False
        event_id = cursor.lastrowid
        conn.execute(_UPSERT_ALERT, (alert.fingerprint, event_id, alert.status, alert.starts_at,
                                     alert.labels.get("severity", "")))
        return event_id, True

    def add_system_event(self, alert, channels, now, state) -> None:
        with self._write() as conn:
            event_id, _ = self._insert_event(conn, alert, now)
            conn.executemany(_QUEUE, [(channel, event_id, None, now, now) for channel in channels])
            conn.executemany("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", state.items())

    def record_heartbeat(self, channel: str, now: float, alerts: int) -> None:
        with self._write() as conn:
            conn.execute("INSERT INTO heartbeats (channel, last_at) VALUES (?, ?) ON CONFLICT (channel)"
                         " DO UPDATE SET last_at = max(last_at, excluded.last_at)", (channel, now))
            conn.execute(COUNT, ("received", channel, alerts))

    def count(self, name: str, label: str, amount: int = 1) -> None:
        with self._write() as conn:
            conn.execute(COUNT, (name, label, amount))
