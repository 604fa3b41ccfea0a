"""The alerting analytics on SQLite: indexed reads of one snapshot, the figures computed in Python.

For a 30-day window of a busy fleet (~80,000 state changes, ~160,000 messages):
- episodes: the window's resolutions, each with its episode's start and end (0009's columns; a re-fire's start is
  its firing's time, one index lookup), the alerts firing now (their open episodes), the window's suppressed
  firings, and each alert's name and machine read once from one of its events; stats_episodes.py computes the
  figures;
- channels: the window's messages counted per channel, and the delivered firings' times to delivery, from the
  outbox_stats covering index (0009) joined to their events: no outbox row is read.
Ids follow arrival, so a window's rows are an id range, found by bisection: events has no index on the time
received (one more b-tree for every webhook to write). The two halves run side by side (store/sidecar.py), each on
its thread's connection in one snapshot. The channels' half returns a few rows (its times as one text per channel),
so its thread waits inside SQLite without the GIL: when it fetched its 77,000 times as rows, the two threads
handed the GIL to each other for every row and took longer together than one after the other (measured).
"""
from __future__ import annotations

import json
import re
import sqlite3
from collections import defaultdict

from webhook_receiver.payload import format_epoch
from webhook_receiver.store.sidecar import Sidecar
from webhook_receiver.store.stats_episodes import by_alert, episode_figures
from webhook_receiver.store.stats_facts import ChannelFigures, StatsFacts, StatsQuery, first_id_at, nearest_rank

_CLASSIC_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")  # safe to quote into a JSON path
# A request's pages are read through a memory map: through the 2 MB page cache (a pread per 1 KiB page) the same
# scan of 80,000 events took three times as long (50 ms against 17). SQLite maps at most its compile-time limit of
# the file (2 GB in most builds); pages past it are read as before.
_MMAP_BYTES = 1 << 40


def _received_ms(column: str) -> str:
    """SQL: a Unix seconds column as whole milliseconds, rounded as stats_facts.to_ms rounds."""
    return f"CAST({column} * 1000 + 0.5 AS INTEGER)"


def _start(alias: str) -> str:
    """SQL: the start of the episode whose firing is the row `alias` (a re-fire: when it was stored)."""
    return f"CASE WHEN {alias}.episode = 0 THEN {alias}.starts_at_ms ELSE {_received_ms(f'{alias}.received_at')} END"


# The drills' events from id :first (below :end when given), from the events_drill partial index (0009): a drill is
# left out without reading the labels of the events around it.
_DRILLS = "SELECT d.id FROM events d INDEXED BY events_drill WHERE d.drill AND d.id >= :first{below}"
# Every resolution from id :first of an episode that may have started before :until_text: (fingerprint, start,
# episode, id, end), as stats_episodes.Episode. Whose alert is kept is read once per alert (_ALERTS).
_RESOLVED = f"""
SELECT r.fingerprint,
       CASE WHEN r.episode = 0 THEN r.starts_at_ms
            ELSE (SELECT {_received_ms('f.received_at')} FROM events f WHERE f.fingerprint = r.fingerprint
                   AND f.starts_at = r.starts_at AND f.episode = r.episode AND f.status = 'firing') END,
       r.episode, r.id, coalesce(r.ends_at_ms, {_received_ms('r.received_at')})
  FROM events r WHERE r.id >= :first AND r.status = 'resolved' AND r.starts_at < :until_text
"""
_OPEN = f"""
SELECT f.fingerprint, {_start('f')}, f.episode, f.id, NULL, f.suppressed
  FROM alerts a JOIN events f ON f.id = a.event_id WHERE a.status = 'firing'
"""
# Each alert's name and machine, and whether the figures cover it (no drill, every filter matched), from one of its
# events (:ids, a JSON array): the labels of 10,000 alerts rather than of 40,000 episodes.
_ALERTS = """
SELECT e.fingerprint, e.alertname, e.machine_id, NOT e.drill {filters}
  FROM events e WHERE e.id IN (SELECT value FROM json_each(:ids))
"""
_SUPPRESSED = (f"SELECT f.fingerprint, {_start('f')} FROM events f"
               " WHERE f.suppressed = 1 AND f.id >= :first AND f.status = 'firing'")
_WINDOW_DRILLS = _DRILLS.format(below=" AND d.id < :end")
# Every channel the outbox has ever had, a few lookups of the outbox_channels index (0009): a loose index scan.
_CHANNEL_NAMES = """
WITH RECURSIVE channels(name) AS (
    SELECT (SELECT min(channel) FROM outbox INDEXED BY outbox_channels)
    UNION ALL
    SELECT (SELECT min(channel) FROM outbox INDEXED BY outbox_channels WHERE channel > channels.name)
      FROM channels WHERE channels.name IS NOT NULL)
SELECT name FROM channels WHERE name IS NOT NULL
"""
# One channel's messages of the window's events, a range of the outbox_channels covering index (no sorter, no
# outbox row read): all of them, or only the kept events' ({kept}: with filters).
_COUNTS = """
SELECT count(*), sum(o.state = 'delivered'), sum(o.state = 'failed'), sum(o.state IN ('pending', 'sending')),
       sum(o.attempts > 1)
  FROM outbox o INDEXED BY outbox_channels WHERE o.channel = :channel AND o.event_id >= :first AND o.event_id < :end
  {kept}
"""
_KEPT_MESSAGES = ("AND o.event_id IN (SELECT e.id FROM events e"
                  " WHERE e.id >= :first AND e.id < :end AND NOT e.drill AND {match})")
# Without filters the drills' few messages are taken off the counts afterwards: leaving them out row by row cost a
# lookup for each of the window's 160,000 messages (+35 ms).
_DRILL_MESSAGES = f"SELECT o.channel, o.state, o.attempts FROM outbox o WHERE o.event_id IN ({_WINDOW_DRILLS})"
# Per channel (:channel_0, :channel_1, ...), the times to delivery of its delivered firings, as one text each, in
# one pass over the window's firings and the outbox_stats covering index (no sorter); the rows stay inside SQLite,
# so this half runs beside the other without handing Python's GIL over 77,000 times.
_LATENCIES = f"""
SELECT {{texts}}
  FROM events e JOIN outbox o INDEXED BY outbox_stats ON o.event_id = e.id
 WHERE e.id >= :first AND e.id < :end AND e.status = 'firing' AND o.state = 'delivered'
   AND e.id NOT IN ({_WINDOW_DRILLS}) {{filters_e}}
"""
_LATENCY = (f"group_concat(CASE WHEN o.channel = :channel_{{number}}"
            f" THEN {_received_ms('o.finished_at')} - {_start('e')} END)")


def _filters(query: StatsQuery, alias: str) -> tuple[str, dict]:
    """SQL true for the rows `alias` that match every filter (alert name, labels), and its params."""
    conditions, params = [], {}
    if query.alertname is not None:
        conditions.append(f"{alias}.alertname = :alertname")
        params["alertname"] = query.alertname
    for number, (name, value) in enumerate(query.labels):
        params.update({f"label_{number}": name, f"value_{number}": value})
        if _CLASSIC_NAME.match(name):  # a JSON path can hold it; SQLite cannot escape in one
            conditions.append(f"json_extract({alias}.labels, '$.\"{name}\"') = :value_{number}")
        else:  # any other UTF-8 name (Alertmanager 0.27+): a bound value, never quoted into SQL
            conditions.append(f"EXISTS (SELECT 1 FROM json_each({alias}.labels) l"
                              f" WHERE l.key = :label_{number} AND l.value = :value_{number})")
    return (f"coalesce({' AND '.join(conditions)}, 0)" if conditions else ""), params


def _and(condition: str) -> str:
    return f"AND {condition}" if condition else ""


class StatsQueries:
    """Mixin for SQLiteStore: GET /api/v1/stats's figures (store/stats_facts.py)."""

    def stats(self, query: StatsQuery) -> StatsFacts:
        """The figures of `query`'s window: its episodes and its messages, each half from one snapshot."""
        self._apply_before_read()  # the alerts' newest state (open episodes) and the outbox, as every read
        sidecar = self.__dict__.setdefault("_stats_sidecar", Sidecar())
        channels, (total, names, machines, days) = sidecar.run(
            lambda: self._snapshot(_channels, query), lambda: self._snapshot(_episodes, query))
        return StatsFacts(total, names, machines, days, channels)

    def _snapshot(self, read, query: StatsQuery):
        """`read(conn, query)` in one read transaction of this thread's connection, its pages memory-mapped."""
        with self._read() as conn:
            conn.execute(f"PRAGMA mmap_size = {_MMAP_BYTES}")
            conn.execute("BEGIN")
            try:
                return read(conn, query)
            finally:
                conn.execute("ROLLBACK")  # it only read
                conn.execute("PRAGMA mmap_size = 0")  # the connection serves the thread's other reads too


def _episodes(conn: sqlite3.Connection, query: StatsQuery):
    """The episode figures of `query` (stats_episodes.episode_figures) read on `conn`."""
    params = {"first": _first_id(conn, query.scan_from), "until_text": format_epoch(query.until + 1)}
    episodes = conn.execute(_RESOLVED, params).fetchall()
    suppressed = defaultdict(set)
    for *episode, is_suppressed in conn.execute(_OPEN):
        episodes.append(tuple(episode))
        if is_suppressed:
            suppressed[episode[0]].add(episode[1])
    for fingerprint, start in conn.execute(_SUPPRESSED, params):
        suppressed[fingerprint].add(start)
    grouped = by_alert(episodes)
    match, filter_params = _filters(query, "e")
    one_event_each = json.dumps([rows[0][3] for rows in grouped.values()])
    alerts = {fingerprint: (name, machine)
              for fingerprint, name, machine, kept in conn.execute(
                  _ALERTS.format(filters=_and(match)), {**filter_params, "ids": one_event_each})
              if kept}
    return episode_figures(grouped, suppressed, alerts, query)


def _channels(conn: sqlite3.Connection, query: StatsQuery) -> list[ChannelFigures]:
    """Per channel, the counts of the window's messages and the nearest-rank times to delivery of its firings."""
    match, params = _filters(query, "e")
    params.update(first=_first_id(conn, query.since), end=_first_id(conn, query.until))
    names = [name for name, in conn.execute(_CHANNEL_NAMES)]
    if not names:
        return []
    left_out = defaultdict(lambda: [0, 0, 0, 0, 0])
    if not match:
        for channel, state, attempts in conn.execute(_DRILL_MESSAGES, params):
            for position, counted in enumerate((True, state == "delivered", state == "failed",
                                                state in ("pending", "sending"), attempts > 1)):
                left_out[channel][position] += counted
    texts = ", ".join(_LATENCY.format(number=number) for number in range(len(names)))
    joined = conn.execute(_LATENCIES.format(texts=texts, filters_e=_and(match)),
                          {**params, **{f"channel_{number}": name for number, name in enumerate(names)}}).fetchone()
    kept = _KEPT_MESSAGES.format(match=match) if match else ""
    found = []
    for name, times in zip(names, joined):
        counts = conn.execute(_COUNTS.format(kept=kept), {**params, "channel": name}).fetchone()
        total, delivered, failed, pending, retried = ((count or 0) - drill  # sum() of no row is NULL
                                                      for count, drill in zip(counts, left_out[name]))
        if total:
            ordered = sorted(map(int, times.split(","))) if times else []
            found.append(ChannelFigures(name, delivered, failed, pending, retried, len(ordered),
                                        nearest_rank(ordered, 0.5), nearest_rank(ordered, 0.95)))
    return found


def _first_id(conn: sqlite3.Connection, at: float) -> int:
    """The id of the first event stored at or after `at` (past the last one when none)."""
    bounds = (conn.execute("SELECT min(id) FROM events").fetchone()[0],  # two statements: SQLite reads min()
              conn.execute("SELECT max(id) FROM events").fetchone()[0])  # or max() from the b-tree, not both
    return first_id_at(at, bounds, lambda at_least: conn.execute(
        "SELECT id, received_at FROM events WHERE id >= ? ORDER BY id LIMIT 1", (at_least,)).fetchone())
