"""`dumont-rules backtest` on bad input: each case ends with one line naming the problem on stderr, exit code 2,
nothing on stdout and no traceback. The command runs as a process, as a person runs it."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from deploy.local.processes import ManagedProcess, ServiceSpec, free_port
from deploy.local.stack import tool
from tests.rules.rules_helpers import StandIn

PREFIX = "dumont-rules backtest: error: "
# A fixed range, so the errors do not depend on the clock.
RANGE = ("--start", "2026-01-01T00:00:00Z", "--end", "2026-01-01T01:00:00Z")


EMPTY = (200, {"status": "success", "data": {"resultType": "matrix", "result": []}})


@pytest.fixture
def empty_prometheus():
    """A stand-in that answers every query with no series: arguments are checked against it."""
    stand_in = StandIn(lambda request: EMPTY)
    try:
        yield stand_in
    finally:
        stand_in.close()


@pytest.fixture
def rejecting_prometheus():
    """A stand-in that rejects HighCostAnomaly's query as Prometheus rejects PromQL it cannot parse (its 400
    bad_data answer), and finds no series for the rest."""
    rejected = (400, {"status": "error", "errorType": "bad_data",
                      "error": 'invalid parameter "query": 1:1: parse error: unexpected character'})
    stand_in = StandIn(lambda request: rejected if "dumont_cost_hourly_usd > 1" in request else EMPTY)
    try:
        yield stand_in
    finally:
        stand_in.close()


def backtest(url: str, *args: str) -> str:
    """Run the backtest expecting its error: checks exit code 2, one line, no traceback; the message."""
    result = subprocess.run([tool("dumont-rules"), "backtest", "--prometheus", url, "--env", "fast", *args],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(PREFIX), result.stderr
    return lines[0][len(PREFIX):]


def test_prometheus_unreachable():
    """A closed port: the message says Prometheus at that URL is unreachable."""
    url = f"http://127.0.0.1:{free_port()}"
    message = backtest(url, *RANGE, "--alert", "DiskAlmostFull")
    assert f"Prometheus at {url} is unreachable" in message


def test_query_rejected(rejecting_prometheus):
    """HTTP 400 bad_data: the message names the alert, the query and Prometheus' reason."""
    message = backtest(rejecting_prometheus.url, *RANGE, "--alert", "HighCostAnomaly")
    assert message == ("HighCostAnomaly (current): dumont_cost_hourly_usd > 1: Prometheus rejected"
                       " 'dumont_cost_hourly_usd > 1': invalid parameter \"query\": 1:1: parse error:"
                       " unexpected character"), message


def test_prometheus_times_out():
    """503 with errorType timeout on every query, the first being an instant one (no chunk to halve): named."""
    stand_in = StandIn(lambda request: (503, {"status": "error", "errorType": "timeout",
                                              "error": "query timed out in expression evaluation"}))
    try:
        message = backtest(stand_in.url, *RANGE, "--alert", "HighMemoryUsage")
    finally:
        stand_in.close()
    assert f"Prometheus at {stand_in.url} times out on 'count(" in message, message


@pytest.mark.parametrize("setting, expected", [
    ("NoSuchAlert.threshold=0.9", "--set NoSuchAlert.threshold=0.9: no alert 'NoSuchAlert' in fast"),
    ("DiskAlmostFull.colour=red", "--set DiskAlmostFull.colour=red: unknown field 'colour'"),
    ("DiskAlmostFull.threshold=1.5", "--set DiskAlmostFull.threshold=1.5: must be a number between 0 and 1"),
    ("DiskAlmostFull.override.gpu.threshold=0.9",
     "--set DiskAlmostFull.override.gpu.threshold=0.9: DiskAlmostFull has no override 'gpu' (its overrides: cpu)"),
    ("DiskAlmostFull.override.cpu.for=5m", "--set DiskAlmostFull.override.cpu.for=5m: an override sets only a"
                                           " threshold"),
    ("DiskAlmostFull.override.cpu.threshold=2", "--set DiskAlmostFull.override.cpu.threshold=2: must be a number"
                                                " between 0 and 1"),
], ids=["unknown-alert", "unknown-field", "ratio-out-of-range", "unknown-override", "override-field",
        "override-out-of-range"])
def test_bad_setting(empty_prometheus, setting, expected):
    """A `--set` naming an unknown alert or field, or a threshold its unit does not allow, names itself."""
    message = backtest(empty_prometheus.url, *RANGE, "--set", setting)
    assert message.startswith(expected), message
    assert not empty_prometheus.requests, "a bad --set must fail before asking Prometheus"


def test_start_after_end(empty_prometheus):
    """`--start` after `--end`: the range is empty."""
    message = backtest(empty_prometheus.url, "--start", "2026-01-02T00:00:00Z", "--end", "2026-01-01T00:00:00Z")
    assert message == "the range is empty: --start must be before --end"


def test_unknown_alert(empty_prometheus):
    """An unknown `--alert`, with the near name the spec has."""
    message = backtest(empty_prometheus.url, *RANGE, "--alert", "DiskAlmostFul")
    assert message == "--alert DiskAlmostFul: no alert 'DiskAlmostFul' in fast (did you mean DiskAlmostFull?)"


@pytest.fixture
def bare_prometheus(tmp_path: Path):
    """A real Prometheus with an empty TSDB and no scrape config, stopped at the end even after a failure."""
    config = tmp_path / "prometheus.yml"
    config.write_text("{}\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = ManagedProcess(ServiceSpec("prometheus", [
        tool("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}"], port, "/-/ready", url), tmp_path)
    try:
        process.start()
        process.wait_ready(30)
        yield url
    finally:
        process.stop()


@pytest.mark.e2e
def test_range_without_data(bare_prometheus):
    """Nothing any alert reads in the range: 'no data', not a report of zeros. Watchdog's vector(1) fires over
    any range, so the whole spec must still count as no data."""
    end = time.time()
    message = backtest(bare_prometheus, "--start", f"{end - 3600:.0f}", "--end", f"{end:.0f}")
    assert message.startswith("no data between") and bare_prometheus in message, message
    message = backtest(bare_prometheus, "--range", "1h", "--alert", "DiskAlmostFull")
    assert message.startswith("no data between") and "none of 1 alert(s)" in message, message


def test_chunk_with_too_many_samples_is_halved():
    """Prometheus refuses a chunk over --query.max-samples (HTTP 422, "too many samples"): the backtest asks again
    in halves until it is accepted, and no evaluation is lost or counted twice."""
    from rules_src.backtest.fetch import CHUNK_POINTS, Grid, Prometheus

    accepted_points = CHUNK_POINTS // 4
    grid = Grid(start=1_700_000_000, end=1_700_000_000 + 15 * (3 * CHUNK_POINTS - 1), step=15)

    def answer(request: str):
        form = dict(part.split("=", 1) for part in request.split("&"))
        start, end, step = float(form["start"]), float(form["end"]), float(form["step"])
        points = int(round((end - start) / step)) + 1
        if points > accepted_points:
            return 422, {"status": "error", "errorType": "execution",
                         "error": "query processing would load too many samples into memory in query execution"}
        values = [[start + n * step, "1"] for n in range(points)]
        return 200, {"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {"machine_id": "gpu-1"}, "values": values}]}}

    stand_in = StandIn(answer)
    try:
        found = Prometheus(stand_in.url).series_over("dumont_cost_hourly_usd > 1", grid, "HighCostAnomaly (current)")
    finally:
        stand_in.close()
    assert found == {(("machine_id", "gpu-1"),): list(range(grid.count))}
    assert len(stand_in.requests) == 2 + grid.count // accepted_points  # 10,000 and 5,000 refused, then 12 chunks
