"""The fleet simulator: phases over time, sync and uptime rules, and reloads of the scenario file."""
from __future__ import annotations

import logging
import threading
import time

import pytest
import yaml

from exporter.scenario import GIB
from exporter.simulation import Simulation
from exporter.telemetry import Telemetry
from tests.exporter.helpers import write_atomically
from tests.exporter.scenarios import fleet

GPU = {"machine_type": "gpu", "machine_id": "gpu-1"}
CPU = {"machine_type": "cpu", "machine_id": "cpu-1"}
GPU_SYNC = {"machine_id": "gpu-1", "direction": "gpu_to_cpu"}
SAVINGS = "dumont_savings_total_usd_total"


@pytest.fixture
def scenario_path(tmp_path):
    path = tmp_path / "scenario.yml"
    path.write_text(fleet(), encoding="utf-8")
    return path


@pytest.fixture
def simulation(registry, clock, scenario_path):
    return Simulation(scenario_path, Telemetry(registry=registry, clock=clock), clock=clock)


def test_first_phase_sets_every_family(registry, simulation):
    assert simulation.step().name == "healthy"
    value = registry.get_sample_value
    assert value("dumont_cpu_usage_percent", GPU) == 30
    assert value("dumont_memory_usage_bytes", GPU) == 0.5 * 64 * GIB
    assert value("dumont_memory_total_bytes", GPU) == 64 * GIB
    for mount in ("/", "/data"):
        assert value("dumont_disk_usage_bytes", {**GPU, "mount": mount}) == 0.4e12
        assert value("dumont_disk_total_bytes", {**GPU, "mount": mount}) == 1e12
    assert value("dumont_disk_usage_bytes", {**CPU, "mount": "/"}) == 0.4e12
    assert value("dumont_cost_hourly_usd", {**CPU, "provider": "gcp"}) == 0.5
    assert value("dumont_machine_uptime_seconds", GPU) == 0
    assert value("dumont_health_status", {"component": "sync"}) == 1.0
    assert value("dumont_sync_latency_seconds_count", GPU_SYNC) == 1
    assert value("dumont_sync_latency_seconds_sum", GPU_SYNC) == 2


def test_phases_follow_the_clock(registry, simulation, clock):
    start = clock.now
    simulation.step()
    clock.now = start + 61
    assert simulation.step().name == "disk fills"
    value = registry.get_sample_value
    assert value("dumont_disk_usage_bytes", {**GPU, "mount": "/data"}) == 0.95e12
    assert value("dumont_disk_usage_bytes", {**CPU, "mount": "/"}) == 0.4e12
    assert value("dumont_machine_uptime_seconds", GPU) == 61
    assert value("dumont_sync_last_success_timestamp", {"machine_id": "gpu-1"}) == clock.now
    assert value("dumont_sync_latency_seconds_count", GPU_SYNC) == 2  # one sync per tick

    last_sync = clock.now
    clock.now = start + 125
    assert simulation.step().name == "outage"
    assert value("dumont_machine_uptime_seconds", GPU) == 0          # down
    assert value("dumont_machine_uptime_seconds", CPU) == 125        # still up
    assert value("dumont_sync_last_success_timestamp", {"machine_id": "gpu-1"}) == last_sync
    assert value("dumont_sync_latency_seconds_count", GPU_SYNC) == 2  # sync_ok false: nothing observed
    assert value("dumont_health_status", {"component": "sync"}) == 0


def test_uptime_restarts_when_a_machine_comes_back(registry, simulation, clock, scenario_path):
    start = clock.now
    simulation.step()
    clock.now = start + 130
    simulation.step()  # outage: gpu-1 down
    write_atomically(scenario_path, fleet().replace("up: false", "up: true"))
    clock.now = start + 140
    simulation.step()  # reloaded: the clock restarts in "healthy", gpu-1 up again
    clock.now = start + 150
    simulation.step()
    assert registry.get_sample_value("dumont_machine_uptime_seconds", GPU) == 10


def test_sync_stopped_from_the_start_keeps_the_load_time(registry, clock, scenario_path):
    write_atomically(scenario_path, fleet().replace("sync_ok: true", "sync_ok: false"))
    loaded_at = clock.now
    simulation = Simulation(scenario_path, Telemetry(registry=registry, clock=clock), clock=clock)
    for _ in range(3):
        clock.now += 10
        simulation.step()
    assert registry.get_sample_value("dumont_sync_last_success_timestamp", {"machine_id": "gpu-1"}) == loaded_at
    assert registry.get_sample_value("dumont_sync_latency_seconds_count", GPU_SYNC) is None


def test_rewrite_reloads_and_restarts_the_phase_clock(registry, simulation, clock, scenario_path, caplog):
    start = clock.now
    simulation.step()
    clock.now = start + 61
    assert simulation.step().name == "disk fills"
    write_atomically(scenario_path, fleet().replace("cpu_percent: 30", "cpu_percent: 85"))
    clock.now = start + 62
    with caplog.at_level(logging.INFO, logger="exporter.simulation"):
        assert simulation.step().name == "healthy"
    assert registry.get_sample_value("dumont_cpu_usage_percent", GPU) == 85
    assert f"scenario reloaded: {scenario_path}" in caplog.text


def test_bad_rewrite_is_logged_and_the_old_scenario_kept(registry, simulation, clock, scenario_path, caplog):
    simulation.step()
    write_atomically(scenario_path, fleet().replace("cpu_percent: 30", "cpu_percent: 300"))
    with caplog.at_level(logging.INFO, logger="exporter.simulation"):
        simulation.step()
        simulation.step()  # the same bad file is reported once
    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(errors) == 1
    assert f"{scenario_path}: phases[0].machines.*.cpu_percent" in errors[0].getMessage()
    assert registry.get_sample_value("dumont_cpu_usage_percent", GPU) == 30
    write_atomically(scenario_path, fleet().replace("cpu_percent: 30", "cpu_percent: 31"))
    simulation.step()
    assert registry.get_sample_value("dumont_cpu_usage_percent", GPU) == 31


def test_reload_forgets_machines_that_left(registry, simulation, scenario_path):
    simulation.step()
    text = fleet().replace('  cpu-1: {type: cpu, provider: gcp}\n', "").replace("      cpu-1: {up: true}\n", "")
    write_atomically(scenario_path, text)
    simulation.step()
    machine_ids = {s.labels["machine_id"] for family in registry.collect() for s in family.samples
                   if "machine_id" in s.labels}
    assert machine_ids == {"gpu-1"}


def test_run_stops_when_asked(registry, scenario_path):
    simulation = Simulation(scenario_path, Telemetry(registry=registry))
    stop = threading.Event()
    runner = threading.Thread(target=simulation.run, args=(stop,))
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while registry.get_sample_value("dumont_sync_latency_seconds_count", GPU_SYNC) is None:
            assert time.monotonic() < deadline, "the simulation applied no tick"
            time.sleep(0.05)
    finally:
        stop.set()
        runner.join(10)
    assert not runner.is_alive()


def test_a_bad_file_at_start_raises(tmp_path, registry):
    path = tmp_path / "bad.yml"
    path.write_text("machines: {}\nphases: []\n")
    with pytest.raises(ValueError, match=rf"^{path}: machines"):
        Simulation(path, Telemetry(registry=registry))


def test_a_rejected_reload_is_one_log_line(registry, simulation, scenario_path, caplog):
    simulation.step()
    write_atomically(scenario_path, fleet().replace("tick: 100ms", "tick: soon").replace("cpu_percent: 30",
                                                                                         "cpu_percent: 300"))
    with caplog.at_level(logging.ERROR, logger="exporter.simulation"):
        simulation.step()
    message = caplog.records[-1].getMessage()
    assert "\n" not in message
    assert f"{scenario_path}: tick" in message and f"{scenario_path}: phases[0].machines.*.cpu_percent" in message


def _fleet_with_savings() -> str:
    """The example fleet saving on spot and standby while healthy; then spot stops and transfer starts."""
    document = yaml.safe_load(fleet())
    document["phases"][0]["savings"] = {"spot": 3.6, "standby": 0}
    document["phases"][1]["savings"] = {"spot": 0, "transfer": 7.2}
    return yaml.safe_dump(document)


def _play(simulation, clock, until: float, tick: float = 1.0) -> None:
    """Step every `tick` seconds of the injected clock up to `until` (included)."""
    while clock.now + tick <= until:
        clock.now += tick
        simulation.step()


def _saved(registry, category: str) -> float | None:
    return registry.get_sample_value(SAVINGS, {"category": category})


def test_savings_counters_exist_at_zero_from_the_load(registry, clock, scenario_path):
    write_atomically(scenario_path, _fleet_with_savings())
    Simulation(scenario_path, Telemetry(registry=registry, clock=clock), clock=clock)
    # Before any tick: "standby" saves at rate 0 and "transfer" only from the second phase, yet both exist.
    assert {category: _saved(registry, category) for category in ("spot", "standby", "transfer")} == {
        "spot": 0, "standby": 0, "transfer": 0}


def test_savings_grow_by_rate_times_elapsed(registry, clock, scenario_path):
    write_atomically(scenario_path, _fleet_with_savings())
    simulation = Simulation(scenario_path, Telemetry(registry=registry, clock=clock), clock=clock)
    start = clock.now
    simulation.step()
    assert _saved(registry, "spot") == 0                 # the first tick owes nothing
    _play(simulation, clock, start + 30)
    assert _saved(registry, "spot") == pytest.approx(3.6 * 30 / 3600)
    _play(simulation, clock, start + 59, tick=0.5)
    assert _saved(registry, "spot") == pytest.approx(3.6 * 59 / 3600)
    assert _saved(registry, "standby") == 0
    assert _saved(registry, "transfer") == 0
    # The tick at 60 s is the first of "disk fills": it pays the second before at that phase's rates.
    _play(simulation, clock, start + 180)
    assert _saved(registry, "spot") == pytest.approx(3.6 * 59 / 3600)
    assert _saved(registry, "transfer") == pytest.approx(7.2 * 121 / 3600)   # carried over into "outage"
    assert _saved(registry, "standby") == 0


def test_a_late_tick_pays_the_whole_gap_and_a_step_back_pays_nothing(registry, clock, scenario_path):
    write_atomically(scenario_path, _fleet_with_savings())
    simulation = Simulation(scenario_path, Telemetry(registry=registry, clock=clock), clock=clock)
    start = clock.now
    simulation.step()
    clock.now = start + 50
    simulation.step()
    assert _saved(registry, "spot") == pytest.approx(3.6 * 50 / 3600)
    clock.now = start + 20                               # the clock steps back 30 s
    simulation.step()
    assert _saved(registry, "spot") == pytest.approx(3.6 * 50 / 3600)
    clock.now = start + 30                               # counted from the tick before, not from 50 s
    simulation.step()
    assert _saved(registry, "spot") == pytest.approx(3.6 * 60 / 3600)


def test_no_savings_series_without_savings(registry, simulation, clock):
    simulation.step()
    clock.now += 10
    simulation.step()
    assert [s for family in registry.collect() for s in family.samples if s.name == SAVINGS] == []


def test_a_reload_naming_a_new_category_starts_it_at_zero_and_keeps_the_totals(registry, simulation, clock,
                                                                                  scenario_path):
    start = clock.now
    simulation.step()
    write_atomically(scenario_path, _fleet_with_savings())
    clock.now = start + 10
    simulation.step()                                    # reloaded: the first tick pays the 10 s at the new rates
    assert _saved(registry, "spot") == pytest.approx(3.6 * 10 / 3600)
    assert _saved(registry, "transfer") == 0
    write_atomically(scenario_path, fleet())             # savings dropped: the totals stay, and stop growing
    clock.now = start + 20
    simulation.step()
    clock.now = start + 30
    simulation.step()
    assert _saved(registry, "spot") == pytest.approx(3.6 * 10 / 3600)
