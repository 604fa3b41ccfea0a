"""Populate a Telemetry with one series in every catalog family, as the platform's services would."""
from __future__ import annotations

from exporter.telemetry import Telemetry


def record_every_family(telemetry: Telemetry) -> None:
    """One API call per catalog family (resource families for a GPU machine with two mounts, one retired GPU)."""
    telemetry.record_sync(machine_id="gpu-123", latency_seconds=2.5, bytes_transferred=100 * 1024 * 1024,
                          files_count=50)
    telemetry.record_savings("transfer", 30.00)
    telemetry.set_cpu_usage("gpu-123", "gpu", 55.5)
    telemetry.set_memory("gpu-123", "gpu", used_bytes=48e9, total_bytes=64e9)
    telemetry.set_disk("gpu-123", "gpu", "/", used_bytes=400e9, total_bytes=1e12)
    telemetry.set_disk("gpu-123", "gpu", "/data", used_bytes=950e9, total_bytes=1e12)
    telemetry.set_cost("gpu-123", "gpu", "vast", 0.45)
    telemetry.set_uptime("gpu-123", "gpu", 3600)
    telemetry.retire_machine("gpu-old", "gpu")
    telemetry.record_failover("gpu", "cpu", "spot_interruption")
    telemetry.record_downtime_avoided("gpu-123", 120)
    telemetry.record_transfer("us-east", "eu-west", 1e9)
    telemetry.set_health("sync", 0.5)
    telemetry.set_alerts_active("critical", 2)
