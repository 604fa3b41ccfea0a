"""The simulator plays machines that fall silent, are retired on purpose, come back, and fail over at a rate."""
from __future__ import annotations

import pytest

from exporter.simulation import Simulation
from exporter.telemetry import Telemetry
from tests.exporter.helpers import write_atomically
from tests.exporter.scenarios import failovers, lifecycle

GPU_1 = {"machine_type": "gpu", "machine_id": "gpu-1"}
GPU_2 = {"machine_type": "gpu", "machine_id": "gpu-2"}
CPU_1 = {"machine_type": "cpu", "machine_id": "cpu-1"}
GPU_FAILOVERS = {"from_type": "gpu", "to_type": "cpu", "reason": "scenario"}


@pytest.fixture
def scenario_path(tmp_path):
    path = tmp_path / "scenario.yml"
    path.write_text(lifecycle(), encoding="utf-8")
    return path


def _simulation(registry, clock, scenario_path, **telemetry_options) -> Simulation:
    return Simulation(scenario_path, Telemetry(registry=registry, clock=clock, **telemetry_options), clock=clock)


def _play(simulation, clock, until: float, tick: float = 1.0) -> None:
    """Step every `tick` seconds of the injected clock up to `until` (included)."""
    while clock.now + tick <= until:
        clock.now += tick
        simulation.step()


def _series_of(registry, machine_id: str) -> set[str]:
    return {s.name for family in registry.collect() for s in family.samples
            if s.labels.get("machine_id") == machine_id}


def test_a_silent_machine_exports_nothing_and_is_not_marked(registry, clock, scenario_path):
    simulation = _simulation(registry, clock, scenario_path)
    start = clock.now
    simulation.step()
    assert "dumont_machine_uptime_seconds" in _series_of(registry, "gpu-1")
    _play(simulation, clock, start + 61)
    assert simulation.step().name == "gpu-1 falls silent, gpu-2 is retired"
    assert _series_of(registry, "gpu-1") == set()
    _play(simulation, clock, start + 90)
    assert _series_of(registry, "gpu-1") == set()                              # silent for the whole phase
    assert registry.get_sample_value("dumont_machine_uptime_seconds", CPU_1) == 90   # the others report on


def test_a_silent_machine_comes_back_rebooted_with_its_series(registry, clock, scenario_path):
    simulation = _simulation(registry, clock, scenario_path)
    start = clock.now
    simulation.step()
    _play(simulation, clock, start + 120)
    assert simulation.scenario.phase_at(clock.now - start).name == "both come back"
    assert registry.get_sample_value("dumont_machine_uptime_seconds", GPU_1) == 0   # booted again
    assert registry.get_sample_value("dumont_cpu_usage_percent", GPU_1) == 30
    assert registry.get_sample_value("dumont_sync_last_success_timestamp", {"machine_id": "gpu-1"}) == clock.now
    _play(simulation, clock, start + 130)
    assert registry.get_sample_value("dumont_machine_uptime_seconds", GPU_1) == 10
    assert registry.get_sample_value("dumont_machine_uptime_seconds", CPU_1) == 130


def test_a_machine_back_without_syncing_keeps_its_last_success_from_before(registry, clock, scenario_path):
    # SyncStopped must still see how long ago the last sync succeeded, not a fresh series starting now.
    write_atomically(scenario_path, lifecycle().replace("gpu-1: {reporting: true}",
                                                        "gpu-1: {reporting: true, sync_ok: false}"))
    simulation = _simulation(registry, clock, scenario_path)
    start = clock.now
    simulation.step()
    _play(simulation, clock, start + 59)
    last_sync = clock.now                 # the last tick of "healthy"
    _play(simulation, clock, start + 125)
    assert registry.get_sample_value("dumont_sync_last_success_timestamp", {"machine_id": "gpu-1"}) == last_sync
    assert registry.get_sample_value("dumont_machine_uptime_seconds", GPU_1) == 5   # back since 120 s


def test_a_retired_machine_loses_its_series_and_keeps_its_mark(registry, clock, scenario_path):
    simulation = _simulation(registry, clock, scenario_path)
    start = clock.now
    simulation.step()
    _play(simulation, clock, start + 59)
    clock.now = retired_at = start + 60.5
    simulation.step()
    assert _series_of(registry, "gpu-2") == {"dumont_machine_retired"}
    assert registry.get_sample_value("dumont_machine_retired", GPU_2) == retired_at
    _play(simulation, clock, start + 119)
    assert registry.get_sample_value("dumont_machine_retired", GPU_2) == retired_at   # marked once, not each tick
    assert registry.get_sample_value("dumont_machine_retired", GPU_1) is None          # silent is not retired


def test_a_retired_machine_that_comes_back_loses_its_mark(registry, clock, scenario_path):
    simulation = _simulation(registry, clock, scenario_path)
    start = clock.now
    simulation.step()
    _play(simulation, clock, start + 120)
    assert registry.get_sample_value("dumont_machine_retired", GPU_2) is None
    assert registry.get_sample_value("dumont_machine_uptime_seconds", GPU_2) == 0
    assert registry.get_sample_value("dumont_cpu_usage_percent", GPU_2) == 30


def test_the_retired_mark_expires_while_the_machine_stays_retired(registry, clock, scenario_path):
    write_atomically(scenario_path, lifecycle().replace("gpu-2: {retired: false}", "gpu-2: {}"))
    simulation = _simulation(registry, clock, scenario_path, retired_ttl=600)
    start = clock.now
    simulation.step()
    clock.now = retired_at = start + 61
    simulation.step()
    _play(simulation, clock, retired_at + 599, tick=10)
    assert registry.get_sample_value("dumont_machine_retired", GPU_2) == retired_at
    _play(simulation, clock, retired_at + 601, tick=1)
    assert _series_of(registry, "gpu-2") == set()


def test_retired_wins_over_reporting(registry, clock, scenario_path):
    write_atomically(scenario_path, lifecycle().replace("gpu-2: {retired: true}",
                                                        "gpu-2: {retired: true, reporting: true}"))
    simulation = _simulation(registry, clock, scenario_path)
    clock.now += 61
    simulation.step()
    assert _series_of(registry, "gpu-2") == {"dumont_machine_retired"}


def test_a_machine_silent_or_retired_from_the_start_never_exports_a_series(registry, clock, scenario_path):
    write_atomically(scenario_path, lifecycle().replace('"*": {sync_latency_seconds: 2, cpu_percent: 30}',
                                                        '"*": {cpu_percent: 30}\n      gpu-1: {reporting: false}\n'
                                                        '      gpu-2: {retired: true}'))
    simulation = _simulation(registry, clock, scenario_path)
    list(registry.collect())            # a scrape between loading and the first tick
    assert _series_of(registry, "gpu-1") == set() and _series_of(registry, "gpu-2") == set()
    simulation.step()
    assert _series_of(registry, "gpu-1") == set()
    assert _series_of(registry, "gpu-2") == {"dumont_machine_retired"}


def test_reloading_keeps_a_silent_machine_silent_and_a_retired_one_marked_once(registry, clock, scenario_path):
    simulation = _simulation(registry, clock, scenario_path)
    start = clock.now
    simulation.step()
    clock.now = retired_at = start + 61
    simulation.step()
    # The phase clock restarts at a reload; this "healthy" keeps gpu-1 silent and gpu-2 retired.
    text = lifecycle().replace('"*": {sync_latency_seconds: 2, cpu_percent: 30}',
                               '"*": {cpu_percent: 40}\n      gpu-1: {reporting: false}\n      gpu-2: {retired: true}')
    write_atomically(scenario_path, text)
    clock.now += 5
    simulation.step()
    assert _series_of(registry, "gpu-1") == set()
    assert registry.get_sample_value("dumont_machine_retired", GPU_2) == retired_at
    assert registry.get_sample_value("dumont_cpu_usage_percent", CPU_1) == 40


def test_failovers_follow_the_rate_from_a_counter_created_at_zero(registry, clock, scenario_path):
    write_atomically(scenario_path, failovers(rate=6))
    simulation = _simulation(registry, clock, scenario_path)
    count = lambda: registry.get_sample_value("dumont_failovers_total", GPU_FAILOVERS)  # noqa: E731
    assert count() == 0                       # before the first failover, so increase() counts that one
    start = clock.now
    simulation.step()
    _play(simulation, clock, start + 9)
    assert count() == 0
    _play(simulation, clock, start + 10)
    assert count() == 1                       # one every 10 s
    _play(simulation, clock, start + 60)
    assert count() == 6
    _play(simulation, clock, start + 120)
    assert count() == 12
    _play(simulation, clock, start + 180)
    assert count() == 18                      # the control plane records them while gpu-1 is silent
    _play(simulation, clock, start + 600)
    assert count() == 18                      # "calm": rate 0


def test_a_fractional_rate_carries_over_between_ticks_and_big_steps(registry, clock, scenario_path):
    write_atomically(scenario_path, failovers(rate=1.5))
    simulation = _simulation(registry, clock, scenario_path)
    start = clock.now
    simulation.step()
    _play(simulation, clock, start + 60, tick=0.1)
    assert registry.get_sample_value("dumont_failovers_total", GPU_FAILOVERS) == 1
    clock.now = start + 120                   # one late tick owes the whole minute at once
    simulation.step()
    assert registry.get_sample_value("dumont_failovers_total", GPU_FAILOVERS) == 3


def test_failovers_go_to_the_machines_standby_type(registry, clock, scenario_path):
    write_atomically(scenario_path, failovers(rate=60).replace("gpu-1: {type: gpu, provider: vast}",
                                                               "gpu-1: {type: gpu, provider: vast, standby_type: tpu}"))
    simulation = _simulation(registry, clock, scenario_path)
    simulation.step()
    clock.now += 1
    simulation.step()
    assert registry.get_sample_value("dumont_failovers_total", {**GPU_FAILOVERS, "to_type": "tpu"}) == 1
    assert registry.get_sample_value("dumont_failovers_total", GPU_FAILOVERS) is None


def test_no_failover_series_without_a_rate(registry, clock, scenario_path):
    simulation = _simulation(registry, clock, scenario_path)
    clock.now += 60
    simulation.step()
    assert [s for family in registry.collect() for s in family.samples if s.name == "dumont_failovers_total"] == []
