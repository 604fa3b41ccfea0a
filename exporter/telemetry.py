"""The Python API the platform's services call to record syncs, savings, resources, cost and health."""
from __future__ import annotations

import threading
import time
from typing import Callable

from prometheus_client.registry import REGISTRY, CollectorRegistry

from exporter import checks
from exporter.catalog import BY_NAME, MetricSpec
from exporter.fleet_collector import FleetCollector
from exporter.host_collector import HostCollector
from exporter.retired import DEFAULT_RETIRED_TTL_SECONDS, RETIRED, RetiredMarks
from exporter.server import MetricsServer
from exporter.store import SeriesStore

SYNC_LATENCY = BY_NAME["dumont_sync_latency_seconds"]
SYNC_BYTES = BY_NAME["dumont_sync_bytes_total"]
SYNC_FILES = BY_NAME["dumont_sync_files_total"]
SYNC_LAST_SUCCESS = BY_NAME["dumont_sync_last_success_timestamp"]
CPU = BY_NAME["dumont_cpu_usage_percent"]
MEMORY_USED = BY_NAME["dumont_memory_usage_bytes"]
MEMORY_TOTAL = BY_NAME["dumont_memory_total_bytes"]
DISK_USED = BY_NAME["dumont_disk_usage_bytes"]
DISK_TOTAL = BY_NAME["dumont_disk_total_bytes"]
COST = BY_NAME["dumont_cost_hourly_usd"]
SAVINGS = BY_NAME["dumont_savings_total_usd"]
TRANSFER = BY_NAME["dumont_transfer_bytes_total"]
UPTIME = BY_NAME["dumont_machine_uptime_seconds"]
FAILOVERS = BY_NAME["dumont_failovers_total"]
DOWNTIME_AVOIDED = BY_NAME["dumont_downtime_avoided_seconds"]
HEALTH = BY_NAME["dumont_health_status"]
ALERTS_ACTIVE = BY_NAME["dumont_alerts_active"]

DEFAULT_DIRECTION = "gpu_to_cpu"


class Telemetry:
    """Records the dumont_* families; every method checks all its arguments before recording anything."""

    def __init__(self, registry: CollectorRegistry | None = REGISTRY, host: HostCollector | None = None,
                 clock: Callable[[], float] = time.time, retired_ttl: float = DEFAULT_RETIRED_TTL_SECONDS):
        """`retired_ttl`: seconds a retired machine's mark stays; it must outlast the rules' vanish window."""
        ttl = checks.number("retired_ttl", retired_ttl)
        if ttl == 0:
            raise ValueError("retired_ttl must be > 0, got 0")
        self._store = SeriesStore()
        self._retired = RetiredMarks(self._store, ttl)
        self._clock = clock
        self.registry = registry
        self.collector = FleetCollector(self._store, host, prune=self._expire_retired)
        if registry is not None:
            registry.register(self.collector)

    def start_server(self, port: int, addr: str = "0.0.0.0") -> MetricsServer:
        """Serve this registry's /metrics on addr:port (prometheus_client's default address)."""
        return MetricsServer(self.registry if self.registry is not None else self.collector, port, addr)

    def record_sync(self, machine_id: str, latency_seconds: float, bytes_transferred: float = 0,
                    files_count: float = 0, direction: str = DEFAULT_DIRECTION, success: bool = True) -> None:
        """Record one sync; a successful one also observes its latency and moves the last-success time.

        A failed one on a machine with no success yet starts the last-success clock at now: otherwise a
        machine whose syncs fail from the start would have no series, and SyncStopped could never fire.
        """
        checks.text("machine_id", machine_id)
        latency = checks.number("latency_seconds", latency_seconds)
        moved = checks.number("bytes_transferred", bytes_transferred)
        files = checks.number("files_count", files_count)
        checks.text("direction", direction)
        if not isinstance(success, bool):
            raise ValueError(f"success must be True or False, got {success!r}")
        now = self._clock()
        bytes_key = _key(SYNC_BYTES, machine_id=machine_id, direction=direction)
        latency_key = _key(SYNC_LATENCY, machine_id=machine_id, direction=direction)
        with self._store.lock:
            self._retired.clear(machine_id)
            # A failed attempt still moved its bytes over the wire, but it completed nothing: its latency
            # would blur the histogram of finished syncs, and the last success must not move.
            self._store.inc(SYNC_BYTES.name, bytes_key, moved)
            self._store.inc(SYNC_FILES.name, _key(SYNC_FILES, machine_id=machine_id), files)
            last_success_key = _key(SYNC_LAST_SUCCESS, machine_id=machine_id)
            if success:
                self._store.observe(SYNC_LATENCY.name, latency_key, latency)
                self._store.set(SYNC_LAST_SUCCESS.name, last_success_key, now)
            else:
                self._store.set_if_absent(SYNC_LAST_SUCCESS.name, last_success_key, now)

    def set_last_sync_success(self, machine_id: str, timestamp: float) -> None:
        """Set the Unix time of a machine's last successful sync (e.g. one known from before a restart)."""
        checks.text("machine_id", machine_id)
        value = checks.number("timestamp", timestamp)
        with self._store.lock:
            self._retired.clear(machine_id)
            self._store.set(SYNC_LAST_SUCCESS.name, _key(SYNC_LAST_SUCCESS, machine_id=machine_id), value)

    def record_savings(self, category: str, amount_usd: float) -> None:
        """Add money saved in a category (e.g. 'transfer'), in US dollars."""
        checks.text("category", category)
        amount = checks.number("amount_usd", amount_usd)
        with self._store.lock:
            self._store.inc(SAVINGS.name, _key(SAVINGS, category=category), amount)

    def set_cpu_usage(self, machine_id: str, machine_type: str, percent: float) -> None:
        """Set a machine's CPU usage, 0 to 100."""
        key = _key(CPU, **_machine(machine_id, machine_type))
        value = checks.number("percent", percent, 0, 100)
        with self._store.lock:
            self._retired.clear(machine_id)
            self._store.set(CPU.name, key, value)

    def set_memory(self, machine_id: str, machine_type: str, used_bytes: float, total_bytes: float) -> None:
        """Set a machine's memory in use and installed, in bytes (used may not exceed total)."""
        key = _key(MEMORY_USED, **_machine(machine_id, machine_type))
        used = checks.number("used_bytes", used_bytes)
        total = checks.number("total_bytes", total_bytes)
        checks.not_above("used_bytes", used, "total_bytes", total)
        with self._store.lock:
            self._retired.clear(machine_id)
            self._store.set(MEMORY_USED.name, key, used)
            self._store.set(MEMORY_TOTAL.name, key, total)

    def set_disk(self, machine_id: str, machine_type: str, mount: str, used_bytes: float,
                 total_bytes: float) -> None:
        """Set the space used and the size of one mount of a machine, in bytes (used may not exceed total)."""
        checks.text("mount", mount)
        key = _key(DISK_USED, mount=mount, **_machine(machine_id, machine_type))
        used = checks.number("used_bytes", used_bytes)
        total = checks.number("total_bytes", total_bytes)
        checks.not_above("used_bytes", used, "total_bytes", total)
        with self._store.lock:
            self._retired.clear(machine_id)
            self._store.set(DISK_USED.name, key, used)
            self._store.set(DISK_TOTAL.name, key, total)

    def set_cost(self, machine_id: str, machine_type: str, provider: str, hourly_usd: float) -> None:
        """Set what a machine costs per hour at its provider, in US dollars."""
        checks.text("provider", provider)
        key = _key(COST, provider=provider, **_machine(machine_id, machine_type))
        value = checks.number("hourly_usd", hourly_usd)
        with self._store.lock:
            self._retired.clear(machine_id)
            self._store.set(COST.name, key, value)

    def set_uptime(self, machine_id: str, machine_type: str, seconds: float) -> None:
        """Set the seconds since a machine came up; 0 when it is down."""
        key = _key(UPTIME, **_machine(machine_id, machine_type))
        value = checks.number("seconds", seconds)
        with self._store.lock:
            self._retired.clear(machine_id)
            self._store.set(UPTIME.name, key, value)

    def record_failover(self, from_type: str, to_type: str, reason: str, count: int = 1) -> None:
        """Count `count` failovers between machine types (0 creates the series, so increase() sees the first)."""
        key = _key(FAILOVERS, from_type=checks.text("from_type", from_type),
                   to_type=checks.text("to_type", to_type), reason=checks.text("reason", reason))
        amount = checks.whole("count", count)
        with self._store.lock:
            self._store.inc(FAILOVERS.name, key, amount)

    def record_downtime_avoided(self, machine_id: str, seconds: float) -> None:
        """Add downtime a failover avoided for a machine, in seconds."""
        checks.text("machine_id", machine_id)
        value = checks.number("seconds", seconds)
        with self._store.lock:
            self._retired.clear(machine_id)
            self._store.inc(DOWNTIME_AVOIDED.name, _key(DOWNTIME_AVOIDED, machine_id=machine_id), value)

    def record_transfer(self, from_region: str, to_region: str, bytes_transferred: float) -> None:
        """Add bytes transferred from one region to another."""
        key = _key(TRANSFER, from_region=checks.text("from_region", from_region),
                   to_region=checks.text("to_region", to_region))
        value = checks.number("bytes_transferred", bytes_transferred)
        with self._store.lock:
            self._store.inc(TRANSFER.name, key, value)

    def set_health(self, component: str, health: float) -> None:
        """Set a component's health: 1 healthy, 0 down, in between degraded."""
        checks.text("component", component)
        value = checks.number("health", health, 0, 1)
        with self._store.lock:
            self._store.set(HEALTH.name, _key(HEALTH, component=component), value)

    def set_alerts_active(self, severity: str, count: float) -> None:
        """Set how many alerts of a severity are firing now."""
        checks.text("severity", severity)
        value = checks.number("count", count)
        with self._store.lock:
            self._store.set(ALERTS_ACTIVE.name, _key(ALERTS_ACTIVE, severity=severity), value)

    def remove_machine(self, machine_id: str) -> None:
        """Forget every series of a machine: it stopped reporting without a word (the rules page: MachineVanished).

        A retired machine keeps its mark until the mark expires: removing a machine after retiring it must
        not turn its retirement into a page.
        """
        checks.text("machine_id", machine_id)
        with self._store.lock:
            self._store.remove_where("machine_id", machine_id, keep=frozenset({RETIRED.name}))

    def retire_machine(self, machine_id: str, machine_type: str) -> None:
        """Take a machine out of the fleet on purpose: forget its series and mark it retired, so nothing pages.

        The mark, `dumont_machine_retired{machine_type, machine_id}` = now, goes `retired_ttl` seconds later or
        as soon as anything is recorded for the machine again (it came back).
        """
        labels = _machine(machine_id, machine_type)
        with self._store.lock:
            self._store.remove_where("machine_id", labels["machine_id"])
            self._retired.mark(labels["machine_id"], labels["machine_type"], self._clock())

    def _expire_retired(self) -> None:
        with self._store.lock:
            self._retired.expire(self._clock())

    def remove_component(self, component: str) -> None:
        """Forget a component's health (it no longer exists)."""
        checks.text("component", component)
        with self._store.lock:
            self._store.remove_where("component", component)


def _machine(machine_id: str, machine_type: str) -> dict[str, str]:
    return {"machine_id": checks.text("machine_id", machine_id),
            "machine_type": checks.text("machine_type", machine_type)}


def _key(spec: MetricSpec, **labels: str) -> tuple[str, ...]:
    # Store keys follow the catalog's label order, whatever order the caller names them in.
    return tuple(labels[name] for name in spec.labels)


_shared: Telemetry | None = None
_shared_lock = threading.Lock()


def get_telemetry() -> Telemetry:
    """The process's shared Telemetry on prometheus_client's default registry, created on first call."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Telemetry()
        return _shared
