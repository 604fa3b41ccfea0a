"""Reconciliation queries of the PostgreSQL store: the firing alerts to check against Alertmanager, and one pass's writes.

Every relay reconciles; an advisory lock makes their passes take turns, and the alerts' own advisory locks (those
a webhook takes, store/postgres.py) keep a pass and a webhook from deciding the same alert's changes at once.
"""
from __future__ import annotations

from webhook_receiver.store import reconcile_writes
from webhook_receiver.store import rows as shape
from webhook_receiver.store.base import ReconcileResult, Reconciliation, TrackedAlert
from webhook_receiver.store.postgres_relay import APPLY_ALERT

RECONCILE_LOCK = (0x64756D72, 0)  # ("dumr", 0): one reconciliation pass at a time, whichever relay
_TRACKED = ("SELECT a.fingerprint, a.event_id, a.starts_at, e.suppressed, coalesce(s.state, 'active'),"
            " coalesce(s.detail, '{}'), s.last_seen FROM alerts a JOIN events e ON e.id = a.event_id"
            " LEFT JOIN sightings s ON s.fingerprint = a.fingerprint AND s.event_id = a.event_id"
            " WHERE a.status = 'firing' AND e.origin <> 'receiver'")
_SQL = reconcile_writes.ReconcileSQL(
    seen=("INSERT INTO sightings (fingerprint, event_id, state, detail, last_seen) VALUES (%s, %s, 'active', '{}', %s)"
          " ON CONFLICT (fingerprint) DO UPDATE SET last_seen = CASE WHEN sightings.event_id = excluded.event_id"
          " THEN greatest(sightings.last_seen, excluded.last_seen) ELSE excluded.last_seen END,"
          " state = CASE WHEN sightings.event_id = excluded.event_id THEN sightings.state ELSE 'active' END,"
          " detail = CASE WHEN sightings.event_id = excluded.event_id THEN sightings.detail ELSE '{}' END,"
          " event_id = excluded.event_id"),
    firing="SELECT event_id FROM alerts WHERE fingerprint = %s AND status = 'firing'",
    sighting="SELECT state, detail FROM sightings WHERE fingerprint = %s AND event_id = %s",
    set_sighting=("INSERT INTO sightings (fingerprint, event_id, state, detail, last_seen) VALUES (%s, %s, %s, %s, %s)"
                  " ON CONFLICT (fingerprint) DO UPDATE SET event_id = excluded.event_id, state = excluded.state,"
                  " detail = excluded.detail"),
    add_change=("INSERT INTO suppression_changes (fingerprint, event_id, state, detail, at)"
                " VALUES (%s, %s, %s, %s, %s)"),
    open_firing="SELECT 1 FROM alerts WHERE event_id = %s AND fingerprint = %s AND status = 'firing'",
    firing_event=("SELECT fingerprint, labels, annotations, starts_at, generator_url, suppressed, episode"
                  " FROM events WHERE id = %s"),
    moved_on=("SELECT 1 FROM events WHERE fingerprint = %s AND starts_at BETWEEN %s AND %s"
              " AND (episode > %s OR (episode = %s AND status = 'resolved')) LIMIT 1"),
    apply_alert=APPLY_ALERT,
    reached="SELECT channel, state FROM outbox WHERE event_id = %s",
    queue=("INSERT INTO outbox (channel, event_id, notification_id, due_at, created_at) VALUES (%s, %s, NULL, %s, %s)"
           " ON CONFLICT (event_id, channel) DO NOTHING"),
    forget="DELETE FROM sightings WHERE fingerprint = %s",
)
_CHANGES = "SELECT state, detail, at, event_id FROM suppression_changes WHERE fingerprint = %s ORDER BY id"


class ReconcileQueries:
    """Mixin for PostgresStore: reconciliation's reads and its one-transaction writes."""

    def tracked_alerts(self) -> list[TrackedAlert]:
        with self._read() as conn:
            rows = conn.execute(_TRACKED).fetchall()
        return [TrackedAlert(*row) for row in rows]

    def reconcile(self, changes: Reconciliation) -> ReconcileResult:
        fingerprints = [alert.fingerprint for alert, _ in changes.suppressed_firings]
        fingerprints += [tracked.fingerprint for tracked, _ in changes.resolutions]
        with self._write() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", RECONCILE_LOCK)
            self._lock_alerts(conn, fingerprints)
            return reconcile_writes.write(conn, _SQL, self._insert_event, self._event_row, changes)

    def suppression_changes(self, fingerprint: str) -> list[dict]:
        with self._read() as conn:
            rows = conn.execute(_CHANGES, (fingerprint,)).fetchall()
        return [shape.suppression_change(row) for row in rows]
