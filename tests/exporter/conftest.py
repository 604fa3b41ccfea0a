"""Fixtures for the exporter's tests: fresh registries, promtool and exporter subprocesses."""
from __future__ import annotations

import shutil

import pytest
from prometheus_client import CollectorRegistry

from exporter.telemetry import Telemetry
from tests.exporter.helpers import ExporterProcess, FixedClock


@pytest.fixture
def registry() -> CollectorRegistry:
    """A registry of this test's own."""
    return CollectorRegistry()


@pytest.fixture
def telemetry(registry) -> Telemetry:
    """A Telemetry on this test's registry."""
    return Telemetry(registry=registry)


@pytest.fixture
def promtool() -> str:
    """The path of promtool; its absence fails the test, since the check is part of the contract."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed (expected Prometheus 2.42's promtool on PATH)")
    return path


@pytest.fixture
def start_exporter(tmp_path):
    """Start dumont-exporter subprocesses with given arguments; every one is killed at teardown."""
    started: list[ExporterProcess] = []

    def start(*args: str, wait: bool = True) -> ExporterProcess:
        exporter = ExporterProcess(list(args), tmp_path / f"exporter-{len(started)}.log")
        started.append(exporter)
        if wait:
            exporter.wait_listening()
        return exporter

    try:
        yield start
    finally:
        for exporter in started:
            exporter.close()


@pytest.fixture
def clock():
    """A clock the test moves by hand: the simulation and the retired marks read it."""
    return FixedClock()
