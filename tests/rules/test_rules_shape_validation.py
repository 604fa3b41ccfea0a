"""Validation of the alert shapes beyond a plain threshold: severity tiers, counter drivers, vanished series,
predictions, extra annotations. One known-good spec (testdata/good: CostHigh is tiered with a tiered
override, SyncFilesBurst a counter rate, SyncStopped an age that vanishes, MachineVanished a vanished series,
DiskFillingUp a prediction with a guard), one changed field per case, each asserting its exact message."""
from __future__ import annotations

import pytest

from tests.rules.rules_helpers import edit, messages

A, C, G, M = "alerts.yaml", "contract.yaml", "config.yaml", "meta.yaml"
# CostHigh's `op` and `unit` lines, and its contract entry's head: the tier cases change them together.
COST_OP = 'op: ">"\n    unit: usd_per_hour'
COST_CONTRACT_OP = 'CostHigh: {op: ">"'
TIERS_NOT_BOTH = "give `severity` and `threshold`, or `tiers`, not both"
NO_ORDER = "tiers need an ordering comparison (>, >=, <, <=), not =="


def _op(op: str) -> list[tuple[str, str, str]]:
    """CostHigh compares with `op`, in alerts.yaml and in the contract."""
    return [(A, COST_OP, COST_OP.replace('">"', f'"{op}"')), (C, COST_CONTRACT_OP, COST_CONTRACT_OP.replace('">"', f'"{op}"'))]


# case -> ([(file, old, new), ...], expected messages)
BAD = {
    # Severity tiers (CostHigh: tiers at alerts.yaml:55, its override cpu at :61; contract.yaml:8).
    "tiers and severity together": (
        [(A, "    unit: usd_per_hour\n    tiers:", "    unit: usd_per_hour\n    severity: warning\n    tiers:")],
        [f"rules_src/alerts.yaml:55: alerts.CostHigh.severity: {TIERS_NOT_BOTH}"]),
    "tiers and threshold together": (
        [(A, "    unit: usd_per_hour\n    tiers:", "    unit: usd_per_hour\n    threshold: 2\n    tiers:")],
        [f"rules_src/alerts.yaml:55: alerts.CostHigh.threshold: {TIERS_NOT_BOTH}"]),
    "unknown tier name": (
        [(A, "warning: {threshold: 2}", "page: {threshold: 2}")],
        ["rules_src/alerts.yaml:56: alerts.CostHigh.tiers.page: a tier is named by its severity: one of critical, warning, info",
         # What follows from it: the alert's tiers are now only `critical`.
         "rules_src/alerts.yaml:61: alerts.CostHigh.overrides.cpu.tiers: must give exactly the alert's tiers: critical",
         "rules_src/contract.yaml:8: contract.alerts.CostHigh.overrides.cpu: must give exactly the alert's tiers: critical",
         "rules_src/contract.yaml:8: contract.alerts.CostHigh.tiers.warning: the contract has a tier the alert does not define"]),
    "alert's tiers not ordered for >": (
        [(A, "warning: {threshold: 2}", "warning: {threshold: 6}")],
        ["rules_src/alerts.yaml:55: alerts.CostHigh.tiers: the alert's thresholds must be higher for more severe tiers (op >)"]),
    "contract's tiers not ordered for >": (
        [(C, "tiers: {warning: 2, critical: 5}", "tiers: {warning: 6, critical: 5}")],
        ["rules_src/contract.yaml:8: contract.alerts.CostHigh.tiers: "
         "the contract's thresholds must be higher for more severe tiers (op >)"]),
    "tiers not ordered for <": (
        _op("<") + [(A, "tiers: {warning: 1, critical: 3}}", "tiers: {warning: 3, critical: 1}}"),
                    (C, "cpu: {warning: 1, critical: 3}", "cpu: {warning: 3, critical: 1}")],
        ["rules_src/alerts.yaml:55: alerts.CostHigh.tiers: the alert's thresholds must be lower for more severe tiers (op <)",
         "rules_src/contract.yaml:8: contract.alerts.CostHigh.tiers: "
         "the contract's thresholds must be lower for more severe tiers (op <)"]),
    "tiers with ==": (
        _op("=="),
        [f"rules_src/alerts.yaml:55: alerts.CostHigh.tiers: {NO_ORDER}",
         f"rules_src/contract.yaml:8: contract.alerts.CostHigh.tiers: {NO_ORDER}"]),
    "contract missing a tier": (
        [(C, "tiers: {warning: 2, critical: 5}", "tiers: {critical: 5}")],
        ["rules_src/contract.yaml:8: contract.alerts.CostHigh.tiers: missing tier warning (the alert defines it)"]),
    "contract with an extra tier": (
        [(C, "tiers: {warning: 2, critical: 5}", "tiers: {info: 1, warning: 2, critical: 5}")],
        ["rules_src/contract.yaml:8: contract.alerts.CostHigh.tiers.info: the contract has a tier the alert does not define"]),
    "contract tiers for a single-threshold alert": (
        [(C, 'SyncFilesBurst: {severity: warning, op: ">", threshold: 5}',
          'SyncFilesBurst: {severity: warning, op: ">", threshold: 5, tiers: {warning: 5}}')],
        ["rules_src/contract.yaml:9: contract.alerts.SyncFilesBurst.tiers: the alert has one threshold, not tiers"]),
    "override with threshold on a tiered alert": (
        [(A, "tiers: {warning: 1, critical: 3}}", "threshold: 1}")],
        ["rules_src/alerts.yaml:61: alerts.CostHigh.overrides.cpu.threshold: "
         "the alert has tiers: give `tiers` with a threshold for each"]),
    "override with the wrong tier set": (
        [(A, "tiers: {warning: 1, critical: 3}}", "tiers: {warning: 1}}")],
        ["rules_src/alerts.yaml:61: alerts.CostHigh.overrides.cpu.tiers: must give exactly the alert's tiers: critical, warning"]),
    "contract override with the wrong tier set": (
        [(C, "cpu: {warning: 1, critical: 3}", "cpu: {warning: 1}")],
        ["rules_src/contract.yaml:8: contract.alerts.CostHigh.overrides.cpu: "
         "must give exactly the alert's tiers: critical, warning"]),
    "contract override with one threshold for a tiered alert": (
        [(C, "cpu: {warning: 1, critical: 3}", "cpu: 1")],
        ["rules_src/contract.yaml:8: contract.alerts.CostHigh.overrides.cpu: "
         "the alert has tiers: give a threshold for each ({severity: threshold})"]),
    "tiered alert with keep_firing_for": (
        [(A, "    for: 20s\n    carries: [machine_type, machine_id, provider]",
          "    for: 20s\n    keep_firing_for: 1m\n    carries: [machine_type, machine_id, provider]")],
        ["rules_src/alerts.yaml:59: alerts.CostHigh.keep_firing_for: a tiered alert cannot keep firing: "
         "its milder tier would fire beside the severe one after that takes over"]),
    "tiered alert carrying no label": (
        [(A, "    carries: [machine_type, machine_id, provider]\n    overrides", "    carries: []\n    overrides"),
         (A, "    overrides:\n      cpu: {match: {machine_type: cpu}, tiers: {warning: 1, critical: 3}}\n", ""),
         (C, ", overrides: {cpu: {warning: 1, critical: 3}}", "")],
        ["rules_src/alerts.yaml:59: alerts.CostHigh.carries: "
         "a tiered alert needs labels that tell its series apart (each series fires one tier)"]),
    "tier's own for not a duration": (
        [(A, "for: 50s}", "for: soon}")],
        ["rules_src/alerts.yaml:57: alerts.CostHigh.tiers.critical.for: "
         "bad duration 'soon' (use Prometheus notation such as 30s, 5m, 1h)"]),
    "tier threshold outside its unit": (
        [(A, "warning: {threshold: 2}", "warning: {threshold: -2}")],
        ["rules_src/alerts.yaml:56: alerts.CostHigh.tiers.warning.threshold: "
         "must be a number of US dollars per hour, 0 or more"]),
    # Shapes: the field that holds the PromQL tells them apart.
    "horizon on a threshold alert": (
        [(A, "    threshold: 5\n", "    threshold: 5\n    horizon: 1h\n")],
        ["rules_src/alerts.yaml:76: alerts.SyncFilesBurst.horizon: a threshold alert has no `horizon`"]),
    "overrides on a prediction": (
        [(A, "    guard: 0.6\n", "    guard: 0.6\n    overrides: {cpu: {match: {machine_type: cpu}, threshold: 0.9}}\n")],
        ["rules_src/alerts.yaml:124: alerts.DiskFillingUp.overrides: a prediction alert has no `overrides`"]),
    "retired on a fixed alert": (
        [(M, "    expr: vector(1)\n", "    expr: vector(1)\n    retired: dumont_machine_retired\n")],
        ["rules_src/meta.yaml:7: meta.Watchdog.retired: a fixed alert has no `retired`"]),
    "two shapes at once": (
        [(A, "    value: sum by (machine_id) (rate(",
          "    predict: machine:dumont_memory_usage:ratio${selector}\n    value: sum by (machine_id) (rate(")],
        ["rules_src/alerts.yaml:69: alerts.SyncFilesBurst: give exactly one of value (a threshold), predict (a prediction), "
         "vanished (a series that stops being reported) or expr (a fixed alert)"]),
    "vanished alert without window": (
        [(A, "    window: ${window}\n", "")],
        ["rules_src/alerts.yaml:101: alerts.MachineVanished: missing required field 'window' (a vanished alert)"]),
    # Counter drivers (SyncFilesBurst's test at alerts.yaml:78).
    "counter driver naming a gauge": (
        [(A, "test: {rate: dumont_sync_files_total,", "test: {rate: dumont_cost_hourly_usd,")],
        ["rules_src/alerts.yaml:78: alerts.SyncFilesBurst.test.rate: dumont_cost_hourly_usd is not a counter"]),
    "counter driver naming the family, not the scraped name": (
        [(A, "test: {rate: dumont_sync_files_total,", "test: {rate: dumont_savings_total_usd,")],
        ["rules_src/alerts.yaml:78: alerts.SyncFilesBurst.test.rate: "
         "unknown metric dumont_savings_total_usd (not in exporter.catalog)"]),
    "counter driver without window": (
        [(A, 'test: {rate: dumont_sync_files_total, window: "${window}", normal: 1}',
          "test: {rate: dumont_sync_files_total, normal: 1}")],
        ["rules_src/alerts.yaml:78: alerts.SyncFilesBurst.test: "
         "missing required field 'window' (the range the value reads, as in its PromQL)"]),
    "counter window of an unknown parameter": (
        [(A, 'window: "${window}", normal: 1}', 'window: "${files_window}", normal: 1}')],
        ["rules_src/alerts.yaml:78: alerts.SyncFilesBurst.test.window: unknown parameter ${files_window}"]),
    "quantile on a counter driver": (
        [(A, 'window: "${window}", normal: 1}', 'window: "${window}", quantile: 0.9, normal: 1}')],
        ["rules_src/alerts.yaml:78: alerts.SyncFilesBurst.test.quantile: only a histogram test has a quantile"]),
    "vanishes on a counter driver": (
        [(A, 'window: "${window}", normal: 1}', 'window: "${window}", normal: 1, vanishes: true}')],
        ["rules_src/alerts.yaml:78: alerts.SyncFilesBurst.test.vanishes: "
         "only an age test can vanish (its value keeps growing once the series stops)"]),
    "vanishes on a gauge driver": (
        [(A, "test: {gauge: dumont_health_status, normal: 1}", "test: {gauge: dumont_health_status, normal: 1, vanishes: true}")],
        ["rules_src/alerts.yaml:29: alerts.HealthDegraded.test.vanishes: "
         "only an age test can vanish (its value keeps growing once the series stops)"]),
    # Vanished series (MachineVanished at alerts.yaml:101; contract.yaml:11).
    "vanished series not in the catalog": (
        [(A, "vanished: dumont_machine_uptime_seconds${selector}", "vanished: dumont_machine_upness${selector}")],
        ["rules_src/alerts.yaml:104: alerts.MachineVanished.vanished: "
         "dumont_machine_upness is not a gauge of exporter.catalog (the generated tests drive it)",
         "rules_src/alerts.yaml:104: alerts.MachineVanished.vanished: unknown metric dumont_machine_upness (not in exporter.catalog)"]),
    "vanished series is a recording rule": (
        [(A, "vanished: dumont_machine_uptime_seconds${selector}", "vanished: machine:dumont_memory_usage:ratio${selector}")],
        ["rules_src/alerts.yaml:104: alerts.MachineVanished.vanished: "
         "machine:dumont_memory_usage:ratio is not a gauge of exporter.catalog (the generated tests drive it)"]),
    "vanished is an expression": (
        [(A, "vanished: dumont_machine_uptime_seconds${selector}", "vanished: dumont_machine_uptime_seconds${selector} > 0")],
        ["rules_src/alerts.yaml:104: alerts.MachineVanished.vanished: must be a series selector "
         "(a metric or recording rule name, optionally with ${selector}): it is read over a range"]),
    "vanished carries a label its series lacks": (
        [(A, "carries: [machine_id, machine_type]", "carries: [machine_id, provider]")],
        ["rules_src/alerts.yaml:107: alerts.MachineVanished.carries[1]: "
         "label provider is not a label of dumont_machine_uptime_seconds (exporter.catalog)"]),
    "vanished window of 0s": (
        [(A, "    window: ${window}\n", "    window: 0s\n")],
        ["rules_src/alerts.yaml:105: alerts.MachineVanished.window: must be longer than 0s"]),
    "contract missing window for a vanished alert": (
        [(C, "MachineVanished: {severity: critical, window: 1m}", "MachineVanished: {severity: critical}")],
        ["rules_src/contract.yaml:11: contract.alerts.MachineVanished: "
         "missing required field 'window' (how long a stopped series is looked for, as promised)"]),
    # Predictions (DiskFillingUp at alerts.yaml:114; contract.yaml:12).
    "prediction with ==": (
        [(A, 'op: ">="\n    unit: ratio', 'op: "=="\n    unit: ratio'),
         (C, 'op: ">=", threshold: 1, horizon', 'op: "==", threshold: 1, horizon')],
        ["rules_src/alerts.yaml:120: alerts.DiskFillingUp.op: a prediction crosses its threshold: use >, >=, < or <="]),
    "prediction whose contract lacks horizon": (
        [(C, "horizon: 1h, ", "")],
        ["rules_src/contract.yaml:12: contract.alerts.DiskFillingUp: "
         "missing required field 'horizon' (how far ahead the prediction looks, as promised)"]),
    "prediction whose contract lacks guard": (
        [(C, ", guard: 0.6", "")],
        ["rules_src/contract.yaml:12: contract.alerts.DiskFillingUp: missing required field 'guard' (the alert has one)"]),
    "contract guard for a prediction without one": (
        [(A, "    guard: 0.6\n", "")],
        ["rules_src/contract.yaml:12: contract.alerts.DiskFillingUp.guard: the alert has no guard"]),
    "guard outside its unit": (
        [(A, "    guard: 0.6\n", "    guard: 60\n")],
        ["rules_src/alerts.yaml:123: alerts.DiskFillingUp.guard: must be a number between 0 and 1"]),
    "prediction of an expression": (
        [(A, "predict: machine_mount:dumont_disk_usage:ratio${selector}",
          "predict: machine_mount:dumont_disk_usage:ratio${selector} * 2")],
        ["rules_src/alerts.yaml:117: alerts.DiskFillingUp.predict: must be a series selector "
         "(a metric or recording rule name, optionally with ${selector}): it is read over a range"]),
    # `retired` (MachineVanished's at alerts.yaml:108, SyncStopped's at :94).
    "retired names a counter": (
        [(A, '    retired: dumont_machine_retired\n    summary: "{{ $labels.machine_id }} stopped',
          '    retired: dumont_failovers_total\n    summary: "{{ $labels.machine_id }} stopped')],
        ["rules_src/alerts.yaml:108: alerts.MachineVanished.retired: dumont_failovers_total is not a gauge of exporter.catalog"]),
    "retired names an unknown metric": (
        [(A, "    retired: dumont_machine_retired\n    test: {age", "    retired: dumont_machine_gone\n    test: {age")],
        ["rules_src/alerts.yaml:94: alerts.SyncStopped.retired: dumont_machine_gone is not a gauge of exporter.catalog"]),
    "retired shares no label with carries": (
        [(A, "    retired: dumont_machine_retired\n    test: {age", "    retired: dumont_health_status\n    test: {age")],
        ["rules_src/alerts.yaml:94: alerts.SyncStopped.retired: dumont_health_status shares no label with the alert's "
         "carries: it could not tell which series retired"]),
    # Labels and extra annotations (CostHigh's annotations at alerts.yaml:63; config.yaml's dashboard_url at :15).
    "templated label value": (
        [(A, "    carries: [component]\n", '    carries: [component]\n    labels: {owner: "{{ $labels.team }}"}\n')],
        ["rules_src/alerts.yaml:29: alerts.HealthDegraded.labels.owner: a label value cannot be templated (routing and "
         "inhibitions are checked with the value as written); put per-series text in an annotation"]),
    "summary among the extra annotations": (
        [(A, "annotations: {dashboard_url:", "annotations: {summary:")],
        ["rules_src/alerts.yaml:63: alerts.CostHigh.annotations.summary: "
         "summary has a field of its own (`summary:` beside `annotations`)"]),
    "runbook_url among the extra annotations": (
        [(A, "annotations: {dashboard_url:", "annotations: {runbook_url:")],
        ["rules_src/alerts.yaml:63: alerts.CostHigh.annotations.runbook_url: "
         "runbook_url has a field of its own (`runbook_url:` beside `annotations`)"]),
    "annotation name that is no identifier": (
        [(A, "annotations: {dashboard_url:", "annotations: {dashboard-url:")],
        ["rules_src/alerts.yaml:63: alerts.CostHigh.annotations.dashboard-url: not an annotation name ([a-zA-Z_][a-zA-Z0-9_]*)"]),
    "annotation with an unsupported template action": (
        [(A, '{{ $labels.provider }}"}', '{{ $labels.provider | title }}"}')],
        ["rules_src/alerts.yaml:63: alerts.CostHigh.annotations.dashboard_url: unsupported template action "
         "{{ $labels.provider | title }} (the generated tests could not predict it)"]),
    "annotation with an unknown parameter": (
        [(A, "d/cost?var-provider", "d/${board}?var-provider")],
        ["rules_src/alerts.yaml:63: alerts.CostHigh.annotations.dashboard_url: unknown parameter ${board}"]),
    # Reported once, though the pattern is given to every alert.
    "dashboard_url pattern with an unsupported template action": (
        [(G, "{{ $labels.machine_id }}", "{{ .Labels.machine_id }}")],
        ["rules_src/config.yaml:15: dashboard_url: unsupported template action {{ .Labels.machine_id }} "
         "(the generated tests could not predict it)"]),
    "dashboard_url pattern with an unknown parameter": (
        [(G, "grafana.example.com/${env}", "${grafana}")],
        ["rules_src/config.yaml:15: dashboard_url: unknown parameter ${grafana}"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_shape_exact_message(good, case):
    edits, expected = BAD[case]
    for file, old, new in edits:
        edit(good / file, old, new)
    assert messages(good) == expected


# Bugs in rules_src that these tests show (see each docstring): they fail until rules_src is fixed.
# A value of the wrong shape is reported once, by the shape check, and never reaches a check as a traceback.

def test_tiers_written_as_in_the_contract_are_a_shape_error(good):
    """tiers.py tiers(): a tier that is no mapping (`warning: 2`, the contract's form) crashed on `tier.get`."""
    edit(good / A, "warning: {threshold: 2}", "warning: 2")
    edit(good / A, "critical: {threshold: 5, for: 50s}", "critical: 5")
    assert messages(good) == ["rules_src/alerts.yaml:56: alerts.CostHigh.tiers.warning: must be a mapping",
                              "rules_src/alerts.yaml:57: alerts.CostHigh.tiers.critical: must be a mapping"]


def test_override_tiers_of_the_wrong_shape_are_a_shape_error(good):
    """tiers.py _override_thresholds(): `tiers: 1` under an override crashed on `set(given)`."""
    edit(good / A, "tiers: {warning: 1, critical: 3}}", "tiers: 1}")
    assert messages(good) == ["rules_src/alerts.yaml:61: alerts.CostHigh.overrides.cpu.tiers: must be a mapping"]


def test_carries_of_the_wrong_shape_beside_a_dashboard_pattern(good):
    """alert_spec.py _texts(): the dashboard_url pattern read the raw `carries` (`3`) and crashed in _reads_only."""
    edit(good / A, "    carries: [machine_id]\n    test: {rate", "    carries: 3\n    test: {rate")
    assert messages(good) == ["rules_src/alerts.yaml:77: alerts.SyncFilesBurst.carries: must be a list"]


@pytest.mark.parametrize("instead", ["", "threshold: 5, "])
def test_a_contract_without_tiers_is_not_also_called_unordered(good, instead):
    """tiers.py tiers(): the contract's missing tiers were ordered as 0.0 placeholders, a second, false error."""
    edit(good / C, "tiers: {warning: 2, critical: 5}, ", instead)
    assert messages(good) == ["rules_src/contract.yaml:8: contract.alerts.CostHigh: "
                              "the alert has tiers: the contract must state them (tiers: {severity: threshold})"]


def test_a_contract_tier_of_the_wrong_shape_is_not_also_called_unordered(good):
    edit(good / C, "tiers: {warning: 2, critical: 5}", "tiers: {warning: {threshold: 2}, critical: 5}")
    assert messages(good) == ["rules_src/contract.yaml:8: contract.alerts.CostHigh.tiers.warning: must be a string or a number"]


@pytest.mark.parametrize("file, old, new, expected", [
    (A, "tiers: {warning: 1, critical: 3}}", "tiers: {warning: 3, critical: 1}}",
     "rules_src/alerts.yaml:61: alerts.CostHigh.overrides.cpu.tiers: "
     "the override's thresholds must be higher for more severe tiers (op >)"),
    (C, "cpu: {warning: 1, critical: 3}", "cpu: {warning: 3, critical: 1}",
     "rules_src/contract.yaml:8: contract.alerts.CostHigh.overrides.cpu: "
     "the contract's thresholds must be higher for more severe tiers (op >)"),
])
def test_an_overrides_tiers_must_be_ordered_too(good, file, old, new, expected):
    """tiers.py overrides(): unordered override tiers were accepted. With warning 3 and critical 1 for cpu
    machines, a series past 3 fires critical and its warning rule is excluded: the warning tier can never fire,
    and the generated tests (which compute that too) pass."""
    edit(good / file, old, new)
    assert messages(good) == [expected]


def test_a_window_that_is_no_duration_is_reported_once(good):
    """alert_spec.py _window(): 'soon' gave `bad duration` and then `must be longer than 0s` for the same value."""
    edit(good / A, "    horizon: 1h\n", "    horizon: soon\n")
    assert messages(good) == ["rules_src/alerts.yaml:119: alerts.DiskFillingUp.horizon: "
                              "bad duration 'soon' (use Prometheus notation such as 30s, 5m, 1h)"]
