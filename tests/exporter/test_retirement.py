"""retire_machine: a machine leaves on purpose, its series go, a retired mark stays for `retired_ttl`, then goes."""
from __future__ import annotations

import pytest

from exporter.retired import RETIRED, RetiredMarks
from exporter.store import SeriesStore
from exporter.telemetry import Telemetry

HOUR = 3600.0
GPU_1 = {"machine_type": "gpu", "machine_id": "gpu-1"}
GPU_2 = {"machine_type": "gpu", "machine_id": "gpu-2"}


@pytest.fixture
def telemetry(registry, clock):
    return Telemetry(registry=registry, clock=clock)


def _machine_ids(registry) -> set[str]:
    return {s.labels["machine_id"] for family in registry.collect() for s in family.samples
            if "machine_id" in s.labels}


def _series_of(registry, machine_id: str) -> set[str]:
    return {s.name for family in registry.collect() for s in family.samples
            if s.labels.get("machine_id") == machine_id}


def _report(telemetry, machine_id: str) -> None:
    telemetry.record_sync(machine_id=machine_id, latency_seconds=1)
    telemetry.set_cpu_usage(machine_id, "gpu", 10)
    telemetry.set_disk(machine_id, "gpu", "/", used_bytes=1, total_bytes=2)
    telemetry.set_uptime(machine_id, "gpu", 60)
    telemetry.record_downtime_avoided(machine_id, 5)


def test_retiring_drops_every_series_and_marks_the_machine_with_the_time(registry, telemetry, clock):
    _report(telemetry, "gpu-1")
    _report(telemetry, "gpu-2")
    clock.now += 30
    telemetry.retire_machine("gpu-1", "gpu")
    assert _series_of(registry, "gpu-1") == {"dumont_machine_retired"}
    assert registry.get_sample_value("dumont_machine_retired", GPU_1) == clock.now
    assert registry.get_sample_value("dumont_machine_uptime_seconds", GPU_2) == 60   # the others report on
    assert registry.get_sample_value("dumont_machine_retired", GPU_2) is None


def test_the_mark_goes_after_the_ttl(registry, clock):
    telemetry = Telemetry(registry=registry, clock=clock, retired_ttl=600)
    retired_at = clock.now
    telemetry.retire_machine("gpu-1", "gpu")
    clock.now = retired_at + 599
    assert registry.get_sample_value("dumont_machine_retired", GPU_1) == retired_at
    clock.now = retired_at + 600
    assert registry.get_sample_value("dumont_machine_retired", GPU_1) is None
    assert _machine_ids(registry) == set()


def test_the_default_ttl_outlasts_the_rules_one_hour_vanish_window(registry, telemetry, clock):
    # The rules page for a series seen within the last hour unless the machine is marked: a mark gone
    # sooner than the machine's last report leaves the window would page for a retirement.
    retired_at = clock.now
    telemetry.retire_machine("gpu-1", "gpu")
    clock.now = retired_at + HOUR + 5 * 60
    assert registry.get_sample_value("dumont_machine_retired", GPU_1) == retired_at
    clock.now = retired_at + 2 * HOUR
    assert registry.get_sample_value("dumont_machine_retired", GPU_1) is None


RECORDINGS = {
    "record_sync": lambda t: t.record_sync(machine_id="gpu-1", latency_seconds=1),
    "record_sync-failed": lambda t: t.record_sync(machine_id="gpu-1", latency_seconds=1, success=False),
    "set_last_sync_success": lambda t: t.set_last_sync_success("gpu-1", 1),
    "set_cpu_usage": lambda t: t.set_cpu_usage("gpu-1", "gpu", 1),
    "set_memory": lambda t: t.set_memory("gpu-1", "gpu", used_bytes=1, total_bytes=2),
    "set_disk": lambda t: t.set_disk("gpu-1", "gpu", "/", used_bytes=1, total_bytes=2),
    "set_cost": lambda t: t.set_cost("gpu-1", "gpu", "vast", 1),
    "set_uptime": lambda t: t.set_uptime("gpu-1", "gpu", 0),
    "set_uptime-other-type": lambda t: t.set_uptime("gpu-1", "cpu", 0),
    "record_downtime_avoided": lambda t: t.record_downtime_avoided("gpu-1", 1),
}


@pytest.mark.parametrize("record", RECORDINGS.values(), ids=RECORDINGS.keys())
def test_recording_anything_for_the_machine_again_clears_the_mark(registry, telemetry, record):
    telemetry.retire_machine("gpu-1", "gpu")
    telemetry.retire_machine("gpu-2", "gpu")
    record(telemetry)
    assert registry.get_sample_value("dumont_machine_retired", GPU_1) is None
    assert registry.get_sample_value("dumont_machine_retired", GPU_2) is not None   # only that machine's


def test_a_fleet_wide_failover_does_not_clear_a_mark(registry, telemetry):
    telemetry.retire_machine("gpu-1", "gpu")
    telemetry.record_failover("gpu", "cpu", "spot_interruption")
    assert registry.get_sample_value("dumont_machine_retired", GPU_1) is not None


def test_remove_machine_is_silence_not_retirement(registry, telemetry):
    _report(telemetry, "gpu-1")
    telemetry.remove_machine("gpu-1")
    assert _machine_ids(registry) == set()


def test_remove_machine_after_retiring_keeps_the_mark(registry, telemetry, clock):
    retired_at = clock.now
    telemetry.retire_machine("gpu-1", "gpu")
    clock.now += 60
    telemetry.remove_machine("gpu-1")
    assert registry.get_sample_value("dumont_machine_retired", GPU_1) == retired_at


def test_retiring_again_restarts_the_mark_under_the_latest_type(registry, telemetry, clock):
    telemetry.retire_machine("gpu-1", "gpu")
    clock.now += 60
    telemetry.retire_machine("gpu-1", "cpu")
    assert registry.get_sample_value("dumont_machine_retired", GPU_1) is None
    assert registry.get_sample_value("dumont_machine_retired", {**GPU_1, "machine_type": "cpu"}) == clock.now


def test_a_machine_that_comes_back_and_is_retired_again_gets_a_new_mark(registry, telemetry, clock):
    telemetry.retire_machine("gpu-1", "gpu")
    clock.now += 60
    _report(telemetry, "gpu-1")
    clock.now += 60
    telemetry.retire_machine("gpu-1", "gpu")
    assert _series_of(registry, "gpu-1") == {"dumont_machine_retired"}
    assert registry.get_sample_value("dumont_machine_retired", GPU_1) == clock.now


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf"), "2h", True])
def test_a_bad_ttl_is_refused_before_anything_registers(registry, ttl):
    with pytest.raises(ValueError, match=r"^retired_ttl\b"):
        Telemetry(registry=registry, retired_ttl=ttl)
    assert list(registry.collect()) == []


def test_expired_marks_leave_nothing_behind_even_when_nothing_scrapes():
    store = SeriesStore()
    marks = RetiredMarks(store, ttl=HOUR)
    with store.lock:
        for index in range(1000):
            marks.mark(f"gpu-{index}", "gpu", now=0.0)
        marks.mark("gpu-late", "gpu", now=HOUR)   # retiring one more forgets every expired mark
    assert len(marks) == 1
    assert [key for key, _, _ in store.snapshot()[RETIRED.name]] == [("gpu", "gpu-late")]
    with store.lock:
        marks.expire(2 * HOUR)
    assert len(marks) == 0 and store.snapshot()[RETIRED.name] == []


def test_a_scrape_forgets_expired_marks(registry, telemetry, clock):
    for index in range(100):
        telemetry.retire_machine(f"gpu-{index}", "gpu")
    clock.now += 2 * HOUR
    list(registry.collect())   # a scrape
    clock.now -= 2 * HOUR   # back in time: a mark still held would show again
    assert _machine_ids(registry) == set()


def test_failovers_counted_in_batches_and_created_at_zero(registry, telemetry):
    labels = {"from_type": "gpu", "to_type": "cpu", "reason": "scenario"}
    telemetry.record_failover("gpu", "cpu", "scenario", count=0)
    assert registry.get_sample_value("dumont_failovers_total", labels) == 0
    telemetry.record_failover("gpu", "cpu", "scenario", count=3)
    telemetry.record_failover("gpu", "cpu", "scenario")
    assert registry.get_sample_value("dumont_failovers_total", labels) == 4
