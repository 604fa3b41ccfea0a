"""The backtest's figures per alert and variant, as a table for people and as JSON."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from .. import units
from .notify import Notification
from .replay import Interval


@dataclass
class Outcome:
    """What one variant of one alert would have done over the range."""

    alert: str
    variant: str
    episodes: list[Interval]
    sent: list[Notification]
    range_end: float
    has_data: bool = True
    inlined: list[str] = field(default_factory=list)

    def figures(self) -> dict:
        """Episodes, firing time (total and longest), distinct series, notifications (by receiver)."""
        durations = [e.seconds(self.range_end) for e in self.episodes]
        by_receiver: dict[str, int] = {}
        for n in self.sent:
            by_receiver[n.receiver] = by_receiver.get(n.receiver, 0) + 1
        return {"episodes": len(self.episodes), "firing_seconds": round(sum(durations), 3),
                "longest_seconds": round(max(durations, default=0.0), 3),
                "series": len({e.labels for e in self.episodes}),
                "notifications": len(self.sent), "notifications_by_receiver": dict(sorted(by_receiver.items())),
                "resolution_only_notifications": sum(n.resolved_only for n in self.sent)}

    def as_json(self) -> dict:
        """The figures plus every firing episode and what had to be inlined."""
        return {"variant": self.variant, "data": self.has_data, "inlined": self.inlined, **self.figures(),
                "intervals": [{"labels": dict(e.labels), "start": e.start, "end": e.end} for e in self.episodes]}


def report_json(outcomes: list[list[Outcome]], meta: dict) -> dict:
    """Every alert's variants, current first."""
    return {**meta, "alerts": [{"alert": group[0].alert, "variants": [o.as_json() for o in group]}
                               for group in outcomes]}


def _span(seconds: float) -> str:
    return units.format_duration(round(seconds)) if seconds else "0s"


def report_text(outcomes: list[list[Outcome]], meta: dict) -> str:
    """A table: one line per alert and variant, the current one first, then notes on what was inlined."""
    start, end = (dt.datetime.fromtimestamp(meta["range"][k], dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
                  for k in ("start", "end"))
    lines = [f"Backtest of {meta['env']} over {start} .. {end} (Prometheus {meta['prometheus']})", ""]
    header = ("ALERT", "VARIANT", "EPISODES", "FIRING", "LONGEST", "SERIES", "NOTIFICATIONS")
    rows = []
    notes = []
    for group in outcomes:
        for index, outcome in enumerate(group):
            f = outcome.figures()
            name = outcome.alert if index == 0 else ""
            if not outcome.has_data:
                rows.append((name, outcome.variant, "no data", "", "", "", ""))
                continue
            rows.append((name, outcome.variant, str(f["episodes"]), _span(f["firing_seconds"]),
                         _span(f["longest_seconds"]), str(f["series"]), str(f["notifications"])))
            if outcome.inlined and index == 0:
                notes.append(f"{outcome.alert}: no history of {', '.join(outcome.inlined)} at the range's start:"
                             " replayed with its expression inlined")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        lines.append("  ".join(cell.ljust(w) if i < 2 else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(row, widths))).rstrip())
    if notes:
        lines += [""] + notes
    return "\n".join(lines) + "\n"
