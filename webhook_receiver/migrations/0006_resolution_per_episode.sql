-- A resolution closes the open episode of its alert's startsAt whatever its endsAt (README: identity of a state
-- change), so two episodes can end at the same endsAt: the HA peer's late copy of a firing, then its copy of the
-- resolution. Resolutions become unique per episode, as firings are, instead of per endsAt (which also let a
-- resolution with Go's zero endsAt, stored as NULL, be stored again on every redelivery).
-- A resolution's episode used to be the count of resolutions stored before it, so once pruning had removed an
-- older one, two could share an episode: each later one of those moves past every episode of its startsAt.
CREATE TEMP TABLE renumbered AS
    SELECT r.id, (SELECT max(m.episode) FROM events m WHERE m.fingerprint = r.fingerprint
                                                        AND m.starts_at = r.starts_at)
                 + row_number() OVER (PARTITION BY r.fingerprint, r.starts_at ORDER BY r.id) AS episode
    FROM events r
    WHERE r.status = 'resolved'
      AND EXISTS (SELECT 1 FROM events o WHERE o.status = 'resolved' AND o.fingerprint = r.fingerprint
                                           AND o.starts_at = r.starts_at AND o.episode = r.episode AND o.id < r.id);
UPDATE events SET episode = (SELECT n.episode FROM temp.renumbered n WHERE n.id = events.id)
    WHERE id IN (SELECT id FROM temp.renumbered);
UPDATE alerts SET episode = (SELECT n.episode FROM temp.renumbered n WHERE n.id = alerts.event_id)
    WHERE event_id IN (SELECT id FROM temp.renumbered);
DROP TABLE temp.renumbered;
DROP INDEX events_resolved;
CREATE UNIQUE INDEX events_resolved ON events (fingerprint, starts_at, episode) WHERE status = 'resolved';
