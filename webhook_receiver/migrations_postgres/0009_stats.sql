-- The alerting analytics (GET /api/v1/stats, store/postgres_stats.py). What they read of each state change becomes
-- a column of its own, the same four as the SQLite store's 0009: stored here, computed once as the row is written
-- (the conversion costs ~1 us, per row and per request when computed by each request: 30 days of a busy fleet are
-- 80,000 rows), virtual on SQLite. Adding them rewrites the table once: about 10 s per million events, while
-- `serve` or `init-db` first runs, receivers waiting (migrate-db copies into a table that has them: they are
-- computed, never copied).
-- The Alertmanager times as Unix milliseconds, the fraction rounded to the millisecond as SQLite's julianday()
-- keeps it: floor((seconds + fraction) * 1000 + 0.5), in double precision. make_timestamp(), not a cast of the
-- text: a generated column's expression must be immutable, and text -> timestamp depends on DateStyle.
-- Labels as PostgreSQL's json reads them: stored JSON is escaped to ASCII, and json refuses the escape of U+0000
-- and a lone UTF-16 surrogate's (a row stored before ingest refused them): each is read as U+FFFD, as the history
-- shows it. The regular expression only runs on the rare labels holding a surrogate's escape at all.
CREATE FUNCTION dumont_labels_json(labels text) RETURNS json LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (CASE WHEN strpos(lower(labels), '\ud') = 0 THEN replace(labels, '\u0000', '\ufffd')
            ELSE regexp_replace(replace(labels, '\u0000', '\ufffd'),
                                '\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})'
                                '|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}',
                                '\ufffd', 'g') END)::json
$$;

ALTER TABLE events
    ADD COLUMN starts_at_ms BIGINT GENERATED ALWAYS AS (
        date_part('epoch', make_timestamp(substr(starts_at, 1, 4)::int, substr(starts_at, 6, 2)::int,
                                          substr(starts_at, 9, 2)::int, substr(starts_at, 12, 2)::int,
                                          substr(starts_at, 15, 2)::int, 0))::bigint * 1000
        + floor((substr(starts_at, 18, 2)::int + substr(starts_at, 21, 9)::int / 1e9::float8) * 1000 + 0.5)::bigint
    ) STORED,
    ADD COLUMN ends_at_ms BIGINT GENERATED ALWAYS AS (
        date_part('epoch', make_timestamp(substr(ends_at, 1, 4)::int, substr(ends_at, 6, 2)::int,
                                          substr(ends_at, 9, 2)::int, substr(ends_at, 12, 2)::int,
                                          substr(ends_at, 15, 2)::int, 0))::bigint * 1000
        + floor((substr(ends_at, 18, 2)::int + substr(ends_at, 21, 9)::int / 1e9::float8) * 1000 + 0.5)::bigint
    ) STORED,
    -- The machine the alert is about (rules_src/alerts.yaml's machine_id label; NULL for a fleet-wide alert), and
    -- whether it is a fire drill's (webhook_receiver.payload.DRILL_LABEL).
    ADD COLUMN machine_id TEXT GENERATED ALWAYS AS (dumont_labels_json(labels) ->> 'machine_id') STORED,
    ADD COLUMN drill BOOLEAN GENERATED ALWAYS AS ((dumont_labels_json(labels) ->> 'dumont_drill') IS NOT NULL) STORED;

-- The fire drills' state changes (a few among thousands), as on SQLite, where the analytics need it to leave
-- drills out without reading every label; PostgreSQL's statements read the stored column instead.
CREATE INDEX events_drill ON events (id) WHERE drill;
-- A window's suppressed firings by id: 0008's events_suppressed lists them all, in no order a range can use.
CREATE INDEX events_suppressed_ids ON events (id) WHERE suppressed;
