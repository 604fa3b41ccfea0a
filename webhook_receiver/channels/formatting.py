"""Presentation shared by every channel: severity order, colours, headlines and storm summaries."""
from __future__ import annotations

import heapq
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

from .model import AlertEvent, Message, StormSummary

# Worst first; anything else sorts after these
SEVERITIES = ("critical", "warning", "info")

RESOLVED_COLOUR = "#2EB67D"  # green
FIRING_COLOURS = {"critical": "#D00000", "warning": "#F2A900", "info": "#2F80ED"}
UNKNOWN_COLOUR = "#808080"

EXAMPLES = 5  # how many alerts a summary shows by name
GROUPS = 10  # how many alertname/severity lines a summary shows
LINE_CHARS = 150  # a summary line longer than this is clipped, visibly


# A link only to the web: a `javascript:` or `data:` runbook_url from an annotation must never become one.
WEB_SCHEMES = ("http", "https")
_URL_BREAKERS = re.compile(r"[\x00-\x20\x7f\\]")  # browsers drop or reinterpret these inside a URL
_SURROGATE = re.compile("[\ud800-\udfff]")


def web_url(url: str | None) -> str | None:
    """`url` when it is an absolute http(s) URL with a host and nothing a browser would reinterpret, else None."""
    if not url or _URL_BREAKERS.search(url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced [ in the host
        return None
    return url if parts.scheme.lower() in WEB_SCHEMES and parts.netloc else None


def shown_url(url: str) -> str:
    """How a URL that is no web link is shown as text: its first colon bracketed, so no client links it."""
    return url.replace(":", "[:]", 1)


def printable(text: str) -> str:
    """`text` with any lone UTF-16 surrogate (not Unicode, so no encoder writes it) replaced by U+FFFD."""
    return text if text.isascii() else _SURROGATE.sub("\ufffd", text)


def alertname(event: AlertEvent) -> str:
    """The alert's name, or a placeholder when Alertmanager sent none."""
    return _shown_name(event.labels.get("alertname"))


def severity(event: AlertEvent) -> str:
    """The alert's severity label, lower-cased; "none" when missing."""
    return _shown_severity(event.labels.get("severity"))


# A label missing or empty (the store keeps "" for a missing one; Prometheus drops empty labels anyway)
def _shown_name(label: str | None) -> str:
    return label or "(unnamed alert)"


def _shown_severity(label: str | None) -> str:
    return (label or "none").lower()


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


def colour_of(summary: StormSummary) -> str:
    """The colour of the summary's most severe firing state change, green if all are resolved."""
    if summary.worst_firing is None:
        return RESOLVED_COLOUR
    return FIRING_COLOURS.get(summary.worst_firing, UNKNOWN_COLOUR)


def _severity_rank(event: AlertEvent) -> int:
    return _rank_of(severity(event))


def headline_of(summary: StormSummary) -> str:
    """`[FIRING:2] DiskAlmostFull (critical)`, `[RESOLVED] ...` or `[FIRING:1, RESOLVED:2] A, B (warning)`."""
    if summary.firing and summary.resolved:
        state = f"FIRING:{summary.firing}, RESOLVED:{summary.resolved}"
    elif summary.firing:
        state = f"FIRING:{summary.firing}"
    else:
        state = "RESOLVED"
    # Clipped: a headline is a Slack header and a mail subject, which must fit whatever names arrive.
    names = list(dict.fromkeys(clip(name, 60) for name in summary.names))
    shown = ", ".join(names[:3]) + (f" +{len(names) - 3} more" if len(names) > 3 else "")
    return f"[{state}] {shown} ({clip(summary.worst, 30) if summary.worst is not None else 'none'})"


def message_headline(message: Message) -> str:
    """The headline of what `message` tells: all of a digest, not only its examples."""
    return headline_of(summary_of(message))


def summary_of(message: Message) -> StormSummary:
    """The message's summary: the relay's for a digest, else one of its events."""
    return message.summary if message.summary is not None else summarize(message.events)


def clip(text: str, limit: int = LINE_CHARS) -> str:
    """Shorten `text` to `limit` characters with a visible ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summarize(events: Sequence[AlertEvent]) -> StormSummary:
    """Fold `events` into counts and up to EXAMPLES examples (firing and severe first)."""
    counts: Counter[tuple[str | None, str | None, str]] = Counter()
    first_seen: dict[tuple[str | None, str | None, str], int] = {}
    for position, event in enumerate(events):
        key = (event.labels.get("alertname"), event.labels.get("severity"), event.status)
        counts[key] += 1
        first_seen.setdefault(key, position)
    # Equal to sorted(...)[:EXAMPLES], without sorting a storm of thousands
    examples = heapq.nsmallest(EXAMPLES, events, key=lambda e: (e.status == "resolved", _severity_rank(e)))
    return summarize_groups([(*key, counts[key], first_seen[key]) for key in counts], examples)


def summarize_groups(groups: Iterable[tuple[str | None, str | None, str, int, int]],
                     examples: Sequence[AlertEvent]) -> StormSummary:
    """The summary of state changes counted as (alertname label, severity label, status, count, position of
    the first), labels as sent (None or "" when missing); `examples` already chosen, worst first."""
    groups = sorted(((_shown_name(name), _shown_severity(sev), status, n, first)
                     for name, sev, status, n, first in groups), key=lambda group: group[4])  # as they came
    firing: Counter[tuple[str, str]] = Counter()
    resolved: Counter[tuple[str, str]] = Counter()
    worst = worst_firing = None
    for name, sev, status, n, _ in groups:
        (resolved if status == "resolved" else firing)[(name, sev)] += n
        if worst is None or _rank_of(sev) < _rank_of(worst):
            worst = sev
        if status != "resolved" and (worst_firing is None or _rank_of(sev) < _rank_of(worst_firing)):
            worst_firing = sev
    keys = sorted(set(firing) | set(resolved), key=lambda k: (_rank_of(k[1]), -firing[k], k[0], k[1]))
    lines = tuple((name, sev, firing[(name, sev)], resolved[(name, sev)]) for name, sev in keys)
    return StormSummary(
        total=sum(firing.values()) + sum(resolved.values()),
        firing=sum(firing.values()),
        resolved=sum(resolved.values()),
        groups=lines[:GROUPS],
        hidden_groups=max(0, len(lines) - GROUPS),
        examples=tuple(examples),
        names=tuple(dict.fromkeys(group[0] for group in groups)),
        worst=worst,
        worst_firing=worst_firing,
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


def left_out_line(message: Message) -> str:
    """What a message says when alerts of its groups were cut from the posts, by Alertmanager or the receiver."""
    by_receiver = message.cut_by_receiver
    by_alertmanager = message.left_out - by_receiver
    parts = []
    if by_alertmanager > 0:
        parts.append(f"Alertmanager left {count(by_alertmanager, 'more alert')} of these groups out of its posts"
                     " (max_alerts)")
    if by_receiver > 0:
        limit = f" of {message.max_body_bytes:,} bytes" if message.max_body_bytes else ""
        parts.append(f"the receiver cut {count(by_receiver, 'more alert')} {'' if parts else 'of these groups '}"
                     f"from posts larger than its limit{limit} (max_body_bytes)")
    text = ", and ".join(parts)
    return text[:1].upper() + text[1:] + ": they are in Alertmanager, not in the alert history."


def count(n: int, noun: str) -> str:
    """`1 alert`, `3 alerts`, `1,500 alerts`."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"
