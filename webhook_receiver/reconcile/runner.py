"""One reconciliation pass at a time, and each Alertmanager's reachability for /metrics and the pages."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Callable, Sequence

import requests

from webhook_receiver.reconcile.alertmanager import PeerView, read_peer
from webhook_receiver.reconcile.merge import merge
from webhook_receiver.reconcile.plan import Absences, plan
from webhook_receiver.store.base import ReconcileResult, Store

log = logging.getLogger(__name__)
PEER_PREFIX = "reconcile.peer."  # state key per Alertmanager URL: {"up", "since", "checked_at", "error"}


@dataclass(frozen=True)
class PeerHealth:
    """An Alertmanager as the last pass found it: reachable or not, since when, and why not."""

    url: str
    up: bool
    since: float
    checked_at: float
    error: str | None


class Reconciler:
    """Polls the Alertmanagers and stores what their webhooks never say (see webhook_receiver/reconcile)."""

    def __init__(self, store: Store, urls: Sequence[str], relay_channels: Sequence[str], timeout: float,
                 grace: float, warmup: float, clock: Callable[[], float]):
        self.store, self.urls, self.relay_channels = store, tuple(urls), tuple(relay_channels)
        self.timeout, self.grace, self.warmup, self.clock = timeout, grace, warmup, clock
        self.absences = Absences()
        self.session = requests.Session()
        self.session.trust_env = False  # Alertmanager is reached directly, never through a proxy from the environment

    def run_once(self) -> ReconcileResult | None:
        """Poll, compare and store; None when no Alertmanager answered (then nothing is stored)."""
        peers = [read_peer(self.session, url, self.timeout) for url in self.urls]
        now = self.clock()
        self._record(peers, now)
        view = merge(peers, now, self.warmup)
        if not view.reachable:
            return None
        changes = plan(self.store.tracked_alerts(), view, now, self.grace, self.absences, self.relay_channels)
        result = self.store.reconcile(changes)
        for kind, amount in (("resolution", result.resolutions), ("suppressed_firing", result.suppressed_firings),
                             ("suppression", result.suppressions)):
            if amount:
                self.store.count("reconciled", kind, amount)
        if result.resolutions or result.suppressed_firings or result.suppressions:
            log.info("reconcile.stored resolutions=%d suppressed_firings=%d suppressions=%d queued=%d",
                     result.resolutions, result.suppressed_firings, result.suppressions, result.queued)
        return result

    def _record(self, peers: Sequence[PeerView], now: float) -> None:
        """Save each peer's reachability; log when one goes down or comes back."""
        before = peer_health(self.store)
        values = {}
        for peer in peers:
            was = before.get(peer.url)
            since = was.since if was is not None and was.up == peer.reachable else now
            if was is None or was.up != peer.reachable:
                if peer.reachable:
                    log.info("reconcile.alertmanager_reachable url=%s", peer.url)
                else:
                    log.warning("reconcile.alertmanager_unreachable url=%s error=%r", peer.url, peer.error)
            values[PEER_PREFIX + peer.url] = json.dumps(
                {"up": peer.reachable, "since": since, "checked_at": now, "error": peer.error})
        self.store.set_state(values)

    def close(self) -> None:
        """Close the HTTP session."""
        self.session.close()


def peer_health(store: Store) -> dict[str, PeerHealth]:
    """Each Alertmanager's reachability as the last pass recorded it, by URL."""
    health = {}
    for key, value in store.state_items(PEER_PREFIX).items():
        try:
            saved = json.loads(value)
            url = key[len(PEER_PREFIX):]
            health[url] = PeerHealth(url, bool(saved["up"]), float(saved["since"]), float(saved["checked_at"]),
                                     saved.get("error"))
        except (ValueError, KeyError, TypeError):
            continue  # written by another version: the next pass writes it again
    return health
