"""Savings history longer than a test run: OpenMetrics written here, turned into TSDB blocks by promtool.

The counters move every STEP seconds on a grid that every local midnight of UTC, Europe/Berlin and
America/Sao_Paulo falls on, so a period's savings are exactly the sum of its steps (`expected`), with the
exporter restarting now and then: a restart's counter starts again from what was saved since it. The tiles
(category:dumont_savings_usd:increase1h) are what Prometheus computes from those counters with the rendered rule.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import shutil
import subprocess
import tempfile
import json
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

from deploy.local.processes import free_port
from rules_src import units

STEP = 300                      # seconds between samples
DAYS = 396                      # more than a year, within the stack's 400 days of retention
TILE_OFFSET = 25 * 60           # the tiles are stamped 25 minutes past each hour, as a rule group's offset would
CATEGORIES = ("spot", "standby", "transfer")
BERLIN = ZoneInfo("Europe/Berlin")
LABELS = 'job="dumont-exporter",instance="history:9877"'


def step_cents(category: str, at: int) -> int:
    """Whole cents saved in the step ending at `at` (Unix seconds): varying by day and hour, never constant."""
    day, hour = at // 86400, (at // 3600) % 24
    return {"spot": 5 + day % 7 + (hour % 4), "standby": 2 + hour % 2, "transfer": 1 + (day + hour) % 3}[category]


def dst_days(start: dt.date, end: dt.date) -> list[dt.date]:
    """Berlin's days of 23 or 25 hours between `start` and `end`."""
    days, day = [], start
    while day < end:
        length = (dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), BERLIN).timestamp()
                  - dt.datetime.combine(day, dt.time(0), BERLIN).timestamp())
        if length != 86400:
            days.append(day)
        day += dt.timedelta(days=1)
    return days


@dataclass(frozen=True)
class History:
    """The span of the history (Unix seconds, on the grid), its restarts, and Berlin's clock changes in it.

    Relative to when the tests run: Prometheus keeps 400 days back from its newest sample, which is now.
    """

    start: int
    end: int
    restarts: tuple[float, ...]
    dst: tuple[dt.date, ...]

    @classmethod
    def ending_before(cls, now: float) -> "History":
        """The history ending at UTC midnight two days before `now`."""
        end_day = dt.datetime.fromtimestamp(now, dt.timezone.utc).date() - dt.timedelta(days=2)
        end = int(dt.datetime.combine(end_day, dt.time(0), dt.timezone.utc).timestamp())
        start = end - DAYS * 86400
        dst = tuple(dst_days(end_day - dt.timedelta(days=DAYS - 40), end_day))
        last_dst = dt.datetime.combine(dst[-1], dt.time(0), dt.timezone.utc).timestamp()
        # When the exporter restarted: on Berlin's last clock change, between two samples; on a sample (that
        # sample already counts afresh); on a UTC midnight; mid-day a few months back.
        restarts = (last_dst + 1 * 3600 + 32 * 60 + 30, end - 50 * 86400 + 11 * 3600, end - 80 * 86400,
                    end - 150 * 86400 + 12 * 3600 + 150)
        return cls(start, end, restarts, dst)

    def series(self) -> list[Series]:
        """Every category's counter over the history, restarts included (spot's restarts only at the first)."""
        out = []
        for category in CATEGORIES:
            value, points = 0, []
            restarts = sorted(self.restarts if category == "transfer" else self.restarts[:1])
            for at in range(self.start, self.end + 1, STEP):
                if restarts and restarts[0] <= at:  # restarted since the last sample: it starts again from 0
                    restarts.pop(0)
                    value = 0
                if at > self.start:
                    value += step_cents(category, at)
                points.append((at, value))
            out.append(Series(category, tuple(points)))
        return out


@dataclass(frozen=True)
class Series:
    """One category's samples: (Unix seconds, counter value in cents)."""

    category: str
    points: tuple[tuple[int, int], ...]


def expected(all_series: list[Series], start: float, end: float) -> dict[str, float]:
    """USD saved in [start, end] per category as the samples say: each rise, and after a restart its whole value."""
    out = {}
    for s in all_series:
        cents = 0
        for (t0, v0), (t1, v1) in zip(s.points, s.points[1:]):
            if start <= t0 and t1 <= end:
                cents += v1 - v0 if v1 >= v0 else v1
        out[s.category] = cents / 100
    return out


def openmetrics(all_series: list[Series]) -> str:
    """The counters as OpenMetrics text, the input of promtool tsdb create-blocks-from openmetrics."""
    lines = ["# HELP dumont_savings_total_usd Money saved, in US dollars.", "# TYPE dumont_savings_total_usd counter"]
    for s in all_series:
        name = f'dumont_savings_total_usd_total{{category="{s.category}",{LABELS}}}'
        lines += [f"{name} {v / 100:.2f} {t}" for t, v in s.points]
    return "\n".join(lines) + "\n# EOF\n"


def _wait_ready(url: str, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prometheus exited with {process.returncode} while starting")
        try:
            with urllib.request.urlopen(url + "/-/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"prometheus at {url} not ready within {timeout:.0f}s")


def build_blocks(history: History, out: Path, rules_file: Path) -> None:
    """Raw blocks of the counters, then the tiles Prometheus computes from them with the rule, into `out`."""
    with tempfile.TemporaryDirectory(prefix="dumont-history-") as work:
        work = Path(work)
        (work / "savings.om").write_text(openmetrics(history.series()))
        raw = work / "raw"
        subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=744h",
                        str(work / "savings.om"), str(raw)], check=True, capture_output=True)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        (work / "empty.yml").write_text("{}\n")
        # A throwaway Prometheus over the raw blocks answers promtool's queries for the tiles.
        prometheus = subprocess.Popen(
            ["prometheus", f"--storage.tsdb.path={raw}", f"--web.listen-address=127.0.0.1:{port}",
             "--storage.tsdb.retention.time=100y", f"--config.file={work / 'empty.yml'}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_ready(url, prometheus)
            (work / "tiles.om").write_text(_tiles_openmetrics(history, url, rules_file))
        finally:
            prometheus.terminate()
            prometheus.wait(30)
        subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=744h",
                        str(work / "tiles.om"), str(work / "tiles")], check=True, capture_output=True)
        out.mkdir(parents=True, exist_ok=True)
        for source in (raw, work / "tiles"):
            for block in source.iterdir():
                if (block / "meta.json").exists():
                    shutil.copytree(block, out / block.name)


def _tiles_openmetrics(history: History, url: str, rules_file: Path) -> str:
    """The tile rule of `rules_file` evaluated every hour over the history by Prometheus, as OpenMetrics.

    What `promtool tsdb create-blocks-from rules` does, in one query_range per rule rather than one per 2-hour
    block (thousands of blocks for a year).
    """
    group = yaml.safe_load(rules_file.read_text())["groups"][0]
    step = int(units.parse_duration(group["interval"]))
    start = history.start + step + TILE_OFFSET
    lines = []
    for rule in group["rules"]:
        query = urllib.parse.urlencode({"query": rule["expr"], "start": start, "end": history.end,
                                        "step": step})
        with urllib.request.urlopen(f"{url}/api/v1/query_range?{query}", timeout=120) as response:
            result = json.load(response)["data"]["result"]
        lines.append(f"# TYPE {rule['record'].replace(':', '_')} gauge")
        for item in result:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(item["metric"].items()))
            lines += [f"{rule['record']}{{{labels}}} {value} {int(at)}" for at, value in item["values"]]
    return "\n".join(lines) + "\n# EOF\n"


def cached_blocks(history: History, cache: Path, rules_file: Path) -> Path:
    """The blocks, built once per test session however many workers ask (a lock file orders them)."""
    done = cache / "blocks"
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (cache / "done").exists():
            shutil.rmtree(done, ignore_errors=True)
            build_blocks(history, done, rules_file)
            (cache / "done").write_text("ok\n")
    return done
