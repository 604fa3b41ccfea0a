"""End-to-end latency: from the exporter's value change to the Slack stand-in receiving the message.

Runs the whole stack from the `fast` environment on free ports, crosses DiskAlmostFull's threshold on a fresh
machine several times, and prints each crossing's time minus the floor the configuration sets
(scrape interval + evaluation interval + `for` + `group_wait`). Target: median overhead under 1 s.
The clock starts when the exporter's /metrics first shows the new value (not when the scenario file is
written, which the simulation picks up on its next tick), and stops at the first Slack attachment that says
FIRING for that alert and machine. Machines already crossed stay full, so no resolution shares a post.
"""
from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deploy.local.stack import Ports, Stack  # noqa: E402
from exporter.durations import parse_duration  # noqa: E402
from rules_src.explain import explain, load_inputs  # noqa: E402

CROSSINGS = 5
ALERT = "DiskAlmostFull"
HEALTHY = {"sync_latency_seconds": 2, "sync_ok": True, "disk_used_ratio": 0.40, "memory_used_ratio": 0.50,
           "cpu_percent": 30, "cost_hourly_usd": 0.50, "up": True}


def floor_seconds(config_dir: Path) -> tuple[float, str]:
    """What the configuration alone makes a crossing wait, and how it adds up."""
    prometheus = yaml.safe_load((config_dir / "prometheus" / "prometheus.yml").read_text())["global"]
    rule = next(rule for path in sorted((config_dir / "prometheus" / "rules").glob("*.yml"))
                for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]
                if rule.get("alert") == ALERT)
    route = yaml.safe_load((config_dir / "alertmanager" / "alertmanager.yml").read_text())["route"]
    # DiskAlmostFull is critical; a route without its own group_wait inherits the root's.
    critical = next((r for r in route.get("routes", []) if 'severity="critical"' in r.get("matchers", [])), {})
    group_wait = critical.get("group_wait", route.get("group_wait", "30s"))
    parts = {"scrape": prometheus["scrape_interval"], "evaluation": prometheus["evaluation_interval"],
             "for": rule.get("for", "0s"), "group_wait": group_wait}
    return sum(parse_duration(v) for v in parts.values()), " + ".join(f"{k} {v}" for k, v in parts.items())


def scenario(machines: list[str], full: list[str]) -> dict:
    """Every machine healthy except those in `full`, whose disks are past the threshold."""
    return {"tick": "200ms", "machines": {m: {"type": "gpu", "provider": "vast"} for m in machines},
            "components": ["sync"],
            "phases": [{"name": "now", "components": {"sync": 1.0},
                        "machines": {"*": HEALTHY, **{m: {"disk_used_ratio": 0.95} for m in full}}}]}


def get(url: str) -> bytes:
    """The body at `url` (loopback only)."""
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read()


def disk_is_full(stack: Stack, machine: str) -> bool:
    """Whether the exporter serves `machine`'s disk past the threshold."""
    used = total = None
    for line in get(stack.url("exporter") + "/metrics").decode().splitlines():
        if f'machine_id="{machine}"' in line and 'mount="/"' in line:
            if line.startswith("dumont_disk_usage_bytes{"):
                used = float(line.rsplit(" ", 1)[1])
            elif line.startswith("dumont_disk_total_bytes{"):
                total = float(line.rsplit(" ", 1)[1])
    return bool(used and total and used / total > 0.8)


def firing_posted(stack: Stack, machine: str) -> bool:
    """Whether one Slack attachment says FIRING for ALERT on `machine` (posts batch several alerts)."""
    for post in json.loads(get(stack.url("sink_http") + "/api/messages")):
        for part in post["body"].get("attachments") or [post["body"]]:
            text = json.dumps(part)
            if "FIRING" in text and ALERT in text and machine in text:
                return True
    return False


def wait(check, what: str, timeout: float = 120, pause: float = 0.01) -> float:
    """Poll `check()` until true; the monotonic time it first was."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.monotonic()
        time.sleep(pause)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


def measure(stack: Stack, machines: list[str], crossed: list[str]) -> float:
    """Seconds from the exporter serving the newest crossing to the Slack stand-in holding its message."""
    machine = crossed[-1]
    stack.write_scenario(scenario(machines, crossed))
    changed = wait(lambda: disk_is_full(stack, machine), f"the exporter to serve {machine}'s full disk")
    arrived = wait(lambda: firing_posted(stack, machine), f"{ALERT} for {machine} to reach the Slack stand-in")
    return arrived - changed


def main() -> int:
    """Run the crossings and print the figures."""
    machines = [f"bench-{i}" for i in range(CROSSINGS)]
    with tempfile.TemporaryDirectory() as run_dir:
        with Stack(Path(run_dir), env="fast", ports=Ports.free(), scenario=scenario(machines, []),
                   ready_timeout=60) as stack:
            floor, how = floor_seconds(stack.config_dir)
            explained = explain(load_inputs("fast", stack.config_dir), ALERT, {})
            bound = explained["severities"][0]["routes"][0]["first_notification"]["worst"]
            time.sleep(floor + 2)  # let the rules see a healthy history first
            elapsed = [measure(stack, machines, machines[:i + 1]) for i in range(len(machines))]
    overheads = [e - floor for e in elapsed]
    print(f"floor set by the configuration: {floor:.2f} s ({how})")
    print(f"{'crossing':<10}{'value change -> Slack':>24}{'overhead':>12}")
    for machine, total, over in zip(machines, elapsed, overheads):
        print(f"{machine:<10}{total:>22.2f} s{over:>10.2f} s")
    median = statistics.median(overheads)
    print("(the floor counts one whole scrape and evaluation interval; a value that changes just before both\n"
          " waits less, so an overhead can be negative)")
    print(f"median overhead {median:.2f} s, worst {max(overheads):.2f} s "
          f"(target: median < 1 s) -> {'met' if median < 1 else 'NOT met'}")
    # `dumont-rules explain`'s worst case counts the configuration's waits only: the pipeline's own time (the
    # overhead above) must fit in what it adds over the floor (one more evaluation).
    print(f"dumont-rules explain {ALERT} (fast): worst case to the first notification {bound:.2f} s; measured worst"
          f" {max(elapsed):.2f} s -> {'within' if max(elapsed) <= bound else 'BEYOND'} explain's bound")
    return 0


if __name__ == "__main__":
    sys.exit(main())
