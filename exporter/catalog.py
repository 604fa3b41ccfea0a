"""The dumont metric catalog: the one list of metric names, types and labels for the whole project.

The exporter registers these families; the rule generator and the receiver import this module to
know which series exist. Names are the families as registered with prometheus_client; `exposed_names`
gives the sample names a scrape actually carries (counters gain `_total`, histograms `_bucket` etc.).
"""
from __future__ import annotations

from dataclasses import dataclass

COUNTER = "counter"
GAUGE = "gauge"
HISTOGRAM = "histogram"

# Sync latency buckets: fine below the 20 s alert threshold, then out to several minutes so a
# stalled sync still lands in a finite bucket.
SYNC_LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 20, 30, 60, 120, 300, 600)


@dataclass(frozen=True)
class MetricSpec:
    """One metric family of the catalog."""

    name: str
    type: str
    labels: tuple[str, ...]
    help: str
    buckets: tuple[float, ...] = ()

    @property
    def exposed_names(self) -> tuple[str, ...]:
        """Sample names this family produces in the text exposition."""
        if self.type == COUNTER:
            base = self.name[: -len("_total")] if self.name.endswith("_total") else self.name
            return (base + "_total",)
        if self.type == HISTOGRAM:
            return (self.name + "_bucket", self.name + "_sum", self.name + "_count")
        return (self.name,)


# The longest label value the exporter takes, in UTF-8 bytes, and no control characters: it bounds the
# size of every alert Alertmanager posts, which the rule generator checks against the receiver's body
# limit (rules_src/sizing.py).
LABEL_VALUE_MAX_BYTES = 256

MACHINE = ("machine_type", "machine_id")

CATALOG: tuple[MetricSpec, ...] = (
    MetricSpec("dumont_sync_latency_seconds", HISTOGRAM, ("machine_id", "direction"),
               "Duration of one GPU<->CPU standby sync, in seconds.", SYNC_LATENCY_BUCKETS),
    MetricSpec("dumont_sync_bytes_total", COUNTER, ("machine_id", "direction"),
               "Bytes moved by syncs."),
    MetricSpec("dumont_sync_files_total", COUNTER, ("machine_id",),
               "Files moved by syncs."),
    MetricSpec("dumont_sync_last_success_timestamp", GAUGE, ("machine_id",),
               "Unix time of the last successful sync (before any: of the first failed one)."),
    MetricSpec("dumont_cpu_usage_percent", GAUGE, MACHINE,
               "CPU usage, 0 to 100."),
    MetricSpec("dumont_memory_usage_bytes", GAUGE, MACHINE,
               "Memory in use, in bytes."),
    MetricSpec("dumont_memory_total_bytes", GAUGE, MACHINE,
               "Memory installed, in bytes."),
    MetricSpec("dumont_disk_usage_bytes", GAUGE, MACHINE + ("mount",),
               "Disk space used on a mount, in bytes."),
    MetricSpec("dumont_disk_total_bytes", GAUGE, MACHINE + ("mount",),
               "Disk space of a mount, in bytes."),
    MetricSpec("dumont_cost_hourly_usd", GAUGE, MACHINE + ("provider",),
               "What a machine costs per hour, in US dollars."),
    MetricSpec("dumont_savings_total_usd", COUNTER, ("category",),
               "Money saved, in US dollars."),
    MetricSpec("dumont_transfer_bytes_total", COUNTER, ("from_region", "to_region"),
               "Bytes transferred between regions."),
    MetricSpec("dumont_machine_uptime_seconds", GAUGE, MACHINE,
               "Seconds since the machine came up; 0 when it is down."),
    MetricSpec("dumont_machine_retired", GAUGE, MACHINE,
               "Unix time a machine was retired on purpose; kept a while after its other series are gone."),
    MetricSpec("dumont_failovers_total", COUNTER, ("from_type", "to_type", "reason"),
               "Failovers between machine types."),
    MetricSpec("dumont_downtime_avoided_seconds", COUNTER, ("machine_id",),
               "Downtime avoided by failover, in seconds."),
    MetricSpec("dumont_health_status", GAUGE, ("component",),
               "Component health: 1 healthy, 0 down, in between degraded."),
    MetricSpec("dumont_alerts_active", GAUGE, ("severity",),
               "Alerts firing now, as the receiver knows them."),
)

# Exposed by dumont-receiver on its own /metrics (Prometheus scrapes it too), not by this exporter: listed
# here so that rules may read them like any dumont_* series (rules_src/meta.yaml).
RECEIVER: tuple[MetricSpec, ...] = (
    MetricSpec("dumont_receiver_channel_failing", GAUGE, ("channel",),
               "1 while a channel's latest counted delivery attempt failed, until one succeeds."),
    MetricSpec("dumont_receiver_relay_stalled", GAUGE, (),
               "1 when the relay, or one channel's delivery in it, has completed no pass for relay_stall_after."),
)

BY_NAME: dict[str, MetricSpec] = {spec.name: spec for spec in CATALOG + RECEIVER}


def exposed_names() -> frozenset[str]:
    """Every sample name the catalog's families (the exporter's and the receiver's) expose on a scrape."""
    return frozenset(name for spec in CATALOG + RECEIVER for name in spec.exposed_names)


def family_of(sample_name: str) -> MetricSpec | None:
    """The catalog family that exposes `sample_name`, or None when no family does."""
    for spec in CATALOG + RECEIVER:
        if sample_name in spec.exposed_names:
            return spec
    return None
