"""Presentation shared by every channel: severity order, colours, headlines and storm summaries."""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from .model import AlertEvent

# Worst first; anything else sorts after these
SEVERITIES = ("critical", "warning", "info")

RESOLVED_COLOUR = "#2EB67D"  # green
FIRING_COLOURS = {"critical": "#D00000", "warning": "#F2A900", "info": "#2F80ED"}
UNKNOWN_COLOUR = "#808080"

EXAMPLES = 5  # how many alerts a summary shows by name
GROUPS = 10  # how many alertname/severity lines a summary shows
LINE_CHARS = 150  # a summary line longer than this is clipped, visibly


def alertname(event: AlertEvent) -> str:
    """The alert's name, or a placeholder when Alertmanager sent none."""
    return event.labels.get("alertname", "(unnamed alert)")


def severity(event: AlertEvent) -> str:
    """The alert's severity label, lower-cased; "none" when missing."""
    return event.labels.get("severity", "none").lower()


def machine(event: AlertEvent) -> str:
    """What the alert is about: the machine, else the component, else the instance."""
    for key in ("machine_id", "component", "instance"):
        if event.labels.get(key):
            return event.labels[key]
    return ""


def summary_text(event: AlertEvent) -> str:
    """The one-line summary annotation, falling back to the alert's name."""
    return event.annotations.get("summary") or alertname(event)


def colour(event: AlertEvent) -> str:
    """Green when resolved, else a colour by severity."""
    if event.status == "resolved":
        return RESOLVED_COLOUR
    return FIRING_COLOURS.get(severity(event), UNKNOWN_COLOUR)


def worst_colour(events: Sequence[AlertEvent]) -> str:
    """The colour of the most severe firing event, green if all resolved."""
    firing = [e for e in events if e.status != "resolved"]
    if not firing:
        return RESOLVED_COLOUR
    return colour(min(firing, key=_severity_rank))


def _severity_rank(event: AlertEvent) -> int:
    return _rank_of(severity(event))


def headline(events: Sequence[AlertEvent]) -> str:
    """`[FIRING:2] DiskAlmostFull (critical)`, `[RESOLVED] ...` or `[FIRING:1, RESOLVED:2] A, B (warning)`."""
    firing = sum(1 for e in events if e.status != "resolved")
    resolved = len(events) - firing
    if firing and resolved:
        state = f"FIRING:{firing}, RESOLVED:{resolved}"
    elif firing:
        state = f"FIRING:{firing}"
    else:
        state = "RESOLVED"
    # Clipped: a headline is a Slack header and a mail subject, which must fit whatever names arrive.
    names = list(dict.fromkeys(clip(alertname(e), 60) for e in events))
    shown = ", ".join(names[:3]) + (f" +{len(names) - 3} more" if len(names) > 3 else "")
    worst = min(events, key=_severity_rank) if events else None
    return f"[{state}] {shown} ({clip(severity(worst), 30) if worst else 'none'})"


def clip(text: str, limit: int = LINE_CHARS) -> str:
    """Shorten `text` to `limit` characters with a visible ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class StormSummary:
    """Counts by alertname and severity, and a few examples, for a digest or an oversized message."""

    total: int
    firing: int
    resolved: int
    groups: tuple[tuple[str, str, int, int], ...]  # (alertname, severity, firing, resolved), worst first
    hidden_groups: int
    examples: tuple[AlertEvent, ...]


def summarize(events: Sequence[AlertEvent]) -> StormSummary:
    """Fold `events` into counts and up to EXAMPLES examples (firing and severe first)."""
    firing: Counter[tuple[str, str]] = Counter()
    resolved: Counter[tuple[str, str]] = Counter()
    for e in events:
        (resolved if e.status == "resolved" else firing)[(alertname(e), severity(e))] += 1
    keys = sorted(set(firing) | set(resolved), key=lambda k: (_rank_of(k[1]), -firing[k], k[0]))
    groups = tuple((name, sev, firing[(name, sev)], resolved[(name, sev)]) for name, sev in keys)
    ordered = sorted(events, key=lambda e: (e.status == "resolved", _severity_rank(e)))
    return StormSummary(
        total=len(events),
        firing=sum(firing.values()),
        resolved=sum(resolved.values()),
        groups=groups[:GROUPS],
        hidden_groups=max(0, len(groups) - GROUPS),
        examples=tuple(ordered[:EXAMPLES]),
    )


def _rank_of(sev: str) -> int:
    return SEVERITIES.index(sev) if sev in SEVERITIES else len(SEVERITIES)


def group_line(group: tuple[str, str, int, int]) -> str:
    """`DiskAlmostFull (critical): 3 firing, 1 resolved`."""
    name, sev, firing, resolved = group
    counts = ", ".join(f"{n} {word}" for n, word in ((firing, "firing"), (resolved, "resolved")) if n)
    return clip(f"{name} ({sev}): {counts}")


def example_line(event: AlertEvent) -> str:
    """`FIRING gpu-1: Disk / is 95% full`, clipped."""
    where = machine(event)
    return clip(f"{event.status.upper()} {where + ': ' if where else ''}{summary_text(event)}")


def left_out_line(n: int) -> str:
    """What a message says when Alertmanager cut `n` alerts of its groups from the posts (max_alerts)."""
    return (f"Alertmanager left {count(n, 'more alert')} of these groups out of its posts (max_alerts):"
            " they are in Alertmanager, not in the alert history.")


def count(n: int, noun: str) -> str:
    """`1 alert`, `3 alerts`, `1,500 alerts`."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"
