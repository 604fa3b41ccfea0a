"""Merge what the Alertmanagers of an HA cluster say into one view, by fingerprint.

Each peer gets every alert from Prometheus, so an alert any reachable peer lists is firing. It is suppressed only
when no peer would notify it (a peer that lists it active will). An alert none lists has ended, but only peers
up for the warm-up say so: a freshly started Alertmanager lists nothing until Prometheus sends again.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Sequence

from webhook_receiver.payload import canonical_time
from webhook_receiver.reconcile.alertmanager import ListedAlert, PeerView
from webhook_receiver.store.base import ACTIVE, INHIBITED, SILENCED

_detail_text = json.JSONEncoder(sort_keys=True).encode


@dataclass(frozen=True)
class Listed:
    """One alert as the cluster lists it: its suppression and the JSON detail (silences or inhibiting alerts)."""

    alert: ListedAlert
    state: str   # ACTIVE, SILENCED or INHIBITED
    detail: str


@dataclass(frozen=True)
class ClusterView:
    """Every listed alert by fingerprint, and whether an absence means the alert ended (`tells_absence`)."""

    listed: dict[str, Listed]
    tells_absence: bool
    reachable: tuple[str, ...]


def merge(peers: Sequence[PeerView], now: float, warmup: float) -> ClusterView:
    """One view of the reachable `peers`; those started less than `warmup` seconds ago only add alerts."""
    reachable = [peer for peer in peers if peer.reachable]
    listings: dict[str, list[tuple[PeerView, ListedAlert]]] = {}
    for peer in reachable:
        for fingerprint, alert in peer.alerts.items():
            listings.setdefault(fingerprint, []).append((peer, alert))
    listed = {fingerprint: _one(seen, listings) for fingerprint, seen in listings.items()}
    tells_absence = any(peer.started_at is not None and now - peer.started_at >= warmup for peer in reachable)
    return ClusterView(listed, tells_absence, tuple(peer.url for peer in reachable))


def _one(seen: list[tuple[PeerView, ListedAlert]], listings) -> Listed:
    """The cluster's word on one alert: the newest start any peer lists, and its suppression there."""
    newest = max(alert.starts_at for _, alert in seen)
    seen = [(peer, alert) for peer, alert in seen if alert.starts_at == newest]
    alert = seen[0][1]
    if any(item.state != "suppressed" for _, item in seen):
        return Listed(alert, ACTIVE, "{}")
    silences = {sid: _silence(peer.silences.get(sid), sid)
                for peer, item in seen for sid in item.silenced_by}
    if silences:
        return Listed(alert, SILENCED, _detail_text({"silences": [silences[sid] for sid in sorted(silences)]}))
    inhibitors = sorted({fp for _, item in seen for fp in item.inhibited_by})
    return Listed(alert, INHIBITED, _detail_text({"inhibited_by": [_inhibitor(fp, listings) for fp in inhibitors]}))


def _silence(silence: dict | None, silence_id: str) -> dict:
    """What people need of a silence: who, why, until when, and what it matches."""
    if silence is None:  # expired and collected between the two reads
        return {"id": silence_id}
    ends_at = silence.get("endsAt")
    try:
        ends_at = canonical_time(ends_at) if isinstance(ends_at, str) else None
    except ValueError:
        ends_at = None
    matchers = [f"{m.get('name')}{_operator(m)}{json.dumps(m.get('value'))}"
                for m in silence.get("matchers") or () if isinstance(m, dict)]
    return {"id": silence_id, "created_by": str(silence.get("createdBy", "")),
            "comment": str(silence.get("comment", "")), "ends_at": ends_at, "matchers": matchers}


def _operator(matcher: dict) -> str:
    regex, equal = bool(matcher.get("isRegex")), matcher.get("isEqual", True) is not False
    return {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}[(regex, equal)]


def _inhibitor(fingerprint: str, listings) -> dict:
    """The inhibiting alert by fingerprint, with its name and labels when a peer lists it."""
    seen = listings.get(fingerprint)
    if not seen:
        return {"fingerprint": fingerprint}
    alert = seen[0][1]
    return {"fingerprint": fingerprint, "alertname": alert.labels.get("alertname", ""), "labels": alert.labels}
