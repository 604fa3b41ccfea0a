"""`dumont-rules backtest` over 7 days of a 1,000-machine fleet: its wall time beside the wall time of the bare
query_range calls it makes (issue target: the replay and report add at most 25 % over Prometheus's own time), and
its peak memory.

History. OpenMetrics for --days (7) of --machines (1,000) machines at a 15 s scrape (40,320 samples per series),
labelled as the scrape of job="dumont-exporter", instance="exporter:9877" labels them and with the catalog's
labels per family (machine_id, machine_type, mount="/", provider; the sync families machine_id and direction),
drawn from a seeded generator (SEED): every machine has readings of its own, and a few percent of them cross a
threshold now and then (FRACTION): a disk filling to 83-97 % for hours (DiskAlmostFull, DiskFillingUp), memory
over 90 % for 2-30 min (HighMemoryUsage, pending only when short), a cost of 1.1-3 USD/h for minutes to hours
(HighCostAnomaly; with a few at once, ProviderCostHigh), syncs of 30 s or 90 s for a while (HighSyncLatency),
syncs stopping (SyncStopped), uptime 0 (MachineDown), and a machine reporting nothing for 10-50 min
(MachineVanished). Beside them, a dozen fleet series at the same scrape: `up` of the exporter and both
receivers, dumont_health_status (with a few dips), dumont_failovers_total (with a few storms) and the receivers'
relay and channel gauges, so the meta alerts read what they read in prod instead of nothing.

Budget. Every family the prod alerts read, on every machine, is 10 series a machine (with the sync histogram cut
to the three buckets HighSyncLatency's p95 needs: le="20.0", the threshold; le="60.0", a finite bound above it;
+Inf; the exporter has fifteen), ~400M samples. That is too much twice over: promtool turns OpenMetrics into
blocks at ~0.7M samples/s on one core (and writing the text costs ~0.6 s per million), ~6 min on two cores;
and Prometheus's own time for one backtest of it is ~8 min, half of it DiskFillingUp's predict_linear over a
6 h subquery at 15 s (1,440 points per series and evaluation), a quarter HighSyncLatency's inlined
histogram_quantile. The benchmark runs it three times (backtest, baseline, tracemalloc). So, by default, every
machine carries the four series that cost the least to evaluate (dumont_memory_usage_bytes,
dumont_memory_total_bytes, dumont_cost_hourly_usd, dumont_machine_uptime_seconds) and every tenth one
(SAMPLED_EVERY, 100 machines, cpu and gpu) also the disk and sync series (dumont_disk_usage_bytes,
dumont_disk_total_bytes, dumont_sync_last_success_timestamp, 3 buckets), their trouble ten times as frequent
among them: 4.6 series a machine, ~185M samples, every prod alert with data and most of them firing, ~10 min in
all. --full puts every series on every machine (~30 min). The overhead is measured either way: the replay's and
report's work grows with the firing points and episodes Prometheus returns, not with the series it reads, so
fewer series only make Prometheus's share smaller and the overhead figure, if anything, higher.

The file is streamed in time slices of at least SLICE_HOURS (28 h, more than half of the 54 h block range of a
Prometheus keeping 30 d, so it never compacts two of them together at startup), each turned into one block by promtool
(`create-blocks-from openmetrics --max-block-duration=744h`, i.e. 486 h block ranges: the history ends on such a
boundary, so promtool reads each file once) while the next slice is written, and deleted once read.

The recording rules the alerts read (machine_mount:dumont_disk_usage:ratio, machine:dumont_memory_usage:ratio,
machine:dumont_sync_latency_seconds:p95) have no history in these blocks: the backtest inlines them, as it does
for real on a rule younger than the range, so Prometheus computes them from the raw series for every query.

Run. Debian's prometheus on the blocks (free port, temporary folder, --storage.tsdb.retention.time=30d, an empty
configuration, default query limits), every sample read once first (count_over_time per name) so that no run
pays for cold pages. Then --rounds (1) times: the backtest in-process as the command line runs it
(rules_src.backtest.command.backtest, env prod, every alert, the history's range, --json), timed, its requests
recorded in the first round; then the baseline: the same requests (same expressions, chunks and step) POSTed
again with requests, one after the other, answers read whole but not decoded: Prometheus's own time, HTTP
included. Overhead = backtest / baseline - 1, best round against best round. Prometheus's time for the same
requests varies by several per cent from one pass to the next, more than the backtest adds: its own time (wall
less the time it waited on Prometheus, from the same run) is shown too. Last, one untimed run under tracemalloc
gives the peak of Python's allocations (ru_maxrss, the history being built in a child process, is the
backtest's process).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import cProfile
import io
import json
import multiprocessing
import operator
import pstats
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from deploy.local.processes import ManagedProcess, ServiceSpec, free_port  # noqa: E402
from rules_src.backtest.fetch import CHUNK_POINTS  # noqa: E402

SEED = 23
SCRAPE = 15                    # seconds between samples
MINUTE = 60 // SCRAPE          # samples a minute: gauges that move change once a minute, syncs happen once a minute
HOUR = 3600 // SCRAPE
SLICE_HOURS = 28
BLOCK_RANGE = 486 * 3600       # promtool's block range for --max-block-duration=744h
TARGET_OVERHEAD = 0.25
SCRAPE_LABELS = 'instance="exporter:9877",job="dumont-exporter"'
BUCKETS = ("20.0", "60.0", "+Inf")  # le of the sync latency buckets kept: the threshold, a bound above, +Inf
FRACTION = {                   # share of machines with trouble of each kind, over the whole history
    "disk": 0.04, "memory": 0.05, "cost": 0.03, "slow_sync": 0.04, "sync_stop": 0.02, "down": 0.02, "vanish": 0.01}
SAMPLED_EVERY = 10             # machines 0, 10, 20, ... carry the disk and sync series (all of them with --full)
PROVIDERS = {"vast": (0.04, 0.16), "gcp": (0.06, 0.20), "aws": (0.08, 0.20)}  # normal USD/h per machine


# --- the fleet -------------------------------------------------------------------------------------------------

@dataclass
class Machine:
    """One machine's readings over the history, as functions of the sample index (0 .. count-1)."""

    machine_id: str
    kind: str
    provider: str
    disk_total: int
    disk_base: float
    disk_drift: float                       # ratio gained per minute
    memory_total: int
    memory_base: float
    noise_offset: int
    cost: float
    boot_age: int                           # uptime at index 0, in samples
    sync_phase: int                         # syncs happen at indexes sync_phase + k * MINUTE
    syncs_before: int                       # syncs counted before the history
    sampled: bool                           # carries the disk and sync series
    fills: list[tuple[int, int, int, int, float]] = field(default_factory=list)  # start, full, held, end, peak
    spikes: list[tuple[int, int, float]] = field(default_factory=list)           # memory: start, end, ratio
    costly: list[tuple[int, int, float]] = field(default_factory=list)           # cost: start, end, USD/h
    slow: list[tuple[int, int, int]] = field(default_factory=list)               # syncs: start, end, bucket
    stopped: list[tuple[int, int]] = field(default_factory=list)                 # no sync succeeds
    down: list[tuple[int, int]] = field(default_factory=list)                    # uptime 0, then boots again
    gaps: list[tuple[int, int]] = field(default_factory=list)                    # no series at all

    def labels(self) -> str:
        return f'{SCRAPE_LABELS},machine_id="{self.machine_id}",machine_type="{self.kind}"'

    def disk_ratio(self, i: int) -> float:
        ratio = self.disk_base + self.disk_drift * (i // MINUTE)
        for start, full, held, end, peak in self.fills:
            if start <= i < end:
                if i < full:
                    return ratio + (peak - ratio) * (i - start) / (full - start)
                if i < held:
                    return peak
                return ratio + (peak - ratio) * (end - i) / (end - held)  # cleaned up over a few minutes
        return ratio

    def memory_ratio(self, i: int, noise: list[float]) -> float:
        for start, end, ratio in self.spikes:
            if start <= i < end:
                return ratio
        return self.memory_base + noise[(i // MINUTE + self.noise_offset) % len(noise)]


def _episodes(rng: random.Random, count: int, many: tuple[int, int], length: tuple[int, int]) -> list[tuple[int, int]]:
    """A few non-overlapping [start, end) spans of `length` samples within [0, count)."""
    out: list[tuple[int, int]] = []
    for _ in range(rng.randint(*many)):
        size = rng.randint(*length)
        start = rng.randrange(0, max(1, count - size))
        if all(end + HOUR < start or start + size + HOUR < other for other, end in out):
            out.append((start, start + size))
    return sorted(out)


def fleet(machines: int, count: int, every: int = SAMPLED_EVERY, seed: int = SEED) -> tuple[list[Machine], list[float]]:
    """The machines, each with its troubles drawn, and the shared minute-by-minute memory noise. Every `every`th
    machine carries the disk and sync series; among them, their trouble is `every` times as frequent (at most
    40 %), so about as many machines cross those thresholds as if every machine carried them."""
    rng = random.Random(seed)
    boost = {kind: min(0.4, FRACTION[kind] * every) for kind in ("disk", "slow_sync", "sync_stop")}
    noise = [rng.gauss(0, 0.015) for _ in range(7919)]
    out = []
    for number in range(machines):
        kind = "cpu" if number % 3 == 0 else "gpu"
        provider = rng.choice(tuple(PROVIDERS))
        m = Machine(
            machine_id=f"{kind}-{number:04d}", kind=kind, provider=provider,
            disk_total=rng.choice((500, 1000, 2000)) * 10**9, disk_base=rng.uniform(0.15, 0.6),
            disk_drift=rng.uniform(0, 0.02) / (24 * 60), memory_total=rng.choice((64, 128, 256)) * 2**30,
            memory_base=rng.uniform(0.2, 0.75), noise_offset=rng.randrange(7919),
            cost=round(rng.uniform(*PROVIDERS[provider]), 3), boot_age=rng.randrange(HOUR, 60 * 24 * HOUR),
            sync_phase=rng.randrange(MINUTE), syncs_before=rng.randrange(1000, 50000),
            sampled=number % every == 0)
        if m.sampled and rng.random() < boost["disk"]:
            for start, _ in _episodes(rng, count, (1, 2), (8 * HOUR, 16 * HOUR)):
                full = start + rng.randint(2 * HOUR, 5 * HOUR)
                held = full + rng.randint(1 * HOUR, 10 * HOUR)
                m.fills.append((start, full, held, held + rng.randint(2 * MINUTE, 20 * MINUTE),
                                rng.uniform(0.83, 0.97)))
        if rng.random() < FRACTION["memory"]:
            m.spikes = [(a, b, rng.uniform(0.92, 0.98)) for a, b in
                        _episodes(rng, count, (1, 4), (2 * MINUTE, 30 * MINUTE))]
        if rng.random() < FRACTION["cost"]:
            m.costly = [(a, b, round(rng.uniform(1.1, 3.0), 3)) for a, b in
                        _episodes(rng, count, (1, 3), (5 * MINUTE, 6 * HOUR))]
        sync_troubles = []
        if m.sampled and rng.random() < boost["slow_sync"]:
            sync_troubles = [(a, b, rng.choice((1, 1, 2))) for a, b in
                             _episodes(rng, count, (1, 3), (3 * MINUTE, 90 * MINUTE))]
        if m.sampled and rng.random() < boost["sync_stop"]:
            for a, b in _episodes(rng, count, (1, 2), (4 * MINUTE, 60 * MINUTE)):
                if all(b + HOUR < s or e + HOUR < a for s, e, _ in sync_troubles):
                    m.stopped.append((a, b))
        m.slow = sync_troubles
        if rng.random() < FRACTION["down"]:
            m.down = _episodes(rng, count, (1, 2), (1 * MINUTE, 40 * MINUTE))
        if rng.random() < FRACTION["vanish"]:
            m.gaps = [(a, b) for a, b in _episodes(rng, count, (1, 2), (10 * MINUTE, 50 * MINUTE))
                      if all(b + HOUR < s or e + HOUR < a for s, e in m.down)]
        out.append(m)
    return out, noise


# --- OpenMetrics -----------------------------------------------------------------------------------------------

class Writer:
    """Lines `prefix value timestamp` for runs of samples with one value, fast: the timestamps' text is made once,
    and a run is one map over its slice of them."""

    def __init__(self, start: int, count: int):
        self.start = start
        self.lines = 0                   # samples written so far
        self.tails = [f" {start + SCRAPE * i}\n" for i in range(count)]
        self.multiples: list[str] = []   # str(SCRAPE * k), for uptimes

    def run(self, out: list[str], prefix: str, value: str, a: int, b: int) -> None:
        out.append("".join(map((prefix + value).__add__, self.tails[a:b])))
        self.lines += b - a

    def counting(self, out: list[str], prefix: str, first: int, a: int, b: int) -> None:
        """Samples whose value is SCRAPE * (first + i - a): an uptime."""
        need = first + b - a
        if need > len(self.multiples):
            self.multiples += [str(SCRAPE * k) for k in range(len(self.multiples), need + 100_000)]
        out.append("".join(map(operator.add, map(prefix.__add__, self.multiples[first:need]), self.tails[a:b])))
        self.lines += b - a


def _visible(gaps: list[tuple[int, int]], a: int, b: int) -> list[tuple[int, int]]:
    """[a, b) less the machine's gaps."""
    if not gaps:
        return [(a, b)] if a < b else []
    out = []
    for start, end in gaps:
        if start > a:
            out.append((a, min(b, start)))
        a = max(a, end)
        if a >= b:
            break
    if a < b:
        out.append((a, b))
    return [(x, y) for x, y in out if x < y]


def _steps(w: Writer, out: list[str], prefix: str, values: list[tuple[int, str]], lo: int, hi: int,
           gaps: list[tuple[int, int]]) -> None:
    """A series whose value changes at given indexes: `values` sorted (index, text), the first at or before lo."""
    for n, (at, text) in enumerate(values):
        a = max(at, lo)
        b = min(values[n + 1][0], hi) if n + 1 < len(values) else hi
        if gaps:
            for x, y in _visible(gaps, a, b):
                w.run(out, prefix, text, x, y)
        elif a < b:
            w.run(out, prefix, text, a, b)


def _minutes(lo: int, hi: int) -> range:
    return range(lo - lo % MINUTE, hi, MINUTE)


def _syncs_in(phase: int, a: int, b: int) -> int:
    """Sync indexes (phase + k * MINUTE, k >= -1: the first slice starts with the sync before the history) in
    [a, b)."""
    def below(x: int) -> int:
        return max(0, (x - phase + 2 * MINUTE - 1) // MINUTE)
    return below(b) - below(a) if b > a else 0


def _sync_state(m: Machine, i: int) -> int:
    """At a sync index: the bucket its latency falls in (0: <= 20 s, 1: <= 60 s, 2: above), -1 when none succeeds."""
    for a, b in m.stopped:
        if a <= i < b:
            return -1
    for a, b, bucket in m.slow:
        if a <= i < b:
            return bucket
    return 0


def _bucket_counts_before(m: Machine, x: int) -> list[int]:
    """Syncs per bucket (not cumulative) before index x, from the machine's start."""
    total = _syncs_in(m.sync_phase, -MINUTE, x)
    stopped = sum(_syncs_in(m.sync_phase, a, min(b, x)) for a, b in m.stopped)
    per = [m.syncs_before + total - stopped, 0, 0]
    for a, b, bucket in m.slow:
        moved = _syncs_in(m.sync_phase, a, min(b, x))
        per[0] -= moved
        per[bucket] += moved
    return per


def write_slice(path: Path, w: Writer, machines: list[Machine], noise: list[float], lo: int, hi: int,
                fleet_series: list[tuple[str, str, list[tuple[int, str]]]]) -> int:
    """Samples [lo, hi) of every series, as one OpenMetrics file; the number of samples written."""
    first_line = w.lines
    with open(path, "w", buffering=1 << 22) as f:
        def flush(out: list[str]) -> None:
            f.write("".join(out))
            out.clear()

        def family(name: str, kind: str, per_machine, sampled: bool = False) -> None:
            f.write(f"# TYPE {name} {kind}\n")
            out: list[str] = []
            flushed = w.lines
            for m in machines:
                if sampled and not m.sampled:
                    continue
                per_machine(out, m)
                if w.lines - flushed > 200_000:  # ~30 MB of text
                    flush(out)
                    flushed = w.lines
            flush(out)

        minutes = _minutes(lo, hi)

        def disk_usage(out, m):
            values = [(i, str(int(m.disk_ratio(i) * m.disk_total))) for i in minutes]
            _steps(w, out, f'dumont_disk_usage_bytes{{{m.labels()},mount="/"}} ', values, lo, hi, m.gaps)

        def disk_total(out, m):
            _steps(w, out, f'dumont_disk_total_bytes{{{m.labels()},mount="/"}} ', [(lo, str(m.disk_total))],
                   lo, hi, m.gaps)

        def memory_usage(out, m):
            values = [(i, str(int(m.memory_ratio(i, noise) * m.memory_total))) for i in minutes]
            _steps(w, out, f"dumont_memory_usage_bytes{{{m.labels()}}} ", values, lo, hi, m.gaps)

        def memory_total(out, m):
            _steps(w, out, f"dumont_memory_total_bytes{{{m.labels()}}} ", [(lo, str(m.memory_total))], lo, hi,
                   m.gaps)

        def cost(out, m):
            values = [(lo, str(m.cost))]
            for a, b, usd in m.costly:
                if b > lo and a < hi:
                    values += [(max(a, lo), str(usd)), (b, str(m.cost))]
            _steps(w, out, f'dumont_cost_hourly_usd{{{m.labels()},provider="{m.provider}"}} ', values, lo, hi,
                   m.gaps)

        def uptime(out, m):
            prefix = f"dumont_machine_uptime_seconds{{{m.labels()}}} "
            boots, spans = -m.boot_age, []  # the index uptime 0 was, and [a, b) up or down
            at = lo
            for a, b in m.down:
                if b <= lo or a >= hi:
                    if b <= lo:
                        boots = b
                    continue
                if a > at:
                    spans.append((at, a, boots))
                spans.append((max(a, lo), min(b, hi), None))
                boots, at = b, min(b, hi)
            if at < hi:
                spans.append((at, hi, boots))
            for a, b, boot in spans:
                for x, y in _visible(m.gaps, a, b):
                    if boot is None:
                        w.run(out, prefix, "0", x, y)
                    else:
                        w.counting(out, prefix, x - boot + 1, x, y)

        def last_sync(out, m):
            values, last = [], None
            first = lo - (lo - m.sync_phase) % MINUTE  # the sync at or before lo (may be before the history)
            for i in range(first - MINUTE * 120, first, MINUTE):  # the latest success before lo
                if _sync_state(m, i) >= 0:
                    last = i
            for i in range(first, hi, MINUTE):
                if _sync_state(m, i) >= 0:
                    last = i
                    values.append((i, str(w.start + SCRAPE * i - 2)))
                elif not values:
                    values.append((i, str(w.start + SCRAPE * (last if last is not None else i - MINUTE) - 2)))
            _steps(w, out, f'dumont_sync_last_success_timestamp{{{SCRAPE_LABELS},machine_id="{m.machine_id}"}} ',
                   values, lo, hi, m.gaps)

        def buckets(out, m):
            first = lo - (lo - m.sync_phase) % MINUTE  # the sync at or before lo
            per = _bucket_counts_before(m, first)
            series: list[list[tuple[int, str]]] = [[] for _ in BUCKETS]
            plain = not m.slow and not m.stopped
            for i in range(first, hi, MINUTE):
                state = 0 if plain else _sync_state(m, i)
                if state >= 0:
                    per[state] += 1
                cumulative = 0
                for n, values in enumerate(series):
                    cumulative += per[n]
                    if i == first or 0 <= state <= n:  # the bucket counted this sync
                        values.append((i, str(cumulative)))
            for le, values in zip(BUCKETS, series):
                _steps(w, out, f'dumont_sync_latency_seconds_bucket{{direction="gpu_to_cpu",{SCRAPE_LABELS},'
                               f'le="{le}",machine_id="{m.machine_id}"}} ', values, lo, hi, m.gaps)

        family("dumont_disk_usage_bytes", "gauge", disk_usage, sampled=True)
        family("dumont_disk_total_bytes", "gauge", disk_total, sampled=True)
        family("dumont_memory_usage_bytes", "gauge", memory_usage)
        family("dumont_memory_total_bytes", "gauge", memory_total)
        family("dumont_cost_hourly_usd", "gauge", cost)
        family("dumont_machine_uptime_seconds", "gauge", uptime)
        family("dumont_sync_last_success_timestamp", "gauge", last_sync, sampled=True)
        family("dumont_sync_latency_seconds", "histogram", buckets, sampled=True)
        by_family: dict[str, list] = {}
        for name, labels, values in fleet_series:
            by_family.setdefault(name, []).append((labels, values))
        for name, members in by_family.items():
            family_name, kind = (name[:-len("_total")], "counter") if name.endswith("_total") else (name, "gauge")
            f.write(f"# TYPE {family_name} {kind}\n")
            out = []
            for labels, values in members:
                _steps(w, out, f"{name}{{{labels}}} ", values, lo, hi, [])
            flush(out)
        f.write("# EOF\n")
    return w.lines - first_line


def fleet_series(count: int, seed: int = SEED) -> list[tuple[str, str, list[tuple[int, str]]]]:
    """The fleet's own series (name, labels, changes): scrape health, components, failovers, the receivers."""
    rng = random.Random(seed + 1)
    receivers = ("receiver-1:9878", "receiver-2:9878")
    out = [("up", SCRAPE_LABELS, [(0, "1")])]
    out += [("up", f'instance="{r}",job="dumont-receiver"', [(0, "1")]) for r in receivers]
    for component in ("sync", "api", "scheduler"):
        values = [(0, "1")]
        for a, b in _episodes(rng, count, (1, 4), (3 * MINUTE, 20 * MINUTE)):
            values += [(a, "0.5"), (b, "1")]
        out.append(("dumont_health_status", f'component="{component}",{SCRAPE_LABELS}', values))
    failovers, i = set(), 0  # now and then, and one a minute in a storm
    while i < count:
        failovers.add(i)
        i += rng.randrange(2 * HOUR, 6 * HOUR)
    for a, b in _episodes(rng, count, (2, 3), (10 * MINUTE, 20 * MINUTE)):
        failovers.update(range(a, b, MINUTE))
    total = rng.randrange(100, 500)
    values = [(i, str(total + n)) for n, i in enumerate(sorted(failovers))]
    out.append(("dumont_failovers_total", f'from_type="gpu",{SCRAPE_LABELS},reason="unhealthy",to_type="cpu"',
                values))
    for r in receivers:
        labels = f'instance="{r}",job="dumont-receiver"'
        out.append(("dumont_receiver_relay_stalled", labels, [(0, "0")]))
        out += [("dumont_receiver_channel_failing", f'channel="{c}",{labels}', [(0, "0")])
                for c in ("slack-alerts", "email-team")]
    return out


# --- blocks ----------------------------------------------------------------------------------------------------

def _promtool(source: Path, out: Path) -> float:
    """One slice's blocks; the OpenMetrics file is deleted once read. The seconds it took."""
    started = time.perf_counter()
    try:
        subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=744h",
                        str(source), str(out)], check=True, capture_output=True)
    finally:
        source.unlink(missing_ok=True)
    return time.perf_counter() - started


def build_history(work: Path, data: Path, machines: list[Machine], noise: list[float],
                  fleet_wide: list[tuple[str, str, list[tuple[int, str]]]], start: int, count: int) -> dict:
    """Every slice written and turned into a block, two promtools at a time beside the writer; at most three
    slices on disk at once. What it took."""
    writer = Writer(start, count)
    slices = max(1, count // (SLICE_HOURS * HOUR))   # each at least SLICE_HOURS long
    bounds = [count * n // slices for n in range(slices + 1)]
    samples, writing, pending = 0, 0.0, []
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        for number, (lo, hi) in enumerate(zip(bounds, bounds[1:])):
            while len([f for f in pending if not f.done()]) >= 2:
                concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
            source = work / f"slice-{number}.om"
            began = time.perf_counter()
            samples += write_slice(source, writer, machines, noise, lo, hi, fleet_wide)
            writing += time.perf_counter() - began
            pending.append(pool.submit(_promtool, source, work / f"blocks-{number}"))
        promtool = sum(f.result() for f in pending)
    data.mkdir(parents=True, exist_ok=True)
    blocks = 0
    for number in range(slices):
        for block in (work / f"blocks-{number}").iterdir():
            if (block / "meta.json").exists():
                shutil.move(str(block), data / block.name)
                blocks += 1
    sampled = sum(m.sampled for m in machines)
    return {"samples": samples, "series": len(machines) * 4 + sampled * (3 + len(BUCKETS)) + len(fleet_wide),
            "sampled": sampled, "slices": slices, "blocks": blocks, "writing_seconds": writing,
            "promtool_seconds": promtool, "wall_seconds": time.perf_counter() - started}


# --- Prometheus ------------------------------------------------------------------------------------------------

def prometheus(work: Path, data: Path) -> ManagedProcess:
    """Debian's prometheus on the blocks in `data`, on a free port, with an empty configuration (not started)."""
    (work / "prometheus.yml").write_text("{}\n")
    port = free_port()
    return ManagedProcess(ServiceSpec("prometheus", [
        "prometheus", f"--storage.tsdb.path={data}", f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=30d", f"--config.file={work / 'prometheus.yml'}"],
        port, "/-/ready", f"http://127.0.0.1:{port}"), work)


# --- the backtest and its baseline -----------------------------------------------------------------------------

def backtest_args(url: str, start: float, end: float) -> argparse.Namespace:
    """What the command line builds for `dumont-rules backtest --prometheus URL --start .. --end .. --json`."""
    return argparse.Namespace(prometheus=url, env="prod", range=None, start=f"{start:.0f}", end=f"{end:.0f}",
                              alert=[], settings=[], generated=None, json=True)


class _Answer:
    """A response read whole, as requests hands it over: its bytes (a fresh copy), decoded on .json()."""

    def __init__(self, status: int, body: bytes):
        self.status_code = status
        self.content = bytearray(body)

    def json(self):
        return json.loads(self.content.decode("utf-8"))


class _Answers:
    """A stand-in for the client's requests.Session: the answers of a pass over the same requests, from memory."""

    def __init__(self, answers: dict):
        self.answers = answers

    def post(self, url: str, data: dict, timeout: float) -> _Answer:
        return _Answer(*self.answers[(url[url.index("/api/"):], tuple(sorted(data.items())))])


def run_backtest(args: argparse.Namespace, record: bool = False, answers: dict | None = None,
                 profile: bool = False) -> dict:
    """The backtest, as `dumont-rules backtest` runs it, timed: its outcomes and meta; with `record` the requests
    it made (path, form, what, seconds); with `answers` (from bare_queries) Prometheus's answers come from memory
    and the peak of Python's allocations is measured (tracemalloc); with `profile` a cProfile of it."""
    from rules_src.backtest import command
    from rules_src.backtest.fetch import Prometheus

    calls: list[tuple[str, dict, str, float]] = []

    class Recording(Prometheus):
        def _get(self, path, params, what):
            began = time.perf_counter()
            try:
                return super()._get(path, params, what)
            finally:
                calls.append((path, dict(params), what, time.perf_counter() - began))

    class Replaying(Prometheus):
        def __init__(self, *positional, **named):
            super().__init__(*positional, **named)
            self.session = _Answers(answers)

    profiler = cProfile.Profile() if profile else None
    traced = answers is not None
    if record:
        command.Prometheus = Recording
    if traced:
        command.Prometheus = Replaying
        tracemalloc.start()
    try:
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        outcomes, meta = command.backtest(args, ROOT / "generated")
        if profiler:
            profiler.disable()
        wall = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] if traced else None
    finally:
        if traced:
            tracemalloc.stop()
        command.Prometheus = Prometheus
    return {"wall": wall, "outcomes": outcomes, "meta": meta, "calls": calls, "traced_peak": peak,
            "profiler": profiler}


def bare_queries(url: str, calls: list[tuple[str, dict, str, float]]) -> tuple[float, int, dict]:
    """The recorded requests POSTed again one after the other, answers read whole, not decoded: the seconds, how
    many Prometheus refused (and the backtest asked again in smaller chunks), and the answers."""
    session = requests.Session()
    refused, answers, started = 0, {}, time.perf_counter()
    for path, params, _, _ in calls:
        response = session.post(url + path, data=params, timeout=300)
        answers[(path, tuple(sorted(params.items())))] = (response.status_code, response.content)
        refused += response.status_code != 200
    return time.perf_counter() - started, refused, answers


def warm_up(url: str, start: float, end: float) -> float:
    """Every sample of the history read once (count_over_time by the hour, a query per name), so that neither the
    first timed run nor the baseline pays for pages of the blocks not yet in memory. The seconds it took."""
    began = time.perf_counter()
    names = requests.get(url + "/api/v1/label/__name__/values", timeout=60).json()["data"]
    for name in names:
        response = requests.post(url + "/api/v1/query_range", timeout=600, data={
            "query": f"count(count_over_time({name}[1h]))", "start": f"{start + 3600:.0f}", "end": f"{end:.0f}",
            "step": "3600"})
        response.raise_for_status()
    return time.perf_counter() - began


def maxrss() -> int:
    """The process's peak resident size so far, in bytes (Linux gives KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def mb(size: float) -> str:
    return f"{size / 2**20:,.0f} MB"


def main() -> int:
    parser = argparse.ArgumentParser(description="Time `dumont-rules backtest` over a week of a simulated 1,000-"
                                                 "machine fleet, beside the bare query_range calls it makes.")
    parser.add_argument("--machines", type=int, default=1000, help="machines in the fleet (default 1000)")
    parser.add_argument("--days", type=float, default=7, help="days of history (default 7)")
    parser.add_argument("--full", action="store_true", help="every machine carries the disk and sync series too"
                        " (10 series a machine rather than 4.6: 2x the samples, ~3x Prometheus's time)")
    parser.add_argument("--rounds", type=int, default=1, help="timed rounds of backtest and baseline (default 1)")
    parser.add_argument("--profile", action="store_true", help="also run the backtest once under cProfile")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    began = time.perf_counter()
    count = int(args.days * 86400) // SCRAPE
    end = int(time.time()) // BLOCK_RANGE * BLOCK_RANGE   # on a block boundary: promtool reads each slice once
    start = end - count * SCRAPE
    machines, noise = fleet(args.machines, count, 1 if args.full else SAMPLED_EVERY)
    fleet_wide = fleet_series(count)
    troubled = {kind: sum(bool(getattr(m, attr)) for m in machines) for kind, attr in (
        ("disk fills", "fills"), ("memory spikes", "spikes"), ("cost spikes", "costly"), ("slow syncs", "slow"),
        ("syncs stopping", "stopped"), ("down", "down"), ("vanishing", "gaps"))}
    with tempfile.TemporaryDirectory(prefix="backtest-bench-") as tmp:
        work = Path(tmp)
        data = work / "data"
        # In a child process, so that this one's ru_maxrss is the backtest's.
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as child:
            built = child.submit(build_history, work, data, machines, noise, fleet_wide, start, count).result()
        print(f"history: {args.machines:,} machines, {args.days:g} days at a {SCRAPE} s scrape ({count:,} samples a"
              f" series), ending {time.strftime('%Y-%m-%d %H:%M', time.gmtime(end))} UTC: {built['series']:,} series"
              f" ({built['sampled']} machines with disk and sync series), {built['samples'] / 1e6:,.1f}M"
              f" samples; machines with trouble: " + ", ".join(f"{kind} {n}" for kind, n in troubled.items()))
        print(f"  {built['slices']} slices of OpenMetrics written in {built['writing_seconds']:.0f} s and read by"
              f" promtool in {built['promtool_seconds']:.0f} s (two at a time beside the writer): {built['blocks']}"
              f" blocks in {built['wall_seconds']:.0f} s")
        server = prometheus(work, data)
        try:
            server.start()
            server.wait_ready(120)
            bench(server.spec.url, start, end - SCRAPE, count, args.rounds, args.profile)
        finally:
            server.stop(30)
    print(f"(benchmark took {time.perf_counter() - began:.0f} s)")
    return 0


def bench(url: str, start: float, end: float, count: int, rounds: int, profile: bool) -> None:
    args = backtest_args(url, start, end)
    warm = warm_up(url, start, end)
    rss_before = maxrss()
    walls, bases, waits, calls = [], [], [], []
    for number in range(rounds):
        run = run_backtest(args, record=number == 0)
        if number == 0:
            first, calls, rss_after = run, run["calls"], maxrss()
        elif run["meta"]["queries"] != len(calls):
            raise RuntimeError(f"round {number + 1}: the backtest made {run['meta']['queries']} requests,"
                               f" {len(calls)} in round 1")
        walls.append(run["wall"])
        waits.append(run["meta"]["prometheus_seconds"])
        base, refused, answers = bare_queries(url, calls)
        bases.append(base)
    outcomes, meta = first["outcomes"], first["meta"]
    ranges = sum(path.endswith("query_range") for path, *_ in calls)
    by_alert: dict[str, float] = {}
    for _, _, what, seconds in calls:
        name = what.split(":")[0].split(" (")[0]
        by_alert[name] = by_alert.get(name, 0.0) + seconds
    inlined = sorted({name for group in outcomes for o in group for name in o.inlined})
    print(f"backtest of prod: {len(outcomes)} alerts over {count:,} evaluations (step"
          f" {meta['range']['step_seconds']:g} s); {meta['queries']} requests to Prometheus: {ranges} query_range"
          f" (chunks of at most {CHUNK_POINTS:,} points), {len(calls) - ranges} instant; {refused} refused by"
          f" Prometheus (too many samples) and asked again in halves; every sample read once beforehand in"
          f" {warm:.0f} s")
    print(f"  recording rules without history in these blocks, inlined by the backtest (as for a rule younger than"
          f" the range): {', '.join(inlined) or 'none'}")
    print(f"  {'':<46}" + "".join(f"{'round ' + str(n + 1):>10}" for n in range(rounds)) + f"{'best':>10}")

    def line(name: str, values: list[float]) -> None:
        print(f"  {name:<46}" + "".join(f"{v:9.1f}s" for v in values) + f"{min(values):9.1f}s")
    line("backtest, wall", walls)
    line("  of which waiting on Prometheus (its meta)", waits)
    line("baseline: the same requests, bare POSTs", bases)
    own = [wall - wait for wall, wait in zip(walls, waits)]
    line("backtest's own time (wall - waiting)", own)
    heavy = sorted(by_alert.items(), key=lambda item: -item[1])
    print("  Prometheus's time by alert (round 1): " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in heavy
                                                                  if seconds >= 1))
    overhead = min(walls) / min(bases) - 1
    met = overhead <= TARGET_OVERHEAD
    print(f"  replay and report over Prometheus's own time: {overhead * 100:+.1f} % (best against best; target: at"
          f" most +{TARGET_OVERHEAD * 100:.0f} %): {'OK' if met else 'MISSED'}; the backtest's own time is"
          f" {min(own) / min(waits) * 100:.1f} % of its wait, the rest is how much Prometheus's time varies")
    traced = run_backtest(args, answers=answers)
    if traced["meta"]["queries"] != len(calls) or [len(g[0].episodes) for g in traced["outcomes"]] != \
            [len(g[0].episodes) for g in outcomes]:
        raise RuntimeError("the backtest over the answers from memory is not the one over Prometheus")
    print(f"  memory of the backtest: process ru_maxrss {mb(rss_after)} after round 1 ({mb(rss_before)} before it);"
          f" {mb(traced['traced_peak'])} allocated by Python at the peak (tracemalloc, in one more run over the"
          f" same answers from memory: {traced['wall']:.1f} s)")
    print(f"  {'ALERT':<22} {'EPISODES':>8} {'SERIES':>7} {'FIRING':>9} {'LONGEST':>9} {'NOTIFICATIONS':>13}")
    for group in outcomes:
        o = group[0]
        f = o.figures()
        print(f"  {o.alert:<22} {f['episodes'] if o.has_data else 'no data':>8} {f['series']:>7}"
              f" {f['firing_seconds'] / 3600:8.1f}h {f['longest_seconds'] / 3600:8.1f}h {f['notifications']:>13}")
    if profile:
        profiler = run_backtest(args, profile=True)["profiler"]
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(12)
        print("  cProfile of one more backtest, by own time:")
        print("\n".join("    " + row for row in text.getvalue().splitlines() if row.strip()))
    print(f"summary: backtest {min(walls):.1f} s beside {min(bases):.1f} s of bare Prometheus requests"
          f" ({overhead * 100:+.1f} %, target {'met' if met else 'MISSED'}), {meta['queries']} requests"
          f", peak {mb(traced['traced_peak'])} traced, ru_maxrss {mb(rss_after)}")


if __name__ == "__main__":
    sys.exit(main())
