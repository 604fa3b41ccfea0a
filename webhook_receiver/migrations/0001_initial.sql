-- Alert history, the durable outbox and the relay's state. Times are Unix seconds (REAL) unless the
-- column is an Alertmanager time, kept as canonical RFC3339 text (UTC, nine fraction digits) so it
-- compares and deduplicates exactly.

-- One webhook POST that brought at least one new state change to its channel.
CREATE TABLE notifications (
    id               INTEGER PRIMARY KEY,
    channel          TEXT NOT NULL,
    receiver         TEXT NOT NULL,
    status           TEXT NOT NULL,
    group_key        TEXT NOT NULL,
    group_labels     TEXT NOT NULL,   -- JSON object
    truncated_alerts INTEGER NOT NULL,
    external_url     TEXT NOT NULL,
    received_at      REAL NOT NULL
);

-- One alert state change, whichever channel and whichever Alertmanager of an HA pair brought it.
CREATE TABLE events (
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
    UNIQUE (fingerprint, status, starts_at)
);
CREATE INDEX events_received ON events (received_at);
CREATE INDEX events_alertname ON events (alertname);

-- The newest known state of each alert: what is firing now.
CREATE TABLE alerts (
    fingerprint TEXT PRIMARY KEY,
    event_id    INTEGER NOT NULL,
    status      TEXT NOT NULL,
    starts_at   TEXT NOT NULL,
    severity    TEXT NOT NULL
);
CREATE INDEX alerts_status ON alerts (status, severity);

-- One message to send per channel per state change.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    channel         TEXT NOT NULL,
    event_id        INTEGER NOT NULL,
    notification_id INTEGER,          -- NULL for the receiver's own (dead man's switch) messages
    state           TEXT NOT NULL DEFAULT 'pending',  -- pending | sending | delivered | failed
    attempts        INTEGER NOT NULL DEFAULT 0,
    due_at          REAL NOT NULL,
    finished_at     REAL,
    detail          TEXT NOT NULL DEFAULT '',
    created_at      REAL NOT NULL,
    UNIQUE (channel, event_id)
);
CREATE INDEX outbox_due ON outbox (state, channel, due_at);
CREATE INDEX outbox_event ON outbox (event_id);

-- Every send attempt (one Message, possibly a digest) and the outbox rows it carried.
CREATE TABLE deliveries (
    id           INTEGER PRIMARY KEY,
    channel      TEXT NOT NULL,
    attempted_at REAL NOT NULL,
    ok           INTEGER NOT NULL,
    digest       INTEGER NOT NULL,
    event_count  INTEGER NOT NULL,
    detail       TEXT NOT NULL
);
CREATE INDEX deliveries_attempted ON deliveries (attempted_at);
CREATE TABLE delivery_items (
    delivery_id INTEGER NOT NULL,
    outbox_id   INTEGER NOT NULL,
    PRIMARY KEY (outbox_id, delivery_id)
) WITHOUT ROWID;

-- When each heartbeat channel last heard from Alertmanager.
CREATE TABLE heartbeats (
    channel TEXT PRIMARY KEY,
    last_at REAL NOT NULL
);

-- Small durable facts of the relay (the dead man's switch state).
CREATE TABLE state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Counters shared by every process (gunicorn workers and the relay), read by /metrics.
CREATE TABLE counters (
    name  TEXT NOT NULL,
    label TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (name, label)
) WITHOUT ROWID;
