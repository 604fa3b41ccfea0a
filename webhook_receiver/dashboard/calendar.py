"""Calendar periods in a time zone: today, each of the last days and months, as spans of Unix milliseconds.

Local midnight, the 1st and 1 January are converted through the zone's own rules, so a day with a daylight-saving
change is 23 or 25 hours long, as the clocks on the wall say.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

DAYS = 30     # days in the daily chart, today included
MONTHS = 12   # months in the monthly chart, this month included


@dataclass(frozen=True)
class Span:
    """[start_ms, end_ms) named by its local label: a day `2026-10-25` or a month `2026-10`."""

    label: str
    start_ms: int
    end_ms: int

    def iso(self, zone: ZoneInfo) -> dict:
        """Start and end as local RFC 3339 times."""
        return {"start": _local(self.start_ms, zone), "end": _local(self.end_ms, zone)}


@dataclass(frozen=True)
class Calendar:
    """The spans the savings figures are made of, for one moment in one zone.

    `today` runs from local midnight to now; `days` are the DAYS - 1 whole days before it, oldest first;
    `month_before_today` runs from the 1st to today's midnight (empty on the 1st); `months` are the MONTHS - 1
    whole months before this one, oldest first.
    """

    now_ms: int
    today: Span
    days: tuple[Span, ...]
    month_before_today: Span
    months: tuple[Span, ...]
    year: int
    year_start_ms: int


def midnight_ms(day: dt.date, zone: ZoneInfo) -> int:
    """Unix milliseconds of the first moment of `day` in `zone` (a midnight the clocks skip: the moment they jump)."""
    return round(dt.datetime.combine(day, dt.time(0), tzinfo=zone).timestamp() * 1000)


def calendar_at(now: float, zone: ZoneInfo) -> Calendar:
    """The calendar spans for Unix time `now` in `zone`."""
    now_ms = round(now * 1000)
    local_today = dt.datetime.fromtimestamp(now_ms / 1000, zone).date()
    today = Span(local_today.isoformat(), midnight_ms(local_today, zone), now_ms)
    days = tuple(Span(day.isoformat(), midnight_ms(day, zone), midnight_ms(day + dt.timedelta(days=1), zone))
                 for day in (local_today - dt.timedelta(days=back) for back in range(DAYS - 1, 0, -1)))
    first = local_today.replace(day=1)
    month_before_today = Span(first.strftime("%Y-%m"), midnight_ms(first, zone), today.start_ms)
    months = []
    start = first
    for _ in range(MONTHS - 1):
        previous = (start - dt.timedelta(days=1)).replace(day=1)
        months.append(Span(previous.strftime("%Y-%m"), midnight_ms(previous, zone), midnight_ms(start, zone)))
        start = previous
    return Calendar(now_ms, today, days, month_before_today, tuple(reversed(months)), local_today.year,
                    midnight_ms(first.replace(month=1), zone))


def _local(ms: int, zone: ZoneInfo) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, zone).isoformat(timespec="seconds")
