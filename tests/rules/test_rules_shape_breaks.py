"""The generated promtool tests of the new shapes can fail: the good spec is rendered once, then one rendered
rule is edited the way a wrong rule would look, and the real `promtool test rules` must fail, naming the case
that catches it and no case of another alert."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.rules.rules_helpers import TESTDATA, edit
from rules_src.render import render
from rules_src.spec import load
from rules_src.writer import stage

_CRITICAL_FIRING = 'ALERTS{alertname="CostHigh",alertstate="firing",severity=~"critical"}'
_COST_CARRIES = "on (machine_type, machine_id, provider)"

# case -> (rule file, old, new, the alert, the generated cases that must fail)
BREAKS = {
    # Without the exclusion, the warning tier keeps firing beside the critical one.
    "tier rule without its ALERTS exclusion": (
        "cost.yml", f" > 2 unless {_COST_CARRIES} {_CRITICAL_FIRING}", " > 2",
        "CostHigh", {"CostHigh default critical: fires and resolves"}),
    "override's tier rule without its ALERTS exclusion": (
        "cost.yml", f" > 1 unless {_COST_CARRIES} {_CRITICAL_FIRING}", " > 1",
        "CostHigh", {"CostHigh cpu critical: fires and resolves"}),
    "tier exclusion that reads the pending state": (
        "cost.yml", f' > 2 unless {_COST_CARRIES} {_CRITICAL_FIRING}',
        f' > 2 unless {_COST_CARRIES} {_CRITICAL_FIRING.replace("firing", "pending")}',
        "CostHigh", {"CostHigh default critical: fires and resolves"}),
    "counter rule reading a shorter window": (
        "sync.yml", "rate(dumont_sync_files_total[1m])", "rate(dumont_sync_files_total[30s])",
        "SyncFilesBurst", {"SyncFilesBurst default: fires and resolves"}),
    "counter rule reading a longer window": (
        "sync.yml", "rate(dumont_sync_files_total[1m])", "rate(dumont_sync_files_total[2m])",
        "SyncFilesBurst", {"SyncFilesBurst default: fires and resolves"}),
    "counter rule blind to the reset (delta)": (
        "sync.yml", "rate(dumont_sync_files_total[1m])", "delta(dumont_sync_files_total[1m]) / 60",
        "SyncFilesBurst", {"SyncFilesBurst default: fires and resolves"}),
    "prediction with a shorter horizon": (
        "machines.yml", "[10m], 3600)", "[10m], 1800)",
        "DiskFillingUp", {"DiskFillingUp: fires when the prediction crosses"}),
    "prediction with a longer horizon": (
        "machines.yml", "[10m], 3600)", "[10m], 7200)",
        "DiskFillingUp", {"DiskFillingUp: silent just short of the threshold"}),
    "prediction with a lower guard": (
        "machines.yml", "ratio > 0.6", "ratio > 0.5",
        "DiskFillingUp", {"DiskFillingUp: the guard holds it back"}),
    "prediction with a higher guard": (
        "machines.yml", "ratio > 0.6", "ratio > 0.7",
        "DiskFillingUp", {"DiskFillingUp: the guard holds it back"}),
    "prediction without its guard": (
        "machines.yml", " and machine_mount:dumont_disk_usage:ratio > 0.6", "",
        "DiskFillingUp", {"DiskFillingUp: the guard holds it back"}),
    "vanished rule without unless retired": (
        "machines.yml", " unless on (machine_id, machine_type) dumont_machine_retired", "",
        "MachineVanished", {"MachineVanished: silent for a retired series"}),
    "vanished rule looking back another window": (
        "machines.yml", "max_over_time(dumont_machine_uptime_seconds[1m])", "max_over_time(dumont_machine_uptime_seconds[2m])",
        "MachineVanished", {"MachineVanished: the window is 1m"}),
    "vanished rule paging while the target is down": (
        "machines.yml", "dumont_machine_retired unless on (job, instance) up == 0", "dumont_machine_retired",
        "MachineVanished", {"MachineVanished: silent while the target is down"}),
    "age rule without last_over_time": (
        "sync.yml", "last_over_time(dumont_sync_last_success_timestamp[10m])", "dumont_sync_last_success_timestamp",
        "SyncStopped", {"SyncStopped: fires when the series stops being reported"}),
    "age rule without unless retired": (
        "sync.yml", " unless on (machine_id) dumont_machine_retired", "",
        "SyncStopped", {"SyncStopped: silent for a retired series"}),
    "fixed alert that waits a for": (
        "meta.yml", "    expr: vector(1)\n", "    expr: vector(1)\n    for: 30s\n",
        "Watchdog", {"Watchdog: fires with no input"}),
}


@pytest.fixture(scope="module")
def rendered_good(tmp_path_factory) -> Path:
    """The good spec rendered once: <tmp>/test/prometheus, with rules/ and tests/."""
    spec_dir = tmp_path_factory.mktemp("spec") / "rules_src"
    shutil.copytree(TESTDATA / "good", spec_dir)
    spec, errors = load("test", spec_dir)
    assert errors == []
    return stage(tmp_path_factory.mktemp("out") / "generated", {"test": render(spec)}) / "test" / "prometheus"


def _promtool(prometheus: Path) -> tuple[int, set[str]]:
    """`promtool test rules` over every generated test file: its exit code and the names of the failed cases."""
    tests = sorted(str(p) for p in (prometheus / "tests").glob("*.yml"))
    proc = subprocess.run(["promtool", "test", "rules", *tests], capture_output=True, text=True, check=False, timeout=120)
    return proc.returncode, set(re.findall(r"^\s*name: (.*),$", proc.stdout + proc.stderr, re.M))


def test_the_rules_as_rendered_pass(rendered_good, tmp_path, tools):
    assert _promtool(rendered_good) == (0, set())


@pytest.mark.parametrize("case", sorted(BREAKS))
def test_a_wrong_rule_fails_its_generated_tests(rendered_good, tmp_path, tools, case):
    rule_file, old, new, alert, must_fail = BREAKS[case]
    broken = tmp_path / "prometheus"
    shutil.copytree(rendered_good, broken)
    edit(broken / "rules" / rule_file, old, new)
    code, failed = _promtool(broken)
    assert code != 0
    assert must_fail <= failed, failed
    assert all(name.startswith(alert) for name in failed), failed  # no other alert's case notices


def test_the_dashboard_pattern_goes_to_alerts_that_carry_its_labels(rendered_good):
    rules = [rule for name in sorted((rendered_good / "rules").glob("*.yml"))
             for group in yaml.safe_load(name.read_text())["groups"] for rule in group["rules"] if "alert" in rule]
    links = {rule["alert"]: rule["annotations"].get("dashboard_url") for rule in rules}
    machine = "https://grafana.example.com/test/d/machine?var-machine={{ $labels.machine_id }}"
    assert links == {
        "CostHigh": "https://grafana.example.com/d/cost?var-provider={{ $labels.provider }}",  # its own wins
        "DiskAlmostFull": machine, "DiskFillingUp": machine, "HighMemoryUsage": machine, "MachineVanished": machine,
        "SyncFilesBurst": machine, "SyncStopped": machine,
        "HealthDegraded": None, "Watchdog": None,  # they carry no machine_id: the link would be broken
    }
