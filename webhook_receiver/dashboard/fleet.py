"""The machines as they are now, from Prometheus (the dumont_* series and their recording rules) and the
alerts firing on them, from the Alertmanagers."""
from __future__ import annotations

from typing import Iterable

from webhook_receiver.dashboard.sources import Sample

STATES = ("up", "down", "vanished", "retired")


def state_query(vanish_window: str) -> str:
    """One PromQL expression labelling each machine `state`: up, down, vanished (reported within the window,
    not now) or retired (on purpose, dumont_machine_retired). Its value is the last uptime seen (0 retired)."""
    uptime = "dumont_machine_uptime_seconds"
    return " or ".join([
        f'label_replace({uptime} > 0, "state", "up", "", "")',
        f'label_replace({uptime} == 0, "state", "down", "", "")',
        'label_replace(0 * max by (machine_id, machine_type) (dumont_machine_retired), "state", "retired", "", "")',
        f'label_replace(last_over_time({uptime}[{vanish_window}]) unless on (machine_id) {uptime}'
        f' unless on (machine_id) dumont_machine_retired, "state", "vanished", "", "")',
    ])


# Each reading of the machine table: PromQL, and the field of a machine it fills.
READINGS = {
    "cpu_percent": "dumont_cpu_usage_percent",
    "memory_ratio": "machine:dumont_memory_usage:ratio",
    "cost_hourly_usd": "dumont_cost_hourly_usd",
    "sync_age_seconds": "time() - dumont_sync_last_success_timestamp",
    "sync_p95_seconds": "machine:dumont_sync_latency_seconds:p95",
}
DISKS = "machine_mount:dumont_disk_usage:ratio"
COST_BY_PROVIDER = "provider:dumont_cost_hourly_usd:sum"


def machines(states: list[Sample], readings: dict[str, list[Sample]], disks: list[Sample]) -> list[dict]:
    """Every machine Prometheus knows, by machine_id, each reading null where its series is missing."""
    table: dict[str, dict] = {}
    for sample in sorted(states, key=lambda s: STATES.index(s.labels.get("state", "up"))):
        machine_id = sample.labels.get("machine_id")
        if machine_id is None or machine_id in table:  # a machine two exporters report: its first, best state
            continue
        table[machine_id] = {
            "machine_id": machine_id, "machine_type": sample.labels.get("machine_type"), "provider": None,
            "state": sample.labels["state"],
            "uptime_seconds": sample.value if sample.labels["state"] != "retired" else None,
            **{field: None for field in READINGS}, "disks": [], "alerts": [],
        }
    for field, samples in readings.items():
        for sample in samples:
            machine = table.get(sample.labels.get("machine_id", ""))
            if machine is not None and machine[field] is None:
                machine[field] = sample.value
                if field == "cost_hourly_usd":
                    machine["provider"] = sample.labels.get("provider")
    for sample in sorted(disks, key=lambda s: s.labels.get("mount", "")):
        machine = table.get(sample.labels.get("machine_id", ""))
        if machine is not None:
            machine["disks"].append({"mount": sample.labels.get("mount"), "ratio": sample.value})
    return sorted(table.values(), key=lambda m: m["machine_id"])


def totals(table: list[dict], cost_by_provider: Iterable[Sample]) -> dict:
    """Machines by state, and what the fleet costs per hour, in all and by provider."""
    by_state = {state: 0 for state in STATES}
    for machine in table:
        by_state[machine["state"]] += 1
    by_provider = {s.labels.get("provider", ""): s.value for s in sorted(cost_by_provider,
                                                                          key=lambda s: s.labels.get("provider", ""))}
    return {"machines": len(table), "by_state": by_state, "cost_hourly_usd": sum(by_provider.values()),
            "cost_hourly_usd_by_provider": by_provider}
