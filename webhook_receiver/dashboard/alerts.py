"""The alerts the Alertmanagers hold now, merged by fingerprint as reconciliation merges them."""
from __future__ import annotations

from typing import Sequence

from webhook_receiver.reconcile.alertmanager import PeerView
from webhook_receiver.reconcile.merge import ClusterView, merge
from webhook_receiver.store.base import ACTIVE, INHIBITED, SILENCED

SEVERITY_NONE = "none"  # an alert without a severity label is counted under this


def cluster(peers: Sequence[PeerView], now: float) -> ClusterView:
    """One view of every reachable peer (warm-up does not matter: nothing here is said about absences)."""
    return merge(peers, now, warmup=0.0)


def alert_json(fingerprint: str, view: ClusterView, page_url: str) -> dict:
    """One alert as the dashboard lists it, linked to its timeline in the history."""
    listed = view.listed[fingerprint]
    labels = listed.alert.labels
    return {"fingerprint": fingerprint, "alertname": labels.get("alertname", ""),
            "severity": labels.get("severity", SEVERITY_NONE), "state": listed.state,
            "starts_at": listed.alert.starts_at, "labels": labels, "url": page_url}


def by_machine(view: ClusterView, page_url) -> dict[str, list[dict]]:
    """The alerts carrying a machine_id label, by machine; `page_url(fingerprint)` gives each one's timeline."""
    out: dict[str, list[dict]] = {}
    for fingerprint, listed in sorted(view.listed.items(), key=lambda item: item[1].alert.starts_at):
        machine_id = listed.alert.labels.get("machine_id")
        if machine_id is not None:
            out.setdefault(machine_id, []).append(alert_json(fingerprint, view, page_url(fingerprint)))
    return out


def counts(view: ClusterView) -> dict[str, dict[str, int]]:
    """Alerts by state (firing, i.e. notified; silenced; inhibited), each by severity."""
    names = {ACTIVE: "firing", SILENCED: "silenced", INHIBITED: "inhibited"}
    out: dict[str, dict[str, int]] = {name: {} for name in names.values()}
    for listed in view.listed.values():
        severity = listed.alert.labels.get("severity", SEVERITY_NONE)
        bucket = out[names[listed.state]]
        bucket[severity] = bucket.get(severity, 0) + 1
    return out
