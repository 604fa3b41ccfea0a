"""`promtool check metrics` accepts the exposition, apart from the catalog's own `*_percent` names."""
from __future__ import annotations

import psutil

from exporter.exposition import render
from exporter.host_collector import HostCollector
from exporter.telemetry import Telemetry
from tests.exporter.fleet import record_every_family
from tests.exporter.helpers import promtool_check_metrics


def test_full_exposition_passes_promtool(registry, promtool):
    # A value that needs escaping reaches the render only as a host collector's own label (the API refuses it).
    telemetry = Telemetry(registry=registry, host=HostCollector(psutil, 'tricky "id"\\x', "cpu"))
    record_every_family(telemetry)
    problems = promtool_check_metrics(promtool, render(registry).decode())
    assert [line for line in problems if "_percent" not in line] == []


def test_promtool_does_flag_a_bad_exposition(promtool):
    # Proves the check above can fail: promtool lints a counter without the _total suffix.
    bad = "# HELP requests Requests.\n# TYPE requests counter\nrequests 1\n"
    assert any("_total" in line for line in promtool_check_metrics(promtool, bad))
