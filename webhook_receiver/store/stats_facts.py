"""What the alerting analytics (GET /api/v1/stats) ask the store, and the figures it answers, for both stores.

The definitions both stores implement (SQLite in Python, store/stats_episodes.py; PostgreSQL in SQL,
store/postgres_stats.py), in whole milliseconds (every time rounded to the millisecond: Alertmanager's as SQLite's
julianday() rounds them, migration 0009's starts_at_ms and ends_at_ms; the receiver's as to_ms does):

- An episode of an alert is a firing and its resolution (store/episodes.py). It starts at the alert's startsAt;
  a re-fire (a later episode of the same startsAt) starts when the receiver stored its firing, and one whose
  firing never reached the receiver is left out. It ends at its resolution's endsAt (the time the receiver stored
  the resolution when Alertmanager sent Go's zero time), never before it started. An episode with no resolution
  whose alert still fires (its newest state, the `alerts` table) is open.
- The window is [since, until). An episode counts in it when it started in it: episodes, time to resolve (of
  those resolved), flapping (it started at most `flap` after the end of the same alert's previous episode) and
  suppressed (its firing was stored from Alertmanager's API while silenced or inhibited, never relayed). Time
  firing is every episode's time inside [since, min(until, now)), an open one's up to now.
- Percentiles are nearest-rank: the value at rank ceil(p * n) of the n sorted values (PostgreSQL's
  percentile_disc).
- Messages per channel are the outbox rows of the state changes the receiver stored in the window (their event ids
  lie between the ids stored first at since and at until: ids follow arrival). Time to delivery is, for a delivered
  message about a firing, its delivery (finished_at) minus its episode's start.
- Drill alerts (label payload.DRILL_LABEL) are left out, and so is every alert that does not match the filters.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

MACHINE_LABEL = "machine_id"   # the label rules_src/alerts.yaml carries for the machine an alert is about
# Resolutions are found from the time the receiver stored them, which follows the endsAt it compares: this much
# earlier than the window (beyond `flap`) covers a receiver whose clock is behind Alertmanager's.
CLOCK_SLACK = 3600.0
DAY_MS = 86_400_000


@dataclass(frozen=True)
class StatsQuery:
    """One stats request: the window [since, until) and `now` in Unix seconds, `flap` in seconds, the filters."""

    since: float
    until: float
    now: float
    flap: float = 900.0
    alertname: str | None = None
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def scan_from(self) -> float:
        """The earliest time a resolution the figures need can have been stored (received_at)."""
        return self.since - self.flap - CLOCK_SLACK

    @property
    def bounds_ms(self) -> tuple[int, int, int, int]:
        """(since, until, the end of time firing: min(until, now), flap) in whole milliseconds."""
        since, until = to_ms(self.since), to_ms(self.until)
        return since, until, min(until, to_ms(self.now)), round(self.flap * 1000)


@dataclass(frozen=True)
class GroupFigures:
    """The figures of a group of episodes (all of them, one alert name, one machine)."""

    key: str | None
    episodes: int = 0           # started in the window
    firing_ms: int = 0          # time firing inside the window, every episode of the group
    resolved: int = 0           # of `episodes`, resolved
    resolve_ms_total: int = 0   # their times to resolve, added
    resolve_ms_p95: int | None = None
    flapping: int = 0
    suppressed: int = 0


@dataclass(frozen=True)
class ChannelFigures:
    """One channel's messages about the window's state changes."""

    channel: str
    delivered: int = 0
    failed: int = 0
    pending: int = 0            # not finished yet (pending, or being sent)
    retried: int = 0            # needed more than one attempt
    latency_count: int = 0      # delivered messages about a firing
    latency_ms_p50: int | None = None
    latency_ms_p95: int | None = None


@dataclass(frozen=True)
class StatsFacts:
    """Everything GET /api/v1/stats shows, before shaping: totals, per alert name, per machine, per day, per channel."""

    total: GroupFigures
    alertnames: Sequence[GroupFigures] = ()
    machines: Sequence[GroupFigures] = ()
    days: dict[int, int] = field(default_factory=dict)   # day number (Unix ms // DAY_MS): episodes started
    channels: Sequence[ChannelFigures] = ()


def to_ms(seconds: float) -> int:
    """Unix seconds as whole milliseconds, rounded as both stores round received_at (floor of x * 1000 + 0.5)."""
    return math.floor(seconds * 1000 + 0.5)


def nearest_rank(ordered: Sequence[int], fraction: float) -> int | None:
    """The value at rank ceil(fraction * n) of `ordered` (sorted), None when it is empty; as percentile_disc."""
    if not ordered:
        return None
    return ordered[max(math.ceil(fraction * len(ordered)), 1) - 1]


def first_id_at(at: float, bounds: tuple[int | None, int | None],
                probe: Callable[[int], tuple[int, float]]) -> int:
    """An id from which on the events are those stored at or after `at` (past the last when none), by bisection:
    ids follow arrival.

    `bounds`: the smallest and largest event ids (None, None when there is none); `probe(id)`: (id, received_at) of
    the first event whose id is at least `id` (pruning leaves gaps). About 20 probes for a million events.
    """
    low, high = bounds
    if low is None:
        return 0
    high += 1
    while low < high:
        middle = (low + high) // 2
        found, received_at = probe(middle)
        if received_at >= at:
            high = middle
        else:
            low = found + 1
    return low
