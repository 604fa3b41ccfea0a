"""Outbox queries of the PostgreSQL store: claims any number of relays share, attempts, pruning, relay state.

Claim protocol: a relay marks due rows `sending` with its id and the time, picking them with
`FOR UPDATE SKIP LOCKED` in the same statement, so two relays never take the same row and never wait for each
other. A row stays claimed until its relay records the outcome. A claim is due again when it is older than
`claim_timeout` (its relay hangs, or lost the database), or, when a relay starts (release_claims), at once if
the relay that took it is gone: each relay holds a session advisory lock on its id for as long as it lives, and
a killed relay's connection, and with it the lock, goes with it. An outcome is written only to rows still
claimed by the relay that sent them: a row another relay took over in the meantime is its to finish.
"""
from __future__ import annotations

import json
import logging

import psycopg

from webhook_receiver.channels.model import AlertEvent
from webhook_receiver.store.base import DELIVERED, FAILED, OutboxItem, StorageError

log = logging.getLogger(__name__)
RELAY_LOCK = 0x64756D72   # (this, relay id): held by each live relay, on a connection of its own
PRUNE_LOCK = (0x64756D73, 0)  # pruning runs in one place at a time
COUNT = ("INSERT INTO counters (name, label, value) VALUES (%s, %s, %s)"
         " ON CONFLICT (name, label) DO UPDATE SET value = counters.value + excluded.value")
_ITEM = ("o.id, o.attempts, e.received_at, n.group_key, coalesce(n.truncated_alerts, 0),"
         " coalesce(n.cut_alerts, 0), n.cut_max_body_bytes")  # see _item
_EVENT_AT = 7
_FROM = (" FROM outbox o JOIN events e ON e.id = o.event_id"
         " LEFT JOIN notifications n ON n.id = o.notification_id")
# A later change of an episode replies to the message that told its firing on the same channel (Slack threads):
# the firing through events_change, its row through outbox's (event_id, channel) key. Firings skip the lookup.
_THREAD = ("(SELECT fo.reference FROM events f JOIN outbox fo ON fo.event_id = f.id AND fo.channel = o.channel"
           " WHERE e.status <> 'firing' AND f.fingerprint = e.fingerprint AND f.starts_at = e.starts_at"
           " AND f.episode = e.episode AND f.status = 'firing' AND fo.state = 'delivered')")
_ROWS = (f"SELECT {_ITEM}, e.fingerprint, e.status, e.labels, e.annotations, e.starts_at, e.ends_at,"
         f" e.generator_url, e.episode, {_THREAD}{_FROM}")
# The rows one message carried (outbox_reference), each with its episode's newest change: its resolution once stored.
_THREAD_START = (
    "SELECT o.id, o.attempts, f.received_at, n.group_key, coalesce(n.truncated_alerts, 0),"
    " coalesce(n.cut_alerts, 0), n.cut_max_body_bytes, e.fingerprint, e.status, e.labels, e.annotations,"
    " e.starts_at, e.ends_at, e.generator_url, e.episode, NULL"
    " FROM outbox o JOIN events f ON f.id = o.event_id LEFT JOIN notifications n ON n.id = o.notification_id"
    " JOIN events e ON e.id = coalesce((SELECT r.id FROM events r WHERE r.fingerprint = f.fingerprint"
    " AND r.starts_at = f.starts_at AND r.episode = f.episode AND r.status = 'resolved'), f.id)"
    " WHERE o.reference = %s AND o.channel = %s ORDER BY o.id LIMIT %s")
# Due: pending and due, or claimed longer ago than the claim timeout. From the outbox_undelivered index.
_DUE = ("o.channel = %(channel)s AND o.state IN ('pending', 'sending')"
        " AND ((o.state = 'pending' AND o.due_at <= %(now)s) OR (o.state = 'sending' AND o.claimed_at <= %(stale)s))")
_CLAIM = (f"UPDATE outbox SET state = 'sending', claimed_at = %(now)s, claimed_by = %(relay)s"
          f" WHERE id IN (SELECT o.id FROM outbox o WHERE {_DUE} ORDER BY o.id LIMIT %(limit)s"
          " FOR UPDATE SKIP LOCKED) RETURNING id")
_GROUPS = ('SELECT e.alertname, e.severity, e.status, count(*), min(o.id) FROM outbox o JOIN events e'
           ' ON e.id = o.event_id WHERE o.id = ANY(%s)'
           ' GROUP BY e.alertname, e.severity, e.status ORDER BY e.alertname COLLATE "C", e.severity COLLATE "C", e.status')
# Alive: a relay whose session advisory lock is held (pg_locks shows every session's).
_LIVE_RELAYS = ("SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND classid = %(ns)s"
                " AND objsubid = 2 AND granted")
_RELEASE = ("UPDATE outbox SET state = 'pending', claimed_at = NULL, claimed_by = NULL WHERE state = 'sending'"
            f" AND (claimed_by IS NULL OR claimed_by = %(relay)s OR claimed_by NOT IN ({_LIVE_RELAYS}))")
_RESEND_FACTS = (
    "SELECT o.id, coalesce((SELECT min(d.attempted_at) FROM delivery_items di JOIN deliveries d"
    " ON d.id = di.delivery_id WHERE di.outbox_id = o.id), o.created_at),"
    " EXISTS (SELECT 1 FROM alerts a WHERE a.fingerprint = e.fingerprint AND a.event_id = e.id"
    " AND a.status = 'firing') FROM outbox o JOIN events e ON e.id = o.event_id WHERE o.id = ANY(%s)")
# Pruning, as the SQLite store does it (README: Pruning): PRUNE_CHUNK rows per transaction, found through an
# index and a cursor, each transaction leaving the history whole.
PRUNE_CHUNK = 250
_PRUNE_DELIVERIES = ("DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries WHERE attempted_at < %(cutoff)s"
                     " ORDER BY attempted_at LIMIT %(chunk)s)")
_EVENTS_AFTER = "SELECT id, received_at < %(cutoff)s FROM events WHERE id > %(id)s ORDER BY id LIMIT %(chunk)s"
# A webhook may refer to an old event (a late copy of its change, queued for another channel): the chunk's alerts
# are locked as ingest locks them, so neither removes what the other is about to refer to.
_LOCK_CHUNK = ("SELECT count(pg_advisory_xact_lock(%(alert_lock)s, h)) FROM (SELECT DISTINCT hashtext(fingerprint)"
               " AS h FROM events WHERE id = ANY(%(ids)s) ORDER BY 1) AS locks")
_FINISHED = ("SELECT o.id FROM outbox o WHERE o.event_id = ANY(%(ids)s) AND o.state IN ('delivered', 'failed')"
             " AND o.finished_at < %(cutoff)s")
_PRUNE_EVENTS = (
    f"DELETE FROM delivery_items WHERE outbox_id IN ({_FINISHED})",
    f"DELETE FROM outbox WHERE id IN ({_FINISHED})",
    "DELETE FROM alerts a USING events e WHERE e.id = ANY(%(ids)s) AND a.fingerprint = e.fingerprint"
    " AND a.event_id = e.id AND a.status = 'resolved'",
    "DELETE FROM events WHERE id = ANY(%(ids)s)"
    " AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.fingerprint = events.fingerprint AND a.event_id = events.id)"
    " AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.event_id = events.id)",
)
_NOTIFICATIONS_AFTER = ("SELECT id, received_at < %(cutoff)s FROM notifications WHERE id > %(id)s ORDER BY id"
                        " LIMIT %(chunk)s")
_PRUNE_NOTIFICATIONS = ("DELETE FROM notifications WHERE id = ANY(%(ids)s) AND received_at < %(cutoff)s"
                        " AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.notification_id = notifications.id)")


def text(value):
    """`value` as PostgreSQL text can hold it: U+0000 (which it cannot) becomes U+FFFD; None stays None."""
    return value.replace("\x00", "\ufffd") if isinstance(value, str) and "\x00" in value else value


def _item(channel: str, row: tuple, event: AlertEvent | None, error: str | None = None) -> OutboxItem:
    return OutboxItem(id=row[0], channel=channel, attempts=row[1], received_at=row[2], event=event,
                      group_key=row[3], truncated_alerts=row[4], cut_alerts=row[5], cut_max_body_bytes=row[6],
                      error=error)


def _event(columns: tuple) -> AlertEvent:
    fingerprint, status, labels, annotations, starts_at, ends_at, generator_url, episode, thread = columns
    return AlertEvent(fingerprint=fingerprint, status=status, labels=json.loads(labels),
                      annotations=json.loads(annotations), starts_at=starts_at, ends_at=ends_at,
                      generator_url=generator_url, episode=episode, thread=thread)


def _readable_item(channel: str, row: tuple) -> OutboxItem:
    """_item with its event; a row whose event cannot be read carries the error instead, so it is failed alone."""
    try:
        return _item(channel, row, _event(row[_EVENT_AT:]))
    except Exception as exc:  # bad JSON, a wrong type: one bad row must not stop its channel
        log.error("relay.unreadable_row id=%s error=%r", row[0], f"{type(exc).__name__}: {exc}")
        return _item(channel, row, None, error=f"the stored alert cannot be read ({type(exc).__name__})")


# The alert's newest state: a later startsAt or episode, or the resolution of the same episode; never back.
APPLY_ALERT = (
    "INSERT INTO alerts (fingerprint, event_id, status, starts_at, episode, severity)"
    " SELECT fingerprint, id, status, starts_at, episode, severity FROM events WHERE id = %s"
    " ON CONFLICT (fingerprint) DO UPDATE SET event_id = excluded.event_id, status = excluded.status,"
    " starts_at = excluded.starts_at, episode = excluded.episode, severity = excluded.severity"
    " WHERE excluded.starts_at > alerts.starts_at"
    " OR (excluded.starts_at = alerts.starts_at AND excluded.episode > alerts.episode)"
    " OR (excluded.starts_at = alerts.starts_at AND excluded.episode = alerts.episode"
    " AND excluded.status = 'resolved')")

# Reconciliation's records (few): old suppression changes, and sightings of firings no longer their alert's newest.
PRUNE_SUPPRESSIONS = (
    "DELETE FROM suppression_changes WHERE at < %(cutoff)s",
    "DELETE FROM sightings WHERE NOT EXISTS (SELECT 1 FROM alerts a WHERE a.fingerprint = sightings.fingerprint"
    " AND a.event_id = sightings.event_id AND a.status = 'firing')",
)

class RelayQueries:
    """Mixin for PostgresStore: what relays need, any number of them on one database."""

    def become_relay(self) -> None:
        """Mark this relay alive (a session advisory lock on its id); other relays are welcome."""
        with self._lock:
            if self._relay_conn is not None and not self._relay_conn.closed:
                return
            conn = self.connect()
            try:
                conn.execute("SELECT pg_advisory_lock(%s, %s)", (RELAY_LOCK, self.relay_id))
            except psycopg.Error as exc:
                conn.close()
                raise StorageError(f"cannot take the relay's liveness lock: {exc}") from exc
            self._relay_conn = conn

    def _still_relay(self) -> None:
        """Take the liveness lock again if its connection was lost (a database restart): others may have released
        this relay's claims meanwhile, which finish() allows for."""
        conn = self._relay_conn
        if conn is None:
            return
        try:
            conn.execute("SELECT 1")
        except psycopg.Error:
            with self._lock:
                conn.close()
                self._relay_conn = None
            log.warning("store.relay_lock_lost relay=%d", self.relay_id)
            self.become_relay()

    def _leave_relay(self) -> None:
        if self._relay_conn is not None:
            self._relay_conn.close()  # the server drops the session's lock with it
            self._relay_conn = None

    def release_claims(self) -> int:
        """Make due again the rows claimed by a relay that is gone, and this store's own (from before its start)."""
        with self._write() as conn:
            return conn.execute(_RELEASE, {"relay": self.relay_id, "ns": RELAY_LOCK}).rowcount

    def due_counts(self, now: float) -> dict[str, int]:
        with self._read() as conn:
            return dict(conn.execute(
                "SELECT channel, count(*) FROM outbox WHERE state IN ('pending', 'sending')"
                " AND ((state = 'pending' AND due_at <= %s) OR (state = 'sending' AND claimed_at <= %s))"
                " GROUP BY channel", (now, now - self.claim_timeout)).fetchall())

    def _claim_ids(self, channel: str, now: float, limit: int | None) -> list[int]:
        """Claim up to `limit` due rows of `channel` for this relay (SKIP LOCKED: rows another relay is claiming
        right now are left to it); their ids, oldest first."""
        self._still_relay()
        with self._read() as conn:  # one statement, its own transaction
            rows = conn.execute(_CLAIM, {"channel": channel, "now": now, "stale": now - self.claim_timeout,
                                         "relay": self.relay_id, "limit": limit}).fetchall()
        return sorted(row[0] for row in rows)

    def claim(self, channel: str, now: float, limit: int | None) -> list[OutboxItem]:
        ids = self._claim_ids(channel, now, limit)
        if not ids:
            return []
        with self._read() as conn:
            rows = conn.execute(f"{_ROWS} WHERE o.id = ANY(%s) ORDER BY o.id", (ids,)).fetchall()
        return [_readable_item(channel, row) for row in rows]

    def claim_digest(self, channel, now, limit, examples, severities):
        ids = self._claim_ids(channel, now, limit)
        if not ids:
            return [], [], []
        rank = f"CASE lower(e.severity) {' '.join('WHEN %s THEN %s' for _ in severities)} ELSE %s END"
        ranks = [x for i, severity in enumerate(severities) for x in (severity, i)]
        with self._read() as conn:
            rows = conn.execute(f"SELECT {_ITEM}{_FROM} WHERE o.id = ANY(%s) ORDER BY o.id", (ids,)).fetchall()
            groups = [tuple(row) for row in conn.execute(_GROUPS, (ids,)).fetchall()]
            chosen = conn.execute(f"{_ROWS} WHERE o.id = ANY(%s) ORDER BY e.status = 'resolved', {rank}, o.id"
                                  " LIMIT %s", (ids, *ranks, len(severities), examples)).fetchall()
        # An example that cannot be read is left out of the examples; its row is still counted in the digest.
        return ([_item(channel, row, None) for row in rows], groups,
                [item.event for item in map(lambda row: _readable_item(channel, row), chosen) if item.event])

    def thread_start(self, channel: str, reference: str, limit: int) -> list[OutboxItem]:
        with self._read() as conn:
            rows = conn.execute(_THREAD_START, (text(reference), channel, limit)).fetchall()
        return [_readable_item(channel, row) for row in rows]

    def finish(self, channel, now, ok, digest, detail, updates, state=None) -> None:
        verdicts: dict[tuple[str, float, bool, str, str | None], list[int]] = {}
        for update in updates:
            key = (update.state, update.due_at, update.counted, detail if update.detail is None else update.detail,
                   text(update.reference))
            verdicts.setdefault(key, []).append(update.id)
        finished = {DELIVERED: 0, FAILED: 0}
        with self._write() as conn:
            delivery_id = conn.execute(
                "INSERT INTO deliveries (channel, attempted_at, ok, digest, event_count, detail)"
                " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                (channel, now, bool(ok), bool(digest), len(updates), detail)).fetchone()[0]
            conn.execute("INSERT INTO delivery_items (delivery_id, outbox_id) SELECT %s, unnest(%s::bigint[])"
                         " ON CONFLICT DO NOTHING", (delivery_id, sorted({u.id for u in updates})))
            for (row_state, due_at, counted, row_detail, reference), ids in verdicts.items():
                # Only rows this relay still holds, or released and not yet claimed again: one another relay took
                # over (after the claim timeout, or thinking this relay gone) is that relay's to finish.
                changed = conn.execute(
                    "UPDATE outbox SET state = %s, attempts = attempts + %s, due_at = %s, detail = %s,"
                    " reference = %s, finished_at = CASE WHEN %s IN ('delivered', 'failed') THEN %s END,"
                    " claimed_at = NULL, claimed_by = NULL"
                    " WHERE id = ANY(%s) AND ((state = 'sending' AND claimed_by = %s)"
                    " OR (state = 'pending' AND claimed_by IS NULL))",
                    (row_state, int(counted), due_at, row_detail, reference, row_state, now, ids,
                     self.relay_id)).rowcount
                if row_state in finished:
                    finished[row_state] += changed
            for name, row_state in (("delivered", DELIVERED), ("failed", FAILED)):
                if finished[row_state]:
                    conn.execute(COUNT, (name, channel, finished[row_state]))
            for key, value in sorted((state or {}).items()):
                conn.execute("INSERT INTO state (key, value) VALUES (%s, %s)"
                             " ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))

    def resend_facts(self, ids) -> dict[int, tuple[float, bool]]:
        with self._read() as conn:
            return {row[0]: (row[1], bool(row[2])) for row in conn.execute(_RESEND_FACTS, (list(ids),))}

    def heartbeat_marker(self, channel: str) -> tuple | None:
        # The time alone would not do after the wall clock steps back (record_heartbeat keeps the later time):
        # every heartbeat also adds its alerts to this counter.
        with self._read() as conn:
            row = conn.execute("SELECT h.last_at, (SELECT value FROM counters WHERE name = 'received'"
                               " AND label = h.channel) FROM heartbeats h WHERE h.channel = %s", (channel,)).fetchone()
        return tuple(row) if row else None

    def set_state(self, values) -> None:
        with self._write() as conn:
            for key, value in sorted(values.items()):  # key order: no deadlock with another relay's set_state
                conn.execute("INSERT INTO state (key, value) VALUES (%s, %s)"
                             " ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))

    def state_items(self, prefix: str) -> dict[str, str]:
        with self._read() as conn:  # a range of the primary key (collation "C": byte order)
            return dict(conn.execute("SELECT key, value FROM state WHERE key >= %s AND key < %s",
                                     (prefix, prefix + "\U0010ffff")).fetchall())

    def prune(self, cutoff: float) -> int:
        """Delete finished history older than `cutoff` in short transactions; 0 when another receiver is pruning."""
        from webhook_receiver.store.postgres import ALERT_LOCK

        with self._read() as conn:
            # A session lock on this connection for the whole walk: its chunks are transactions of their own.
            if not conn.execute("SELECT pg_try_advisory_lock(%s, %s)", PRUNE_LOCK).fetchone()[0]:
                log.info("store.prune_skipped reason=another receiver is pruning")
                return 0
            try:
                params = {"cutoff": cutoff, "chunk": PRUNE_CHUNK, "alert_lock": ALERT_LOCK}
                removed = 0
                while True:
                    with conn.transaction():
                        deleted = conn.execute(_PRUNE_DELIVERIES, params).rowcount
                    removed += deleted
                    if deleted < PRUNE_CHUNK:
                        break
                removed += self._prune_in_id_order(conn, _EVENTS_AFTER, (_LOCK_CHUNK, *_PRUNE_EVENTS), params)
                with conn.transaction():
                    removed += sum(conn.execute(statement, params).rowcount for statement in PRUNE_SUPPRESSIONS)
                return removed + self._prune_in_id_order(conn, _NOTIFICATIONS_AFTER, (_PRUNE_NOTIFICATIONS,), params)
            finally:
                if not conn.broken:
                    conn.execute("SELECT pg_advisory_unlock(%s, %s)", PRUNE_LOCK)

    @staticmethod
    def _prune_in_id_order(conn, after: str, statements: tuple[str, ...], params: dict) -> int:
        """Run `statements` on the old rows `after` finds, a chunk per transaction, until a chunk has none."""
        removed, params = 0, {**params, "id": 0}
        while True:
            with conn.transaction():
                chunk = conn.execute(after, params).fetchall()
                params["ids"] = [row[0] for row in chunk if row[1]]
                for statement in statements:
                    cursor = conn.execute(statement, params)
                    if not statement.startswith("SELECT"):
                        removed += cursor.rowcount
            if len(chunk) < PRUNE_CHUNK or not any(row[1] for row in chunk):
                return removed
            params["id"] = chunk[-1][0]
