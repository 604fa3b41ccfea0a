"""How long the exporter takes to render /metrics, and its peak memory, beside plain prometheus_client.

Fleets of 100, 1,000 and 10,000 machines, each with its full set of series (sync histogram, bytes, files
and last success; cpu; memory used and total; disk used and total on "/"; cost; uptime).
  dumont: exporter.telemetry.Telemetry, rendered by exporter.exposition.render (what /metrics serves).
  plain:  the same series as plain prometheus_client Gauge/Counter/Histogram objects, rendered by
          prometheus_client.generate_latest, with `_created` series disabled so both write the same samples.
Render time is the median of several renders, in this process. Peak memory is the peak resident set size
of a fresh child process that builds one fleet on one side and renders it once (`--case SIDE MACHINES`),
beside that of a child that only imports the same modules; the fleet's own cost is the difference, and the
memory ratio compares those costs (the shared baseline would pull every whole-process ratio toward 1).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics  # noqa: E402
from prometheus_client import generate_latest  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from exporter.catalog import CATALOG, COUNTER, HISTOGRAM  # noqa: E402
from exporter.exposition import render  # noqa: E402
from exporter.telemetry import Telemetry  # noqa: E402

FLEETS = ((100, 7), (1_000, 5), (10_000, 3))   # (machines, renders to take the median of)
MEMORY_RUNS = 3   # children per memory figure, median taken: peak RSS varies by ~0.1 MiB between runs
IMPORTS_ONLY = "imports"
MAX_RATIO = 1.2
MAX_MS_AT_1000 = 100.0
MEMORY_TOTAL = 64 * 1024 ** 3


def build_dumont(machines: int):
    """A Telemetry holding the fleet, and the function that renders its /metrics."""
    registry = CollectorRegistry()
    telemetry = Telemetry(registry=registry)
    for index in range(machines):
        machine_id = f"gpu-{index}"
        telemetry.record_sync(machine_id=machine_id, latency_seconds=2.5, bytes_transferred=100 * 1024 * 1024,
                              files_count=50)
        telemetry.set_cpu_usage(machine_id, "gpu", 30)
        telemetry.set_memory(machine_id, "gpu", MEMORY_TOTAL / 2, MEMORY_TOTAL)
        telemetry.set_disk(machine_id, "gpu", "/", 4e11, 1e12)
        telemetry.set_cost(machine_id, "gpu", "vast", 0.5)
        telemetry.set_uptime(machine_id, "gpu", 3600)
    return telemetry, lambda: render(registry)


def build_plain(machines: int):
    """The same series as plain prometheus_client metrics, and the generate_latest call that renders them."""
    registry = CollectorRegistry()
    metrics = {}
    for spec in CATALOG:
        if spec.type == HISTOGRAM:
            metrics[spec.name] = Histogram(spec.name, spec.help, spec.labels, registry=registry,
                                           buckets=spec.buckets)
        else:
            kind = Counter if spec.type == COUNTER else Gauge
            metrics[spec.name] = kind(spec.name, spec.help, spec.labels, registry=registry)
    by_name = metrics.__getitem__
    for index in range(machines):
        machine_id = f"gpu-{index}"
        by_name("dumont_sync_latency_seconds").labels(machine_id, "gpu_to_cpu").observe(2.5)
        by_name("dumont_sync_bytes_total").labels(machine_id, "gpu_to_cpu").inc(100 * 1024 * 1024)
        by_name("dumont_sync_files_total").labels(machine_id).inc(50)
        by_name("dumont_sync_last_success_timestamp").labels(machine_id).set(time.time())
        by_name("dumont_cpu_usage_percent").labels("gpu", machine_id).set(30)
        by_name("dumont_memory_usage_bytes").labels("gpu", machine_id).set(MEMORY_TOTAL / 2)
        by_name("dumont_memory_total_bytes").labels("gpu", machine_id).set(MEMORY_TOTAL)
        by_name("dumont_disk_usage_bytes").labels("gpu", machine_id, "/").set(4e11)
        by_name("dumont_disk_total_bytes").labels("gpu", machine_id, "/").set(1e12)
        by_name("dumont_cost_hourly_usd").labels("gpu", machine_id, "vast").set(0.5)
        by_name("dumont_machine_uptime_seconds").labels("gpu", machine_id).set(3600)
    return metrics, lambda: generate_latest(registry)


BUILDS = {"dumont": build_dumont, "plain": build_plain}


def median_render_ms(build, machines: int, renders: int) -> tuple[float, int]:
    """Median render time in milliseconds, and the number of sample lines rendered."""
    _, render_once = build(machines)
    timings = []
    for _ in range(renders):
        started = time.perf_counter()
        body = render_once()
        timings.append((time.perf_counter() - started) * 1000)
    lines = sum(1 for line in body.splitlines() if not line.startswith(b"#"))
    return statistics.median(timings), lines


def peak_rss_kib() -> int:
    """This process's peak resident set size in KiB, since it started (Linux only)."""
    # Not ru_maxrss: on Linux exec() carries the spawning process's high-water mark into it, so a child
    # started after the timings would report the parent's peak. VmHWM belongs to the new image alone.
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


def run_case(side: str, machines: int) -> None:
    """Child side: build the fleet on `side` (nothing for IMPORTS_ONLY), render it once, print the peak."""
    disable_created_metrics()  # as in the parent, so the plain side holds no `_created` series
    if side != IMPORTS_ONLY:
        _, render_once = BUILDS[side](machines)
        render_once()
    print(json.dumps({"peak_kib": peak_rss_kib()}))


def child_peak_kib(side: str, machines: int) -> int:
    """Peak RSS, in KiB, of one fresh child running one case."""
    command = [sys.executable, str(Path(__file__).resolve()), "--case", side, str(machines)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout)["peak_kib"]


def case_peak_mib(side: str, machines: int = 0) -> float:
    """Median peak RSS, in MiB, of MEMORY_RUNS fresh children each running one case."""
    # tracemalloc is gone: this RSS includes every Python allocation it saw, plus allocator overhead and
    # C-level memory, and (within noise) showed the same ratios; tracing would also inflate the child's RSS.
    return statistics.median(child_peak_kib(side, machines) for _ in range(MEMORY_RUNS)) / 1024


def same_samples(machines: int) -> bool:
    """Whether both builds expose the same samples (the last-success times aside)."""
    def samples(body: bytes) -> set:
        return {(s.name, frozenset(s.labels.items()), s.value) for family in text_string_to_metric_families(
            body.decode()) for s in family.samples if "last_success" not in s.name}
    return samples(build_dumont(machines)[1]()) == samples(build_plain(machines)[1]())


def verdict(machines: int, dumont_ms: float, time_ratio: float, memory_ratio: float) -> str:
    """'ok', or which targets the row missed."""
    missed = [what for what, bad in (
        ("time ratio", time_ratio > MAX_RATIO), ("memory ratio", memory_ratio > MAX_RATIO),
        (f"{MAX_MS_AT_1000:.0f} ms", machines == 1_000 and dumont_ms >= MAX_MS_AT_1000)) if bad]
    return "ok" if not missed else "MISSED " + ", ".join(missed)


def print_table() -> None:
    """Measure every fleet and print one row each."""
    baseline_mib = case_peak_mib(IMPORTS_ONLY)
    print(f"baseline (a child that only imports the modules): peak RSS {baseline_mib:.1f} MiB; "
          f"fleet = peak minus baseline")
    header = (f"{'machines':>9} {'samples':>8} | {'render ms':>9} {'plain ms':>9} {'ratio':>6} | "
              f"{'peak MiB':>9} {'plain peak':>10} | {'fleet MiB':>9} {'plain fleet':>11} {'ratio':>6} | verdict")
    print(header)
    print("-" * len(header))
    for machines, renders in FLEETS:
        dumont_ms, lines = median_render_ms(build_dumont, machines, renders)
        plain_ms, _ = median_render_ms(build_plain, machines, renders)
        dumont_mib, plain_mib = case_peak_mib("dumont", machines), case_peak_mib("plain", machines)
        dumont_own, plain_own = dumont_mib - baseline_mib, plain_mib - baseline_mib
        time_ratio, memory_ratio = dumont_ms / plain_ms, dumont_own / plain_own
        print(f"{machines:>9,} {lines:>8,} | {dumont_ms:>9.1f} {plain_ms:>9.1f} {time_ratio:>5.2f}x | "
              f"{dumont_mib:>9.1f} {plain_mib:>10.1f} | "
              f"{dumont_own:>9.1f} {plain_own:>11.1f} {memory_ratio:>5.2f}x | "
              f"{verdict(machines, dumont_ms, time_ratio, memory_ratio)}")


def main() -> int:
    """Print the table; the exit status is 0 even when a target is missed (timings vary with the machine)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", nargs=2, metavar=("SIDE", "MACHINES"),
                        help=f"child mode: one of {', '.join([IMPORTS_ONLY, *BUILDS])} and a fleet size")
    args = parser.parse_args()
    if args.case:
        run_case(args.case[0], int(args.case[1]))
        return 0
    disable_created_metrics()  # here and in each child: the plain side then writes exactly the dumont samples
    assert same_samples(100), "the two builds do not expose the same series"
    print(f"exporter /metrics render: median of several renders; peak memory = peak RSS of a fresh process "
          f"(build + one render), median of {MEMORY_RUNS}")
    print(f"targets: ratio <= {MAX_RATIO}x plain for time and fleet memory; render < {MAX_MS_AT_1000:.0f} ms "
          f"at 1,000 machines")
    started = time.perf_counter()
    print_table()
    print(f"(benchmark took {time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
