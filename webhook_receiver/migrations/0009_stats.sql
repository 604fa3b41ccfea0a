-- The alerting analytics (GET /api/v1/stats, store/sqlite_stats.py). What they read of each state change becomes
-- a column of its own, the same four on both stores (PostgreSQL's 0009): virtual here, computed when read
-- (ALTER TABLE cannot add a stored generated column to SQLite, and julianday() costs ~0.3 us), stored on
-- PostgreSQL, whose conversion costs ~1 us per row and per request. Nothing changes in the rows themselves.
-- The Alertmanager times as Unix milliseconds, the fraction rounded to the millisecond as julianday() keeps it:
-- floor((seconds + fraction) * 1000 + 0.5). NULL with the time.
ALTER TABLE events ADD COLUMN starts_at_ms INTEGER
    GENERATED ALWAYS AS (CAST(julianday(starts_at) * 86400000 - 210866760000000 + 0.5 AS INTEGER)) VIRTUAL;
ALTER TABLE events ADD COLUMN ends_at_ms INTEGER
    GENERATED ALWAYS AS (CAST(julianday(ends_at) * 86400000 - 210866760000000 + 0.5 AS INTEGER)) VIRTUAL;
-- The machine the alert is about (rules_src/alerts.yaml's machine_id label; NULL for a fleet-wide alert), and
-- whether it is a fire drill's (webhook_receiver.payload.DRILL_LABEL): analytics leave drills out. A row whose labels
-- are not JSON (written by hand) has neither, rather than failing every write and this migration.
ALTER TABLE events ADD COLUMN machine_id TEXT
    GENERATED ALWAYS AS (CASE WHEN json_valid(labels) THEN json_extract(labels, '$.machine_id') END) VIRTUAL;
ALTER TABLE events ADD COLUMN drill INTEGER
    GENERATED ALWAYS AS (CASE WHEN json_valid(labels) THEN json_extract(labels, '$.dumont_drill') IS NOT NULL ELSE 0 END) VIRTUAL;
-- The fire drills' state changes (a few among thousands), so a window's are found without reading every label.
CREATE INDEX events_drill ON events (id) WHERE drill;

-- Per channel, the counts of a window's messages and the times to delivery of its firings, read from these two
-- indexes alone. Without them each message would be read from the outbox table, a row lookup apiece (~160,000 for
-- 30 days of a busy fleet: most of a second). outbox_channels gives each channel's messages of a window as one range
-- (counted without a sort), outbox_stats each event's messages (the delivered firings' delivery times). Only the
-- relay writes the outbox (apply_intake, each attempt's outcome), never a webhook's transaction. Building both
-- takes about two seconds per million outbox rows, once, when `serve` or `init-db` first runs.
CREATE INDEX outbox_channels ON outbox (channel, event_id, state, attempts);
CREATE INDEX outbox_stats ON outbox (event_id, channel, state, finished_at);
