"""End-to-end latency: from the exporter's value change to the Slack stand-in receiving the message.

Runs the whole stack from the `fast` environment on free ports, crosses DiskAlmostFull's threshold on a fresh
machine several times, and prints each crossing's time minus the floor the configuration sets
(scrape interval + evaluation interval + `for` + `group_wait`). Target: median overhead under 1 s.
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


def scenario(machines: list[str], full: str | None) -> dict:
    """Every machine healthy except `full`, whose disk is past the threshold."""
    return {"tick": "1s", "machines": {m: {"type": "gpu", "provider": "vast"} for m in machines},
            "components": ["sync"],
            "phases": [{"name": "now", "components": {"sync": 1.0},
                        "machines": {"*": HEALTHY, **({full: {"disk_used_ratio": 0.95}} if full else {})}}]}


def slack_posts(stack: Stack) -> list[dict]:
    """What the Slack stand-in has received."""
    with urllib.request.urlopen(stack.url("sink_http") + "/api/messages", timeout=5) as response:
        return json.load(response)


def measure(stack: Stack, machines: list[str], machine: str) -> float:
    """Seconds from writing the crossing to the Slack stand-in holding a message about it."""
    started = time.monotonic()
    stack.write_scenario(scenario(machines, machine))
    while time.monotonic() - started < 120:
        if any(ALERT in json.dumps(p) and machine in json.dumps(p) and "resolved" not in json.dumps(p).lower()
               for p in slack_posts(stack)):
            return time.monotonic() - started
        time.sleep(0.02)
    raise RuntimeError(f"{ALERT} for {machine} never reached the Slack stand-in")


def main() -> int:
    """Run the crossings and print the figures."""
    machines = [f"bench-{i}" for i in range(CROSSINGS)]
    with tempfile.TemporaryDirectory() as run_dir:
        with Stack(Path(run_dir), env="fast", ports=Ports.free(), scenario=scenario(machines, None),
                   ready_timeout=60) as stack:
            floor, how = floor_seconds(stack.config_dir)
            time.sleep(floor + 2)  # let the rules see a healthy history first
            elapsed = [measure(stack, machines, machine) for machine in machines]
    overheads = [e - floor for e in elapsed]
    print(f"floor set by the configuration: {floor:.2f} s ({how})")
    print(f"{'crossing':<10}{'value change -> Slack':>24}{'overhead':>12}")
    for machine, total, over in zip(machines, elapsed, overheads):
        print(f"{machine:<10}{total:>22.2f} s{over:>10.2f} s")
    median = statistics.median(overheads)
    print(f"median overhead {median:.2f} s, worst {max(overheads):.2f} s "
          f"(target: median < 1 s) -> {'met' if median < 1 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
