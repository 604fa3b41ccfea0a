"""`--set` on an override's threshold: `ALERT[.SEVERITY].override.NAME.threshold=VALUE` replays the override's rule
with the new threshold beside the current one, and leaves the default tier as it is."""
from __future__ import annotations

import json
import re
import subprocess
import urllib.parse

from deploy.local.stack import tool
from tests.rules.rules_helpers import StandIn

START = 1_767_225_600  # 2026-01-01T00:00:00Z
CPU_DISK = {"machine_id": "cpu-1", "machine_type": "cpu", "mount": "/"}
RATIO = 0.92  # the cpu standby's disk, all along: over its override's 0.9, under 0.95


def answer(request: str):
    """The cpu disk at RATIO for the override's rule (`...{machine_type="cpu"} > X`), compared as Prometheus
    would; nothing for the default tier, which leaves cpu machines out; history for the recording rule."""
    form = dict(urllib.parse.parse_qsl(request))
    query = form["query"]
    if "start" not in form:
        return 200, {"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {}, "value": [START, "1"]}]}}
    over = re.fullmatch(r'machine_mount:dumont_disk_usage:ratio\{machine_type="cpu"\} > ([0-9.]+)', query)
    result = []
    if over and RATIO > float(over.group(1)):
        start, end, step = float(form["start"]), float(form["end"]), float(form["step"])
        result = [{"metric": CPU_DISK, "values": [[start + n * step, str(RATIO)]
                                                  for n in range(int((end - start) / step) + 1)]}]
    return 200, {"status": "success", "data": {"resultType": "matrix", "result": result}}


def test_an_override_s_threshold_is_replayed_beside_the_current_one():
    stand_in = StandIn(answer)
    try:
        done = subprocess.run([tool("dumont-rules"), "backtest", "--prometheus", stand_in.url, "--env", "fast",
                               "--start", str(START), "--end", str(START + 60), "--json", "--alert=DiskAlmostFull",
                               "--set=DiskAlmostFull.override.cpu.threshold=0.95"],
                              capture_output=True, text=True, timeout=120)
    finally:
        stand_in.close()
    assert done.returncode == 0, done.stderr
    [entry] = json.loads(done.stdout)["alerts"]
    episodes = {v["variant"]: v["episodes"] for v in entry["variants"]}
    assert episodes == {"current": 1, "override.cpu.threshold=0.95": 0}
    asked = [dict(urllib.parse.parse_qsl(r))["query"] for r in stand_in.requests if "start=" in r]
    # The default tier, the same in both variants (> 0.8, cpu machines left to their override).
    assert sum(q.startswith("machine_mount:dumont_disk_usage:ratio > 0.8 unless") for q in asked) == 2
