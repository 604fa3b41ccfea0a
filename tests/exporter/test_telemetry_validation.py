"""Bad input raises ValueError naming the argument, and records nothing at all."""
from __future__ import annotations

import math
import re

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from exporter.telemetry import Telemetry

from tests.exporter.fleet import record_every_family

GOOD_SYNC = {"machine_id": "gpu-1", "latency_seconds": 1.0, "bytes_transferred": 10, "files_count": 1}

# (method, good keyword arguments, argument to break, bad value)
CASES = [
    *[("record_sync", GOOD_SYNC, "latency_seconds", bad) for bad in (-0.1, math.nan, math.inf, "2", None)],
    ("record_sync", GOOD_SYNC, "bytes_transferred", -1),
    ("record_sync", GOOD_SYNC, "bytes_transferred", True),
    ("record_sync", GOOD_SYNC, "files_count", -5),
    ("record_sync", GOOD_SYNC, "machine_id", ""),
    ("record_sync", GOOD_SYNC, "machine_id", None),
    ("record_sync", GOOD_SYNC, "direction", ""),
    ("record_sync", GOOD_SYNC, "success", "yes"),
    ("record_savings", {"category": "transfer", "amount_usd": 1.0}, "amount_usd", -30.0),
    ("record_savings", {"category": "transfer", "amount_usd": 1.0}, "category", ""),
    ("set_cpu_usage", {"machine_id": "m", "machine_type": "gpu", "percent": 5}, "percent", 100.1),
    ("set_cpu_usage", {"machine_id": "m", "machine_type": "gpu", "percent": 5}, "percent", -1),
    ("set_cpu_usage", {"machine_id": "m", "machine_type": "gpu", "percent": 5}, "machine_id", ""),
    ("set_cpu_usage", {"machine_id": "m", "machine_type": "gpu", "percent": 5}, "machine_type", ""),
    ("set_memory", {"machine_id": "m", "machine_type": "gpu", "used_bytes": 1, "total_bytes": 2}, "used_bytes", -1),
    ("set_memory", {"machine_id": "m", "machine_type": "gpu", "used_bytes": 1, "total_bytes": 2}, "used_bytes", 3),
    ("set_memory", {"machine_id": "m", "machine_type": "gpu", "used_bytes": 1, "total_bytes": 2},
     "total_bytes", math.nan),
    ("set_disk", {"machine_id": "m", "machine_type": "gpu", "mount": "/", "used_bytes": 1, "total_bytes": 2},
     "mount", ""),
    ("set_disk", {"machine_id": "m", "machine_type": "gpu", "mount": "/", "used_bytes": 1, "total_bytes": 2},
     "used_bytes", 5),
    ("set_disk", {"machine_id": "m", "machine_type": "gpu", "mount": "/", "used_bytes": 1, "total_bytes": 2},
     "total_bytes", -2),
    ("set_cost", {"machine_id": "m", "machine_type": "gpu", "provider": "vast", "hourly_usd": 1}, "hourly_usd", -1),
    ("set_cost", {"machine_id": "m", "machine_type": "gpu", "provider": "vast", "hourly_usd": 1}, "provider", ""),
    ("set_uptime", {"machine_id": "m", "machine_type": "gpu", "seconds": 1}, "seconds", -1),
    ("record_failover", {"from_type": "gpu", "to_type": "cpu", "reason": "spot"}, "reason", ""),
    *[("record_failover", {"from_type": "gpu", "to_type": "cpu", "reason": "spot", "count": 1}, "count", bad)
      for bad in (-1, 1.5, True, "2", None)],
    ("retire_machine", {"machine_id": "gpu-123", "machine_type": "gpu"}, "machine_id", ""),
    ("retire_machine", {"machine_id": "gpu-123", "machine_type": "gpu"}, "machine_id", None),
    ("retire_machine", {"machine_id": "gpu-123", "machine_type": "gpu"}, "machine_type", ""),
    ("record_downtime_avoided", {"machine_id": "m", "seconds": 1}, "seconds", -1),
    ("record_transfer", {"from_region": "a", "to_region": "b", "bytes_transferred": 1}, "bytes_transferred", -1),
    ("record_transfer", {"from_region": "a", "to_region": "b", "bytes_transferred": 1}, "to_region", ""),
    ("set_health", {"component": "sync", "health": 1}, "health", 1.5),
    ("set_health", {"component": "sync", "health": 1}, "health", -0.1),
    ("set_health", {"component": "sync", "health": 1}, "component", ""),
    ("set_alerts_active", {"severity": "critical", "count": 1}, "count", -1),
    ("set_last_sync_success", {"machine_id": "m", "timestamp": 1}, "timestamp", math.inf),
]


@pytest.mark.parametrize("method, good, argument, bad", CASES,
                         ids=[f"{method}-{argument}-{bad!r}" for method, _, argument, bad in CASES])
def test_bad_argument_is_named_and_nothing_is_recorded(registry, telemetry, method, good, argument, bad):
    record_every_family(telemetry)
    before = generate_latest(registry)
    with pytest.raises(ValueError, match=rf"^{argument}\b"):
        getattr(telemetry, method)(**{**good, argument: bad})
    assert generate_latest(registry) == before


@pytest.mark.parametrize("method, good", sorted({(case[0], tuple(case[1].items())) for case in CASES}))
def test_the_good_arguments_are_accepted(registry, telemetry, method, good):
    getattr(telemetry, method)(**dict(good))
    assert generate_latest(registry)


def test_used_equal_to_total_is_accepted(registry, telemetry):
    telemetry.set_disk("m", "gpu", "/", used_bytes=2, total_bytes=2)
    assert registry.get_sample_value("dumont_disk_usage_bytes",
                                     {"machine_type": "gpu", "machine_id": "m", "mount": "/"}) == 2


@pytest.mark.parametrize("value, message", [
    ("g" * 257, "machine_id must be at most 256 bytes of UTF-8, got 257"),
    ("é" * 129, "machine_id must be at most 256 bytes of UTF-8, got 258"),
    ("gpu\n1", "machine_id must not contain control characters"),
    ('gpu"1', "machine_id must not contain control characters or any of"),
    ("gpu<1>", "machine_id must not contain control characters or any of"),
    ("gpu\ud8001", "machine_id must be valid Unicode text"),
])
def test_label_values_are_bounded(value, message):
    # The rule generator sizes Alertmanager's posts from this bound (rules_src/sizing.py).
    telemetry = Telemetry(registry=CollectorRegistry())
    with pytest.raises(ValueError, match=re.escape(message)):
        telemetry.set_uptime(value, "gpu", 1)
    assert telemetry.registry.get_sample_value("dumont_machine_uptime_seconds",
                                               {"machine_id": value, "machine_type": "gpu"}) is None
    telemetry.set_uptime("g" * 256, "gpu", 1)  # the longest value that fits
    assert telemetry.registry.get_sample_value("dumont_machine_uptime_seconds",
                                               {"machine_id": "g" * 256, "machine_type": "gpu"}) == 1
