"""One reconciliation pass, written inside a store's transaction: the steps both stores share, each with its own SQL.

Every step re-checks what it changes under the store's write lock (SQLite's single writer, PostgreSQL's
advisory lock): a pass whose view is older than another relay's, or than a webhook that arrived meanwhile,
writes nothing twice and never resolves an alert whose newest state moved on.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

from webhook_receiver.payload import Alert
from webhook_receiver.store.base import ACTIVE, FAILED, RECONCILIATION, ReconcileResult, Reconciliation, Suppression
from webhook_receiver.store.episodes import same_start


@dataclass(frozen=True)
class ReconcileSQL:
    """A store's statements for reconcile(); parameters in the order each comment gives."""

    seen: str             # (fingerprint, event_id, last_seen): raise the firing's last_seen (an ACTIVE sighting
    #                       replaces one of an earlier firing)
    firing: str           # (fingerprint,) -> (event_id,) of the alert's firing, if its newest state is one
    sighting: str         # (fingerprint, event_id) -> (state, detail)
    set_sighting: str     # (fingerprint, event_id, state, detail, last_seen)
    add_change: str       # (fingerprint, event_id, state, detail, at)
    open_firing: str      # (event_id, fingerprint) -> one row when it is the alert's newest state and firing
    firing_event: str     # (event_id,) -> fingerprint, labels, annotations, starts_at, generator_url, suppressed,
    #                       episode
    moved_on: str         # (fingerprint, low, high, episode, episode) -> a row when that episode is resolved or a
    #                       later one began (a webhook stored since: SQLite applies its intake later)
    apply_alert: str      # (event_id,): make it the alert's newest state if it is newer
    reached: str          # (event_id,) -> (channel, state) of the firing's messages
    queue: str            # (channel, event_id, due_at, created_at)
    forget: str           # (fingerprint,): the sighting of an alert that ended


InsertEvent = Callable[..., "tuple[int | None, bool]"]  # the store's _insert_event(conn, row, origin, suppressed)
EventRow = Callable[[Alert, float], tuple]               # the store's _event_row(alert, now)


def write(conn, sql: ReconcileSQL, insert_event: InsertEvent, event_row: EventRow,
          changes: Reconciliation) -> ReconcileResult:
    """Apply `changes` on `conn`, inside the caller's transaction; what was stored."""
    now = changes.now
    for seen in changes.seen:
        conn.execute(sql.seen, seen)
    firings = sum(_suppressed_firing(conn, sql, insert_event, event_row, alert, suppression, now)
                  for alert, suppression in changes.suppressed_firings)
    suppressions = sum(_suppression(conn, sql, suppression, now) for suppression in changes.suppressions)
    resolutions = queued = 0
    for tracked, ends_at in changes.resolutions:
        stored = _resolve(conn, sql, insert_event, event_row, tracked.event_id, tracked.fingerprint,
                          ends_at, changes.relay_channels, now)
        if stored is not None:
            resolutions += 1
            queued += stored
    return ReconcileResult(firings, suppressions, resolutions, queued)


def _suppressed_firing(conn, sql, insert_event, event_row, alert: Alert, suppression: Suppression,
                       now: float) -> bool:
    """Store a firing Alertmanager holds suppressed, never relayed; False if the history has it already."""
    event_id, new = insert_event(conn, event_row(alert, now), origin=RECONCILIATION, suppressed=True)
    if not new:
        return False
    conn.execute(sql.apply_alert, (event_id,))
    _suppression(conn, sql, suppression, now)
    return True


def _suppression(conn, sql, suppression: Suppression, now: float) -> bool:
    """Record a firing alert's suppression change unless it is its recorded state already (ACTIVE when none)."""
    firing = conn.execute(sql.firing, (suppression.fingerprint,)).fetchone()
    if firing is None:  # it ended since the pass read it
        return False
    key = (suppression.fingerprint, firing[0])
    row = conn.execute(sql.sighting, key).fetchone()
    if (row[0], row[1]) == (suppression.state, suppression.detail) if row else suppression.state == ACTIVE:
        return False
    conn.execute(sql.set_sighting, (*key, suppression.state, suppression.detail, now))
    conn.execute(sql.add_change, (*key, suppression.state, suppression.detail, now))
    return True


def _resolve(conn, sql, insert_event, event_row, firing_id: int, fingerprint: str, ends_at: str,
             relay_channels, now: float) -> int | None:
    """Resolve the alert of firing `firing_id` as of `ends_at` if that firing is still its newest state; the
    messages queued for it (None: nothing stored)."""
    if conn.execute(sql.open_firing, (firing_id, fingerprint)).fetchone() is None:
        return None
    fields = conn.execute(sql.firing_event, (firing_id,)).fetchone()
    if conn.execute(sql.moved_on, (fingerprint, *same_start(fields[3]), fields[6], fields[6])).fetchone():
        return None
    alert = Alert(fingerprint=fields[0], status="resolved", labels=json.loads(fields[1]), annotations=json.loads(fields[2]),
                  starts_at=fields[3], ends_at=ends_at, generator_url=fields[4])
    event_id, new = insert_event(conn, event_row(alert, now), origin=RECONCILIATION, suppressed=bool(fields[5]))
    if not new:
        return None
    conn.execute(sql.apply_alert, (event_id,))
    conn.execute(sql.forget, (fingerprint,))
    wanted = set(relay_channels)
    channels = sorted({channel for channel, state in conn.execute(sql.reached, (firing_id,)).fetchall()
                       if state != FAILED and channel in wanted})
    for channel in channels:
        conn.execute(sql.queue, (channel, event_id, now, now))
    return len(channels)

