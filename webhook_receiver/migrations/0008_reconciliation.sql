-- Reconciliation with Alertmanager's API (webhook_receiver/reconcile/): what Alertmanager never posts.
-- `origin`: how the change reached the history: 'webhook' (Alertmanager posted it), 'reconciliation' (the
-- receiver read it from Alertmanager's API: a resolution Alertmanager never sends, or a firing it suppressed),
-- 'receiver' (the receiver's own alert, the dead man's switch, which no Alertmanager knows).
ALTER TABLE events ADD COLUMN origin TEXT NOT NULL DEFAULT 'webhook';
-- 1: known only from Alertmanager's API while it was silenced or inhibited, so never relayed to anyone.
ALTER TABLE events ADD COLUMN suppressed INTEGER NOT NULL DEFAULT 0;
UPDATE events SET origin = 'receiver' WHERE alertname = 'AlertingPipelineDown' AND id IN
    (SELECT event_id FROM outbox WHERE notification_id IS NULL);
CREATE INDEX events_suppressed ON events (suppressed) WHERE suppressed = 1;

-- Each firing alert as reconciliation last saw it: its suppression and when an Alertmanager last listed it.
-- `event_id` is the firing seen: a later episode of the alert starts from no sighting.
CREATE TABLE sightings (
    fingerprint TEXT PRIMARY KEY,
    event_id    INTEGER NOT NULL,
    state       TEXT NOT NULL,     -- active | silenced | inhibited
    detail      TEXT NOT NULL,     -- JSON: {"silences": [...], "inhibited_by": [...]}
    last_seen   REAL NOT NULL
);

-- An alert's suppression changes (silenced, inhibited, active again): its timeline beside its events.
CREATE TABLE suppression_changes (
    id          INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    event_id    INTEGER NOT NULL,  -- the firing it happened to
    state       TEXT NOT NULL,     -- active | silenced | inhibited
    detail      TEXT NOT NULL,     -- JSON, as sightings.detail
    at          REAL NOT NULL
);
CREATE INDEX suppression_changes_alert ON suppression_changes (fingerprint, id);
