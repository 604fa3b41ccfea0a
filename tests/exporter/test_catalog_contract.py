"""The catalog is a contract with the platform's dashboards and the rules: it must match the table users
were given, written out here literally so a change to exporter/catalog.py cannot go unnoticed."""
from exporter.catalog import BY_NAME, CATALOG, COUNTER, GAUGE, HISTOGRAM, SYNC_LATENCY_BUCKETS

PROMISED = {
    "dumont_sync_latency_seconds": (HISTOGRAM, ("machine_id", "direction")),
    "dumont_sync_bytes_total": (COUNTER, ("machine_id", "direction")),
    "dumont_sync_files_total": (COUNTER, ("machine_id",)),
    "dumont_sync_last_success_timestamp": (GAUGE, ("machine_id",)),
    "dumont_cpu_usage_percent": (GAUGE, ("machine_type", "machine_id")),
    "dumont_memory_usage_bytes": (GAUGE, ("machine_type", "machine_id")),
    "dumont_memory_total_bytes": (GAUGE, ("machine_type", "machine_id")),
    "dumont_disk_usage_bytes": (GAUGE, ("machine_type", "machine_id", "mount")),
    "dumont_disk_total_bytes": (GAUGE, ("machine_type", "machine_id", "mount")),
    "dumont_cost_hourly_usd": (GAUGE, ("machine_type", "machine_id", "provider")),
    "dumont_savings_total_usd": (COUNTER, ("category",)),
    "dumont_transfer_bytes_total": (COUNTER, ("from_region", "to_region")),
    "dumont_machine_uptime_seconds": (GAUGE, ("machine_type", "machine_id")),
    "dumont_machine_retired": (GAUGE, ("machine_type", "machine_id")),
    "dumont_failovers_total": (COUNTER, ("from_type", "to_type", "reason")),
    "dumont_downtime_avoided_seconds": (COUNTER, ("machine_id",)),
    "dumont_health_status": (GAUGE, ("component",)),
    "dumont_alerts_active": (GAUGE, ("severity",)),
}


def test_catalog_is_exactly_the_promised_table():
    assert {spec.name: (spec.type, spec.labels) for spec in CATALOG} == PROMISED


def test_counters_are_exposed_the_way_prometheus_client_exposes_them():
    assert BY_NAME["dumont_savings_total_usd"].exposed_names == ("dumont_savings_total_usd_total",)
    assert BY_NAME["dumont_sync_bytes_total"].exposed_names == ("dumont_sync_bytes_total",)
    assert BY_NAME["dumont_downtime_avoided_seconds"].exposed_names == ("dumont_downtime_avoided_seconds_total",)


def test_sync_latency_buckets_straddle_the_alert_threshold_and_reach_minutes():
    assert 20 in SYNC_LATENCY_BUCKETS
    assert max(SYNC_LATENCY_BUCKETS) >= 300
    assert list(SYNC_LATENCY_BUCKETS) == sorted(SYNC_LATENCY_BUCKETS)
