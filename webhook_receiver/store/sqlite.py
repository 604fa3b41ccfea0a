"""The SQLite store: WAL mode, one connection per thread, every write one IMMEDIATE transaction.

Webhooks that arrive together share one transaction (group commit, see SQLiteStore.ingest). A webhook
stores its notification and state changes and queues its messages in the intake; apply_intake moves them
into the outbox and the alerts' newest state in batches, before any read of either.
"""
from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from webhook_receiver.payload import Alert, Notification
from webhook_receiver.store import migrations
from webhook_receiver.store.base import RECEIVER, WEBHOOK, IngestResult, StorageError, Store
from webhook_receiver.store.counts import BufferedCounts
from webhook_receiver.store.episodes import STORED_COLUMNS, place, same_start
from webhook_receiver.store.files import DATABASE_FILE_MODE, prepare_database_files
from webhook_receiver.store.sqlite_reads import ReadQueries
from webhook_receiver.store.sqlite_reconcile import ReconcileQueries
from webhook_receiver.store.sqlite_wakeup import Ringer, SocketWakeup
from webhook_receiver.store.sqlite_relay import COUNT, RelayQueries
from webhook_receiver.store.sqlite_stats import StatsQueries

_INSERT_NOTIFICATION = (
    "INSERT INTO notifications (channel, receiver, status, group_key, group_labels, truncated_alerts,"
    " external_url, received_at, cut_alerts, cut_body_bytes, cut_max_body_bytes)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
# The episode comes from episodes.decide(), read under the write lock from the alert's rows of that startsAt
# (both partial indexes of 0006); at most one firing and one resolution per episode (unique there too).
_INSERT_EVENT = (
    "INSERT INTO events (fingerprint, status, starts_at, ends_at, alertname, severity, labels, annotations,"
    " generator_url, received_at, episode, origin, suppressed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
_STORED = (
    f"SELECT {STORED_COLUMNS} FROM events WHERE fingerprint = ?1 AND starts_at BETWEEN ?2 AND ?3"
    f" AND status = 'firing' UNION ALL SELECT {STORED_COLUMNS} FROM events"
    " WHERE fingerprint = ?1 AND starts_at BETWEEN ?2 AND ?3 AND status = 'resolved'")
# A message for this channel unless one is queued already, in the intake or (moved there) in the outbox. A
# change stored by this very transaction has no outbox row yet: it skips that lookup, one b-tree fewer to read.
_QUEUE = {
    True: ("INSERT INTO intake (event_id, channel, notification_id, queued_at) VALUES (?1, ?2, ?3, ?4)"
           " ON CONFLICT DO NOTHING"),
    False: ("INSERT INTO intake (event_id, channel, notification_id, queued_at) SELECT ?1, ?2, ?3, ?4"
            " WHERE NOT EXISTS (SELECT 1 FROM outbox WHERE event_id = ?1 AND channel = ?2) ON CONFLICT DO NOTHING"),
}
# apply_intake, on the intake rows up to a key (all of them when the key is NULL), in key order: events
# in the order they were stored. The alerts keep the newest state: a later episode, or the resolution of
# the same episode; never go back (an event queued for a second channel is applied again, harmlessly).
_INTAKE_UPTO = " (?1 IS NULL OR (i.event_id, i.channel) <= (?1, ?2))"
_APPLY_ALERTS = (
    "INSERT INTO alerts (fingerprint, event_id, status, starts_at, episode, severity)"
    " SELECT e.fingerprint, e.id, e.status, e.starts_at, e.episode, e.severity FROM intake i"
    f" JOIN events e ON e.id = i.event_id WHERE{_INTAKE_UPTO} ORDER BY i.event_id, i.channel"
    " ON CONFLICT (fingerprint) DO UPDATE SET event_id = excluded.event_id, status = excluded.status,"
    " starts_at = excluded.starts_at, episode = excluded.episode, severity = excluded.severity"
    " WHERE excluded.starts_at > alerts.starts_at"
    " OR (excluded.starts_at = alerts.starts_at AND excluded.episode > alerts.episode)"
    " OR (excluded.starts_at = alerts.starts_at AND excluded.episode = alerts.episode"
    " AND excluded.status = 'resolved')")
_APPLY_OUTBOX = ("INSERT OR IGNORE INTO outbox (channel, event_id, notification_id, due_at, created_at)"
                 " SELECT i.channel, i.event_id, i.notification_id, i.queued_at, i.queued_at FROM intake i"
                 f" WHERE{_INTAKE_UPTO} ORDER BY i.event_id, i.channel")
_APPLIED = f"DELETE FROM intake AS i WHERE{_INTAKE_UPTO}"
APPLY_CHUNK = 2000  # intake rows per transaction: a relay back from a long outage must not hold the lock for seconds
# Labels as stored and compared: keys sorted. One encoder, not json.dumps(sort_keys=True), which builds one
# per call.
_json_text = json.JSONEncoder(sort_keys=True).encode
# A new database gets 1 KiB pages. A webhook's transaction touches one page in each of the ~7 tables and
# indexes it writes, and WAL mode writes (and checksums) every touched page whole at COMMIT: ~37 KB per
# one-alert webhook with SQLite's default 4 KiB pages, ~9 KB with these. Most rows fit in one page; longer
# ones overflow.
PAGE_SIZE = 1024
SYNCHRONOUS_MODES = ("normal", "full")  # SQLite's synchronous settings the receiver offers (README: Durability)


def _event_row(alert: Alert, now: float) -> tuple:
    """_INSERT_EVENT's parameters but the episode."""
    return (alert.fingerprint, alert.status, alert.starts_at, alert.ends_at, alert.labels.get("alertname", ""),
            alert.labels.get("severity", ""), _json_text(alert.labels), _json_text(alert.annotations),
            alert.generator_url, now)


@dataclass
class _Pending:
    """One webhook waiting for the group commit that stores it; `done` once result or error is set."""

    channel: str
    alert_count: int
    now: float
    notification_row: tuple
    event_rows: list[tuple]   # per alert: _INSERT_EVENT's parameters
    result: IngestResult | None = None
    error: BaseException | None = None
    done: bool = False


class SQLiteStore(BufferedCounts, ReadQueries, RelayQueries, ReconcileQueries, StatsQueries, Store):
    """Store on one SQLite file."""

    _event_row = staticmethod(_event_row)

    def __init__(self, path: str, busy_timeout: float = 5.0, autocheckpoint_pages: int = 1000,
                 synchronous: str = "normal"):
        if synchronous not in SYNCHRONOUS_MODES:  # it goes into a PRAGMA
            raise ValueError(f"synchronous: expected one of {', '.join(SYNCHRONOUS_MODES)}, got {synchronous!r}")
        self.path = path
        self.busy_timeout = busy_timeout
        self.synchronous = synchronous
        # SQLite's default (1000 pages) checkpoints inside whichever commit crosses it, fsyncs and all,
        # while that writer holds the lock: a 5-10 ms stall for every webhook behind it. With the relay
        # checkpointing every pass (checkpoint()), the web workers' cap is only a safety net.
        self.autocheckpoint_pages = autocheckpoint_pages
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._queued: list[_Pending] = []   # webhooks waiting for the next group commit
        self._queue_lock = threading.Lock()
        self._lock_fd: int | None = None
        self._lock_pid: int | None = None
        self._init_counts()
        self._closing = threading.Event()
        self._files_pid: int | None = None
        self._ringer = Ringer(path)  # tells the relay of new work as soon as it is committed

    # -- connections
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._files_pid != os.getpid():  # once per process: before SQLite could create the file itself
                prepare_database_files(self.path)
                self._files_pid = os.getpid()
            try:
                # Reused per thread: opening and configuring a connection per request costs throughput.
                conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                                       check_same_thread=False)
                # NORMAL: a commit survives a crash of any receiver process; FULL also a power loss (README).
                conn.execute(f"PRAGMA synchronous = {self.synchronous.upper()}")
                conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
                conn.execute(f"PRAGMA wal_autocheckpoint = {int(self.autocheckpoint_pages)}")
            except sqlite3.Error as exc:
                raise StorageError(f"cannot open {self.path}: {exc}") from exc
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:  # the flusher stops; a store used again after close() starts a new one
            self._closing.set()
            flusher = self._flusher if self._flusher_pid == os.getpid() else None
            self._closing, self._flusher, self._flusher_pid = threading.Event(), None, None
        if flusher is not None:
            flusher.join(self.busy_timeout + 1)  # a flush under way ends before its connection is closed
        self.flush_counts()
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
            if self._lock_fd is not None and self._lock_pid == os.getpid():
                os.close(self._lock_fd)
            self._lock_fd = self._lock_pid = None
            self._leave_relay()
            self._ringer.close()
        self._local = threading.local()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; any SQLite failure rolls it back and becomes StorageError."""
        conn = self._conn()
        # Threads of one process queue here rather than in SQLite's busy handler, which sleeps in
        # steps of milliseconds and so turns contention into latency.
        with self._write_lock:
            with self._transaction(conn):
                yield conn

    @contextmanager
    def _transaction(self, conn: sqlite3.Connection) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT on `conn` (the caller holds the write lock); rolls back on any error."""
        with self._process_lock():
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield
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
    def _process_lock(self) -> Iterator[None]:
        """Writers of every process (gunicorn workers, the relay) take a lock file before BEGIN.

        SQLite's busy handler retries after sleeps of 1, 2, 5, 10... ms, so two workers taking turns
        leave the CPU idle while the lock is free; this lock is retried every 50-500 us instead, still
        giving up after busy_timeout (StorageError, so 503). The kernel drops it if its holder dies.
        SQLite's own lock still guards against writers that skip this file.
        """
        if self._lock_pid != os.getpid():  # per process: a descriptor inherited by fork shares the lock
            try:
                fd = os.open(self.path + "-writer.lock", os.O_RDWR | os.O_CREAT, DATABASE_FILE_MODE)
            except OSError as exc:
                raise StorageError(f"cannot open {self.path}-writer.lock: {exc}") from exc
            with self._lock:
                self._lock_fd, self._lock_pid = fd, os.getpid()
        deadline, pause = None, 50e-6
        while True:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                now = time.monotonic()
                deadline = deadline or now + self.busy_timeout
                if now >= deadline:
                    raise StorageError("database is locked (writer lock)") from None
                time.sleep(pause)
                pause = min(pause * 2, 500e-6)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        try:
            yield self._conn()
        except sqlite3.Error as exc:
            raise StorageError(str(exc)) from exc

    def wakeup(self) -> SocketWakeup:
        return SocketWakeup(self.path)

    # -- schema
    def migrate(self) -> int:
        with self._read() as conn:
            # Only takes effect on a database without tables: an existing one keeps its page size.
            conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
            conn.execute("PRAGMA journal_mode = WAL")  # persistent: set once for every later connection
            return migrations.apply(conn)

    def checkpoint(self) -> None:
        with self._read() as conn:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")  # never waits for writers, nor they for it

    def schema_version(self) -> int:
        with self._read() as conn:
            if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'schema_version'").fetchone():
                return 0
            return conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]

    # -- ingest
    def ingest(self, channel: str, notification: Notification, now: float) -> IngestResult:
        # Group commit: the thread that gets the write lock stores every webhook queued by then in one
        # transaction, so concurrent webhooks share BEGIN, COMMIT and the WAL write instead of convoying
        # on the lock one short transaction at a time. Each caller still returns only after the commit
        # that holds all of its webhook.
        n = notification
        cut = (n.cut.alerts, n.cut.body_bytes, n.cut.max_body_bytes) if n.cut is not None else (None, None, None)
        conn = self._conn()  # before queueing: a webhook answered 503 must never be committed later
        # Parameters are built before taking the lock: Python work inside it lengthens every writer's wait.
        pending = _Pending(channel, len(n.alerts), now, (
            channel, n.receiver, n.status, n.group_key, _json_text(n.group_labels),
            n.truncated_alerts, n.external_url, now, *cut), [_event_row(alert, now) for alert in n.alerts])
        with self._queue_lock:
            self._queued.append(pending)
        with self._write_lock:
            if not pending.done:  # nobody took it along: lead a group commit of everything queued
                self._commit_queued(conn)
        if pending.error is not None:
            raise pending.error
        return pending.result

    def _drain(self) -> list[_Pending]:
        """Take every queued webhook."""
        with self._queue_lock:
            batch, self._queued = self._queued, []
        return batch

    def _commit_queued(self, conn: sqlite3.Connection) -> None:
        """Store every queued webhook in one transaction; if any fails, each alone (the write lock is held)."""
        batch: list[_Pending] = []
        try:
            with self._transaction(conn):
                # Taken only once the database lock is ours: webhooks that arrived while this thread
                # waited for it (another process was writing) ride along in the same commit.
                batch = self._drain()
                results = [self._ingest_one(conn, item) for item in batch]
        except Exception as exc:
            if not batch:  # BEGIN failed (database locked): retrying alone would only wait again
                self._settle(self._drain(), error=exc)
                return
            if len(batch) == 1:
                self._settle(batch, error=exc)
                return
            # One webhook's failure must not fail the others: nothing was committed, so store each alone.
            for item in batch:
                try:
                    with self._transaction(conn):
                        result = self._ingest_one(conn, item)
                except Exception as exc:
                    self._settle([item], error=exc)
                else:
                    self._settle([item], results=[result])
                    self._count_ingested([item], [result])
                    if result.queued:
                        self._ringer.ring()
        except BaseException as exc:
            self._settle(batch or self._drain(), error=StorageError(f"interrupted: {exc!r}"))
            raise
        else:
            self._settle(batch, results=results)
            self._count_ingested(batch, results)
            if any(result.queued for result in results):
                self._ringer.ring()

    @staticmethod
    def _settle(batch: list[_Pending], results: list[IngestResult] | None = None,
                error: BaseException | None = None) -> None:
        """Hand each waiting webhook its result (or the error), in order."""
        for i, item in enumerate(batch):
            item.result = results[i] if results is not None else None
            item.error = error
            item.done = True

    @staticmethod
    def _ingest_one(conn: sqlite3.Connection, item: _Pending) -> IngestResult:
        """One webhook's rows inside the current transaction."""
        channel, now = item.channel, item.now
        notification_id = conn.execute(_INSERT_NOTIFICATION, item.notification_row).lastrowid
        new_events = queued = 0
        for event_row in item.event_rows:
            event_id, new = SQLiteStore._insert_event(conn, event_row)
            new_events += new
            if event_id is not None:
                queued += conn.execute(_QUEUE[new], (event_id, channel, notification_id, now)).rowcount
        if not queued:  # nothing new for this channel: a redelivery leaves no trace in history
            conn.execute("DELETE FROM notifications WHERE id = ?", (notification_id,))
        return IngestResult(new_events, queued, item.alert_count - queued)

    def _count_ingested(self, batch: list[_Pending], results: list[IngestResult]) -> None:
        """Count a committed batch's received and duplicate alerts (in memory, like every count())."""
        # Not in the webhook's transaction: the counters row was a tenth of what storing a one-alert webhook
        # cost. A worker killed outright loses at most the last second's counts, never an alert.
        for item, result in zip(batch, results):
            self.count("received", item.channel, item.alert_count)
            if result.duplicates:
                self.count("duplicate", item.channel, result.duplicates)

    @staticmethod
    def _insert_event(conn: sqlite3.Connection, event_row: tuple, origin: str = WEBHOOK,
                      suppressed: bool = False) -> tuple[int | None, bool]:
        """The event id of the alert's state change (None: a late copy, nothing to tell), and whether it is new.

        See episodes.decide: a retry, the HA peer's copy or a re-send is a duplicate; a firing after a
        resolution opens a new episode (a re-fire), and a resolution closes the open episode, whatever its endsAt.
        """
        fingerprint, status, starts_at, ends_at = event_row[:4]
        rows = conn.execute(_STORED, (fingerprint, *same_start(starts_at))).fetchall()
        placement = place(status, ends_at, starts_at, rows, posted=origin == WEBHOOK)
        if placement.unsuppress is not None:
            conn.execute("UPDATE events SET suppressed = 0 WHERE id = ?", (placement.unsuppress,))
        if not placement.verdict.new:
            return placement.verdict.existing, False
        row = (fingerprint, status, placement.starts_at, *event_row[3:])
        return conn.execute(_INSERT_EVENT, (*row, placement.verdict.episode, origin, suppressed)).lastrowid, True

    def add_system_event(self, alert, channels, now, state) -> None:
        with self._write() as conn:
            event_id, new = self._insert_event(conn, _event_row(alert, now), origin=RECEIVER)
            if event_id is not None:
                conn.executemany(_QUEUE[new], [(event_id, channel, None, now) for channel in channels])
            conn.executemany("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", state.items())

    def apply_intake(self) -> int:
        with self._read() as conn:
            if conn.execute("SELECT NOT EXISTS (SELECT 1 FROM intake)").fetchone()[0]:
                return 0  # the common case for a read: no write transaction
        moved = 0
        while True:
            with self._write() as conn:
                # The chunk ends at the APPLY_CHUNK-th key (inclusive); with fewer rows left, it takes them all.
                last = conn.execute("SELECT event_id, channel FROM intake ORDER BY event_id, channel"
                                    " LIMIT 1 OFFSET ?", (APPLY_CHUNK - 1,)).fetchone() or (None, None)
                conn.execute(_APPLY_ALERTS, last)
                conn.execute(_APPLY_OUTBOX, last)
                moved += conn.execute(_APPLIED, last).rowcount
            if last[0] is None:
                return moved

    def record_heartbeat(self, channel: str, now: float, alerts: int) -> None:
        with self._write() as conn:
            conn.execute("INSERT INTO heartbeats (channel, last_at) VALUES (?, ?) ON CONFLICT (channel)"
                         " DO UPDATE SET last_at = max(last_at, excluded.last_at)", (channel, now))
            conn.execute(COUNT, ("received", channel, alerts))

    def _add_counts(self, deltas) -> None:
        with self._write() as conn:
            conn.executemany(COUNT, [(name, label, amount) for (name, label), amount in deltas.items()])
