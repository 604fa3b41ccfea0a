"""`dumont-rules backtest` against ground truth: what a real Prometheus running the `fast` rules recorded in
ALERTS while the exporter played one scenario.

Two stacks play the same scenario at the same time: the first renders `fast` as it is; the second also carries
an overlay with the rule changes the backtest's `--set`s describe (a higher DiskAlmostFull threshold, a
keep_firing_for on HighSyncLatency), so each `--set` variant replayed over the first run's data can be checked
against a Prometheus that really ran the changed rule.

The scenario drives every alert the exporter's fields can reach: some cross for long enough to fire, some for
less than their `for` (they must not), HighSyncLatency goes back under and over again (two episodes in `fast`,
whose keep_firing_for is 0s; one in the second run, whose 8s bridge the dip), ProviderCostHigh's warning yields
while its critical tier fires, and gpu-3 is pending when it stops reporting, which resets it.
"""
from __future__ import annotations

import datetime
import json
import re
import statistics
import subprocess
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass

import pytest
import yaml

from deploy.local.processes import StackError
from deploy.local.stack import Ports, Stack, tool
from tests.e2e.conftest import HEALTHY, StackClient, get_json, scenario

pytestmark = pytest.mark.e2e

MACHINES = {
    "gpu-1": {"type": "gpu", "provider": "vast"},   # disk: long over 0.95, dip, briefly 0.99; failover storm
    "gpu-2": {"type": "gpu", "provider": "vast"},   # memory: long, then too short
    "gpu-3": {"type": "gpu", "provider": "vast"},   # memory pending, silent, pending again: never fires
    "gpu-4": {"type": "gpu", "provider": "vast"},   # sync latency: slow, a dip, slow again
    "gpu-5": {"type": "gpu", "provider": "vast"},   # down
    "gpu-6": {"type": "gpu", "provider": "vast"},   # syncs stop
    "cpu-1": {"type": "cpu", "provider": "gcp"},    # cost anomaly: long, then too short
    "cpu-2": {"type": "cpu", "provider": "aws"},    # its provider's cost: warning, critical, warning
}
BASELINE = {**HEALTHY, "reporting": True, "failovers_per_minute": 0}
COMPONENTS = {"sync": 1.0, "api": 1.0}
# Seconds from the scenario's start. `fast` evaluates every 1 s with `for: 2s`, i.e. three evaluations in a
# row: a 1 s crossing is seen by one or two and must not fire; a crossing of 5 s or more fires.
TROUBLES = [
    ("gpu-1", 6, 14, {"disk_used_ratio": 0.95, "failovers_per_minute": 60}),
    ("gpu-1", 14, 17, {"disk_used_ratio": 0.50}),
    ("gpu-1", 17, 22, {"disk_used_ratio": 0.99}),
    ("gpu-1", 27, 28, {"disk_used_ratio": 0.95}),
    ("gpu-2", 6, 12, {"memory_used_ratio": 0.95}),
    ("gpu-2", 16, 17, {"memory_used_ratio": 0.95}),
    # Pending at 6 and again at 11: without the reset by the silence it would fire at 11.
    ("gpu-3", 6, 7, {"memory_used_ratio": 0.95}),
    ("gpu-3", 7, 11, {"reporting": False}),
    ("gpu-3", 11, 12, {"memory_used_ratio": 0.95}),
    # The p95 reads a 10 s window: over about 9 s after the slow syncs, under ~4 s before the next ones.
    ("gpu-4", 6, 10, {"sync_latency_seconds": 30}),
    ("gpu-4", 22, 25, {"sync_latency_seconds": 30}),
    ("gpu-5", 6, 11, {"up": False}),
    ("gpu-6", 6, 16, {"sync_ok": False}),
    ("cpu-1", 6, 11, {"cost_hourly_usd": 2.0}),
    ("cpu-1", 14, 15, {"cost_hourly_usd": 2.0}),
    ("cpu-2", 6, 12, {"cost_hourly_usd": 60}),
    ("cpu-2", 12, 18, {"cost_hourly_usd": 120}),
    ("cpu-2", 18, 24, {"cost_hourly_usd": 60}),
]
COMPONENT_TROUBLES = [("sync", 6, 11, 0.5), ("api", 14, 15, 0.5)]
# The backtest's range, from the scenario's start: after every series exists and before the first crossing
# (nothing pending at its start), to well after the last resolution (HighSyncLatency's, kept 8 s in run two).
RANGE = (2, 50)

# The alerts the scenario drives. Left out: Watchdog (vector(1), firing since Prometheus' first evaluation, no
# scenario in it) and the meta alerts TargetDown, ReceiverChannelFailing, ReceiversDown and ReceiverRelayStalled,
# which watch the stack itself (scrape targets, the receiver's deliveries to the stand-ins): whether one of them
# is pending when the range starts is up to how the stack came up, not to the scenario.
SCENARIO_ALERTS = ("HighSyncLatency", "SyncStopped", "DiskAlmostFull", "HighMemoryUsage", "HighCostAnomaly",
                   "DiskFillingUp", "MachineDown", "MachineVanished", "FailoverStorm", "ProviderCostHigh",
                   "HealthDegraded")
# What the scenario must make Prometheus do, so a backtest agreeing with it is agreeing about something:
# (alertname, labels it has) -> firing episodes in the first run.
EXPECTED_EPISODES = {
    ("DiskAlmostFull", (("machine_id", "gpu-1"),)): 2,
    ("HighMemoryUsage", (("machine_id", "gpu-2"),)): 1,        # not the 1 s crossing
    ("HighMemoryUsage", (("machine_id", "gpu-3"),)): 0,        # the silence reset it
    ("HighSyncLatency", (("machine_id", "gpu-4"),)): 2,        # keep_firing_for 0s in fast: the dip ends it
    ("MachineDown", (("machine_id", "gpu-5"),)): 1,
    ("SyncStopped", (("machine_id", "gpu-6"),)): 1,
    ("MachineVanished", (("machine_id", "gpu-3"),)): 1,
    ("HighCostAnomaly", (("machine_id", "cpu-1"),)): 1,        # not the 1 s crossing
    ("HighCostAnomaly", (("machine_id", "cpu-2"),)): 1,
    ("ProviderCostHigh", (("provider", "aws"), ("severity", "critical"))): 1,
    ("ProviderCostHigh", (("provider", "aws"), ("severity", "warning"))): 2,   # yields while critical fires
    ("FailoverStorm", (("from_type", "gpu"),)): 1,
    ("HealthDegraded", (("component", "sync"),)): 1,
    ("HealthDegraded", (("component", "api"),)): 0,             # 1 s only
}
# The rule changes: as `--set`s for the backtest, and as the overlay the second run renders (a threshold that
# differs is written in `contract` too, or the generated promtool tests reject it; see rules_src/env/fast.yaml).
SETTINGS = ("DiskAlmostFull.threshold=0.97", "HighSyncLatency.keep_firing_for=8s")
CHANGED_OVERLAY = {
    "alerts": {"DiskAlmostFull": {"threshold": 0.97}, "HighSyncLatency": {"keep_firing_for": "8s"}},
    "contract": {"alerts": {"DiskAlmostFull": {"threshold": 0.97}}},
}
CHANGED_ALERTS = ("DiskAlmostFull", "HighSyncLatency")

Labels = tuple[tuple[str, str], ...]
Spans = dict[Labels, list[tuple[float, float | None]]]


def timeline_scenario() -> dict:
    """The scenario: a phase per stretch between two changes of TROUBLES, each stating every value it plays."""
    edges = sorted({0, *(t for _, start, end, _ in TROUBLES for t in (start, end)),
                    *(t for _, start, end, _ in COMPONENT_TROUBLES for t in (start, end))})
    phases = []
    for start, end in zip(edges, edges[1:] + [None]):
        machines: dict = {"*": BASELINE}
        for machine, first, last, values in TROUBLES:
            if first <= start < last:
                machines[machine] = {**machines.get(machine, {}), **values}
        components = {**COMPONENTS, **{c: v for c, first, last, v in COMPONENT_TROUBLES if first <= start < last}}
        phase = {"name": f"t={start}", "machines": machines, "components": components}
        if end is not None:
            phase["duration"] = f"{end - start}s"
        phases.append(phase)
    return {"tick": "1s", "machines": MACHINES, "components": sorted(COMPONENTS), "phases": phases}


class OverlaidStack(Stack):
    """A Stack whose environment is rendered with more overlay keys than the runtime ones (a changed rule)."""

    def __init__(self, *args, extra: dict, **kwargs):
        super().__init__(*args, **kwargs)
        self.extra = extra

    def prepare(self) -> None:
        """Prepare as a Stack does, then render again with `extra` merged into its overlay."""
        super().prepare()
        path = self.run_dir / "overlay.yml"
        overlay = yaml.safe_load(path.read_text())
        for key, value in self.extra.items():
            overlay[key] = {**overlay.get(key, {}), **value}
        path.write_text(yaml.safe_dump(overlay, sort_keys=True))
        render = subprocess.run([tool("dumont-rules"), "generate", "--env", self.env, "--out",
                                 str(self.run_dir / "config"), "--overlay", str(path)], capture_output=True, text=True)
        if render.returncode != 0:
            raise StackError(f"rendering {self.env!r} with {self.extra} failed:\n{render.stderr or render.stdout}")


@dataclass
class Run:
    """One stack that played the scenario, and the backtest range over it (Unix seconds)."""

    client: StackClient
    start: float
    end: float

    @property
    def stack(self) -> Stack:
        """The stack."""
        return self.client.stack

    def backtest(self, *args: str) -> dict:
        """`dumont-rules backtest --json` over the range of this run's Prometheus, with its rendered routing."""
        result = subprocess.run(
            [tool("dumont-rules"), "backtest", "--prometheus", self.stack.url("prometheus"), "--env", "fast",
             "--start", f"{self.start:.3f}", "--end", f"{self.end:.3f}", "--generated", str(self.stack.config_dir),
             "--json", *args], capture_output=True, text=True, timeout=180)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def alerts_spans(self, state: str = "firing", step: float = 1.0, start: float | None = None) -> Spans:
        """ALERTS{alertstate=state} as spans per series: consecutive points at `step` make [first, last + step),
        end None when the last point is the range's last."""
        start = self.start if start is None else start
        end = start + (self.end - self.start)
        query = urllib.parse.urlencode({"query": f'ALERTS{{alertstate="{state}"}}', "start": f"{start:.3f}",
                                        "end": f"{end:.3f}", "step": f"{step:g}"})
        body = get_json(f"{self.stack.url('prometheus')}/api/v1/query_range?{query}")
        last_point = start + int((end - start) / step + 1e-9) * step
        spans: Spans = {}
        for item in body["data"]["result"]:
            labels = tuple(sorted((k, v) for k, v in item["metric"].items() if k not in ("__name__", "alertstate")))
            times = [float(t) for t, _ in item["values"]]
            runs: list[list[float]] = []
            for t in times:
                if runs and t - runs[-1][1] < 1.5 * step:
                    runs[-1][1] = t
                else:
                    runs.append([t, t])
            spans[labels] = [(first, None if last >= last_point - step / 2 else last + step) for first, last in runs]
        return spans


def backtest_spans(report: dict, alert: str, variant: str = "current") -> Spans:
    """A variant's firing intervals in a backtest report, per series."""
    entry = next(a for a in report["alerts"] if a["alert"] == alert)
    found = next(v for v in entry["variants"] if v["variant"] == variant)
    spans: Spans = {}
    for interval in found["intervals"]:
        spans.setdefault(tuple(sorted(interval["labels"].items())), []).append((interval["start"], interval["end"]))
    assert found["episodes"] == sum(len(s) for s in spans.values())
    return {k: sorted(v) for k, v in spans.items()}


def of_alert(spans: Spans, alert: str) -> Spans:
    """The spans of one alertname."""
    return {k: v for k, v in spans.items() if dict(k)["alertname"] == alert}


def mismatches(replayed: Spans, truth: Spans, tolerance: float, shift: float = 0.0) -> list[str]:
    """How `replayed` (moved by `shift` seconds) differs from `truth`: series, episode counts, starts and ends."""
    problems = []
    for labels in sorted(set(replayed) | set(truth)):
        mine = [(s + shift, None if e is None else e + shift) for s, e in replayed.get(labels, [])]
        theirs = truth.get(labels, [])
        name = ", ".join(f"{k}={v}" for k, v in labels)
        if len(mine) != len(theirs):
            problems.append(f"{name}: backtest {_rel(mine)}, Prometheus {_rel(theirs)}")
            continue
        for (s1, e1), (s2, e2) in zip(mine, theirs):
            ends_differ = (e1 is None) != (e2 is None) or (e1 is not None and abs(e1 - e2) > tolerance)
            if abs(s1 - s2) > tolerance or ends_differ:
                problems.append(f"{name}: backtest {_rel(mine)}, Prometheus {_rel(theirs)}")
                break
    return problems


def _rel(spans: list[tuple[float, float | None]]) -> str:
    return "[" + ", ".join(f"{s:.1f}..{'end' if e is None else f'{e:.1f}'}" for s, e in spans) + "]"


def across_runs(spans: Spans, origin: float) -> Spans:
    """`spans` in seconds from `origin`, without the `instance` label: each run's exporter has its own port."""
    out: Spans = {}
    for labels, items in spans.items():
        key = tuple((k, v) for k, v in labels if k != "instance")
        out.setdefault(key, []).extend((s - origin, None if e is None else e - origin) for s, e in items)
    return {k: sorted(v) for k, v in out.items()}


def count_for(spans: Spans, alert: str, labels: Labels) -> int:
    """Episodes of the series of `alert` that carry every label of `labels`."""
    return sum(len(v) for k, v in of_alert(spans, alert).items() if set(labels) <= set(k))


def _wait_for_first_scrapes(client: StackClient) -> None:
    """Until Prometheus records every machine's sync latency p95: the last series to appear, as its rate needs
    two scrapes; a range starting before it would replay HighSyncLatency with its recording rule inlined."""
    deadline = time.monotonic() + 30
    url = client.stack.url("prometheus") + "/api/v1/query?" + urllib.parse.urlencode(
        {"query": "count(machine:dumont_sync_latency_seconds:p95)"})
    while time.monotonic() < deadline:
        result = get_json(url)["data"]["result"]
        if result and float(result[0]["value"][1]) >= len(MACHINES):
            return
        time.sleep(0.25)
    raise AssertionError("Prometheus did not record every machine's sync latency p95 within 30 s")


@pytest.fixture(scope="module")
def runs(make_stack, tmp_path_factory):
    """Both stacks after playing the scenario at the same moment: (fast as it is, fast with the changed rules)."""
    healthy = scenario(MACHINES, components=COMPONENTS)
    first = make_stack(healthy)
    second_stack = OverlaidStack(tmp_path_factory.mktemp("stack"), env="fast", ports=Ports.free(),
                                 scenario=healthy, ready_timeout=60, extra=CHANGED_OVERLAY)
    try:
        second_stack.start()
        second = StackClient(second_stack)
        for client in (first, second):
            _wait_for_first_scrapes(client)
        played = timeline_scenario()
        begun = []
        for client in (first, second):
            begun.append(time.time())
            client.stack.write_scenario(played)
        # The exporter picks the file up on its next tick; then give the last evaluation time to land.
        time.sleep(max(0.0, begun[0] + RANGE[1] + 2 - time.time()))
        yield tuple(Run(client, at + RANGE[0], at + RANGE[1]) for client, at in zip((first, second), begun))
    finally:
        second_stack.stop()


def test_the_backtest_reports_what_prometheus_fired(runs):
    """Every firing interval and episode count of the current rules matches ALERTS of the same Prometheus."""
    run = runs[0]
    report = run.backtest(*(f"--alert={a}" for a in SCENARIO_ALERTS))
    step = report["range"]["step_seconds"]
    origin = report["range"]["start"]
    truth = across_runs(run.alerts_spans(step=step, start=origin), origin)
    # The scenario did what it is for (else the comparison below proves little).
    seen = {key: count_for(truth, *key) for key in EXPECTED_EPISODES}
    assert seen == EXPECTED_EPISODES
    pending = run.alerts_spans("pending", step, origin)
    gpu3 = [s for k, v in of_alert(pending, "HighMemoryUsage").items() if ("machine_id", "gpu-3") in k for s in v]
    assert len(gpu3) == 2, f"gpu-3's memory was to be pending twice, around its silence: {gpu3}"
    problems = []
    for alert in SCENARIO_ALERTS:
        replayed, fired = across_runs(backtest_spans(report, alert), origin), of_alert(truth, alert)
        assert sum(map(len, replayed.values())) == sum(map(len, fired.values())), \
            f"{alert}: backtest {replayed}, Prometheus {fired}"
        problems += mismatches(replayed, fired, tolerance=step + 1e-6)
    assert not problems, "\n".join(problems)


def test_a_changed_rule_replays_as_a_run_with_it_rendered(runs):
    """Each `--set` variant over the first run matches what the second run's Prometheus, running the changed
    rule, fired: as many episodes, the intervals within two evaluations (the runs' clocks differ)."""
    first, second = runs
    rules = {path.name: path.read_text() for path in (second.stack.config_dir / "prometheus" / "rules").glob("*.yml")}
    assert "> 0.97 unless" in rules["machines.yml"] and "keep_firing_for: 8s" in rules["sync.yml"], \
        "the second run did not render the changed rules"
    settings = [f"--set={s}" for s in SETTINGS]
    report = first.backtest(*(f"--alert={a}" for a in SCENARIO_ALERTS), *settings)
    step = report["range"]["step_seconds"]
    origin_one = report["range"]["start"]
    origin_two = origin_one + second.start - first.start
    truth_one = across_runs(first.alerts_spans(step=step, start=origin_one), origin_one)
    truth_two = across_runs(second.alerts_spans(step=step, start=origin_two), origin_two)
    # Where the second run's clock stands against the first's: the median shift of the unchanged alerts.
    shifts = [b[0] - a[0] for labels, spans in truth_one.items() if dict(labels)["alertname"] not in CHANGED_ALERTS
              for a, b in zip(spans, truth_two.get(labels, [])) if len(spans) == len(truth_two.get(labels, []))]
    assert len(shifts) >= 5, f"too few unchanged episodes to line the runs up: {truth_one} / {truth_two}"
    shift = statistics.median(shifts)
    problems = []
    for alert, setting in zip(CHANGED_ALERTS, SETTINGS):
        variant = setting.partition(".")[2]
        current = backtest_spans(report, alert)
        changed = across_runs(backtest_spans(report, alert, variant), origin_one)
        assert sum(map(len, changed.values())) <= sum(map(len, current.values()))
        fired = of_alert(truth_two, alert)
        assert sum(map(len, changed.values())) == sum(map(len, fired.values())), \
            f"{alert} {variant}: backtest {changed}, the second run {fired}"
        problems += mismatches(changed, fired, tolerance=2 * step + 1e-6, shift=shift)
    assert not problems, f"(the second run's clock {shift:+.1f} s from the first's)\n" + "\n".join(problems)
    # The changes did what they were chosen for: 0.95 no longer pages, and the latency dip no longer splits it.
    assert count_for(backtest_spans(report, "DiskAlmostFull", "threshold=0.97"), "DiskAlmostFull",
                     (("machine_id", "gpu-1"),)) == 1
    assert count_for(backtest_spans(report, "HighSyncLatency", "keep_firing_for=8s"), "HighSyncLatency",
                     (("machine_id", "gpu-4"),)) == 1


STORED = re.compile(r"^ts=(\S+)Z .*event=ingest\.stored channel=(\S+) group_key='([^']*)'")


def posts_by_alert(run: Run) -> Counter:
    """(alertname, channel) -> webhook posts the receiver stored from Alertmanager within the run's range: the
    log line it writes for every post (group_by holds alertname, so each group key names one alert)."""
    counts: Counter = Counter()
    for line in (run.stack.run_dir / "logs" / "receiver.log").read_text().splitlines():
        found = STORED.match(line)
        if not found:
            continue
        stamp, channel, key = found.groups()
        at = datetime.datetime.fromisoformat(stamp).replace(tzinfo=datetime.timezone.utc).timestamp()
        alertname = re.search(r'alertname="([^"]+)"', key.rpartition(":{")[2])
        if alertname and run.start <= at <= run.end:
            counts[(alertname.group(1), channel)] += 1
    return counts


def receivers_channels(run: Run) -> dict[str, list[str]]:
    """The channels each receiver of the rendered alertmanager.yml posts to (its webhook URLs' last part)."""
    config = yaml.safe_load((run.stack.config_dir / "alertmanager" / "alertmanager.yml").read_text())
    return {r["name"]: [c["url"].rsplit("/", 1)[1] for c in r.get("webhook_configs", [])]
            for r in config["receivers"]}


def test_the_notifications_counted_are_the_posts_alertmanager_made(runs):
    """Per alert and channel, the notifications the backtest counts are the webhook posts the real Alertmanager
    of the same stack made over the range (grouping, group_wait, group_interval, send_resolved, inhibition)."""
    run = runs[0]
    report = run.backtest(*(f"--alert={a}" for a in SCENARIO_ALERTS))
    channels = receivers_channels(run)
    counted: Counter = Counter()
    for entry in report["alerts"]:
        current = next(v for v in entry["variants"] if v["variant"] == "current")
        for receiver, count in current["notifications_by_receiver"].items():
            for channel in channels[receiver]:
                counted[(entry["alert"], channel)] += count
    posted = posts_by_alert(run)
    # Alertmanager did post for every alert the scenario fires (else the comparison proves little).
    assert {alert for alert, _ in posted} == {alert for (alert, _), episodes in EXPECTED_EPISODES.items() if episodes}
    assert counted == posted, f"backtest {sorted(counted.items())}\nAlertmanager {sorted(posted.items())}"
