"""Prometheus's rule manager over the evaluations where a rule's PromQL had a value: pending, firing,
keep_firing_for, resolved (rules/alerting.go, AlertingRule.Eval, as of 2.42).

A series that appears is pending from that evaluation; it fires at the first evaluation at least `for` after;
an evaluation without it deletes it while pending (a gap resets `for`) and resolves it while firing, unless it
is back no later than `keep_firing_for` after the first evaluation that missed it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .fetch import Grid
from .plan import Rule


@dataclass(frozen=True)
class Interval:
    """One firing episode of one alert series: [start, end) in Unix seconds; end None when still firing."""

    labels: tuple[tuple[str, str], ...]
    start: float
    end: float | None

    def seconds(self, range_end: float) -> float:
        """How long it fired within the range."""
        return (range_end if self.end is None else self.end) - self.start


def _steps(seconds: float, step: float) -> int:
    return math.ceil(seconds / step - 1e-9)


def series_intervals(present: list[int], rule: Rule, grid: Grid) -> list[tuple[int, int | None]]:
    """Firing episodes of one series as (first firing index, resolving index or None), from where it is present."""
    hold, keep = _steps(rule.for_, grid.step), _steps(rule.keep_firing_for, grid.step)
    runs: list[tuple[int, int]] = []
    for index in sorted(set(present)):
        if runs and index == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], index)
        else:
            runs.append((index, index))
    out: list[tuple[int, int | None]] = []
    fired: int | None = None
    for number, (first, last) in enumerate(runs):
        if fired is None and first + hold <= last:
            fired = first + hold
        if fired is None:
            continue  # still pending when it vanished: deleted
        resolve_at = last + 1 + keep  # first evaluation past keep_firing_for without it
        following = runs[number + 1][0] if number + 1 < len(runs) else None
        # Back by the evaluation that would resolve it: still firing then (Prometheus resolves only an absent
        # series), so the same episode goes on.
        if following is not None and following <= resolve_at:
            continue
        out.append((fired, resolve_at if resolve_at < grid.count else None))
        fired = None
    return out


def replay(rules: tuple[Rule, ...], present: list[dict[tuple, list[int]]], grid: Grid) -> list[Interval]:
    """Every firing episode of an alert's rules, given each rule's series and the evaluations they had a value.

    Rules come severe tier first, as rendered: a lower tier's series yields while a severe one fires on the same
    `yields_on` labels, which Prometheus does by reading ALERTS in the same evaluation.
    """
    episodes: list[Interval] = []
    firing: dict[str, dict[tuple, list[tuple[int, int]]]] = {}  # severity -> yields key -> firing index spans
    on = next((r.yields_on for r in rules if r.yields_on), ())   # the labels a lower tier matches them on
    for rule, series in zip(rules, present):
        for key, indexes in series.items():
            labels = dict(key)
            if rule.yields_to:
                indexes = _yielded(indexes, rule, labels, firing, grid)
            for start, end in series_intervals(indexes, rule, grid):
                full = tuple(sorted({**labels, **dict(rule.labels), "alertname": rule.alert}.items()))
                episodes.append(Interval(full, grid.at(start), None if end is None else grid.at(end)))
                spans = firing.setdefault(rule.severity, {}).setdefault(tuple(labels.get(n, "") for n in on), [])
                spans.append((start, grid.count if end is None else end))
    return episodes


def _yielded(indexes: list[int], rule: Rule, labels: dict[str, str], firing, grid: Grid) -> list[int]:
    key = tuple(labels.get(name, "") for name in rule.yields_on)
    blocked = [span for severity in rule.yields_to for span in firing.get(severity, {}).get(key, [])]
    if not blocked:
        return indexes
    return [i for i in indexes if not any(start <= i < end for start, end in blocked)]
