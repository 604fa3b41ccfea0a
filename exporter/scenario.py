"""A simulation scenario as the simulator plays it (docs/architecture.md section 5): fleet and phases."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from exporter.durations import parse_duration as prometheus_duration

GIB = 1024 ** 3
DEFAULT_TICK_SECONDS = 1.0
DEFAULT_MOUNTS = ("/",)
DEFAULT_STANDBY_TYPE = "cpu"   # what a machine fails over to, unless its definition names a standby_type
FAILOVER_REASON = "scenario"
# Every machine field with its default, used where neither "*" nor the machine's entry ever set it.
MACHINE_DEFAULTS = {
    "sync_latency_seconds": 1.0,
    "sync_ok": True,
    "sync_bytes": 0.0,          # bytes (and files) each successful sync moves; an extension of the contract
    "sync_files": 0.0,
    "disk_used_ratio": 0.0,
    "memory_used_ratio": 0.0,
    "cpu_percent": 0.0,
    "cost_hourly_usd": 0.0,
    "up": True,
    "reporting": True,          # false: the machine falls silent, none of its series is exported
    "retired": False,           # true: retired on purpose (retire_machine); wins over reporting
    "failovers_per_minute": 0.0,  # failovers from this machine's type to its standby_type
    "disk_total_bytes": 1e12,
    "memory_total_bytes": 64.0 * GIB,
}
DEFAULT_HEALTH = 1.0          # a component no phase names is healthy
SECONDS_PER_HOUR = 3600.0     # savings rates are US dollars per hour


@dataclass(frozen=True)
class Machine:
    """A machine of the fleet and what labels it carries."""

    machine_id: str
    type: str
    provider: str
    mounts: tuple[str, ...]
    standby_type: str = DEFAULT_STANDBY_TYPE


@dataclass(frozen=True)
class Phase:
    """One phase with machine values, component health and savings rates resolved (carry-over and "*" applied)."""

    name: str
    duration: float | None
    machines: dict[str, dict[str, float | bool]]
    components: dict[str, float]
    savings: dict[str, float] = field(default_factory=dict)   # category -> US dollars saved per hour


@dataclass(frozen=True)
class Scenario:
    """A checked scenario: tick in seconds, whether it loops, the fleet and its phases."""

    path: str
    tick: float
    loop: bool
    machines: dict[str, Machine]
    components: tuple[str, ...]
    phases: tuple[Phase, ...]

    def phase_at(self, elapsed: float) -> Phase:
        """The phase playing `elapsed` seconds after the scenario started."""
        durations = [phase.duration for phase in self.phases]
        if self.loop and None not in durations:
            elapsed %= sum(durations)
        for phase in self.phases[:-1]:
            if elapsed < phase.duration:
                return phase
            elapsed -= phase.duration
        return self.phases[-1]


def parse_duration(value: object) -> float | None:
    """Seconds in a Prometheus duration (`500ms`, `1s`, `2m30s`) or a plain number; None if neither."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) else None
    return prometheus_duration(value)

