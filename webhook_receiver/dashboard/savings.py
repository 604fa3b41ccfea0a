"""Savings today, this month and this year, per day and per month, computed by Prometheus in one query.

Whole hours come from the `category:dumont_savings_usd:increase1h` tiles (one sample per hour holding what
that hour saved: rules_src/recording.yaml, group savings_hourly), added up with sum_over_time; the part-hours at
a period's edges, where the tiles' hours do not line up with local midnight, and today (at most 25 hours) come
from the raw counter with increase(), which counts an exporter's restart as a reset rather than a loss. A year
reads ~8,760 tile samples per category plus at most two raw hours per period, where increase[365d] read every
raw sample of the year.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from webhook_receiver.dashboard.calendar import Calendar, Span
from webhook_receiver.dashboard.sources import Prometheus, SourceError

COUNTER = "dumont_savings_total_usd_total"
TILE_RULE = "category:dumont_savings_usd:increase1h"
TILE_MS = 3600 * 1000   # the tile group's interval (rules_src/recording.yaml, savings_hourly)
_CENT = Decimal("0.01")
_COUNT = "counted"  # the label that marks a piece's count of tiles, beside its sums


@dataclass(frozen=True)
class Raw:
    """increase() of the counter over [start_ms, end_ms]."""

    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class Tiles:
    """The tiles stamped first_ms .. last_ms (each covers the hour before its stamp)."""

    first_ms: int
    last_ms: int

    @property
    def expected(self) -> int:
        """How many tiles Prometheus should have recorded in this stretch."""
        return (self.last_ms - self.first_ms) // TILE_MS + 1


def pieces(span: Span, offset_ms: int) -> list[Raw | Tiles]:
    """`span` cut into whole tiles and raw edges, the tiles stamped at `offset_ms` past each hour."""
    start, end = span.start_ms, span.end_ms
    if end <= start:
        return []
    first = _slot_at_or_after(start + TILE_MS, offset_ms)   # the first tile whose hour starts within the span
    last = _slot_at_or_after(end - TILE_MS + 1, offset_ms)  # the last tile stamped at or before the end
    if first > last:
        return [Raw(start, end)]
    out: list[Raw | Tiles] = []
    if first - TILE_MS > start:
        out.append(Raw(start, first - TILE_MS))
    out.append(Tiles(first, last))
    if end > last:
        out.append(Raw(last, end))
    return out


def _slot_at_or_after(ms: int, offset_ms: int) -> int:
    return ms + (offset_ms - ms) % TILE_MS


def _seconds(ms: int) -> str:
    return f"{ms / 1000:.3f}"


def _piece_exprs(key: str, piece: Raw | Tiles) -> list[str]:
    if isinstance(piece, Raw):
        expr = f"sum by (category) (increase({COUNTER}[{piece.end_ms - piece.start_ms}ms] @ {_seconds(piece.end_ms)}))"
        return [f'label_replace({expr}, "piece", "{key}", "", "")']
    # Half an hour past the first stamp: the range holds exactly the tiles first..last, whatever the jitter.
    selector = f"{TILE_RULE}[{piece.last_ms - piece.first_ms + TILE_MS // 2}ms] @ {_seconds(piece.last_ms)}"
    counted = f'label_replace(max(count_over_time({selector})), "piece", "{key}", "", "")'
    return [f'label_replace(sum by (category) (sum_over_time({selector})), "piece", "{key}", "", "")',
            f'label_replace({counted}, "{_COUNT}", "tiles", "", "")']


@dataclass
class Figure:
    """Money saved in one period: per category, and how many hourly tiles were missing from it."""

    by_category: dict[str, float] = field(default_factory=dict)
    hours_missing: int = 0

    def add(self, other: "Figure") -> None:
        """Add `other`'s amounts and missing hours to this one."""
        for category, amount in other.by_category.items():
            self.by_category[category] = self.by_category.get(category, 0.0) + amount
        self.hours_missing += other.hours_missing

    def as_json(self, categories: list[str]) -> dict:
        """Rounded to the cent, every category named (0 where nothing was saved)."""
        by_category = {c: cents(self.by_category.get(c, 0.0)) for c in categories}
        return {"total": cents(sum(self.by_category.values())), "by_category": by_category,
                "hours_missing": self.hours_missing}


def cents(amount: float) -> float:
    """`amount` rounded half up to the cent (from its shortest decimal form, so 2.675 is 2.68)."""
    return float(Decimal(repr(amount)).quantize(_CENT, rounding=ROUND_HALF_UP))


def tile_offset(prometheus: Prometheus, at_ms: int) -> int:
    """Where in the hour Prometheus stamps the tiles (its rule group's fixed offset), from the last day's tiles."""
    data = prometheus.query(f"{TILE_RULE}[1d]", at_ms / 1000)
    stamps = [point[0] for series in data.get("result", []) for point in series.get("values", [])]
    if not stamps:
        return 0  # none recorded yet: any grid cuts the same way, and the raw edges cover the last hour
    return round(float(stamps[-1]) * 1000) % TILE_MS


# Figures of periods that ended over SETTLED_MS ago, by (Prometheus, start, end, tile offset): a past day or month
# does not change, so a refresh every 15 s asks Prometheus only for today and this month. Kept KEEP_SECONDS, so
# tiles backfilled later show within minutes.
SETTLED_MS = 2 * TILE_MS
KEEP_SECONDS = 600.0
_MAX_KEPT = 4096
_settled: dict[tuple, tuple[float, Figure]] = {}


def figures(prometheus: Prometheus, calendar: Calendar) -> dict[str, Figure]:
    """One Figure per span of `calendar` (keyed by span label, and `today`), from one query."""
    offset = tile_offset(prometheus, calendar.now_ms)
    spans = {"today": calendar.today, "month_before_today": calendar.month_before_today,
             **{span.label: span for span in calendar.days + calendar.months}}
    result = {name: Figure() for name in spans}
    now = time.monotonic()
    keys, exprs, expected, asked = {}, [], {}, []
    for name, span in spans.items():
        settled = (prometheus.url, span.start_ms, span.end_ms, offset)
        kept = _settled.get(settled) if name != "today" else None
        if kept is not None and kept[0] > now:
            result[name].add(kept[1])
            continue
        if name == "today":  # read raw: it changes every minute, and at most 25 hours of samples are cheap
            cut: list[Raw | Tiles] = [Raw(span.start_ms, span.end_ms)] if span.end_ms > span.start_ms else []
        else:
            cut = pieces(span, offset)
            if span.end_ms <= calendar.now_ms - SETTLED_MS:
                asked.append((name, settled))
        for piece in cut:
            key = f"p{len(keys)}"
            keys[key] = name
            exprs += _piece_exprs(key, piece)
            if isinstance(piece, Tiles):
                expected[key] = piece.expected
    if exprs:
        _add_answer(prometheus, prometheus.vector(" or ".join(exprs), calendar.now_ms / 1000), keys, expected, result)
    if len(_settled) > _MAX_KEPT:
        _settled.clear()
    for name, settled in asked:
        _settled[settled] = (now + KEEP_SECONDS, result[name])
    return result


def _add_answer(prometheus: Prometheus, data, keys: dict, expected: dict, result: dict[str, Figure]) -> None:
    """Add each piece's amounts and tile count to the figure of the span it belongs to."""
    counted = {}
    for sample in data:
        key = sample.labels.get("piece")
        if key not in keys:
            raise SourceError(prometheus.service, prometheus.url, f"answered a series it was not asked for: {sample.labels}")
        if _COUNT in sample.labels:
            counted[key] = int(sample.value)
        else:
            figure = result[keys[key]]
            category = sample.labels.get("category", "")
            figure.by_category[category] = figure.by_category.get(category, 0.0) + sample.value
    for key, count in expected.items():
        result[keys[key]].hours_missing += max(0, count - counted.get(key, 0))


def savings_json(prometheus: Prometheus, calendar: Calendar, zone: ZoneInfo) -> dict:
    """The savings API's answer: today, month, year, the daily and monthly series, per category and in total."""
    by_span = figures(prometheus, calendar)
    categories = sorted({c for figure in by_span.values() for c in figure.by_category})
    month = Figure()
    month.add(by_span["month_before_today"])
    month.add(by_span["today"])
    year = Figure()
    year.add(month)
    for span in calendar.months:
        if span.label.startswith(f"{calendar.year}-"):
            year.add(by_span[span.label])
    daily = [{"label": span.label, **span.iso(zone), **by_span[span.label].as_json(categories)}
             for span in calendar.days]
    daily.append({"label": calendar.today.label, **calendar.today.iso(zone), **by_span["today"].as_json(categories)})
    this_month = Span(calendar.month_before_today.label, calendar.month_before_today.start_ms, calendar.now_ms)
    this_year = Span(str(calendar.year), calendar.year_start_ms, calendar.now_ms)
    monthly = [{"label": span.label, **span.iso(zone), **by_span[span.label].as_json(categories)}
               for span in calendar.months]
    monthly.append({"label": this_month.label, **this_month.iso(zone), **month.as_json(categories)})
    return {
        "categories": categories,
        "today": {"label": calendar.today.label, **calendar.today.iso(zone), **by_span["today"].as_json(categories)},
        "month": {"label": this_month.label, **this_month.iso(zone), **month.as_json(categories)},
        "year": {"label": this_year.label, **this_year.iso(zone), **year.as_json(categories)},
        "daily": daily,
        "monthly": monthly,
    }
