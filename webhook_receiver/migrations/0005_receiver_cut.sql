-- What the receiver left out of a post larger than its max_body_bytes, where it keeps the first alerts that fit
-- and counts the rest: how many alerts (also counted in truncated_alerts, with Alertmanager's own), how large
-- the post was and the limit it passed. NULL for a post kept whole: nothing is written for the usual one.
ALTER TABLE notifications ADD COLUMN cut_alerts INTEGER;
ALTER TABLE notifications ADD COLUMN cut_body_bytes INTEGER;
ALTER TABLE notifications ADD COLUMN cut_max_body_bytes INTEGER;
