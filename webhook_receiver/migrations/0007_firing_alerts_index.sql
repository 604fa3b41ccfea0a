-- /api/v1/alerts in pages, newest startsAt first (SQLiteStore.active_alerts_page): the firing alerts in that
-- order, so a page reads `limit` entries of this index, not every alert. Written by apply_intake only, in batches.
CREATE INDEX alerts_firing ON alerts (starts_at, event_id) WHERE status = 'firing';
