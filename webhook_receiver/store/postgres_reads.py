"""Read queries of the PostgreSQL store: the history feed, active alerts, timelines and metric sources.

The same answers as the SQLite store's (store/sqlite_reads.py), row for row: the SQL differs where the dialects do.
"""
from __future__ import annotations

import json

import psycopg

from webhook_receiver.payload import micros
from webhook_receiver.store import rows as shape
from webhook_receiver.store.base import HistoryQuery

_EVENT_COLUMNS = ("e.id, e.fingerprint, e.status, e.starts_at, e.ends_at, e.alertname, e.severity, e.labels,"
                  " e.annotations, e.generator_url, e.received_at, e.origin, e.suppressed")
_DELIVERIES = (
    "SELECT o.event_id, o.id, o.channel, o.state, o.attempts, o.detail, o.finished_at, o.due_at,"
    " n.receiver, n.group_key, n.received_at, n.truncated_alerts, n.cut_alerts, n.cut_body_bytes,"
    " n.cut_max_body_bytes FROM outbox o"
    " LEFT JOIN notifications n ON n.id = o.notification_id WHERE o.event_id = ANY(%s) ORDER BY o.id")
_ATTEMPTS = (
    "SELECT di.outbox_id, d.attempted_at, d.ok, d.digest, d.detail FROM delivery_items di"
    " JOIN deliveries d ON d.id = di.delivery_id WHERE di.outbox_id = ANY(%s) ORDER BY d.id")
# JSON is stored escaped to ASCII; PostgreSQL's json functions refuse the escape of U+0000 (its text cannot hold
# the character), so it is read as U+FFFD: one odd annotation must not fail the page for every alert.
_ANNOTATIONS = r"replace(e.annotations, '\u0000', '\ufffd')::json"
# /api/v1/alerts: the page's event ids from the alerts_firing index, newest startsAt first; then only those rows,
# each annotation cut in the database past %(clip)s characters, so Python never holds the long ones.
_ALERTS_PAGE = f"""
SELECT e.id, e.fingerprint, e.status, e.starts_at, e.ends_at, e.alertname, e.severity, e.labels,
       (SELECT coalesce(json_object_agg(key, CASE WHEN length(value) > %(clip)s
                                                  THEN substr(value, 1, %(clip)s) || '…' ELSE value END), '{{}}')
          FROM json_each_text({_ANNOTATIONS})),
       (SELECT coalesce(json_object_agg(key, length(value)), '{{}}')
          FROM json_each_text({_ANNOTATIONS}) WHERE length(value) > %(clip)s),
       e.generator_url, e.received_at, e.origin, e.suppressed
  FROM (SELECT a.event_id FROM alerts a WHERE a.status = 'firing' {{after}}
         ORDER BY a.starts_at DESC, a.event_id DESC LIMIT %(limit)s) page
  JOIN events e ON e.id = page.event_id
 ORDER BY e.starts_at DESC, e.id DESC
"""
_ALERTS_FIRST = _ALERTS_PAGE.replace("{after}", "")
_ALERTS_AFTER = _ALERTS_PAGE.replace("{after}", "AND (a.starts_at, a.event_id) < (%(starts_at)s, %(event_id)s)")
_MAX_ID = 2 ** 63 - 1  # bigint's largest: a larger cursor id means "from the first alert of that startsAt"


def _json(value):
    """A json column as Python (psycopg decodes json; text from a coalesce arrives as text)."""
    return json.loads(value) if isinstance(value, str) else value


class ReadQueries:
    """Mixin for PostgresStore: everything that reads history."""

    def history(self, query: HistoryQuery) -> tuple[list[dict], int | None]:
        from webhook_receiver.store.postgres_relay import text

        where, args = [], []
        for column, value in (("alertname", query.alertname), ("severity", query.severity),
                              ("status", query.status)):
            if value is not None:
                where.append(f"e.{column} = %s")
                args.append(text(value))
        if query.channel is not None:
            where.append("EXISTS (SELECT 1 FROM outbox o WHERE o.event_id = e.id AND o.channel = %s)")
            args.append(text(query.channel))
        for name, value in query.labels:  # any label name, always a bound value
            where.append(r"(replace(e.labels, '\u0000', '\ufffd')::json ->> %s) = %s")
            args += [text(name), text(value)]
        if query.suppressed is not None:
            where.append("e.suppressed = true" if query.suppressed else "e.suppressed = false")
        # Times are shown to the microsecond, so compare whole microseconds, computed exactly as payload.micros
        # does (the same IEEE operations; floor of a positive number is SQLite's CAST).
        for clause, value in (("floor(e.received_at * 1000000 + 0.5)::bigint >= %s", micros(query.since)),
                              ("floor(e.received_at * 1000000 + 0.5)::bigint < %s", micros(query.until)),
                              ("e.id < %s", query.before_id)):
            if value is not None:
                where.append(clause)
                args.append(value)
        sql = (f"SELECT {_EVENT_COLUMNS} FROM events e"
               f" {'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY e.id DESC LIMIT %s")
        with self._read() as conn:
            rows = conn.execute(sql, (*args, query.limit + 1)).fetchall()
            entries = [shape.event(row) for row in rows[:query.limit]]
            self._attach_deliveries(conn, entries, with_attempts=False)
        next_id = entries[-1]["id"] if len(rows) > query.limit else None
        return entries, next_id

    def _attach_deliveries(self, conn: psycopg.Connection, entries: list[dict], with_attempts: bool) -> None:
        by_id = {entry["id"]: entry for entry in entries}
        for entry in entries:
            entry["deliveries"] = []
        if not entries:
            return
        outbox = {}
        for row in conn.execute(_DELIVERIES, (list(by_id),)):
            delivery = shape.delivery(row)
            by_id[row[0]]["deliveries"].append(delivery)
            outbox[row[1]] = delivery
        if with_attempts and outbox:
            for delivery in outbox.values():
                delivery["attempt_log"] = []
            for row in conn.execute(_ATTEMPTS, (list(outbox),)):
                outbox[row[0]]["attempt_log"].append(shape.attempt(row))

    def active_alerts(self) -> list[dict]:
        with self._read() as conn:
            rows = conn.execute(f"SELECT {_EVENT_COLUMNS} FROM alerts a JOIN events e ON e.id = a.event_id"
                                " WHERE a.status = 'firing' ORDER BY e.starts_at DESC, e.id DESC").fetchall()
        return [shape.event(row) for row in rows]

    def active_alerts_page(self, limit: int, after: tuple[str, int] | None,
                           clip: int) -> tuple[list[dict], tuple[str, int] | None]:
        """Up to `limit` firing alerts after position `after` (startsAt, event id), newest startsAt first, and the
        position of the last one when more follow; annotations past `clip` characters are cut (ending in …)."""
        params = {"clip": clip, "limit": max(limit, 0) + 1}
        with self._read() as conn:
            if after is None:
                rows = conn.execute(_ALERTS_FIRST, params).fetchall()
            else:
                params.update(starts_at=after[0], event_id=max(min(after[1], _MAX_ID), -_MAX_ID))
                rows = conn.execute(_ALERTS_AFTER, params).fetchall()
        alerts = [{**shape.event((*row[:8], json.dumps(_json(row[8])), *row[10:])),
                   "annotations_clipped": _json(row[9])}
                  for row in rows[:limit]]
        more = len(rows) > limit
        return alerts, (alerts[-1]["starts_at"], alerts[-1]["id"]) if more and alerts else None

    def timeline(self, fingerprint: str) -> list[dict]:
        with self._read() as conn:
            rows = conn.execute(f"SELECT {_EVENT_COLUMNS} FROM events e WHERE e.fingerprint = %s ORDER BY"
                                " e.starts_at, e.episode, e.status = 'resolved', e.id", (fingerprint,)).fetchall()
            entries = [shape.event(row) for row in rows]
            self._attach_deliveries(conn, entries, with_attempts=True)
        return entries

    def counters(self) -> dict[tuple[str, str], int]:
        with self._read() as conn:
            return {(name, label): value
                    for name, label, value in conn.execute("SELECT name, label, value FROM counters")}

    def outbox_depth(self) -> dict[str, int]:
        with self._read() as conn:
            return dict(conn.execute("SELECT channel, count(*) FROM outbox"
                                     " WHERE state IN ('pending', 'sending') GROUP BY channel").fetchall())

    def active_by_severity(self) -> dict[str, int]:
        with self._read() as conn:
            return dict(conn.execute("SELECT severity, count(*) FROM alerts WHERE status = 'firing'"
                                     " GROUP BY severity").fetchall())

    def last_heartbeat(self, channel: str) -> float | None:
        with self._read() as conn:
            row = conn.execute("SELECT last_at FROM heartbeats WHERE channel = %s", (channel,)).fetchone()
        return row[0] if row else None

    def get_state(self, key: str) -> str | None:
        with self._read() as conn:
            row = conn.execute("SELECT value FROM state WHERE key = %s", (key,)).fetchone()
        return row[0] if row else None
