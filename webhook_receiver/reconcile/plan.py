"""Compare the alerts the history holds as firing with what the Alertmanagers list: the changes to store.

- A firing alert a peer lists (same start, to the millisecond the API gives) was seen now; its suppression is
  recorded when it changed.
- An alert listed suppressed that the history lacks fired while suppressed: stored, never relayed.
- A firing alert no peer lists any more (or lists with a later start) has ended. When it was last seen silenced
  or inhibited, Alertmanager will never send its resolution: it is resolved at once. When it was last seen
  active, Alertmanager's resolution should still come (at the group's next flush, retried if the receiver was
  down): it is resolved only once it has been missing for `grace`. Either way it ends when it was last seen.
- Nothing ends while no peer can tell an absence (all unreachable, or all just started).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from webhook_receiver.payload import Alert, format_epoch
from webhook_receiver.reconcile.merge import ClusterView
from webhook_receiver.store.base import ACTIVE, Reconciliation, Suppression, TrackedAlert


@dataclass
class Absences:
    """Since when each firing alert last seen active has been missing (kept across passes by the runner)."""

    since: dict[str, float] = field(default_factory=dict)


def plan(tracked: Sequence[TrackedAlert], view: ClusterView, now: float, grace: float, absences: Absences,
         relay_channels: Sequence[str]) -> Reconciliation:
    """The changes one pass stores; updates `absences`."""
    seen, suppressions, resolutions = [], [], []
    held = set()
    for alert in tracked:
        held.add(alert.fingerprint)
        listed = view.listed.get(alert.fingerprint)
        if listed is not None and listed.alert.starts_at[:23] == alert.starts_at[:23]:
            absences.since.pop(alert.fingerprint, None)
            seen.append((alert.fingerprint, alert.event_id, now))
            if (listed.state, listed.detail) != (alert.state, alert.detail):
                suppressions.append(Suppression(alert.fingerprint, listed.state, listed.detail))
            continue
        if not view.tells_absence:
            continue
        missing_since = absences.since.setdefault(alert.fingerprint, now)
        if alert.state == ACTIVE and not alert.suppressed and now - missing_since < grace:
            continue
        absences.since.pop(alert.fingerprint, None)
        resolutions.append((alert, format_epoch(alert.last_seen if alert.last_seen is not None else missing_since)))
    for fingerprint in set(absences.since) - held:  # ended meanwhile by a webhook
        del absences.since[fingerprint]
    firings = [(_firing(listed.alert), Suppression(fingerprint, listed.state, listed.detail))
               for fingerprint, listed in view.listed.items()
               if fingerprint not in held and listed.state != ACTIVE]
    return Reconciliation(now=now, seen=seen, suppressed_firings=firings, suppressions=suppressions,
                          resolutions=resolutions, relay_channels=tuple(relay_channels))


def _firing(listed) -> Alert:
    return Alert(fingerprint=listed.fingerprint, status="firing", labels=listed.labels,
                 annotations=listed.annotations, starts_at=listed.starts_at, ends_at=None,
                 generator_url=listed.generator_url)
