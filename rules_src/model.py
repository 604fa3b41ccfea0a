"""The validated spec of one environment: plain frozen dataclasses that the renderers read."""
from __future__ import annotations

import re
from dataclasses import dataclass

# Rule groups and alerts name generated files (prometheus/rules/<group>.yml, runbooks/<alert>.md):
# plain identifiers only, so that no name can reach outside generated/<env>/.
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Tier:
    """One severity step of an alert: beyond `threshold` a series fires at `severity`, unless a more severe tier fires."""

    severity: str
    threshold: float
    expected: float  # what the contract says this tier's threshold is
    expected_severity: str  # the contract's severity (a tier's key, or a single-tier alert's `severity`)
    for_: float


@dataclass(frozen=True)
class Override:
    """Thresholds for the series whose labels equal `match` (first override that matches wins), one per tier."""

    name: str
    match: tuple[tuple[str, str], ...]
    thresholds: tuple[float, ...]  # in the order of the alert's tiers
    expected: tuple[float, ...]  # what the contract says they are


@dataclass(frozen=True)
class Driver:
    """How the generated tests produce an alert's value from catalog metrics."""

    kind: str  # gauge | ratio | age | histogram | increase | rate
    metrics: tuple[str, ...]
    labels: tuple[str, ...]  # labels of the input series
    normal: float
    quantile: float = 0.0
    buckets: tuple[float, ...] = ()
    window: float = 0.0  # a histogram's or a counter's rate window: how long a past value still counts
    vanishes: bool = False  # an age: the value keeps growing after the timestamp series stops being reported


@dataclass(frozen=True)
class Alert:
    """One alert, of one of four shapes (`shape`):

    - threshold: `value` `op` each tier's threshold;
    - prediction: predict_linear(`value`[window], horizon) `op` threshold, while `value` is already beyond `guard`;
    - vanished: `value` (a series) was reported within `window` and is no longer;
    - fixed: its own `expr` (Watchdog, absent()).
    """

    name: str
    group: str
    severity: str  # the most severe tier's
    summary: str
    description: str
    runbook_url: str
    meaning: str
    steps: tuple[str, ...]
    for_: float
    keep_firing_for: float
    labels: tuple[tuple[str, str], ...]
    annotations: tuple[tuple[str, str], ...] = ()  # besides summary, description and runbook_url
    shape: str = "threshold"
    carries: tuple[str, ...] = ()
    expr: str = ""
    value: str = ""  # PromQL with `${selector}` still in it
    op: str = ""
    unit: str = "number"
    tiers: tuple[Tier, ...] = ()  # most severe first
    expected_severity: str = ""  # the contract's severity of the most severe tier
    overrides: tuple[Override, ...] = ()
    driver: Driver | None = None
    window: float = 0.0  # vanished: how long a stopped series is still looked for; prediction: the regression window
    expected_window: float = 0.0  # vanished: the contract's window
    horizon: float = 0.0  # prediction: how far ahead; `expected_horizon` is the contract's
    expected_horizon: float = 0.0
    guard: float | None = None  # prediction: the value must already be beyond it; `expected_guard` is the contract's
    expected_guard: float | None = None
    retired: str = ""  # a metric whose series mark a deliberate stop: those series never page
    retired_on: tuple[str, ...] = ()  # the labels that match a retired mark to the alert's series

    @property
    def severities(self) -> tuple[str, ...]:
        """Every severity the alert can fire with, most severe first."""
        return tuple(t.severity for t in self.tiers) or (self.severity,)


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
    """The recording rules of one rule group, and the group's own evaluation interval (0: the environment's).

    A `tiles` group records, every `interval`, what happened over exactly that interval: its samples are summed
    over ranges (sum_over_time), never read as instant vectors, so the interval may pass the 5m lookback.
    """

    name: str
    records: tuple[Record, ...]
    interval: float = 0.0
    tiles: bool = False


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
