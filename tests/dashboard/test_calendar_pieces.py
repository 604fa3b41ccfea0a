"""Calendar spans in a time zone, and how a span is cut into hourly tiles and raw edges (no Prometheus needed)."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from webhook_receiver.dashboard.calendar import DAYS, MONTHS, calendar_at
from webhook_receiver.dashboard.savings import TILE_MS, Raw, Tiles, cents, pieces
from webhook_receiver.dashboard.calendar import Span

BERLIN = ZoneInfo("Europe/Berlin")


def _hours(span) -> float:
    return (span.end_ms - span.start_ms) / 3_600_000


def test_berlin_days_follow_the_clock_changes():
    calendar = calendar_at(dt.datetime(2026, 11, 2, 12, 0, tzinfo=BERLIN).timestamp(), BERLIN)
    lengths = {span.label: _hours(span) for span in calendar.days}
    assert lengths["2026-10-25"] == 25 and lengths["2026-10-24"] == 24
    spring = calendar_at(dt.datetime(2026, 4, 1, 12, 0, tzinfo=BERLIN).timestamp(), BERLIN)
    assert {span.label: _hours(span) for span in spring.days}["2026-03-29"] == 23


def test_spans_tile_the_calendar_without_gaps():
    zone = ZoneInfo("America/Sao_Paulo")
    now = dt.datetime(2026, 3, 1, 0, 30, tzinfo=zone)
    calendar = calendar_at(now.timestamp(), zone)
    assert len(calendar.days) == DAYS - 1 and len(calendar.months) == MONTHS - 1
    assert calendar.days[-1].end_ms == calendar.today.start_ms
    assert all(a.end_ms == b.start_ms for a, b in zip(calendar.days, calendar.days[1:]))
    assert all(a.end_ms == b.start_ms for a, b in zip(calendar.months, calendar.months[1:]))
    assert calendar.months[-1].end_ms == calendar.month_before_today.start_ms == calendar.today.start_ms  # the 1st
    assert calendar.month_before_today.label == "2026-03" and calendar.months[0].label == "2025-04"
    assert calendar.today.label == "2026-03-01" and _hours(calendar.today) == 0.5
    assert calendar.year_start_ms == round(dt.datetime(2026, 1, 1, tzinfo=zone).timestamp() * 1000)


@pytest.mark.parametrize("offset_minutes", [0, 25, 59])
@pytest.mark.parametrize("start_minutes, length_minutes", [(0, 24 * 60), (30, 25 * 60), (5, 23 * 60), (0, 90),
                                                             (10, 30), (0, 31 * 24 * 60)])
def test_pieces_cover_the_span_exactly_with_raw_edges_under_an_hour(offset_minutes, start_minutes, length_minutes):
    start = 1_800_000_000_000 - 1_800_000_000_000 % TILE_MS + start_minutes * 60_000
    span = Span("x", start, start + length_minutes * 60_000)
    cut = pieces(span, offset_minutes * 60_000)
    covered, edge = span.start_ms, []
    for piece in cut:
        if isinstance(piece, Raw):
            assert piece.start_ms == covered
            covered = piece.end_ms
            edge.append(piece.end_ms - piece.start_ms)
        else:
            assert piece.first_ms - TILE_MS == covered
            assert (piece.first_ms - offset_minutes * 60_000) % TILE_MS == 0
            covered = piece.last_ms
    assert covered == span.end_ms
    if any(isinstance(piece, Tiles) for piece in cut):
        assert all(length < TILE_MS for length in edge)
    else:
        assert span.end_ms - span.start_ms < 2 * TILE_MS


def test_cents_round_half_up_from_the_shortest_decimal():
    assert cents(2.675) == 2.68 and cents(0.1 + 0.2) == 0.3 and cents(1.004999) == 1.0
