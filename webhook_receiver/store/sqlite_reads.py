"""Read queries of the SQLite store: the history feed, active alerts, timelines and metric sources."""
from __future__ import annotations

import json
import logging
import re
import sqlite3

from webhook_receiver.payload import micros
from webhook_receiver.store import rows as shape
from webhook_receiver.store.base import HistoryQuery, StorageError

log = logging.getLogger(__name__)
_CLASSIC_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")  # Prometheus's label names before UTF-8

_EVENT_COLUMNS = ("e.id, e.fingerprint, e.status, e.starts_at, e.ends_at, e.alertname, e.severity, e.labels,"
                  " e.annotations, e.generator_url, e.received_at, e.origin, e.suppressed")
_DELIVERIES = (
    "SELECT o.event_id, o.id, o.channel, o.state, o.attempts, o.detail, o.finished_at, o.due_at,"
    " n.receiver, n.group_key, n.received_at, n.truncated_alerts, n.cut_alerts, n.cut_body_bytes,"
    " n.cut_max_body_bytes FROM outbox o"
    " LEFT JOIN notifications n ON n.id = o.notification_id WHERE o.event_id IN ({}) ORDER BY o.id")
# /api/v1/alerts: the page's event ids first, newest startsAt first, from the alerts_firing index (0007), so a
# page reads `limit` index entries (named: without statistics SQLite prefers alerts_status and sorts them all);
# then only those rows, each annotation cut by SQLite past ?1 characters, so Python never holds the long ones
# (40 alerts with 900 KB annotations made a 36 MB answer and a 270 MB worker).
_ALERTS_PAGE = """
SELECT e.id, e.fingerprint, e.status, e.starts_at, e.ends_at, e.alertname, e.severity, e.labels,
       (SELECT json_group_object(key, CASE WHEN length(value) > ?1 THEN substr(value, 1, ?1) || '…' ELSE value END)
          FROM json_each(e.annotations)),
       (SELECT json_group_object(key, length(value)) FROM json_each(e.annotations) WHERE length(value) > ?1),
       e.generator_url, e.received_at, e.origin, e.suppressed
  FROM (SELECT a.event_id FROM alerts a INDEXED BY alerts_firing WHERE a.status = 'firing' {after}
         ORDER BY a.starts_at DESC, a.event_id DESC LIMIT ?4) page
  JOIN events e ON e.id = page.event_id
 ORDER BY e.starts_at DESC, e.id DESC
"""
_ALERTS_FIRST = _ALERTS_PAGE.format(after="")
_ALERTS_AFTER = _ALERTS_PAGE.format(after="AND (a.starts_at, a.event_id) < (?2, ?3)")
_MAX_ID = 2 ** 63 - 1  # SQLite's largest integer: a larger cursor id means "from the first alert of that startsAt"
_ATTEMPTS = (
    "SELECT di.outbox_id, d.attempted_at, d.ok, d.digest, d.detail FROM delivery_items di"
    " JOIN deliveries d ON d.id = di.delivery_id WHERE di.outbox_id IN ({}) ORDER BY d.id")


def _marks(count: int) -> str:
    return ", ".join("?" * count)


class ReadQueries:
    """Mixin for SQLiteStore: everything that reads history, first applying the intake (apply_intake).

    So a read right after a webhook's 200 sees its messages queued and its alerts' state, as if the webhook
    had written them itself.
    """

    def _apply_before_read(self) -> None:
        # A read still answers when the intake cannot be applied (database locked past busy_timeout, disk
        # full): an operator looking at history in an incident must see what is stored, if not the newest
        # messages' delivery rows.
        try:
            self.apply_intake()
        except StorageError as exc:
            log.warning("store.intake_not_applied error=%r", str(exc))

    def history(self, query: HistoryQuery) -> tuple[list[dict], int | None]:
        where, args = [], []
        for column, value in (("alertname", query.alertname), ("severity", query.severity),
                              ("status", query.status)):
            if value is not None:
                where.append(f"e.{column} = ?")
                args.append(value)
        if query.channel is not None:
            where.append("EXISTS (SELECT 1 FROM outbox o WHERE o.event_id = e.id AND o.channel = ?)")
            args.append(query.channel)
        for name, value in query.labels:
            if _CLASSIC_NAME.match(name):  # safe to quote into a JSON path, which SQLite cannot escape in
                where.append(f"json_extract(e.labels, '$.\"{name}\"') = ?")
                args.append(value)
            else:  # any other UTF-8 name (Alertmanager 0.27+): compared as a bound value, never quoted into SQL
                where.append("EXISTS (SELECT 1 FROM json_each(e.labels) l WHERE l.key = ? AND l.value = ?)")
                args += [name, value]
        if query.suppressed is not None:
            where.append("e.suppressed = 1" if query.suppressed else "e.suppressed = 0")
        # Times are shown to the microsecond, so compare whole microseconds, computed exactly as
        # payload.micros does (same IEEE operations): a `since` copied from an entry then includes it.
        for clause, value in (("CAST(e.received_at * 1000000 + 0.5 AS INTEGER) >= ?", micros(query.since)),
                              ("CAST(e.received_at * 1000000 + 0.5 AS INTEGER) < ?", micros(query.until)),
                              ("e.id < ?", query.before_id)):
            if value is not None:
                where.append(clause)
                args.append(value)
        sql = (f"SELECT {_EVENT_COLUMNS} FROM events e"
               f" {'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY e.id DESC LIMIT ?")
        self._apply_before_read()
        with self._read() as conn:
            rows = conn.execute(sql, (*args, query.limit + 1)).fetchall()
            entries = [shape.event(row) for row in rows[:query.limit]]
            self._attach_deliveries(conn, entries, with_attempts=False)
        next_id = entries[-1]["id"] if len(rows) > query.limit else None
        return entries, next_id

    def _attach_deliveries(self, conn: sqlite3.Connection, entries: list[dict], with_attempts: bool) -> None:
        by_id = {entry["id"]: entry for entry in entries}
        for entry in entries:
            entry["deliveries"] = []
        if not entries:
            return
        outbox = {}
        for row in conn.execute(_DELIVERIES.format(_marks(len(by_id))), tuple(by_id)):
            delivery = shape.delivery(row)
            by_id[row[0]]["deliveries"].append(delivery)
            outbox[row[1]] = delivery
        if with_attempts and outbox:
            for delivery in outbox.values():
                delivery["attempt_log"] = []
            for row in conn.execute(_ATTEMPTS.format(_marks(len(outbox))), tuple(outbox)):
                outbox[row[0]]["attempt_log"].append(shape.attempt(row))

    def active_alerts(self) -> list[dict]:
        self._apply_before_read()
        with self._read() as conn:
            rows = conn.execute(f"SELECT {_EVENT_COLUMNS} FROM alerts a JOIN events e ON e.id = a.event_id"
                                " WHERE a.status = 'firing' ORDER BY e.starts_at DESC, e.id DESC").fetchall()
        return [shape.event(row) for row in rows]

    def active_alerts_page(self, limit: int, after: tuple[str, int] | None,
                           clip: int) -> tuple[list[dict], tuple[str, int] | None]:
        """Up to `limit` firing alerts after position `after` (startsAt, event id), newest startsAt first, and the
        position of the last one when more follow; annotations past `clip` characters are cut (ending in …)."""
        self._apply_before_read()
        with self._read() as conn:
            if after is None:
                rows = conn.execute(_ALERTS_FIRST, (clip, None, None, max(limit, 0) + 1)).fetchall()
            else:
                starts_at, event_id = after[0], max(min(after[1], _MAX_ID), -_MAX_ID)
                rows = conn.execute(_ALERTS_AFTER, (clip, starts_at, event_id, max(limit, 0) + 1)).fetchall()
        alerts = [{**shape.event((*row[:9], *row[10:])), "annotations_clipped": json.loads(row[9])}
                  for row in rows[:limit]]
        more = len(rows) > limit
        return alerts, (alerts[-1]["starts_at"], alerts[-1]["id"]) if more and alerts else None

    def timeline(self, fingerprint: str) -> list[dict]:
        self._apply_before_read()
        with self._read() as conn:
            rows = conn.execute(f"SELECT {_EVENT_COLUMNS} FROM events e WHERE e.fingerprint = ? ORDER BY"
                                " e.starts_at, e.episode, e.status = 'resolved', e.id", (fingerprint,)).fetchall()
            entries = [shape.event(row) for row in rows]
            self._attach_deliveries(conn, entries, with_attempts=True)
        return entries

    def counters(self) -> dict[tuple[str, str], int]:
        with self._read() as conn:
            return {(name, label): value
                    for name, label, value in conn.execute("SELECT name, label, value FROM counters")}

    def outbox_depth(self) -> dict[str, int]:
        self._apply_before_read()
        with self._read() as conn:
            return dict(conn.execute("SELECT channel, count(*) FROM outbox"
                                     " WHERE state IN ('pending', 'sending') GROUP BY channel"))

    def active_by_severity(self) -> dict[str, int]:
        self._apply_before_read()
        with self._read() as conn:
            return dict(conn.execute("SELECT severity, count(*) FROM alerts WHERE status = 'firing'"
                                     " GROUP BY severity"))

    def last_heartbeat(self, channel: str) -> float | None:
        with self._read() as conn:
            row = conn.execute("SELECT last_at FROM heartbeats WHERE channel = ?", (channel,)).fetchone()
        return row[0] if row else None

    def get_state(self, key: str) -> str | None:
        with self._read() as conn:
            row = conn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None
