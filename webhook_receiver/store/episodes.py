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
  whose firing never reached the receiver, and is told; except after a resolution reconciliation stored (the
  receiver only knew when Alertmanager last listed the alert): Alertmanager's own resolution confirms that one.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

from webhook_receiver.store.base import RECONCILIATION


class StoredChange(NamedTuple):
    """One stored row of the alert's (fingerprint, startsAt): what decide() needs of it."""

    id: int
    status: str
    episode: int
    ends_at: str | None  # canonical RFC3339 (compares as text), None for Go's zero time
    reconciled: bool = False  # stored by reconciliation (events.origin), not posted by Alertmanager


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
    same = [row.id for row in resolutions if ends_at is None or row.ends_at is None or row.ends_at == ends_at
            or (row.reconciled and row.episode == latest)]
    if same:
        return Verdict(False, existing=same[-1])
    return Verdict(True, episode=latest + 1)


# An alert's stored rows around one startsAt, as both stores select them (columns in StoredRow's order).
STORED_COLUMNS = "id, status, episode, ends_at, starts_at, origin, suppressed"


class StoredRow(NamedTuple):
    """One stored row as STORED_COLUMNS reads it."""

    id: int
    status: str
    episode: int
    ends_at: str | None
    starts_at: str
    origin: str
    suppressed: bool


class Placement(NamedTuple):
    """Where a change goes: decide()'s verdict, the startsAt to store it under, and a firing to un-suppress."""

    verdict: Verdict
    starts_at: str
    unsuppress: int | None  # a firing stored while suppressed that Alertmanager now posts: it is relayed now


def same_start(starts_at: str) -> tuple[str, str]:
    """The canonical times within `starts_at`'s millisecond: the rows of one alert start.

    Alertmanager's API gives times to the millisecond, its webhooks to the nanosecond (Prometheus's evaluation
    times have nanoseconds): a firing reconciliation stored from the API and the same firing posted later
    must be one alert start.
    """
    return starts_at[:23] + "000000Z", starts_at[:23] + "999999Z"


def place(status: str, ends_at: str | None, starts_at: str, rows: Sequence[tuple], posted: bool) -> Placement:
    """Decide a change given the alert's `rows` within same_start(starts_at); `posted`: it came in a webhook."""
    stored = [StoredRow(*row) for row in rows]
    verdict = decide(status, ends_at, [StoredChange(row.id, row.status, row.episode, row.ends_at,
                                                    row.origin == RECONCILIATION) for row in stored])
    unsuppress = None
    if posted and status == "firing" and verdict.existing is not None:
        unsuppress = next((row.id for row in stored if row.id == verdict.existing and row.suppressed), None)
    # Rows of one alert start keep the first one's startsAt, so the alert's episodes stay together.
    return Placement(verdict, stored[0].starts_at if stored else starts_at, unsuppress)
