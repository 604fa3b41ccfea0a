-- Episodes: Alertmanager resolves an alert whose endsAt passed, and when Prometheus sends it again it keeps
-- its startsAt. `episode` counts the resolutions already stored for the same fingerprint and startsAt, so
-- that re-fire (and its own resolution) is a new state change rather than a duplicate of the first.
-- SQLite cannot drop a table constraint, so events is rebuilt with its rows (ids kept: outbox, alerts and
-- deliveries refer to them).
CREATE TABLE events_new (
    id            INTEGER PRIMARY KEY,
    fingerprint   TEXT NOT NULL,
    status        TEXT NOT NULL,
    starts_at     TEXT NOT NULL,
    ends_at       TEXT,               -- NULL while firing
    alertname     TEXT NOT NULL,
    severity      TEXT NOT NULL,
    labels        TEXT NOT NULL,      -- JSON object
    annotations   TEXT NOT NULL,      -- JSON object
    generator_url TEXT NOT NULL,
    received_at   REAL NOT NULL,
    episode       INTEGER NOT NULL DEFAULT 0
);
INSERT INTO events_new (id, fingerprint, status, starts_at, ends_at, alertname, severity, labels, annotations,
                        generator_url, received_at)
    SELECT id, fingerprint, status, starts_at, ends_at, alertname, severity, labels, annotations, generator_url,
           received_at FROM events;
DROP TABLE events;
ALTER TABLE events_new RENAME TO events;
CREATE INDEX events_received ON events (received_at);
CREATE INDEX events_alertname ON events (alertname);
-- A firing is the same change within one episode; a resolution is the same when its endsAt is (retries
-- and both Alertmanagers of a pair agree on it).
CREATE UNIQUE INDEX events_firing ON events (fingerprint, starts_at, episode) WHERE status = 'firing';
CREATE UNIQUE INDEX events_resolved ON events (fingerprint, starts_at, ends_at) WHERE status = 'resolved';

ALTER TABLE alerts ADD COLUMN episode INTEGER NOT NULL DEFAULT 0;
