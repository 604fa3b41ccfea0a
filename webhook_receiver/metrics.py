"""/metrics data, read from the database at scrape time so every gunicorn worker and the relay agree."""
from __future__ import annotations

from typing import Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from exporter.catalog import BY_NAME
from webhook_receiver.reconcile.runner import peer_health
from webhook_receiver.relay.health import last_ping_ok
from webhook_receiver.store.base import StorageError, Store

ALERTS_ACTIVE = BY_NAME["dumont_alerts_active"]
# Always exposed, so a rule sees 0 rather than no series. "none": no severity label; any other value a payload
# brings is counted under "other", so a sender cannot create series without bound.
SEVERITIES = ("critical", "warning", "info", "none", "other")
# (counter name in the store, metric family, label name, help)
COUNTERS = (
    ("received", "dumont_receiver_received", "channel", "Alerts received in webhooks, per channel."),
    ("duplicate", "dumont_receiver_duplicates", "channel",
     "Alerts received whose state change this channel already had (retries, HA pairs)."),
    ("rejected", "dumont_receiver_rejected", "reason", "Webhooks rejected, by reason."),
    ("receiver_cut", "dumont_receiver_cut_alerts", "channel",
     "Alerts the receiver left out of posts larger than max_body_bytes (it keeps the first that fit), per channel."),
    ("delivered", "dumont_receiver_delivered", "channel", "State changes delivered, per channel."),
    ("failed", "dumont_receiver_failed", "channel", "State changes given up on, per channel."),
    ("sign_in", "dumont_receiver_sign_ins", "outcome",
     "Sign-ins to the history pages, by outcome: ok, wrong (token) or limited (too many from one address)."),
    ("slow_client", "dumont_receiver_slow_clients", "phase",
     "Connections closed for sending their request (or taking the answer) too slowly, by phase: idle, header, body, send."),
    ("heartbeat_ping", "dumont_receiver_heartbeat_pings", "outcome",
     "Pings of the outside heartbeat check (heartbeat_url_file/_env) by the relays, by outcome: ok (2xx) or failed."),
    ("reconciled", "dumont_receiver_reconciled", "change",
     "Changes reconciliation with Alertmanager's API stored, by change: resolution (of an alert no Alertmanager"
     " holds), suppressed_firing (fired only while silenced or inhibited), suppression (silenced, inhibited or"
     " active again)."),
)


def severity_bucket(severity: str) -> str:
    """The `severity` label value of dumont_alerts_active for an alert's severity label as stored."""
    shown = severity.lower() or "none"  # as the messages show it (channels.formatting.severity)
    return shown if shown in SEVERITIES[:-1] else "other"


class StoreCollector(Collector):
    """Counters, outbox depth and active alerts from the store; a failed read drops only its own families."""

    def __init__(self, store: Store, registry: CollectorRegistry | None = None,
                 alertmanager_urls: Sequence[str] = ()):
        self.store = store
        self.alertmanager_urls = tuple(alertmanager_urls)
        if registry is not None:
            registry.register(self)

    def collect(self):
        try:
            counters = self.store.counters()
        except StorageError:
            counters = None
        if counters is not None:
            for key, name, label, text in COUNTERS:
                family = CounterMetricFamily(name, text, labels=[label])
                for (counter, value_label), value in sorted(counters.items()):
                    if counter == key:
                        family.add_metric([value_label], value)
                yield family
        try:
            depth = self.store.outbox_depth()
            family = GaugeMetricFamily("dumont_receiver_outbox_depth", "Undelivered messages, per channel.",
                                       labels=["channel"])
            for channel, value in sorted(depth.items()):
                family.add_metric([channel], value)
            yield family
        except StorageError:
            pass
        try:
            last_ok = last_ping_ok(self.store)
            if last_ok is not None:
                yield GaugeMetricFamily("dumont_receiver_heartbeat_last_ok_timestamp_seconds",
                                        "When a relay's ping of the outside heartbeat check last succeeded"
                                        " (Unix time).", value=last_ok)
        except StorageError:
            pass
        if self.alertmanager_urls:
            try:
                yield from self._alertmanagers()
            except StorageError:
                pass
        try:
            buckets = dict.fromkeys(SEVERITIES, 0)
            for severity, count in self.store.active_by_severity().items():
                buckets[severity_bucket(severity)] += count
            family = GaugeMetricFamily(ALERTS_ACTIVE.name, ALERTS_ACTIVE.help, labels=list(ALERTS_ACTIVE.labels))
            for severity, count in buckets.items():
                family.add_metric([severity], count)
            yield family
        except StorageError:
            pass


    def _alertmanagers(self):
        """Each configured Alertmanager's reachability as reconciliation last found it (absent before its first pass)."""
        health = peer_health(self.store)
        up = GaugeMetricFamily("dumont_receiver_alertmanager_up",
                               "Whether the relay's last reconciliation pass could read this Alertmanager's API"
                               " (while 0 for all, nothing is resolved by reconciliation).", labels=["alertmanager"])
        checked = GaugeMetricFamily("dumont_receiver_alertmanager_checked_timestamp_seconds",
                                    "When reconciliation last tried this Alertmanager (Unix time).",
                                    labels=["alertmanager"])
        for url in self.alertmanager_urls:
            if url in health:
                up.add_metric([url], 1.0 if health[url].up else 0.0)
                checked.add_metric([url], health[url].checked_at)
        yield up
        yield checked


def build_registry(store: Store, alertmanager_urls: Sequence[str] = ()) -> CollectorRegistry:
    """A registry of its own holding the store collector."""
    registry = CollectorRegistry(auto_describe=False)
    StoreCollector(store, registry, alertmanager_urls)
    return registry
