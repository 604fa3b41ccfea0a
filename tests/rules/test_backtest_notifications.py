"""The notifications `dumont-rules backtest` counts, on a history made to show one thing each: with `--alert X`,
an alert that is not chosen but can inhibit X is replayed too, and mutes X while it fires, as it does with both
chosen; a receiver whose webhooks have `send_resolved: false` gets no resolution.

A stand-in Prometheus gives the history: one disk (gpu-1, /) on which DiskFillingUp fires from 100 s to 400 s of
the range, and DiskAlmostFull (whose inhibit rule mutes DiskFillingUp on the same machine and mount) from 50 s
to 500 s, or not at all."""
from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
from pathlib import Path

import pytest
import yaml

from deploy.local.stack import tool
from tests.rules.rules_helpers import REPO, StandIn

START = 1_767_225_600  # 2026-01-01T00:00:00Z
DISK = {"machine_id": "gpu-1", "machine_type": "gpu", "mount": "/", "instance": "exporter:9877",
        "job": "dumont-exporter"}


def history(almost_full: bool):
    """The stand-in's answers: DiskFillingUp's query has the disk from 100 s to 400 s; DiskAlmostFull's (the
    default tier) from 50 s to 500 s when `almost_full`; the recording rule has history; nothing else has data."""
    def answer(request: str):
        form = dict(urllib.parse.parse_qsl(request))
        query = form.get("query", request)
        if "start" not in form:  # instant: the recording rules' history at the range's start
            return 200, {"status": "success", "data": {"resultType": "vector", "result": [
                {"metric": {}, "value": [START, "1"]}]}}
        span = (100, 400) if "predict_linear" in query else \
            (50, 500) if almost_full and "> 0.8 unless" in query else None
        start, end, step = float(form["start"]), float(form["end"]), float(form["step"])
        values = [] if span is None else [
            [t, "0.9"] for t in (start + n * step for n in range(int((end - start) / step) + 1))
            if START + span[0] <= t < START + span[1]]
        result = [{"metric": DISK, "values": values}] if values else []
        return 200, {"status": "success", "data": {"resultType": "matrix", "result": result}}
    return answer


def backtest(url: str, *alerts: str, generated: Path | None = None) -> dict:
    """The JSON report of `dumont-rules backtest --env fast` over the stand-in's 600 s, for `alerts`."""
    more = ["--generated", str(generated)] if generated else []
    done = subprocess.run([tool("dumont-rules"), "backtest", "--prometheus", url, "--env", "fast", "--start",
                           str(START), "--end", str(START + 600), "--json", *more,
                           *(f"--alert={a}" for a in alerts)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return {entry["alert"]: entry["variants"][0] for entry in json.loads(done.stdout)["alerts"]}


# Not muted: the first at 101 s (fast's group_wait 1s), a repeat a minute (fast's repeat_interval) at 161, 221, 281
# and 341 s, the resolution at 401 s.
@pytest.mark.parametrize("almost_full, notifications", [(True, 0), (False, 6)], ids=["muted", "not-muted"])
def test_an_inhibiting_alert_not_chosen_still_mutes(almost_full, notifications):
    stand_in = StandIn(history(almost_full))
    try:
        alone = backtest(stand_in.url, "DiskFillingUp")
        both = backtest(stand_in.url, "DiskFillingUp", "DiskAlmostFull")
    finally:
        stand_in.close()
    assert list(alone) == ["DiskFillingUp"]  # DiskAlmostFull is replayed, not reported
    assert alone["DiskFillingUp"]["episodes"] == 1
    assert alone["DiskFillingUp"]["notifications"] == both["DiskFillingUp"]["notifications"] == notifications
    assert any("> 0.8 unless" in r for r in stand_in.requests), "DiskAlmostFull was not replayed"


def test_a_receiver_that_sends_no_resolution_gets_none(tmp_path):
    """The warning receiver's webhooks set to `send_resolved: false`: the first and the repeats, no resolution."""
    generated = tmp_path / "fast"
    shutil.copytree(REPO / "generated" / "fast", generated)
    path = generated / "alertmanager" / "alertmanager.yml"
    config = yaml.safe_load(path.read_text())
    [warning] = [r for r in config["receivers"] if r["name"] == "warning"]
    for webhook in warning["webhook_configs"]:
        webhook["send_resolved"] = False
    path.write_text(yaml.safe_dump(config))
    stand_in = StandIn(history(almost_full=False))
    try:
        quiet = backtest(stand_in.url, "DiskFillingUp", generated=generated)["DiskFillingUp"]
    finally:
        stand_in.close()
    assert quiet["episodes"] == 1
    assert (quiet["notifications"], quiet["resolution_only_notifications"]) == (5, 0)
