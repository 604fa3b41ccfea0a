"""Plays a fleet from a scenario file into a Telemetry, re-reading the file whenever it changes."""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Callable

from exporter.pacing import Pacer
from exporter.scenario import FAILOVER_REASON, SECONDS_PER_HOUR, Machine, Phase, Scenario
from exporter.scenario_file import load_scenario
from exporter.telemetry import Telemetry

log = logging.getLogger(__name__)

# What a machine does in a phase: it reports, it fell silent without a word, or it was retired on purpose.
REPORTING, SILENT, RETIRED = "reporting", "silent", "retired"


def one_line(error: Exception) -> str:
    """An error's message on one log line (a scenario error lists one problem a line)."""
    return "; ".join(str(error).splitlines())


def _file_signature(path: str) -> tuple[int, int, int] | None:
    # The inode catches an atomic rename even when mtime and size happen to match the old file.
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


class Simulation:
    """A scenario played against wall-clock time: `step()` applies the current phase once."""

    def __init__(self, path: str, telemetry: Telemetry, clock: Callable[[], float] = time.time):
        self.path = str(path)
        self._telemetry = telemetry
        self._clock = clock
        self._signature = _file_signature(self.path)
        self._up_since: dict[str, float] = {}
        self._synced_at: dict[str, float] = {}     # last successful sync, restored when a machine comes back
        self._presence: dict[str, str] = {}        # absent: not applied yet since it joined
        self._failovers = Pacer()
        self._last_step: float | None = None
        self.scenario: Scenario = load_scenario(self.path)
        self._started = clock()
        self._adopt(None, self.scenario)
        log.info("scenario loaded: %s (%d machines, %d phases)", self.path, len(self.scenario.machines),
                 len(self.scenario.phases))

    def run(self, stop: threading.Event) -> None:
        """Apply a tick now and then every `tick` seconds until `stop` is set."""
        self.step()
        while not stop.wait(self.scenario.tick):
            self.step()

    def step(self) -> Phase:
        """Reload the file if it changed, then apply the phase playing now; returns that phase."""
        self._reload_if_changed()
        now = self._clock()
        phase = self.scenario.phase_at(now - self._started)
        self._apply(phase, now)
        return phase

    def _reload_if_changed(self) -> None:
        signature = _file_signature(self.path)
        if signature == self._signature:
            return
        # Remember the new signature even if the file is bad, so a broken file is reported once.
        self._signature = signature
        try:
            scenario = load_scenario(self.path)
        except ValueError as error:
            log.error("scenario rejected, keeping the previous one: %s", one_line(error))
            return
        previous, self.scenario = self.scenario, scenario
        self._started = self._clock()
        self._adopt(previous, scenario)
        log.info("scenario reloaded: %s (%d machines, %d phases)", self.path, len(scenario.machines),
                 len(scenario.phases))

    def _adopt(self, previous: Scenario | None, scenario: Scenario) -> None:
        """Forget what the new scenario changed or dropped; start new machines' last sync and new counters at load."""
        now = self._clock()
        kept = set()
        if previous is not None:
            for machine_id, machine in previous.machines.items():
                if scenario.machines.get(machine_id) == machine:
                    kept.add(machine_id)
                else:
                    self._telemetry.remove_machine(machine_id)
                    for per_machine in (self._up_since, self._synced_at, self._presence):
                        per_machine.pop(machine_id, None)
                    self._failovers.forget(machine_id)
            for component in set(previous.components) - set(scenario.components):
                self._telemetry.remove_component(component)
        for machine_id in scenario.machines.keys() - kept:
            # As if the last sync succeeded at load time, so a machine that never syncs ages from here; it is
            # recorded when the machine first reports, so one silent from the start exports nothing.
            self._synced_at[machine_id] = now
        for machine in scenario.machines.values():
            if any(phase.machines[machine.machine_id]["failovers_per_minute"] for phase in scenario.phases):
                # The counter exists at 0 before the first failover, so Prometheus' increase() counts that one.
                self._telemetry.record_failover(machine.type, machine.standby_type, FAILOVER_REASON, count=0)
        for category in {category for phase in scenario.phases for category in phase.savings}:
            # Likewise every savings counter some phase names, even at rate 0 or only in a later phase.
            self._telemetry.record_savings(category, 0)

    def _enter(self, machine_id: str, presence: str) -> bool:
        """Move a machine to `presence` (retiring or silencing it on the way); True if it reports this tick."""
        previous = self._presence.get(machine_id)
        self._presence[machine_id] = presence
        if presence == previous:
            return presence == REPORTING
        if presence == REPORTING:
            # Back (or new): like a restarted agent, it restores its last known success before reporting.
            self._telemetry.set_last_sync_success(machine_id, self._synced_at[machine_id])
            return True
        self._up_since.pop(machine_id, None)   # when it comes back, it has booted again
        if presence == RETIRED:
            self._telemetry.retire_machine(machine_id, self.scenario.machines[machine_id].type)
        else:
            self._telemetry.remove_machine(machine_id)
        return False

    def _apply(self, phase: Phase, now: float) -> None:
        # The clock may step back: no time passed then, and nothing is owed.
        elapsed = 0.0 if self._last_step is None else max(0.0, now - self._last_step)
        self._last_step = now
        for machine_id, machine in self.scenario.machines.items():
            values = phase.machines[machine_id]
            # The control plane counts failovers, not the machine: they go on while it is silent or retired.
            due = self._failovers.due(machine_id, values["failovers_per_minute"], elapsed)
            if due:
                self._telemetry.record_failover(machine.type, machine.standby_type, FAILOVER_REASON, count=due)
            presence = RETIRED if values["retired"] else REPORTING if values["reporting"] else SILENT
            if self._enter(machine_id, presence):
                self._report(machine, values, now)
        for component, health in phase.components.items():
            self._telemetry.set_health(component, health)
        for category, rate in phase.savings.items():
            self._telemetry.record_savings(category, rate * elapsed / SECONDS_PER_HOUR)

    def _report(self, machine: Machine, values: dict, now: float) -> None:
        telemetry = self._telemetry
        machine_id, kind = machine.machine_id, machine.type
        telemetry.set_cpu_usage(machine_id, kind, values["cpu_percent"])
        memory_total = values["memory_total_bytes"]
        telemetry.set_memory(machine_id, kind, values["memory_used_ratio"] * memory_total, memory_total)
        disk_total = values["disk_total_bytes"]
        for mount in machine.mounts:
            telemetry.set_disk(machine_id, kind, mount, values["disk_used_ratio"] * disk_total, disk_total)
        telemetry.set_cost(machine_id, kind, machine.provider, values["cost_hourly_usd"])
        if values["up"]:
            up_since = self._up_since.setdefault(machine_id, now)
            telemetry.set_uptime(machine_id, kind, max(0.0, now - up_since))  # the clock may step back
        else:
            self._up_since.pop(machine_id, None)
            telemetry.set_uptime(machine_id, kind, 0)
        if values["sync_ok"]:
            telemetry.record_sync(machine_id, values["sync_latency_seconds"], values["sync_bytes"],
                                  values["sync_files"])
            self._synced_at[machine_id] = now
