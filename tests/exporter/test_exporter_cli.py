"""dumont-exporter as a real process on a loopback port: serving, simulating, reloading and stopping."""
from __future__ import annotations

import signal
import socket
import time
import urllib.request
from urllib.parse import urlsplit

import pytest

from tests.exporter.helpers import promtool_check_metrics, sample_value, write_atomically
from tests.exporter.scenarios import FLEET

HOST = {"machine_type": "host", "machine_id": "test-host"}
GPU_DATA = {"machine_type": "gpu", "machine_id": "gpu-1", "mount": "/data"}
GPU = {"machine_type": "gpu", "machine_id": "gpu-1"}
# The example fleet, fast: disk fills after one second and the outage never comes within a test.
FAST_FLEET = FLEET.format(loop="false").replace("duration: 60s", "duration: 1s", 1)


def _wait_for(exporter, name: str, labels: dict, expected: float, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        exposition = exporter.scrape()
        if sample_value(exposition, name, labels) == expected:
            return exposition
        assert time.monotonic() < deadline, f"{name}{labels} never became {expected}:\n{exporter.log()}"
        time.sleep(0.1)


def _wait_until(exporter, condition, what: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        exposition = exporter.scrape()
        if condition(exposition):
            return exposition
        assert time.monotonic() < deadline, f"{what} never happened:\n{exporter.log()}"
        time.sleep(0.1)


def _port_is_closed(url: str) -> bool:
    parts = urlsplit(url)
    with socket.socket() as probe:
        return probe.connect_ex((parts.hostname, parts.port)) != 0


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_serves_host_metrics_and_stops_cleanly(start_exporter, signum):
    exporter = start_exporter("--listen", "127.0.0.1:0", "--machine-id", "test-host")
    exposition = exporter.scrape()
    assert 0 <= sample_value(exposition, "dumont_cpu_usage_percent", HOST) <= 100
    assert sample_value(exposition, "dumont_memory_total_bytes", HOST) > 0
    with urllib.request.urlopen(exporter.url.replace("/metrics", "/"), timeout=10) as index:
        assert b"/metrics" in index.read()
    assert exporter.stop(signum) == 0
    assert "stopped" in exporter.log()
    assert _port_is_closed(exporter.url)


def test_simulation_crosses_thresholds_and_follows_rewrites(start_exporter, tmp_path, promtool):
    scenario = tmp_path / "scenario.yml"
    write_atomically(scenario, FAST_FLEET)
    exporter = start_exporter("--listen", "127.0.0.1:0", "--simulate", str(scenario), "--no-host-metrics")
    assert "scenario loaded" in exporter.log()

    exposition = _wait_for(exporter, "dumont_disk_usage_bytes", GPU_DATA, 0.95e12)  # "disk fills" began
    assert sample_value(exposition, "dumont_cpu_usage_percent", HOST) is None       # --no-host-metrics
    assert [line for line in promtool_check_metrics(promtool, exposition) if "_percent" not in line] == []

    write_atomically(scenario, FAST_FLEET.replace("cpu_percent: 30", "cpu_percent: 85"))
    _wait_for(exporter, "dumont_cpu_usage_percent", GPU, 85)
    assert "scenario reloaded" in exporter.log()

    write_atomically(scenario, FAST_FLEET.replace("cpu_percent: 30", "cpu_percent: 300"))
    deadline = time.monotonic() + 20
    while "rejected" not in exporter.log():
        assert time.monotonic() < deadline, exporter.log()
        time.sleep(0.1)
    assert f"{scenario}: phases[0].machines.*.cpu_percent" in exporter.log()
    assert sample_value(exporter.scrape(), "dumont_cpu_usage_percent", GPU) == 85  # the old scenario plays on
    assert exporter.stop(signal.SIGINT) == 0


def test_a_bad_scenario_at_start_exits_with_a_message(start_exporter, tmp_path):
    scenario = tmp_path / "scenario.yml"
    scenario.write_text(FAST_FLEET.replace("tick: 100ms", "tick: often"))
    exporter = start_exporter("--listen", "127.0.0.1:0", "--simulate", str(scenario), wait=False)
    assert exporter.process.wait(30) == 2
    assert f"{scenario}: tick: must be a positive duration" in exporter.log()


def test_a_taken_port_exits_with_a_message(start_exporter):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        exporter = start_exporter("--listen", f"127.0.0.1:{port}", "--no-host-metrics", wait=False)
        assert exporter.process.wait(30) == 1
    assert f"cannot listen on 127.0.0.1:{port}" in exporter.log()


def test_a_malformed_listen_address_is_a_usage_error(start_exporter):
    exporter = start_exporter("--listen", "nowhere", wait=False)
    assert exporter.process.wait(30) == 2
    assert "expected HOST:PORT" in exporter.log()


RETIRING = """\
tick: 100ms
machines:
  gpu-1: {type: gpu, provider: vast}
  cpu-1: {type: cpu, provider: gcp}
phases:
  - name: healthy
    duration: 1s
  - name: gpu-1 retired
    machines:
      gpu-1: {retired: true}
"""


def test_a_retired_machine_is_marked_then_forgotten_after_the_retired_ttl(start_exporter, tmp_path):
    scenario = tmp_path / "scenario.yml"
    write_atomically(scenario, RETIRING)
    exporter = start_exporter("--listen", "127.0.0.1:0", "--simulate", str(scenario), "--no-host-metrics",
                              "--retired-ttl", "2s")
    exposition = _wait_until(exporter, lambda text: sample_value(text, "dumont_machine_retired", GPU) is not None,
                             "the retired mark")
    assert sample_value(exposition, "dumont_machine_uptime_seconds", GPU) is None
    assert sample_value(exposition, "dumont_machine_uptime_seconds",
                        {"machine_type": "cpu", "machine_id": "cpu-1"}) is not None   # the others report on
    exposition = _wait_until(exporter, lambda text: sample_value(text, "dumont_machine_retired", GPU) is None,
                             "the mark's expiry")
    assert "gpu-1" not in exposition
    assert exporter.stop(signal.SIGINT) == 0


@pytest.mark.parametrize("ttl", ["0s", "soon"])
def test_a_bad_retired_ttl_is_a_usage_error(start_exporter, ttl):
    exporter = start_exporter("--retired-ttl", ttl, "--no-host-metrics", wait=False)
    assert exporter.process.wait(30) == 2
    assert "expected a positive duration" in exporter.log()
