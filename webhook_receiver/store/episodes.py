"""Which stored state change an alert's firing or resolution is, or which new episode it opens or closes.

An alert keeps its startsAt when it fires again after Alertmanager resolved it, so one (fingerprint, startsAt)
can hold several episodes, each a firing and its resolution. The changes stored for one (fingerprint,
startsAt) say whether its newest episode is open (fired, not resolved) or closed, and a change is taken at
its word in the order it arrives, unless it tells nothing new (README, Decisions: identity of a state change):

- a firing while an episode is open is that episode's firing again (a retry, the HA peer's copy, a re-send);
- a firing while none is open opens a new episode (a re-fire), unless its own endsAt says it had ended by
  the time a stored resolution says (a late copy: nothing to store or tell);
- a resolution while an episode is open closes it, whatever its endsAt: the HA peer's late copy of a firing
  then its copy of the resolution end resolved, not firing for ever;
- a resolution while none is open is a stored one again when it has the same endsAt, or when either endsAt
  is Go's zero time (no time: it adds nothing to a resolution already stored); otherwise it closes an episode
  whose firing never reached the receiver, and is told.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence


class StoredChange(NamedTuple):
    """One stored row of the alert's (fingerprint, startsAt): what decide() needs of it."""

    id: int
    status: str
    episode: int
    ends_at: str | None  # canonical RFC3339 (compares as text), None for Go's zero time


class Verdict(NamedTuple):
    """A new change of `episode` (existing None), or a repeat of the row `existing` (None: nothing to tell)."""

    new: bool
    episode: int | None = None
    existing: int | None = None


def decide(status: str, ends_at: str | None, stored: Sequence[StoredChange]) -> Verdict:
    """Whether a firing or resolution with `ends_at` is new given the alert's `stored` rows of the same startsAt."""
    if not stored:
        return Verdict(True, episode=0)
    latest = max(row.episode for row in stored)
    firing = {row.episode: row.id for row in stored if row.status == "firing"}
    resolutions = sorted((row for row in stored if row.status == "resolved"), key=lambda row: row.episode)
    is_open = latest in firing and all(row.episode != latest for row in resolutions)
    if status == "firing":
        if is_open:
            return Verdict(False, existing=firing[latest])
        # Alertmanager sends a firing alert's endsAt as Go's zero time; a later one marks a copy sent before
        # the alert ended, which a stored resolution already covers.
        if ends_at is not None and any(row.ends_at is not None and ends_at <= row.ends_at for row in resolutions):
            return Verdict(False)
        return Verdict(True, episode=latest + 1)
    if is_open:
        return Verdict(True, episode=latest)
    same = [row.id for row in resolutions if ends_at is None or row.ends_at is None or row.ends_at == ends_at]
    if same:
        return Verdict(False, existing=same[-1])
    return Verdict(True, episode=latest + 1)
