"""The validated spec of one environment: plain frozen dataclasses that the renderers read."""
from __future__ import annotations

import re
from dataclasses import dataclass

# Rule groups and alerts name generated files (prometheus/rules/<group>.yml, runbooks/<alert>.md):
# plain identifiers only, so that no name can reach outside generated/<env>/.
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Override:
    """A threshold for the series whose labels equal `match` (first override that matches wins)."""

    name: str
    match: tuple[tuple[str, str], ...]
    threshold: float
    expected: float  # what the contract says this override's threshold is


@dataclass(frozen=True)
class Driver:
    """How the generated tests produce an alert's value from catalog metrics."""

    kind: str  # gauge | ratio | age | histogram
    metrics: tuple[str, ...]
    labels: tuple[str, ...]  # labels of the input series
    normal: float
    quantile: float = 0.0
    buckets: tuple[float, ...] = ()
    window: float = 0.0  # a histogram's rate window: how long a past value still counts


@dataclass(frozen=True)
class Alert:
    """One alert. Threshold alerts have `value`, `op`, `threshold`; fixed ones (Watchdog) only `expr`."""

    name: str
    group: str
    severity: str
    summary: str
    description: str
    runbook_url: str
    meaning: str
    steps: tuple[str, ...]
    for_: float
    keep_firing_for: float
    labels: tuple[tuple[str, str], ...]
    carries: tuple[str, ...] = ()
    expr: str = ""
    value: str = ""  # PromQL with `${selector}` still in it
    op: str = ""
    unit: str = "number"
    threshold: float = 0.0
    expected: float = 0.0  # the contract's threshold, which the generated tests hold the rule to
    expected_severity: str = ""
    overrides: tuple[Override, ...] = ()
    driver: Driver | None = None


@dataclass(frozen=True)
class RecordTest:
    """Input series, and the samples a recording rule must record from them at `at` (stated, never derived)."""

    interval: float  # between input samples, and between the test's rule evaluations
    at: float
    inputs: tuple[tuple[str, str], ...]  # (series, promtool values notation)
    expected: tuple[tuple[tuple[tuple[str, str], ...], float], ...]  # (labels, value)


@dataclass(frozen=True)
class Record:
    """One recording rule; dashboards rely on those no alert reads, so they carry a test of their own."""

    name: str
    expr: str
    test: RecordTest | None = None


@dataclass(frozen=True)
class RecordingGroup:
    """The recording rules of one rule group, and the group's own evaluation interval (0: the environment's)."""

    name: str
    records: tuple[Record, ...]
    interval: float = 0.0


@dataclass(frozen=True)
class Route:
    """Alerts matching all `matchers` go to `channels`, with optional timing of their own."""

    name: str
    matchers: tuple[str, ...]
    channels: tuple[str, ...]
    timing: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Inhibition:
    """Alerts matching `source` silence alerts matching `target` that agree on every `equal` label."""

    source: tuple[str, ...]
    target: tuple[str, ...]
    equal: tuple[str, ...]


@dataclass(frozen=True)
class Spec:
    """Everything one environment renders from."""

    env: str
    sources: tuple[str, ...]
    source_hash: str
    scrape_interval: float
    evaluation_interval: float
    external_labels: tuple[tuple[str, str], ...]
    endpoints: dict
    receiver_token_file: str
    recording: tuple[RecordingGroup, ...]
    alerts: tuple[Alert, ...]
    routing: dict  # group_by, the root timings and max_alerts (when set)
    default_channels: tuple[str, ...]
    routes: tuple[Route, ...]
    inhibitions: tuple[Inhibition, ...]
    channels: dict  # name -> fields, as the receiver reads them
    deadman: dict
    contract_routes: tuple[tuple[tuple[tuple[str, str], ...], tuple[str, ...]], ...]

    @property
    def groups(self) -> tuple[str, ...]:
        """Rule groups in a stable order: one rule file each."""
        names = {g.name for g in self.recording} | {a.group for a in self.alerts}
        return tuple(sorted(names))

    def interval_of(self, group: str) -> float:
        """A rule group's own evaluation interval; 0 when it runs at the environment's."""
        return next((g.interval for g in self.recording if g.name == group), 0.0)
