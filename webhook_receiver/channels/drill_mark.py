"""How messages mark a fire drill's alerts (labelled payload.DRILL_LABEL), so nobody takes one for an incident.

A message whose every alert is a drill says so first (`[DRILL] [FIRING:1] DumontDrill (critical)`). One that
mixes a drill with real alerts (the relay batches a channel's due changes) keeps its real headline, says it
includes a drill, and marks the drill alert itself: a real page must never read as a drill.
"""
from __future__ import annotations

from webhook_receiver.payload import DRILL_LABEL

from . import formatting as fmt
from .model import AlertEvent, Message

MARK = "DRILL"


def is_drill(event: AlertEvent) -> bool:
    """Whether `event` is a fire drill's synthetic alert."""
    return bool(event.labels.get(DRILL_LABEL))


def headline(message: Message) -> str:
    """fmt.message_headline, marked when the message tells of a drill."""
    text = fmt.message_headline(message)
    drills = sum(1 for event in message.events if is_drill(event))
    if not drills:
        return text
    # A digest holds only its examples: all of it is known to be a drill only when they are all of it.
    whole = message.summary is None or message.summary.total <= len(message.events)
    if whole and drills == len(message.events):
        return f"[{MARK}] {text}"
    return f"{text} (includes a {MARK})"


def state(event: AlertEvent) -> str:
    """`FIRING` or `RESOLVED`, followed by ` · DRILL` for a drill's alert."""
    word = "RESOLVED" if event.status == "resolved" else "FIRING"
    return f"{word} · {MARK}" if is_drill(event) else word


def example(event: AlertEvent) -> str:
    """fmt.example_line, starting with DRILL for a drill's alert."""
    line = fmt.example_line(event)
    return f"{MARK} {line}" if is_drill(event) else line
