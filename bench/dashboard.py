"""The fleet dashboard's API on a simulated fleet of 1,000 machines: /api/dashboard/metrics/realtime beside the
time Prometheus alone takes to answer the same queries, and /api/dashboard/savings beside increase[365d].

The stack is deploy/local/stack.py's (ENV prod by default: scrape and rule evaluation every 15 s), on free
loopback ports in a temporary folder: the real `dumont-receiver serve`, the exporter playing a scenario of
--machines (1,000) machines (2 of 3 gpu, vast/gcp/aws, mounts / and /data, every reading drawn per machine from a seeded
generator; 1 % down, 1 % retired), Alertmanager, the channel stand-ins, and Debian's Prometheus with the
rendered rules (so machine:dumont_memory_usage:ratio, machine_mount:dumont_disk_usage:ratio,
machine:dumont_sync_latency_seconds:p95 and provider:dumont_cost_hourly_usd:sum are its own evaluations).
Before Prometheus starts, its data folder gets two sets of blocks made by promtool:
- savings history (tests/dashboard/history.py): 396 days of dumont_savings_total_usd_total ending at UTC midnight
  two days ago, samples every STEP (300 s), and the hourly tiles (category:dumont_savings_usd:increase1h)
  a throwaway Prometheus computed from them with the environment's savings_hourly rule;
- the last vanish window (1 h in prod) of dumont_machine_uptime_seconds at the scrape interval, labelled as the
  live scrape labels it, plus 1 % more machines that stopped reporting within it: MachineVanished's rule reads
  what it reads on a Prometheus that has run for hours, and finds them vanished (the state query reads its ALERTS).
Other series hold only what the live scrape added since the start (a minute or so): their head chunks are
shorter than a long-running Prometheus's (up to 120 samples), so Prometheus's own time is a little low, for the
endpoint and the baseline alike.

Realtime: --requests (200) sequential GETs of the endpoint, interleaved with the baseline: its Prometheus queries
(fleet.state_query, TARGETS_DOWN, DISKS, COST_BY_PROVIDER, READINGS) POSTed to /api/v1/query from as many threads
at once, without gzip as the receiver asks, the answers read whole but not decoded (decoding is the receiver's
work). Also shown: the same plus the three
Alertmanager reads the endpoint makes (status, alerts, silences, one after the other). Target (issue): p99
under 150 ms and at most 1.5x Prometheus's own p99.

Savings: --requests GETs of the endpoint at `time` = 19:00 UTC the day before the history ends (so the tiles of
the last day are there, as on a Prometheus that has run all along), beside its two queries sent straight to
Prometheus; samples read (Prometheus's stats=all, totalQueryableSamples) by the endpoint's queries, split into
raw counter and tiles, beside the old approach: sum by (category) (increase(counter[365d])), [30d] and [1d] at the
same moment. The history's raw samples are 300 s apart where a real scrape is 15 s: samples are also shown
scaled to a 15 s scrape (raw samples x20; tiles are hourly whatever the scrape), but times are measured on the
300 s history (increase[365d] reads 20x more on a 15 s scrape, the tiles do not).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import math
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
import yaml  # noqa: E402

from deploy.local.stack import Ports, Stack  # noqa: E402
from rules_src.units import parse_duration  # noqa: E402
from tests.dashboard.history import STEP, History, build_blocks  # noqa: E402
from webhook_receiver.dashboard import fleet, savings  # noqa: E402
from webhook_receiver.dashboard.calendar import calendar_at  # noqa: E402
from webhook_receiver.dashboard.sources import Prometheus  # noqa: E402

SEED = 11
TARGET_P99_MS = 150.0
TARGET_RATIO = 1.5
REAL_SCRAPE = 15          # seconds: what the raw samples are scaled to
SHARE = 0.01              # of the fleet: down, retired, and (beside it) vanished
OLD_WINDOWS = ("365d", "30d", "1d")
HEALTHY = {"sync_ok": True, "up": True, "reporting": True}


def machine_ids(count: int, first: int = 0) -> list[tuple[str, str]]:
    """(machine_id, machine_type): two gpu for one cpu."""
    return [(f"{'cpu' if n % 3 == 0 else 'gpu'}-{n:04d}", "cpu" if n % 3 == 0 else "gpu")
            for n in range(first, first + count)]


def fleet_scenario(rng: random.Random, machines: list[tuple[str, str]], down: set[str], retired: set[str]) -> dict:
    """The exporter's scenario: every machine with readings of its own, `down` at uptime 0, `retired` retired."""
    definitions, readings = {}, {}
    for number, (machine_id, kind) in enumerate(machines):
        definitions[machine_id] = {"type": kind, "provider": ("vast", "gcp", "aws")[number % 3],
                                   "mounts": ["/", "/data"]}
        readings[machine_id] = {
            "cpu_percent": round(rng.uniform(2, 98), 1), "memory_used_ratio": round(rng.uniform(0.15, 0.88), 3),
            "disk_used_ratio": round(rng.uniform(0.05, 0.78), 3), "cost_hourly_usd": round(rng.uniform(0.08, 1.6), 3),
            "sync_latency_seconds": round(min(rng.lognormvariate(0.8, 0.7), 90), 2),
            **({"up": False} if machine_id in down else {}), **({"retired": True} if machine_id in retired else {})}
    return {"tick": "5s", "loop": False, "machines": definitions, "components": ["sync", "api", "scheduler"],
            "phases": [{"name": "the fleet", "machines": {"*": HEALTHY, **readings},
                        "components": {"sync": 1.0, "api": 1.0, "scheduler": 1.0},
                        "savings": {"spot": 3.6, "standby": 1.2, "transfer": 0.4}}]}


def uptime_openmetrics(rng: random.Random, machines: list[tuple[str, str]], gone: set[str], down: set[str],
                       labels: str, start: float, end: float, step: float) -> str:
    """dumont_machine_uptime_seconds every `step` over [start, end]: the machines of `gone` stop reporting, those
    of `down` drop to 0, at a moment within it."""
    lines = ["# TYPE dumont_machine_uptime_seconds gauge"]
    points = [start + i * step for i in range(int((end - start) // step) + 1)]
    for machine_id, kind in machines:
        boot = start - rng.uniform(3600, 30 * 86400)
        change = rng.uniform(start + 0.1 * (end - start), end - 0.1 * (end - start))
        name = f'dumont_machine_uptime_seconds{{{labels},machine_id="{machine_id}",machine_type="{kind}"}}'
        for at in points:
            if machine_id in gone and at >= change:
                break
            value = 0.0 if machine_id in down and at >= change else at - boot
            lines.append(f"{name} {value:.0f} {at:.3f}")
    return "\n".join(lines) + "\n# EOF\n"


def backfill(openmetrics: str, out: Path, work: Path) -> None:
    """promtool's blocks of `openmetrics`, into `out`."""
    source, blocks = work / "fleet.om", work / "fleet-blocks"
    source.write_text(openmetrics)
    subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", str(source), str(blocks)],
                   check=True, capture_output=True)
    for block in blocks.iterdir():
        if (block / "meta.json").exists():
            shutil.copytree(block, out / block.name)


def quantiles(seconds: list[float]) -> tuple[float, float]:
    """p50 and p99 (nearest rank) in ms."""
    ordered = sorted(seconds)
    return statistics.median(ordered) * 1000, ordered[math.ceil(len(ordered) * 0.99) - 1] * 1000


def timed(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


class Direct:
    """Prometheus (and Alertmanager) asked straight, as the receiver asks: POST /api/v1/query, bodies read whole."""

    def __init__(self, prometheus_url: str, alertmanager_url: str | None):
        self.prometheus_url, self.alertmanager_url = prometheus_url, alertmanager_url
        self.session = requests.Session()
        self.session.headers["Accept-Encoding"] = "identity"  # as the receiver asks: no gzip
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=16)
        self.session.mount("http://", adapter)
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=16)

    def query(self, expr: str, at: float | None = None) -> bytes:
        form = {"query": expr, **({"time": f"{at:.3f}"} if at is not None else {})}
        response = self.session.post(self.prometheus_url + "/api/v1/query", data=form, timeout=30)
        if response.status_code != 200:
            raise RuntimeError(f"prometheus answered {response.status_code} to {expr[:80]!r}: {response.text[:300]}")
        return response.content

    def alertmanager(self) -> None:
        for path in ("/api/v2/status", "/api/v2/alerts", "/api/v2/silences"):
            response = self.session.get(self.alertmanager_url + path, timeout=30)
            response.raise_for_status()
            response.content  # noqa: B018  (read whole)

    def parallel(self, exprs: list[str], with_alertmanager: bool = False) -> None:
        calls = [lambda expr=expr: self.query(expr) for expr in exprs]
        if with_alertmanager:
            calls.append(self.alertmanager)
        for future in [self.pool.submit(call) for call in calls]:
            future.result()

    def close(self) -> None:
        self.pool.shutdown()
        self.session.close()


class Counting(Prometheus):
    """The receiver's Prometheus client, asking stats=all of every query and keeping each one's samples read."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.read: list[tuple[str, int]] = []

    def query(self, expr: str, at: float | None = None, stats: bool = False) -> dict:
        data = super().query(expr, at, stats=True)
        self.read.append((expr, int(data["stats"]["samples"]["totalQueryableSamples"])))
        return data


def samples(prometheus: Counting, expr: str, at: float) -> int:
    prometheus.read.clear()
    prometheus.query(expr, at)
    return prometheus.read[-1][1]


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(1)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def count(prometheus: Prometheus, expr: str) -> int:
    result = prometheus.vector(f"count({expr})")
    return int(result[0].value) if result else 0


def row(name: str, values: tuple[float, float], extra: str = "") -> str:
    return f"  {name:<52} {values[0]:8.1f} {values[1]:8.1f}  {extra}"


def evaluations(prometheus: Prometheus, exprs: dict[str, str]) -> dict[str, tuple[float, int]]:
    """Each query's evaluation time inside Prometheus (median of 5, ms) and samples read."""
    found = {}
    for name, expr in exprs.items():
        runs = [prometheus.query(expr, stats=True)["stats"] for _ in range(5)]
        found[name] = (statistics.median(run["timings"]["evalTotalTime"] for run in runs) * 1000,
                       int(runs[-1]["samples"]["totalQueryableSamples"]))
    return found


def bench_realtime(receiver: str, direct: Direct, prometheus: Prometheus, requests_n: int) -> tuple[bool, str]:
    named = {"states": fleet.state_query(), "targets_down": fleet.TARGETS_DOWN, "disks": fleet.DISKS,
             "cost_by_provider": fleet.COST_BY_PROVIDER, **fleet.READINGS}
    exprs = list(named.values())
    client = requests.Session()
    url = receiver + "/api/dashboard/metrics/realtime"

    def endpoint():
        response = client.get(url, timeout=30)
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:300]}")
        return response.content

    body = client.get(url, timeout=30).json()
    for _ in range(3):  # warm-up: connections, the receiver's pools
        endpoint(), direct.parallel(exprs), direct.parallel(exprs, True)
    times = {"endpoint": [], "prometheus": [], "both": []}
    for _ in range(requests_n):
        times["endpoint"].append(timed(endpoint))
        times["prometheus"].append(timed(lambda: direct.parallel(exprs)))
        times["both"].append(timed(lambda: direct.parallel(exprs, True)))
    got = {name: quantiles(values) for name, values in times.items()}
    states = body["totals"]["by_state"]
    firing = sum(len(m["alerts"] or ()) for m in body["machines"])
    print(f"realtime: {requests_n} sequential requests, each beside its baseline; the answer lists"
          f" {body['totals']['machines']} machines ({', '.join(f'{k} {v}' for k, v in states.items())}),"
          f" {firing} alerts on them, {len(client.get(url).content) / 1e6:.2f} MB")
    print(f"  {'':<52} {'p50 ms':>8} {'p99 ms':>8}")
    print(row("GET /api/dashboard/metrics/realtime", got["endpoint"]))
    print(row(f"baseline: its {len(exprs)} Prometheus queries, in parallel", got["prometheus"]))
    print(row("  the same + its 3 Alertmanager reads", got["both"]))
    print("  inside Prometheus, each query asked alone (stats=all: evalTotalTime, median of 5; samples read):")
    for name, (ms, read) in evaluations(prometheus, named).items():
        print(f"    {name:<18} {ms:6.1f} ms {read:>9,} samples")
    ratio50, ratio99 = (got["endpoint"][i] / got["prometheus"][i] for i in (0, 1))
    met = got["endpoint"][1] < TARGET_P99_MS and ratio99 <= TARGET_RATIO
    print(f"  endpoint / Prometheus alone: {ratio50:.2f}x at p50, {ratio99:.2f}x at p99"
          f" (target: p99 under {TARGET_P99_MS:.0f} ms and at most {TARGET_RATIO}x): {'OK' if met else 'MISSED'}")
    summary = (f"realtime p50 {got['endpoint'][0]:.0f} ms, p99 {got['endpoint'][1]:.0f} ms; Prometheus alone"
               f" p50 {got['prometheus'][0]:.0f} ms, p99 {got['prometheus'][1]:.0f} ms ({ratio99:.2f}x at p99)")
    return met, summary


def bench_savings(receiver: str, direct: Direct, prometheus: Counting, history: History,
                  requests_n: int) -> str:
    at = history.end - 5 * 3600  # 19:00 UTC the day before the history's last day ends
    client = requests.Session()
    url = receiver + "/api/dashboard/savings"
    params = {"time": f"{at:.0f}", "tz": "UTC"}

    def endpoint():
        response = client.get(url, params=params, timeout=30)
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:300]}")
        return response.content

    answer = client.get(url, params=params, timeout=30).json()
    # The endpoint's queries, as it sends them: the tile offset, then the periods in one expression.
    prometheus.read.clear()
    savings.figures(prometheus, calendar_at(at, ZoneInfo("UTC")))
    (offset_expr, offset_samples), (big_expr, big_samples) = prometheus.read
    pieces = big_expr.split(" or ")
    raw = sum(samples(prometheus, piece, at) for piece in pieces if savings.COUNTER in piece)
    tiles = sum(samples(prometheus, piece, at) for piece in pieces if savings.TILE_RULE in piece) + offset_samples
    old = {window: f"sum by (category) (increase({savings.COUNTER}[{window}]))" for window in OLD_WINDOWS}
    old_samples = {window: samples(prometheus, expr, at) for window, expr in old.items()}

    for _ in range(3):
        endpoint(), direct.query(offset_expr, at), direct.query(big_expr, at), direct.query(old["365d"], at)
    times = {"endpoint": [], "queries": [], **{window: [] for window in OLD_WINDOWS}, "old": []}
    for _ in range(requests_n):
        times["endpoint"].append(timed(endpoint))
        times["queries"].append(timed(lambda: (direct.query(offset_expr, at), direct.query(big_expr, at))))
        spent = 0.0
        for window, expr in old.items():
            spent += (took := timed(lambda expr=expr: direct.query(expr, at)))
            times[window].append(took)
        times["old"].append(spent)
    got = {name: quantiles(values) for name, values in times.items()}
    scale = STEP // REAL_SCRAPE
    ours, ours_15s = big_samples + offset_samples, tiles + raw * scale
    print(f"savings at {time.strftime('%Y-%m-%d %H:%M', time.gmtime(at))} UTC ({len(answer['daily'])} days,"
          f" {len(answer['monthly'])} months, year {answer['year']['total']:.2f} USD, hours missing in the year:"
          f" {answer['year']['hours_missing']}): {requests_n} requests; samples from Prometheus's stats=all;"
          f" history every {STEP} s, x{scale} for raw samples at a {REAL_SCRAPE} s scrape")
    print(f"  {'':<52} {'p50 ms':>8} {'p99 ms':>8}  {'samples':>10} {'at 15 s':>10}")
    print(row("GET /api/dashboard/savings", got["endpoint"], f"{ours:>10,} {ours_15s:>10,}"))
    print(row(f"  its 2 queries straight to Prometheus ({len(pieces)} terms)", got["queries"],
              f"{'':>10} {'':>10}  tiles {tiles:,}, raw {raw:,}"))
    for window in OLD_WINDOWS:
        print(row(f"old: sum by (category) (increase(...[{window}]))", got[window],
                  f"{old_samples[window]:>10,} {old_samples[window] * scale:>10,}"))
    total_old = sum(old_samples.values())
    print(row("old: the three, one after the other", got["old"], f"{total_old:>10,} {total_old * scale:>10,}"))
    print(f"  samples read: the endpoint {ours / old_samples['365d']:.2f}x of increase[365d] alone on this history,"
          f" {ours_15s / (old_samples['365d'] * scale):.3f}x at a 15 s scrape")
    return (f"savings p50 {got['endpoint'][0]:.0f} ms, p99 {got['endpoint'][1]:.0f} ms, {ours:,} samples"
            f" ({ours_15s:,} at 15 s) against increase[365d]'s {old_samples['365d']:,}"
            f" ({old_samples['365d'] * scale:,} at 15 s), p99 {got['365d'][1]:.0f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description="Time the fleet dashboard's realtime and savings endpoints on a"
                                                 " simulated fleet, beside Prometheus alone and increase[365d].")
    parser.add_argument("--machines", type=int, default=1000, help="machines the exporter plays (default 1000)")
    parser.add_argument("--requests", type=int, default=200, help="requests timed per endpoint (default 200)")
    parser.add_argument("--env", default="prod", help="environment whose rendered rules Prometheus runs (prod)")
    args = parser.parse_args()
    started = time.monotonic()
    rng = random.Random(SEED)
    live = machine_ids(args.machines)
    share = max(1, round(args.machines * SHARE))
    picked = rng.sample([machine_id for machine_id, _ in live], 2 * share)
    down, retired = set(picked[:share]), set(picked[share:])
    vanished = machine_ids(share, first=args.machines)
    rendered = ROOT / "generated" / args.env / "prometheus"
    vanish_window = re.search(r"max_over_time\(dumont_machine_uptime_seconds\[(\w+)\]\)",
                              (rendered / "rules" / "machines.yml").read_text()).group(1)  # MachineVanished's
    prometheus_yml = yaml.safe_load((rendered / "prometheus.yml").read_text())
    scrape = parse_duration(prometheus_yml["global"]["scrape_interval"])
    job = prometheus_yml["scrape_configs"][0]["job_name"]
    with tempfile.TemporaryDirectory(prefix="dashboard-bench-") as tmp:
        work = Path(tmp)
        history = History.ending_before(time.time())
        data = work / "run" / "data" / "prometheus"
        data.mkdir(parents=True)
        build_blocks(history, data, rendered / "rules" / "savings_hourly.yml")
        ports = Ports.free()
        now = time.time()
        backfill(uptime_openmetrics(rng, live + vanished, retired | {m for m, _ in vanished}, down,
                                    f'instance="127.0.0.1:{ports.exporter}",job="{job}"',
                                    now - parse_duration(vanish_window), now - scrape, scrape), data, work)
        print(f"dashboard: {args.machines} machines ({len(down)} down, {len(retired)} retired, {len(vanished)} more"
              f" vanished), env {args.env} (scrape every {scrape:g} s, vanish window {vanish_window});"
              f" {History.__name__} of {(history.end - history.start) // 86400} days and {vanish_window} of uptime"
              f" backfilled in {time.monotonic() - started:.0f} s")
        stack = Stack(work / "run", env=args.env, ports=ports,
                      scenario=fleet_scenario(rng, live, down, retired), ready_timeout=60)
        with stack:
            prometheus = Counting(stack.url("prometheus"), requests.Session(), 60)
            expected_up = args.machines - 2 * share
            wait_for(lambda: count(prometheus, "dumont_machine_uptime_seconds > 0") >= expected_up
                     and count(prometheus, fleet.READINGS["sync_p95_seconds"]) >= expected_up
                     and count(prometheus, fleet.READINGS["memory_ratio"]) >= args.machines - share
                     and count(prometheus, fleet.DISKS) >= 2 * (args.machines - share)
                     # MachineVanished names the vanished machines from its second evaluation on
                     and count(prometheus, 'ALERTS{alertname="MachineVanished"}') >= share, 180,
                     "the fleet scraped and its rules evaluated")
            series = count(prometheus, f"last_over_time(dumont_machine_uptime_seconds[{vanish_window}])")
            print(f"stack ready after {time.monotonic() - started:.0f} s; uptime series over the vanish window:"
                  f" {series} (one per machine: the backfill carries the live scrape's labels)")
            direct = Direct(stack.url("prometheus"), stack.alertmanager_urls()[0])
            try:
                realtime_met, realtime = bench_realtime(stack.url("receiver"), direct, prometheus, args.requests)
                saved = bench_savings(stack.url("receiver"), direct, prometheus, history, args.requests)
            finally:
                direct.close()
    print(f"summary: {realtime}; {saved}. Realtime target {'met' if realtime_met else 'MISSED'}"
          f" (benchmark took {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
