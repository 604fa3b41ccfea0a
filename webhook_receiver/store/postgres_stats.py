"""The alerting analytics on PostgreSQL: two statements, run side by side on two connections, compute every figure.

The same figures as the SQLite store's (store/stats_facts.py has the definitions; store/stats_episodes.py the
Python that SQLite uses), in SQL over the window's rows, found as an id range (ids follow arrival; the range is
bisected in a few index lookups) and read with 0009's stored columns (times in milliseconds, machine, drill), so
nothing but the figures crosses the wire. One statement computes the episodes' figures, the other the channels';
they need nothing of each other, so they run at once (store/sidecar.py), each on its own snapshot.
"""
from __future__ import annotations

import psycopg

from webhook_receiver.store.postgres_relay import text
from webhook_receiver.store.sidecar import Sidecar
from webhook_receiver.store.stats_facts import ChannelFigures, GroupFigures, StatsFacts, StatsQuery, first_id_at


def _received_ms(column: str) -> str:
    """SQL: a Unix seconds column as whole milliseconds, rounded as stats_facts.to_ms rounds."""
    return f"floor({column} * 1000 + 0.5)::bigint"


def _start(alias: str) -> str:
    """SQL: the start of the episode whose firing is the row `alias` (a re-fire: when it was stored)."""
    return f"CASE WHEN {alias}.episode = 0 THEN {alias}.starts_at_ms ELSE {_received_ms(f'{alias}.received_at')} END"


# JSON is stored escaped to ASCII; PostgreSQL's json refuses the escape of U+0000, read as U+FFFD (as history does).
_LABELS = r"replace({alias}.labels, '\u0000', '\ufffd')::json"
# Id ranges are read through the primary key: `status COLLATE "C"` (equal for equal text, as the column's own
# collation) keeps the planner from adding a bitmap of events_change for the status, half the table (+120 ms).
# One row per group: (kind, key, episodes, time firing, resolved, their times to resolve added, the p95 of those,
# flapping, suppressed). Episodes: the kept resolutions from id `first` (a re-fire's start is its firing's time,
# one index lookup) and the alerts firing now; suppressed: the suppressed firings among them.
_EPISODES = f"""
WITH episodes AS (
    SELECT id, fingerprint, episode, alertname, machine_id, start_ms, greatest(end_ms, start_ms) AS end_ms FROM (
        SELECT r.id, r.fingerprint, r.episode, r.alertname, r.machine_id,
               CASE WHEN r.episode = 0 THEN r.starts_at_ms
                    ELSE (SELECT {_received_ms('f.received_at')} FROM events f WHERE f.fingerprint = r.fingerprint
                           AND f.starts_at = r.starts_at AND f.episode = r.episode AND f.status = 'firing') END
                   AS start_ms,
               coalesce(r.ends_at_ms, {_received_ms('r.received_at')}) AS end_ms
          FROM events r WHERE r.id >= %(first)s AND r.status COLLATE "C" = 'resolved' AND {{kept_r}}) resolved
     WHERE start_ms IS NOT NULL
    UNION ALL
    SELECT f.id, f.fingerprint, f.episode, f.alertname, f.machine_id, {_start('f')}, NULL
      FROM alerts a JOIN events f ON f.id = a.event_id WHERE a.status = 'firing' AND {{kept_f}}
), suppressed AS (
    SELECT f.fingerprint, {_start('f')} AS start_ms FROM events f INNER JOIN (SELECT id FROM events
     WHERE suppressed AND id >= %(first)s) window_suppressed USING (id) WHERE f.status = 'firing'
    UNION
    SELECT f.fingerprint, {_start('f')} FROM alerts a JOIN events f ON f.id = a.event_id
     WHERE a.status = 'firing' AND f.suppressed
), shaped AS (
    SELECT ep.alertname, ep.machine_id, ep.start_ms, ep.end_ms,
           ep.start_ms >= %(since)s AND ep.start_ms < %(until)s AS counted,
           ep.start_ms - lag(ep.end_ms) OVER (PARTITION BY ep.fingerprint ORDER BY ep.start_ms, ep.episode, ep.id)
               <= %(flap)s AS flapping,
           s.fingerprint IS NOT NULL AS suppressed
      FROM episodes ep LEFT JOIN suppressed s ON s.fingerprint = ep.fingerprint AND s.start_ms = ep.start_ms
), figured AS (
    SELECT alertname, machine_id, counted, flapping, suppressed,
           greatest(least(coalesce(end_ms, %(horizon)s), %(horizon)s) - greatest(start_ms, %(since)s), 0)
               AS firing_ms,
           CASE WHEN counted THEN start_ms / 86400000 END AS day,
           CASE WHEN counted AND end_ms IS NOT NULL THEN end_ms - start_ms END AS resolve_ms
      FROM shaped
)
SELECT CASE WHEN grouping(alertname) = 0 THEN 'alertname' WHEN grouping(machine_id) = 0 THEN 'machine'
            WHEN grouping(day) = 0 THEN 'day' ELSE 'total' END,
       CASE WHEN grouping(alertname) = 0 THEN alertname WHEN grouping(machine_id) = 0 THEN machine_id
            ELSE day::text END,
       count(*) FILTER (WHERE counted), coalesce(sum(firing_ms), 0)::bigint, count(resolve_ms),
       coalesce(sum(resolve_ms), 0)::bigint, percentile_disc(0.95) WITHIN GROUP (ORDER BY resolve_ms),
       count(*) FILTER (WHERE counted AND flapping), count(*) FILTER (WHERE counted AND suppressed)
  FROM figured GROUP BY GROUPING SETS ((), (alertname), (machine_id), (day))
"""
# One row per channel: (channel, delivered, failed, pending, retried, delivered firings, the p50 and p95 of their
# times to delivery), of the kept events with ids in [window_first, window_end). The counts read the outbox alone
# (with filters, the kept events' ids: a hashed subplan); only the delivered firings are joined to their events.
_CHANNELS = f"""
WITH counted AS (
    SELECT o.channel, count(*) FILTER (WHERE o.state = 'delivered') AS delivered,
           count(*) FILTER (WHERE o.state = 'failed') AS failed,
           count(*) FILTER (WHERE o.state IN ('pending', 'sending')) AS pending,
           count(*) FILTER (WHERE o.attempts > 1) AS retried
      FROM outbox o
     WHERE o.event_id >= %(window_first)s AND o.event_id < %(window_end)s
       AND o.event_id {{kept_messages}} (SELECT e.id FROM events e
                                          WHERE e.id >= %(window_first)s AND e.id < %(window_end)s AND {{events}})
     GROUP BY o.channel
), timed AS (
    SELECT o.channel, count(*) AS n,
           percentile_disc(0.5) WITHIN GROUP (ORDER BY {_received_ms('o.finished_at')} - {_start('e')}) AS p50,
           percentile_disc(0.95) WITHIN GROUP (ORDER BY {_received_ms('o.finished_at')} - {_start('e')}) AS p95
      FROM events e JOIN outbox o ON o.event_id = e.id
     WHERE e.id >= %(window_first)s AND e.id < %(window_end)s AND e.status COLLATE "C" = 'firing'
       AND o.event_id >= %(window_first)s AND o.event_id < %(window_end)s AND o.state = 'delivered' AND {{kept_e}}
     GROUP BY o.channel
)
SELECT counted.channel, delivered, failed, pending, retried, coalesce(timed.n, 0), p50, p95
  FROM counted LEFT JOIN timed ON timed.channel = counted.channel
"""


def _kept(query: StatsQuery, alias: str) -> tuple[str, dict]:
    """SQL true for the rows `alias` of the alerts the figures cover (no drill, every filter matched), its params."""
    conditions, params = [f"NOT {alias}.drill"], {}
    if query.alertname is not None:
        conditions.append(f"{alias}.alertname = %(alertname)s")
        params["alertname"] = text(query.alertname)
    for number, (name, value) in enumerate(query.labels):  # any label name, always a bound value
        conditions.append(f"({_LABELS.format(alias=alias)} ->> %(label_{number})s) = %(value_{number})s")
        params.update({f"label_{number}": text(name), f"value_{number}": text(value)})
    return f"coalesce({' AND '.join(conditions)}, false)", params


class StatsQueries:
    """Mixin for PostgresStore: GET /api/v1/stats's figures (store/stats_facts.py)."""

    def stats(self, query: StatsQuery) -> StatsFacts:
        """The figures of `query`'s window: its episodes and its messages, each from one statement."""
        sidecar = self.__dict__.setdefault("_stats_sidecar", Sidecar())
        channels, (total, names, machines, days) = sidecar.run(
            lambda: self._statement(_channels, query), lambda: self._statement(_episodes, query))
        return StatsFacts(total, names, machines, days, channels)

    def _statement(self, read, query: StatsQuery):
        """`read(conn, query)` in one transaction of a pooled connection, with this read's planner settings."""
        with self._read() as conn, conn.transaction():
            # JIT compiling these statements took 2.4 s of 3.2; with work_mem's default (4 MB) their sorts spill to
            # disk. Both for this transaction only.
            conn.execute("SET LOCAL jit = off")
            conn.execute("SET LOCAL work_mem = '64MB'")
            return read(conn, query)


def _episodes(conn: psycopg.Connection, query: StatsQuery):
    """(total, per alert name, per machine, per day) of `query`'s episodes, read on `conn`."""
    total, names, machines, days = GroupFigures(None), [], [], {}
    for kind, key, *numbers in conn.execute(*_episodes_statement(conn, query)).fetchall():
        if kind == "total":
            total = GroupFigures(None, *numbers)
        elif kind == "alertname":
            names.append(GroupFigures(key, *numbers))
        elif kind == "machine":
            if key is not None:  # the fleet-wide alerts are in no machine's figures
                machines.append(GroupFigures(key, *numbers))
        elif key is not None:  # the day of the episodes that did not start in the window
            days[int(key)] = numbers[0]
    return total, names, machines, days


def _episodes_statement(conn: psycopg.Connection, query: StatsQuery) -> tuple[str, dict]:
    """_EPISODES for `query`, and its parameters."""
    since, until, horizon, flap = query.bounds_ms
    kept_r, params = _kept(query, "r")
    params.update(first=_first_id(conn, query.scan_from), since=since, until=until, horizon=horizon, flap=flap)
    return _EPISODES.format(kept_r=kept_r, kept_f=_kept(query, "f")[0]), params


def _channels(conn: psycopg.Connection, query: StatsQuery) -> list[ChannelFigures]:
    """Per channel, the counts of the window's messages and the nearest-rank times to delivery of its firings."""
    return [ChannelFigures(*row) for row in conn.execute(*_channels_statement(conn, query)).fetchall()]


def _channels_statement(conn: psycopg.Connection, query: StatsQuery) -> tuple[str, dict]:
    """_CHANNELS for `query`, and its parameters."""
    kept_e, params = _kept(query, "e")
    params.update(window_first=_first_id(conn, query.since), window_end=_first_id(conn, query.until))
    if query.alertname is None and not query.labels:  # only the drills' messages are left out: a few
        return _CHANNELS.format(kept_messages="NOT IN", events="e.drill", kept_e=kept_e), params
    return _CHANNELS.format(kept_messages="IN", events=kept_e, kept_e=kept_e), params


def _first_id(conn: psycopg.Connection, at: float) -> int:
    """The id of the first event stored at or after `at` (past the last one when none)."""
    bounds = conn.execute("SELECT min(id), max(id) FROM events").fetchone()
    return first_id_at(at, bounds, lambda at_least: conn.execute(
        "SELECT id, received_at FROM events WHERE id >= %s ORDER BY id LIMIT 1", (at_least,)).fetchone())
