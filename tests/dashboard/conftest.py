"""The dashboard's stack: the `fast` environment's Prometheus holding 13 months of savings history (built by
history.py), fed live by the exporter's simulation of a small fleet in every state, with Alertmanager and the
receiver; module-scoped, stopped even when a test fails."""
from __future__ import annotations

import hashlib
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from deploy.local.stack import REPO_ROOT, Ports, Stack
from tests.dashboard.history import History, cached_blocks
from tests.e2e.conftest import HEALTHY, StackClient, get_json, wait_for

pytestmark = pytest.mark.e2e
TILE_RULES = REPO_ROOT / "generated" / "fast" / "prometheus" / "rules" / "savings_hourly.yml"
VANISH_WINDOW = "10m"  # fast's own is 20 s: too short to look at a vanished machine at leisure
SAVINGS_PER_HOUR = {"spot": 3.6, "standby": 1.2, "transfer": 0.4}


def fleet_scenario(cpu2_reports: bool = True) -> dict:
    """gpu-1 healthy, gpu-2's disk full (DiskAlmostFull), cpu-1 down (MachineDown), cpu-2 reporting or silent
    (vanished), gpu-3 retired; the api component degraded; savings accruing."""
    return {
        "tick": "1s",
        "loop": False,
        "machines": {"gpu-1": {"type": "gpu", "provider": "vast", "mounts": ["/", "/data"]},
                     "gpu-2": {"type": "gpu", "provider": "vast"},
                     "gpu-3": {"type": "gpu", "provider": "aws"},
                     "cpu-1": {"type": "cpu", "provider": "gcp"},
                     "cpu-2": {"type": "cpu", "provider": "aws"}},
        "components": ["sync", "api"],
        "phases": [
            {"name": "the fleet", "savings": SAVINGS_PER_HOUR,
             "machines": {"*": {**HEALTHY, "cpu_percent": 30, "cost_hourly_usd": 0.5},
                          "gpu-2": {"disk_used_ratio": 0.95, "cost_hourly_usd": 1.25},
                          "cpu-1": {"up": False}, "gpu-3": {"retired": True},
                          "cpu-2": {"reporting": cpu2_reports}},
             "components": {"sync": 1.0, "api": 0.5}},
        ],
    }


class DashboardStack(Stack):
    """The `fast` stack, MachineVanished looking back VANISH_WINDOW, its receiver's page refreshing quickly."""

    def overlay(self, token_file: Path) -> dict:
        # The contract states each environment's window too: the generated tests hold the rule to it.
        return {**super().overlay(token_file), "params": {"vanish_window": VANISH_WINDOW},
                "contract": {"alerts": {"MachineVanished": {"window": VANISH_WINDOW}}}}

    def receiver_config(self, port: int, database: str, token_file: Path) -> dict:
        return {**super().receiver_config(port, database, token_file),
                "dashboard_timeout": "5s",
                "dashboard_refresh": "2s"}  # the page's browser test waits for refreshes: seconds, not 15


@dataclass
class Dashboard:
    """A running dashboard stack, the history its Prometheus holds, and a client for every service."""

    stack: DashboardStack
    history: History
    client: StackClient


def history_blocks(tmp_path_factory, history: History) -> Path:
    """The history's blocks, built once for every worker of the session (keyed by its span and the tile rule)."""
    key = hashlib.sha256(f"{history}".encode() + TILE_RULES.read_bytes()).hexdigest()[:16]
    return cached_blocks(history, tmp_path_factory.getbasetemp().parent / f"dumont-savings-{key}", TILE_RULES)


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    """The stack with history, started; stopped at the end of the module even after a failure."""
    history = History.ending_before(time.time())
    blocks = history_blocks(tmp_path_factory, history)
    run_dir = tmp_path_factory.mktemp("dashboard")
    data = run_dir / "data" / "prometheus"
    data.mkdir(parents=True)
    for block in blocks.iterdir():
        shutil.copytree(block, data / block.name)
    stack = DashboardStack(run_dir, env="fast", ports=Ports.free(), scenario=fleet_scenario(), ready_timeout=60)
    with stack:
        client = StackClient(stack)
        # cpu-2 reports until Prometheus has seen it, then falls silent: vanished, not unknown.
        wait_for(lambda: get_json(stack.url("prometheus") + "/api/v1/query?query=dumont_machine_uptime_seconds"
                                  "%7Bmachine_id%3D%22cpu-2%22%7D")["data"]["result"], 60, "cpu-2 scraped")
        stack.write_scenario(fleet_scenario(cpu2_reports=False))
        yield Dashboard(stack, history, client)
