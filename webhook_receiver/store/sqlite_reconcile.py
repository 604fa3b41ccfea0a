"""Reconciliation queries of the SQLite store: the firing alerts to check against Alertmanager, and one pass's writes."""
from __future__ import annotations

from webhook_receiver.store import reconcile_writes
from webhook_receiver.store import rows as shape
from webhook_receiver.store.base import ReconcileResult, Reconciliation, TrackedAlert

# The receiver's own alert (the dead man's switch) is no Alertmanager's to end.
_TRACKED = ("SELECT a.fingerprint, a.event_id, a.starts_at, e.suppressed, coalesce(s.state, 'active'),"
            " coalesce(s.detail, '{}'), s.last_seen FROM alerts a JOIN events e ON e.id = a.event_id"
            " LEFT JOIN sightings s ON s.fingerprint = a.fingerprint AND s.event_id = a.event_id"
            " WHERE a.status = 'firing' AND e.origin != 'receiver'")
_SQL = reconcile_writes.ReconcileSQL(
    seen=("INSERT INTO sightings (fingerprint, event_id, state, detail, last_seen) VALUES (?, ?, 'active', '{}', ?)"
          " ON CONFLICT (fingerprint) DO UPDATE SET last_seen = CASE WHEN event_id = excluded.event_id"
          " THEN max(last_seen, excluded.last_seen) ELSE excluded.last_seen END,"
          " state = CASE WHEN event_id = excluded.event_id THEN state ELSE 'active' END,"
          " detail = CASE WHEN event_id = excluded.event_id THEN detail ELSE '{}' END,"
          " event_id = excluded.event_id"),
    firing="SELECT event_id FROM alerts WHERE fingerprint = ? AND status = 'firing'",
    sighting="SELECT state, detail FROM sightings WHERE fingerprint = ? AND event_id = ?",
    set_sighting=("INSERT INTO sightings (fingerprint, event_id, state, detail, last_seen) VALUES (?, ?, ?, ?, ?)"
                  " ON CONFLICT (fingerprint) DO UPDATE SET event_id = excluded.event_id, state = excluded.state,"
                  " detail = excluded.detail"),
    add_change=("INSERT INTO suppression_changes (fingerprint, event_id, state, detail, at)"
                " VALUES (?, ?, ?, ?, ?)"),
    open_firing="SELECT 1 FROM alerts WHERE event_id = ? AND fingerprint = ? AND status = 'firing'",
    firing_event=("SELECT fingerprint, labels, annotations, starts_at, generator_url, suppressed, episode"
                  " FROM events WHERE id = ?"),
    moved_on=("SELECT 1 FROM events WHERE fingerprint = ? AND starts_at BETWEEN ? AND ?"
              " AND (episode > ? OR (episode = ? AND status = 'resolved')) LIMIT 1"),
    apply_alert=(
        "INSERT INTO alerts (fingerprint, event_id, status, starts_at, episode, severity)"
        " SELECT fingerprint, id, status, starts_at, episode, severity FROM events WHERE id = ?"
        " ON CONFLICT (fingerprint) DO UPDATE SET event_id = excluded.event_id, status = excluded.status,"
        " starts_at = excluded.starts_at, episode = excluded.episode, severity = excluded.severity"
        " WHERE excluded.starts_at > alerts.starts_at"
        " OR (excluded.starts_at = alerts.starts_at AND excluded.episode > alerts.episode)"
        " OR (excluded.starts_at = alerts.starts_at AND excluded.episode = alerts.episode"
        " AND excluded.status = 'resolved')"),
    reached="SELECT channel, state FROM outbox WHERE event_id = ?",
    queue=("INSERT OR IGNORE INTO outbox (channel, event_id, notification_id, due_at, created_at)"
           " VALUES (?, ?, NULL, ?, ?)"),
    forget="DELETE FROM sightings WHERE fingerprint = ?",
)
_CHANGES = "SELECT state, detail, at, event_id FROM suppression_changes WHERE fingerprint = ? ORDER BY id"


class ReconcileQueries:
    """Mixin for SQLiteStore: reconciliation's reads and its one-transaction writes."""

    def tracked_alerts(self) -> list[TrackedAlert]:
        self._apply_before_read()
        with self._read() as conn:
            rows = conn.execute(_TRACKED).fetchall()
        return [TrackedAlert(fp, event_id, starts_at, bool(suppressed), state, detail, last_seen)
                for fp, event_id, starts_at, suppressed, state, detail, last_seen in rows]

    def reconcile(self, changes: Reconciliation) -> ReconcileResult:
        # The firings' messages queued by webhooks must be in the outbox, where _resolve finds who they reached.
        self.apply_intake()
        with self._write() as conn:
            return reconcile_writes.write(conn, _SQL, self._insert_event, self._event_row, changes)

    def suppression_changes(self, fingerprint: str) -> list[dict]:
        with self._read() as conn:
            rows = conn.execute(_CHANGES, (fingerprint,)).fetchall()
        return [shape.suppression_change(row) for row in rows]
