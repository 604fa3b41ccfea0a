"""The stats' episode figures computed in Python from the episodes a store read (the SQLite store's way).

Definitions: store/stats_facts.py; store/postgres_stats.py computes the same in SQL.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Mapping

from webhook_receiver.store.stats_facts import DAY_MS, GroupFigures, StatsQuery, nearest_rank

# (fingerprint, start ms, episode number, row id, end ms or None while open): a tuple that sorts an alert's episodes
# by start; the row id (the resolution's, or the open episode's firing's) only orders two that start in the same
# millisecond, and no two rows have the same.
Episode = tuple[str, "int | None", int, int, "int | None"]


class _Group:
    """Running figures of one group."""

    __slots__ = ("episodes", "firing_ms", "resolve_ms", "flapping", "suppressed")

    def __init__(self):
        self.episodes = self.firing_ms = self.flapping = self.suppressed = 0
        self.resolve_ms: list[int] = []

    def add(self, episodes: int, firing_ms: int, resolve_ms: list[int], flapping: int, suppressed: int) -> None:
        self.episodes += episodes
        self.firing_ms += firing_ms
        self.resolve_ms += resolve_ms
        self.flapping += flapping
        self.suppressed += suppressed

    def figures(self, key: str | None) -> GroupFigures:
        self.resolve_ms.sort()
        return GroupFigures(key, self.episodes, self.firing_ms, len(self.resolve_ms), sum(self.resolve_ms),
                            nearest_rank(self.resolve_ms, 0.95), self.flapping, self.suppressed)


def by_alert(episodes: Iterable[Episode]) -> dict[str, list[Episode]]:
    """`episodes` grouped per alert (fingerprint), in the order read; an episode whose start is None (a re-fire whose
    firing never reached the receiver) is left out."""
    grouped: dict[str, list[Episode]] = {}
    for episode in episodes:
        if episode[1] is not None:
            grouped.setdefault(episode[0], []).append(episode)
    return grouped


def episode_figures(grouped: Mapping[str, list[Episode]], suppressed: Mapping[str, set[int]],
                    alerts: Mapping[str, tuple[str, str | None]], query: StatsQuery
                    ) -> tuple[GroupFigures, list[GroupFigures], list[GroupFigures], dict[int, int]]:
    """Totals, per alert name, per machine and episodes per day of the episodes (`grouped` by alert) of `alerts`.

    `alerts`: fingerprint -> (alert name, machine or None) of the alerts the figures cover (not a drill, every
    filter matched); `suppressed`: per alert, the starts (ms) of its episodes whose firing is suppressed.
    """
    since, until, horizon, flap = query.bounds_ms
    total, names, machines = _Group(), defaultdict(_Group), defaultdict(_Group)
    days: dict[int, int] = defaultdict(int)
    # One tight loop per alert, then its sums go to its groups: 40,000 episodes of 10,000 alerts in ~70 ms.
    for fingerprint, (name, machine) in alerts.items():
        rows = grouped.get(fingerprint)
        if not rows:
            continue
        rows.sort()
        starts_suppressed = suppressed.get(fingerprint, ())
        count = firing = flapping = suppressed_count = 0
        resolve: list[int] = []
        previous_end = None
        for _, start, _, _, end in rows:
            if end is None:
                stop = horizon
            else:
                if end < start:
                    end = start
                stop = end if end < horizon else horizon
            stop -= start if start > since else since
            if stop > 0:
                firing += stop
            if since <= start < until:
                count += 1
                if previous_end is not None and start - previous_end <= flap:
                    flapping += 1
                if start in starts_suppressed:
                    suppressed_count += 1
                if end is not None:
                    resolve.append(end - start)
                days[start // DAY_MS] += 1
            previous_end = end
        for group in (total, names[name], machines[machine]) if machine is not None else (total, names[name]):
            group.add(count, firing, resolve, flapping, suppressed_count)
    return (total.figures(None), [group.figures(key) for key, group in names.items()],
            [group.figures(key) for key, group in machines.items()], dict(days))
