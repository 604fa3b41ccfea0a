-- The intake: what a webhook's transaction queues, moved into the outbox (and the alerts' newest state) by
-- SQLiteStore.apply_intake in batches. Each webhook then writes one small b-tree instead of seven (the
-- outbox with its three indexes, alerts with its two): in the storm benchmark that was a third of the cost
-- of storing a one-alert webhook. Rows live here for about one relay pass, so the table stays a few pages.
-- A message waiting here is already queued: its (event, channel) key keeps a redelivery from queueing it
-- again, here or, once moved, in the outbox.
CREATE TABLE intake (
    event_id        INTEGER NOT NULL,
    channel         TEXT NOT NULL,
    notification_id INTEGER,          -- NULL for the receiver's own (dead man's switch) messages
    queued_at       REAL NOT NULL,
    PRIMARY KEY (event_id, channel)
) WITHOUT ROWID;

-- Pruning walks events in id order, as it walks notifications (ids follow arrival), and the history's time
-- filters never used this index: one b-tree fewer for every webhook to write.
DROP INDEX events_received;
