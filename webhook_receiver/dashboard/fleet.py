"""The machines as they are now, from Prometheus (the dumont_* series and their recording rules) and the
alerts firing on them, from the Alertmanagers."""
from __future__ import annotations

import json
from typing import Iterable

from webhook_receiver.dashboard.sources import Sample

STATES = ("up", "down", "vanished", "retired", "unreachable")
VANISHED_ALERT = "MachineVanished"


def state_query() -> str:
    """One PromQL expression labelling each machine `state`: up, down, vanished or retired (on purpose,
    dumont_machine_retired). Its value is the uptime (0 for vanished and retired machines, which have none).

    Vanished is what the MachineVanished alert says, pending or firing: the rule manager already read the
    `vanish_window` of uptime samples for it once per evaluation, where this query would read them again per
    request (last_over_time over an hour: 240 samples per machine at a 15s scrape, most of its time).
    """
    uptime = "max by (machine_id, machine_type) (dumont_machine_uptime_seconds)"
    return " or ".join([
        f'label_replace({uptime} > 0, "state", "up", "", "")',
        f'label_replace({uptime} == 0, "state", "down", "", "")',
        'label_replace(0 * max by (machine_id, machine_type) (dumont_machine_retired), "state", "retired", "", "")',
        f'label_replace(0 * max by (machine_id, machine_type) (ALERTS{{alertname="{VANISHED_ALERT}"}})'
        f' unless on (machine_id) {uptime}, "state", "vanished", "", "")',
    ])


# The scrape targets whose last scrape failed. While the exporter's own scrape fails, its machines' series are
# gone at once and MachineVanished stays quiet (TargetDown pages once): without this, they would leave the table.
TARGETS_DOWN = "up == 0"


def unreachable_query(targets: list[Sample], lookback: str) -> str | None:
    """The machines the down `targets` reported within `lookback`, labelled `state`: retired if they were marked
    so, else unreachable (nothing is known of them now). None when no target is down. Read only then: it reads
    every uptime sample of the window, which the state query avoids."""
    selectors = [f"job={json.dumps(t.labels.get('job', ''))},instance={json.dumps(t.labels.get('instance', ''))}"
                 for t in targets]
    if not selectors:
        return None

    def last(metric: str) -> str:
        return "max by (machine_id, machine_type) (" + " or ".join(
            f"last_over_time({metric}{{{selector}}}[{lookback}])" for selector in selectors) + ")"
    retired = last("dumont_machine_retired")
    return (f'label_replace(0 * {retired}, "state", "retired", "", "") or '
            f'label_replace(0 * {last("dumont_machine_uptime_seconds")} unless on (machine_id) {retired},'
            f' "state", "unreachable", "", "")')


# Each reading of the machine table: the field of a machine it fills, and its PromQL. Each is reduced to the
# labels the table shows: the answers shrink to a third (job, instance, machine_type gone), which is most of what
# the receiver spends decoding them for a large fleet.
READINGS = {
    "cpu_percent": "max by (machine_id) (dumont_cpu_usage_percent)",
    "memory_ratio": "max by (machine_id) (machine:dumont_memory_usage:ratio)",
    "cost_hourly_usd": "max by (machine_id, provider) (dumont_cost_hourly_usd)",
    "sync_age_seconds": "max by (machine_id) (time() - dumont_sync_last_success_timestamp)",
    "sync_p95_seconds": "max by (machine_id) (machine:dumont_sync_latency_seconds:p95)",
}
DISKS = "max by (machine_id, mount) (machine_mount:dumont_disk_usage:ratio)"
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
            "uptime_seconds": sample.value if sample.labels["state"] in ("up", "down") else None,
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
