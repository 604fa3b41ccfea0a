"""The telemetry API as the platform's services call it, read back with registry.get_sample_value."""
from __future__ import annotations

import inspect
import subprocess
import sys
import urllib.request

from prometheus_client import REGISTRY

from exporter import Telemetry, get_telemetry, telemetry as telemetry_module
from tests.exporter.helpers import FixedClock


def test_seed_calls(registry, telemetry):
    telemetry.record_sync(machine_id="gpu-123", latency_seconds=2.5, bytes_transferred=100 * 1024 * 1024,
                          files_count=50)
    telemetry.record_savings("transfer", 30.00)
    sync = {"machine_id": "gpu-123", "direction": "gpu_to_cpu"}
    assert registry.get_sample_value("dumont_sync_latency_seconds_count", sync) == 1
    assert registry.get_sample_value("dumont_sync_latency_seconds_sum", sync) == 2.5
    assert registry.get_sample_value("dumont_sync_latency_seconds_bucket", {**sync, "le": "2.5"}) == 1
    assert registry.get_sample_value("dumont_sync_latency_seconds_bucket", {**sync, "le": "1.0"}) == 0
    assert registry.get_sample_value("dumont_sync_bytes_total", sync) == 100 * 1024 * 1024
    assert registry.get_sample_value("dumont_sync_files_total", {"machine_id": "gpu-123"}) == 50
    assert registry.get_sample_value("dumont_savings_total_usd_total", {"category": "transfer"}) == 30.0


def test_successful_sync_sets_last_success_to_now(registry):
    clock = FixedClock()
    telemetry = Telemetry(registry=registry, clock=clock)
    telemetry.record_sync(machine_id="gpu-1", latency_seconds=1)
    assert registry.get_sample_value("dumont_sync_last_success_timestamp", {"machine_id": "gpu-1"}) == clock.now


def test_failed_sync_does_not_move_last_success_nor_observe_latency(registry):
    clock = FixedClock()
    telemetry = Telemetry(registry=registry, clock=clock)
    telemetry.record_sync(machine_id="gpu-1", latency_seconds=1, bytes_transferred=10, files_count=1)
    first_success = clock.now
    clock.now += 60
    telemetry.record_sync(machine_id="gpu-1", latency_seconds=30, bytes_transferred=5, files_count=2,
                          success=False)
    sync = {"machine_id": "gpu-1", "direction": "gpu_to_cpu"}
    assert registry.get_sample_value("dumont_sync_last_success_timestamp", {"machine_id": "gpu-1"}) == first_success
    assert registry.get_sample_value("dumont_sync_latency_seconds_count", sync) == 1
    assert registry.get_sample_value("dumont_sync_bytes_total", sync) == 15
    assert registry.get_sample_value("dumont_sync_files_total", {"machine_id": "gpu-1"}) == 3


def test_syncs_failing_from_the_start_start_the_last_success_clock(registry):
    # SyncStopped compares time() with this series: without it, a machine that never synced is never paged.
    clock = FixedClock()
    telemetry = Telemetry(registry=registry, clock=clock)
    first_failure = clock.now
    telemetry.record_sync(machine_id="gpu-1", latency_seconds=30, success=False)
    clock.now += 600
    telemetry.record_sync(machine_id="gpu-1", latency_seconds=30, success=False)
    assert registry.get_sample_value("dumont_sync_last_success_timestamp", {"machine_id": "gpu-1"}) == first_failure
    assert registry.get_sample_value("dumont_sync_latency_seconds_count",
                                     {"machine_id": "gpu-1", "direction": "gpu_to_cpu"}) is None


def test_sync_direction_is_a_label(registry, telemetry):
    telemetry.record_sync(machine_id="gpu-1", latency_seconds=1, bytes_transferred=7, direction="cpu_to_gpu")
    assert registry.get_sample_value("dumont_sync_bytes_total",
                                     {"machine_id": "gpu-1", "direction": "cpu_to_gpu"}) == 7


def test_counters_accumulate(registry, telemetry):
    telemetry.record_savings("transfer", 30.0)
    telemetry.record_savings("transfer", 12.5)
    telemetry.record_failover("gpu", "cpu", "spot_interruption")
    telemetry.record_failover("gpu", "cpu", "spot_interruption")
    telemetry.record_downtime_avoided("gpu-1", 90)
    telemetry.record_transfer("us-east", "eu-west", 1000)
    telemetry.record_transfer("us-east", "eu-west", 24)
    assert registry.get_sample_value("dumont_savings_total_usd_total", {"category": "transfer"}) == 42.5
    assert registry.get_sample_value("dumont_failovers_total",
                                     {"from_type": "gpu", "to_type": "cpu", "reason": "spot_interruption"}) == 2
    assert registry.get_sample_value("dumont_downtime_avoided_seconds_total", {"machine_id": "gpu-1"}) == 90
    assert registry.get_sample_value("dumont_transfer_bytes_total",
                                     {"from_region": "us-east", "to_region": "eu-west"}) == 1024


def test_resource_cost_and_uptime_setters(registry, telemetry):
    machine = {"machine_type": "gpu", "machine_id": "gpu-1"}
    telemetry.set_cpu_usage("gpu-1", "gpu", 42)
    telemetry.set_memory("gpu-1", "gpu", used_bytes=8e9, total_bytes=64e9)
    telemetry.set_disk("gpu-1", "gpu", "/data", used_bytes=9e11, total_bytes=1e12)
    telemetry.set_cost("gpu-1", "gpu", "vast", 0.75)
    telemetry.set_uptime("gpu-1", "gpu", 3600)
    telemetry.set_cpu_usage("gpu-1", "gpu", 43)  # a gauge keeps the last value
    assert registry.get_sample_value("dumont_cpu_usage_percent", machine) == 43
    assert registry.get_sample_value("dumont_memory_usage_bytes", machine) == 8e9
    assert registry.get_sample_value("dumont_memory_total_bytes", machine) == 64e9
    assert registry.get_sample_value("dumont_disk_usage_bytes", {**machine, "mount": "/data"}) == 9e11
    assert registry.get_sample_value("dumont_disk_total_bytes", {**machine, "mount": "/data"}) == 1e12
    assert registry.get_sample_value("dumont_cost_hourly_usd", {**machine, "provider": "vast"}) == 0.75
    assert registry.get_sample_value("dumont_machine_uptime_seconds", machine) == 3600


def test_health_and_alerts_active(registry, telemetry):
    telemetry.set_health("sync", 0.5)
    telemetry.set_health("api", 1)
    telemetry.set_alerts_active("critical", 3)
    assert registry.get_sample_value("dumont_health_status", {"component": "sync"}) == 0.5
    assert registry.get_sample_value("dumont_health_status", {"component": "api"}) == 1
    assert registry.get_sample_value("dumont_alerts_active", {"severity": "critical"}) == 3


def test_remove_machine_forgets_all_its_series(registry, telemetry):
    telemetry.record_sync(machine_id="gpu-1", latency_seconds=1)
    telemetry.set_cpu_usage("gpu-1", "gpu", 10)
    telemetry.set_cpu_usage("gpu-2", "gpu", 20)
    telemetry.remove_machine("gpu-1")
    machine_ids = {s.labels.get("machine_id") for family in registry.collect() for s in family.samples}
    assert machine_ids == {"gpu-2"}


def test_without_a_registry_nothing_is_registered_but_the_collector_works():
    telemetry = Telemetry(registry=None)
    telemetry.set_health("api", 1)
    families = {family.name: family for family in telemetry.collector.collect()}
    assert families["dumont_health_status"].samples[0].value == 1


def test_get_telemetry_is_one_lazy_instance_on_the_default_registry(monkeypatch):
    monkeypatch.setattr(telemetry_module, "_shared", None)
    shared = get_telemetry()
    try:
        assert get_telemetry() is shared
        shared.set_alerts_active("test-only-severity", 1)
        assert REGISTRY.get_sample_value("dumont_alerts_active", {"severity": "test-only-severity"}) == 1
    finally:
        REGISTRY.unregister(shared.collector)


def test_importing_registers_nothing():
    code = ("import exporter, exporter.cli, exporter.simulation, exporter.host_collector\n"
            "from prometheus_client import REGISTRY\n"
            "print(sorted(f.name for f in REGISTRY.collect() if f.name.startswith('dumont')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"


def test_start_server_serves_the_registry(registry, telemetry):
    telemetry.record_savings("transfer", 30.0)
    server = telemetry.start_server(port=0, addr="127.0.0.1")
    try:
        host, port = server.address
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as response:
            body = response.read().decode()
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert 'dumont_savings_total_usd_total{category="transfer"} 30.0' in body
    finally:
        server.close()


def test_start_server_keeps_prometheus_clients_default_address():
    assert inspect.signature(Telemetry.start_server).parameters["addr"].default == "0.0.0.0"
