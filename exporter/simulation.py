"""Plays a fleet from a scenario file into a Telemetry, re-reading the file whenever it changes."""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Callable

from exporter.scenario import Phase, Scenario
from exporter.scenario_file import load_scenario
from exporter.telemetry import Telemetry

log = logging.getLogger(__name__)


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
        """Forget what the new scenario changed or dropped; start new machines' last sync at load time."""
        now = self._clock()
        kept = set()
        if previous is not None:
            for machine_id, machine in previous.machines.items():
                if scenario.machines.get(machine_id) == machine:
                    kept.add(machine_id)
                else:
                    self._telemetry.remove_machine(machine_id)
                    self._up_since.pop(machine_id, None)
            for component in set(previous.components) - set(scenario.components):
                self._telemetry.remove_component(component)
        for machine_id in scenario.machines.keys() - kept:
            # As if the last sync succeeded at load time, so a machine that never syncs ages from here.
            self._telemetry.set_last_sync_success(machine_id, now)

    def _apply(self, phase: Phase, now: float) -> None:
        telemetry = self._telemetry
        for machine_id, machine in self.scenario.machines.items():
            values = phase.machines[machine_id]
            kind = machine.type
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
        for component, health in phase.components.items():
            telemetry.set_health(component, health)
