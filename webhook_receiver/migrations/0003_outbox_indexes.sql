-- Pruning without scans: notifications are found by the outbox rows that still refer to them, and events by
-- theirs. The outbox's uniqueness key leads with event_id, so it also serves lookups by event (what the
-- separate outbox_event index did), and a new index finds rows by notification. SQLite cannot change a table
-- constraint, so outbox is rebuilt with its rows (ids kept: delivery_items refer to them).
CREATE TABLE outbox_new (
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
    UNIQUE (event_id, channel)
);
INSERT INTO outbox_new (id, channel, event_id, notification_id, state, attempts, due_at, finished_at, detail,
                        created_at)
    SELECT id, channel, event_id, notification_id, state, attempts, due_at, finished_at, detail, created_at
    FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;
CREATE INDEX outbox_due ON outbox (state, channel, due_at);
CREATE INDEX outbox_notification ON outbox (notification_id);
