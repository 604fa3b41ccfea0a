"""Outbox queries of the SQLite store: claim due rows, record attempts, prune old history."""
from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3

from webhook_receiver.channels.model import AlertEvent
from webhook_receiver.store.base import DELIVERED, FAILED, OutboxItem, StorageError
from webhook_receiver.store.files import DATABASE_FILE_MODE

log = logging.getLogger(__name__)
_IDS = "(SELECT value FROM json_each(?))"  # row ids passed as one JSON array, see _id_list
_ITEM = ("o.id, o.attempts, e.received_at, n.group_key, coalesce(n.truncated_alerts, 0),"
         " coalesce(n.cut_alerts, 0), n.cut_max_body_bytes")  # see _item
_EVENT_AT = 7  # where _ROWS's event columns start
_FROM = (" FROM outbox o JOIN events e ON e.id = o.event_id"
         " LEFT JOIN notifications n ON n.id = o.notification_id")
# A later change of an episode replies to the message that told its firing on the same channel (Slack threads):
# the firing through events_firing, its row through outbox's (event_id, channel) key. Firings skip the lookup.
_THREAD = ("(SELECT fo.reference FROM events f JOIN outbox fo ON fo.event_id = f.id AND fo.channel = o.channel"
           " WHERE e.status <> 'firing' AND f.fingerprint = e.fingerprint AND f.starts_at = e.starts_at"
           " AND f.episode = e.episode AND f.status = 'firing' AND fo.state = 'delivered')")
_ROWS = (f"SELECT {_ITEM}, e.fingerprint, e.status, e.labels, e.annotations, e.starts_at, e.ends_at,"
         f" e.generator_url, e.episode, {_THREAD}{_FROM}")
# The rows one message carried, each with its episode's newest change: its resolution (events_resolved) once stored.
_THREAD_START = (
    "SELECT o.id, o.attempts, f.received_at, n.group_key, coalesce(n.truncated_alerts, 0),"
    " coalesce(n.cut_alerts, 0), n.cut_max_body_bytes, e.fingerprint, e.status, e.labels, e.annotations,"
    " e.starts_at, e.ends_at, e.generator_url, e.episode, NULL"
    " FROM outbox o JOIN events f ON f.id = o.event_id LEFT JOIN notifications n ON n.id = o.notification_id"
    " JOIN events e ON e.id = coalesce((SELECT r.id FROM events r WHERE r.fingerprint = f.fingerprint"
    " AND r.starts_at = f.starts_at AND r.episode = f.episode AND r.status = 'resolved'), f.id)"
    " WHERE o.reference = ? AND o.channel = ? ORDER BY o.id LIMIT ?")
_DUE = " WHERE o.state = 'pending' AND o.channel = ? AND o.due_at <= ? ORDER BY o.id"
# A digest's counts: the severity and alertname labels are columns, so no row's JSON is read for them.
_GROUPS = ("SELECT e.alertname, e.severity, e.status, count(*), min(o.id) FROM outbox o JOIN events e"
           f" ON e.id = o.event_id WHERE o.id IN {_IDS} GROUP BY e.alertname, e.severity, e.status")
COUNT = ("INSERT INTO counters (name, label, value) VALUES (?, ?, ?)"
          " ON CONFLICT (name, label) DO UPDATE SET value = value + excluded.value")
# Pruning works through PRUNE_CHUNK deliveries, events or notifications per transaction: a month of history
# deleted in one would hold the write lock for seconds, and every webhook would wait (503 past busy_timeout).
# Each chunk is found through an index and a cursor, so it costs the same however much history is kept: the
# statements this replaced scanned a table, or built a temporary index of one, in every chunk (30-100 ms of
# the lock per chunk at 100k alerts). Each transaction leaves the history whole: a crash in between loses
# nothing.
_PRUNE_DELIVERIES = ("DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries WHERE attempted_at < :cutoff"
                     " ORDER BY attempted_at LIMIT :chunk)")  # their items go with their outbox rows
# Events and notifications have no index on received_at (one more b-tree for every webhook to write), but
# their ids follow arrival: each is walked in id order, a chunk at a time, until a chunk holds no old row.
_EVENTS_AFTER = "SELECT id, received_at < :cutoff FROM events WHERE id > :id ORDER BY id LIMIT :chunk"
_CHUNK = "(SELECT value FROM json_each(:ids))"  # _IDS for the pruning statements, which bind by name
# CROSS JOIN keeps SQLite from starting at the outbox_due or alerts_status index, which would scan every
# delivered row or every resolved alert rather than look up the chunk's.
_FINISHED = ("SELECT o.id FROM json_each(:ids) AS chunk CROSS JOIN outbox o ON o.event_id = chunk.value"
             " WHERE o.state IN ('delivered', 'failed') AND o.finished_at < :cutoff")
_PRUNE_EVENTS = (  # for one chunk of old events: what refers to them, then those nothing refers to any more
    f"DELETE FROM delivery_items WHERE outbox_id IN ({_FINISHED})",
    f"DELETE FROM outbox WHERE id IN ({_FINISHED})",
    "DELETE FROM alerts WHERE fingerprint IN (SELECT a.fingerprint FROM json_each(:ids) AS chunk"
    " CROSS JOIN events e ON e.id = chunk.value CROSS JOIN alerts a ON a.fingerprint = e.fingerprint"
    " AND a.event_id = e.id WHERE a.status = 'resolved')",
    f"DELETE FROM events WHERE id IN {_CHUNK}"
    " AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.fingerprint = events.fingerprint AND a.event_id = events.id)"
    " AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.event_id = events.id)"
    " AND NOT EXISTS (SELECT 1 FROM intake i WHERE i.event_id = events.id)",
)
_NOTIFICATIONS_AFTER = "SELECT id, received_at < :cutoff FROM notifications WHERE id > :id ORDER BY id LIMIT :chunk"
_PRUNE_NOTIFICATIONS = (f"DELETE FROM notifications WHERE id IN {_CHUNK} AND received_at < :cutoff"
                        " AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.notification_id = notifications.id)")
# Reconciliation's records (few: one per suppression change, one per firing alert): old changes, and the
# sightings of firings that are no longer their alert's newest state (resolved by a webhook, or a re-fire).
PRUNE_SUPPRESSIONS = (
    "DELETE FROM suppression_changes WHERE at < :cutoff",
    "DELETE FROM sightings WHERE NOT EXISTS (SELECT 1 FROM alerts a WHERE a.fingerprint = sightings.fingerprint"
    " AND a.event_id = sightings.event_id AND a.status = 'firing')",
)
PRUNE_CHUNK = 250  # deliveries, events or notifications per pruning transaction: ~5 ms of the write lock
# Only for rows past max_attempts: the first attempt through delivery_items' key (outbox_id first), and whether
# the row's change is its alert's newest and a firing, through alerts' key.
_RESEND_FACTS = (
    "SELECT o.id, coalesce((SELECT min(d.attempted_at) FROM delivery_items di JOIN deliveries d"
    " ON d.id = di.delivery_id WHERE di.outbox_id = o.id), o.created_at),"
    " EXISTS (SELECT 1 FROM alerts a WHERE a.fingerprint = e.fingerprint AND a.event_id = e.id"
    " AND a.status = 'firing') FROM outbox o JOIN events e ON e.id = o.event_id WHERE o.id IN " + _IDS)


def _item(channel: str, row: tuple, event: AlertEvent | None, error: str | None = None) -> OutboxItem:
    """An OutboxItem from the _ITEM columns at the start of `row`."""
    return OutboxItem(id=row[0], channel=channel, attempts=row[1], received_at=row[2], event=event,
                      group_key=row[3], truncated_alerts=row[4], cut_alerts=row[5], cut_max_body_bytes=row[6],
                      error=error)


def _readable_item(channel: str, row: tuple) -> OutboxItem:
    """_item with its event; a row whose event cannot be read carries the error instead, so it is failed alone."""
    try:
        return _item(channel, row, _event(row[_EVENT_AT:]))
    except Exception as exc:  # bad JSON, a wrong type: one bad row must not stop its channel
        log.error("relay.unreadable_row id=%s error=%r", row[0], f"{type(exc).__name__}: {exc}")
        return _item(channel, row, None, error=f"the stored alert cannot be read ({type(exc).__name__})")


def _lenient(raw: bytes) -> str:
    """Text of a column that is not valid UTF-8 (written by something other than the receiver)."""
    return raw.decode("utf-8", "replace")


def _fetch(conn: sqlite3.Connection, sql: str, args) -> list[tuple]:
    """conn.execute(...).fetchall(), reading text that is not valid UTF-8 with U+FFFD rather than failing.

    Without this, one such row fails every claim of its channel for ever.
    """
    try:
        return conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError as exc:
        if "decode" not in str(exc):
            raise
    conn.text_factory = _lenient  # this thread's own connection, for this one read
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.text_factory = str


def _event(columns: tuple) -> AlertEvent:
    """The AlertEvent of _ROWS's event columns."""
    fingerprint, status, labels, annotations, starts_at, ends_at, generator_url, episode, thread = columns
    return AlertEvent(fingerprint=fingerprint, status=status, labels=json.loads(labels),
                      annotations=json.loads(annotations), starts_at=starts_at, ends_at=ends_at,
                      generator_url=generator_url, episode=episode, thread=thread)


def _id_list(ids) -> str:
    """Row ids as a JSON array, for _IDS and _CHUNK: one bound parameter however many rows."""
    return json.dumps(list(ids))


class RelayQueries:
    """Mixin for SQLiteStore: what the relay worker needs."""

    _relay_fd: int | None = None

    def become_relay(self) -> None:
        if self._relay_fd is not None:
            return
        path = self.path + "-relay.lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, DATABASE_FILE_MODE)
        except OSError as exc:
            raise StorageError(f"cannot open {path}: {exc}") from exc
        try:
            # A second relay would release the first one's claims and send their rows again.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StorageError(f"another relay is running on {self.path} (it holds {path})") from None
        self._relay_fd = fd

    def _leave_relay(self) -> None:
        if self._relay_fd is not None:
            os.close(self._relay_fd)  # the kernel drops the lock with the last descriptor
            self._relay_fd = None

    def release_claims(self) -> int:
        with self._write() as conn:
            return conn.execute("UPDATE outbox SET state = 'pending' WHERE state = 'sending'").rowcount

    def due_counts(self, now: float) -> dict[str, int]:
        with self._read() as conn:
            return dict(conn.execute("SELECT channel, count(*) FROM outbox WHERE state = 'pending'"
                                     " AND due_at <= ? GROUP BY channel", (now,)))

    def claim(self, channel: str, now: float, limit: int | None) -> list[OutboxItem]:
        sql = _ROWS + _DUE + (" LIMIT ?" if limit is not None else "")
        args = (channel, now) + ((limit,) if limit is not None else ())
        with self._read() as conn:
            rows = _fetch(conn, sql, args)
        marked = self._mark_sending(row[0] for row in rows)
        return [_readable_item(channel, row) for row in rows if row[0] in marked]

    def claim_digest(self, channel, now, limit, examples, severities):
        with self._read() as conn:
            rows = _fetch(conn, f"SELECT {_ITEM}{_FROM}{_DUE} LIMIT ?", (channel, now, limit))
        marked = self._mark_sending(row[0] for row in rows)
        if not marked:
            return [], [], []
        ids = _id_list(marked)
        rank = f"CASE lower(e.severity) {' '.join('WHEN ? THEN ?' for _ in severities)} ELSE ? END"
        ranks = [x for i, severity in enumerate(severities) for x in (severity, i)]
        with self._read() as conn:
            groups = _fetch(conn, _GROUPS, (ids,))
            chosen = _fetch(conn, f"{_ROWS} WHERE o.id IN {_IDS} ORDER BY e.status = 'resolved', {rank}, o.id"
                                  " LIMIT ?", (ids, *ranks, len(severities), examples))
        # An example that cannot be read is left out of the examples; its row is still counted in the digest.
        return ([_item(channel, row, None) for row in rows if row[0] in marked], groups,
                [item.event for item in map(lambda row: _readable_item(channel, row), chosen) if item.event])

    def thread_start(self, channel: str, reference: str, limit: int) -> list[OutboxItem]:
        with self._read() as conn:
            rows = _fetch(conn, _THREAD_START, (reference, channel, limit))
        return [_readable_item(channel, row) for row in rows]

    def _mark_sending(self, ids) -> set[int]:
        """Mark pending rows as sending; the ids really marked (RETURNING)."""
        # The rows were read outside the write lock: only the relay (one per database) changes outbox rows,
        # webhooks only add them, so they stay pending until marked. A storm's digest claims thousands of
        # rows, and every webhook waits while the lock is held.
        ids = list(ids)
        if not ids:
            return set()
        with self._write() as conn:
            return {row[0] for row in conn.execute(
                f"UPDATE outbox SET state = 'sending' WHERE state = 'pending' AND id IN {_IDS} RETURNING id",
                (_id_list(ids),))}

    def finish(self, channel, now, ok, digest, detail, updates, state=None) -> None:
        # One statement per distinct verdict, not per row: a digest finishes thousands of rows under the
        # write lock that every webhook is waiting for.
        verdicts: dict[tuple[str, float, bool, str, str | None], list[int]] = {}
        for update in updates:
            key = (update.state, update.due_at, update.counted, detail if update.detail is None else update.detail,
                   update.reference)
            verdicts.setdefault(key, []).append(update.id)
        with self._write() as conn:
            delivery_id = conn.execute(
                "INSERT INTO deliveries (channel, attempted_at, ok, digest, event_count, detail)"
                " VALUES (?, ?, ?, ?, ?, ?)", (channel, now, ok, digest, len(updates), detail)).lastrowid
            conn.execute("INSERT INTO delivery_items (delivery_id, outbox_id) SELECT ?, value FROM json_each(?)",
                         (delivery_id, _id_list(u.id for u in updates)))
            for (row_state, due_at, counted, row_detail, reference), ids in verdicts.items():
                conn.execute(
                    "UPDATE outbox SET state = ?, attempts = attempts + ?, due_at = ?, detail = ?, reference = ?,"
                    f" finished_at = CASE WHEN ? IN ('delivered', 'failed') THEN ? END WHERE id IN {_IDS}",
                    (row_state, int(counted), due_at, row_detail, reference, row_state, now, _id_list(ids)))
            for name, row_state in (("delivered", DELIVERED), ("failed", FAILED)):
                done = sum(1 for u in updates if u.state == row_state)
                if done:
                    conn.execute(COUNT, (name, channel, done))
            if state:
                conn.executemany("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", state.items())

    def resend_facts(self, ids) -> dict[int, tuple[float, bool]]:
        with self._read() as conn:
            return {row[0]: (row[1], bool(row[2])) for row in conn.execute(_RESEND_FACTS, (_id_list(ids),))}

    def heartbeat_marker(self, channel: str) -> tuple | None:
        # The time alone would not do: after the wall clock steps back, record_heartbeat keeps the later time,
        # so new heartbeats would not change it. Every heartbeat also adds its alerts to this counter.
        with self._read() as conn:
            row = conn.execute("SELECT h.last_at, (SELECT value FROM counters WHERE name = 'received'"
                               " AND label = h.channel) FROM heartbeats h WHERE h.channel = ?", (channel,)).fetchone()
        return tuple(row) if row else None

    def set_state(self, values) -> None:
        with self._write() as conn:
            conn.executemany("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", values.items())

    def state_items(self, prefix: str) -> dict[str, str]:
        with self._read() as conn:  # a range of the primary key: the keys that start with prefix
            return dict(conn.execute("SELECT key, value FROM state WHERE key >= ? AND key < ?",
                                     (prefix, prefix + "\U0010ffff")))

    def prune(self, cutoff: float) -> int:
        # With the intake applied, the notifications it refers to are in the outbox too; what webhooks queue
        # from here on is newer than any cutoff. (Events keep their own check: it is a key lookup.)
        self.apply_intake()
        removed = 0
        params = {"cutoff": cutoff, "chunk": PRUNE_CHUNK}
        while True:
            with self._write() as conn:
                deleted = conn.execute(_PRUNE_DELIVERIES, params).rowcount
            removed += deleted
            if deleted < PRUNE_CHUNK:
                break
        removed += self._prune_in_id_order(_EVENTS_AFTER, _PRUNE_EVENTS, params)
        with self._write() as conn:
            removed += sum(conn.execute(statement, params).rowcount for statement in PRUNE_SUPPRESSIONS)
        return removed + self._prune_in_id_order(_NOTIFICATIONS_AFTER, (_PRUNE_NOTIFICATIONS,), params)

    def _prune_in_id_order(self, after: str, statements: tuple[str, ...], params: dict) -> int:
        """Run `statements` on the old rows `after` finds, a chunk per transaction, until a chunk has none."""
        removed, params = 0, {**params, "id": 0}
        while True:
            with self._write() as conn:
                chunk = conn.execute(after, params).fetchall()
                params["ids"] = _id_list(row[0] for row in chunk if row[1])
                removed += sum(conn.execute(statement, params).rowcount for statement in statements)
            if len(chunk) < PRUNE_CHUNK or not any(row[1] for row in chunk):
                return removed
            params["id"] = chunk[-1][0]
