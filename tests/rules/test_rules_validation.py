"""Validation: one known-good spec, one changed field per bad case, each asserting its exact message."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from rules_src.cli import main
from rules_src.render import render
from rules_src.spec import load

from tests.rules.rules_helpers import edit


def messages(spec: Path, env: str = "test", overlay: Path | None = None) -> list[str]:
    """Every error of `env`, as the CLI prints them."""
    _, errors = load(env, spec, overlay)
    return [str(e) for e in errors]


def test_good_spec_is_valid(good):
    assert messages(good) == []


BAD = {
    "unknown metric": (
        "recording.yaml", "dumont_disk_usage_bytes / dumont_disk_total_bytes",
        "dumont_disk_usage_bytes / dumont_disk_capacity_bytes",
        ["rules_src/recording.yaml:4: recording.machines.machine_mount:dumont_disk_usage:ratio: "
         "unknown metric dumont_disk_capacity_bytes (not in exporter.catalog)"]),
    "undefined recording rule": (
        "alerts.yaml", "value: machine:dumont_memory_usage:ratio${selector}",
        "value: machine:dumont_memory_used:ratio${selector}",
        ["rules_src/alerts.yaml:38: alerts.HighMemoryUsage.value: "
         "reads machine:dumont_memory_used:ratio, which no recording rule defines"]),
    "undefined channel": (
        "routing.yaml", "channels: [slack-oncall]", "channels: [slack-oncal]",
        ["rules_src/routing.yaml:16: routing.routes.critical.channels[0]: undefined channel 'slack-oncal'"]),
    "duplicate alert": (
        "meta.yaml", "meta:\n", "meta:\n  HealthDegraded: {group: meta}\n",
        ["rules_src/meta.yaml:3: meta.HealthDegraded: duplicate alert (also defined under alerts)"]),
    "bad duration": (
        "alerts.yaml", "for: 1m", "for: 1 minute",
        ["rules_src/alerts.yaml:10: alerts.DiskAlmostFull.for: "
         "bad duration '1 minute' (use Prometheus notation such as 30s, 5m, 1h)"]),
    "bad severity": (
        "alerts.yaml", "severity: warning\n    value: dumont_health", "severity: page\n    value: dumont_health",
        ["rules_src/alerts.yaml:22: alerts.HealthDegraded.severity: must be one of critical, warning, info"]),
    "inline secret": (
        "channels.yaml", "webhook_url_env: SLACK_ALERTS_URL", "webhook_url: https://hooks.slack.com/services/T0/B0/XX",
        ["rules_src/channels.yaml:8: channels.slack-alerts.webhook_url: "
         "secret written inline (use webhook_url_file or webhook_url_env)"]),
    "secret URL in a file field": (
        "channels.yaml", "webhook_url_file: /etc/dumont/secrets/slack_oncall_url",
        "webhook_url_file: https://hooks.slack.com/services/T0/B0/XX",
        ["rules_src/channels.yaml:5: channels.slack-oncall.webhook_url_file: "
         "secret written inline (give a file path or an environment variable name)"]),
    "unknown field": (
        "alerts.yaml", "    for: 30s\n", "    for: 30s\n    team: infra\n",
        ["rules_src/alerts.yaml:28: alerts.HealthDegraded.team: unknown field"]),
    "inhibition equal-label gap": (
        "routing.yaml", 'target: [severity="warning", machine_id=~".+"]', 'target: [severity="warning"]',
        ["rules_src/routing.yaml:24: routing.inhibit.critical-over-warning.equal: "
         "label machine_id is not carried by HealthDegraded (target side)"]),
    "route without channels": (
        "routing.yaml", "channels: [slack-oncall]", "channels: []",
        ["rules_src/routing.yaml:16: routing.routes.critical.channels: [] should be non-empty"]),
    "threshold out of range": (
        "alerts.yaml", "threshold: 0.8\n", "threshold: 80\n",
        ["rules_src/alerts.yaml:9: alerts.DiskAlmostFull.threshold: must be a number between 0 and 1"]),
    "version": (
        "routing.yaml", "version: dumont/v1", "version: dumont/v2",
        ["rules_src/routing.yaml:1: version: must be dumont/v1"]),
    "unsupported annotation template": (
        "alerts.yaml", "description: Health is {{ $value }}", "description: Health is {{ $value | title }}",
        ["rules_src/alerts.yaml:31: alerts.HealthDegraded.description: unsupported template action "
         "{{ $value | title }} (the generated tests could not predict it)"]),
    # Labels the generator sets: overriding severity would move the alert off its route unnoticed.
    "severity among labels": (
        "alerts.yaml", "    carries: [component]\n", "    carries: [component]\n    labels: {severity: page}\n",
        ["rules_src/alerts.yaml:29: alerts.HealthDegraded.labels.severity: "
         "reserved label: the generator sets it from the alert's `severity` field"]),
    "alertname among labels": (
        "alerts.yaml", "    carries: [component]\n", "    carries: [component]\n    labels: {alertname: Health}\n",
        ["rules_src/alerts.yaml:29: alerts.HealthDegraded.labels.alertname: "
         "reserved label: the generator sets it from the alert's name"]),
    "override among labels": (
        "alerts.yaml", "    carries: [component]\n", "    carries: [component]\n    labels: {override: cpu}\n",
        ["rules_src/alerts.yaml:29: alerts.HealthDegraded.labels.override: "
         "reserved label: the generator sets it from the name of the override a rule implements"]),
    "external label among labels": (
        "alerts.yaml", "    carries: [component]\n", "    carries: [component]\n    labels: {env: prod}\n",
        ["rules_src/alerts.yaml:29: alerts.HealthDegraded.labels.env: "
         "reserved label: prometheus.external_labels sets it for the environment"]),
    # Shape errors stop the checks that would read the broken value (these used to be tracebacks).
    "unknown unit and a bad threshold": (
        "alerts.yaml", "unit: ratio\n    threshold: 0.8", "unit: percent\n    threshold: high",
        ["rules_src/alerts.yaml:8: alerts.DiskAlmostFull.unit: must be one of ratio, seconds, usd_per_hour, number"]),
    "histogram quantile not a number": (
        "alerts.yaml", "carries: [component]\n    test: {gauge: dumont_health_status, normal: 1}",
        "carries: [machine_id]\n    test: {histogram: dumont_sync_latency_seconds, quantile: high, window: 1m, normal: 2}",
        ["rules_src/alerts.yaml:29: alerts.HealthDegraded.test.quantile: must be a number"]),
    "overrides not a mapping": (
        "alerts.yaml", "    overrides:\n      cpu: {match: {machine_type: cpu}, threshold: 0.9}\n", "    overrides: 3\n",
        ["rules_src/alerts.yaml:12: alerts.DiskAlmostFull.overrides: must be a mapping"]),
    "deadman section removed": (
        "channels.yaml", "deadman:\n  channel: watchdog\n  timeout: 5m\n  notify: [slack-oncall]\n", "",
        ["rules_src/channels.yaml:1: missing required field 'deadman'"]),
    "carried label the test series lack": (
        "alerts.yaml", "carries: [machine_type, machine_id]\n", "carries: [machine_type, machine_id, provider]\n",
        ["rules_src/alerts.yaml:42: alerts.HighMemoryUsage.carries[2]: label provider is not a label of "
         "dumont_memory_usage_bytes (exporter.catalog), which test.ratio drives"]),
    "histogram normal outside the buckets": (
        "alerts.yaml", "carries: [component]\n    test: {gauge: dumont_health_status, normal: 1}",
        "carries: [machine_id]\n    test: {histogram: dumont_sync_latency_seconds, quantile: 0.95, window: 1m, normal: 2000}",
        ["rules_src/alerts.yaml:29: alerts.HealthDegraded.test.normal: the generated tests need "
         "dumont_sync_latency_seconds to give 2000, but its buckets only give values above 0.1 and up to 600"]),
    # Names that become file paths.
    "group name leaves the output directory": (
        "alerts.yaml", "group: health", "group: ../../../../escaped",
        ["rules_src/alerts.yaml:21: alerts.HealthDegraded.group: "
         "must match ^[A-Za-z][A-Za-z0-9_]*$ (the group names its rule file)"]),
    "recording group name": (
        "recording.yaml", "  machines:\n", "  machines/x:\n",
        ["rules_src/recording.yaml:3: recording.machines/x: "
         "group name must match ^[A-Za-z][A-Za-z0-9_]*$ (it names a rule file)"]),
    # The contract's comparison: changed in only one of the two places.
    "op changed in alerts.yaml only": (
        "alerts.yaml", 'op: ">"\n    unit: ratio\n    threshold: 0.8', 'op: ">="\n    unit: ratio\n    threshold: 0.8',
        ["rules_src/alerts.yaml:7: alerts.DiskAlmostFull.op: >= is not the comparison the contract promises "
         "(contract.alerts.DiskAlmostFull.op: >): change both or neither"]),
    "op changed in contract.yaml only": (
        "contract.yaml", 'op: ">", threshold: 0.8', 'op: ">=", threshold: 0.8',
        ["rules_src/alerts.yaml:7: alerts.DiskAlmostFull.op: > is not the comparison the contract promises "
         "(contract.alerts.DiskAlmostFull.op: >=): change both or neither"]),
    "op missing from the contract": (
        "contract.yaml", 'HealthDegraded: {severity: warning, op: "<", threshold: 1}',
        "HealthDegraded: {severity: warning, threshold: 1}",
        ["rules_src/contract.yaml:5: contract.alerts.HealthDegraded: "
         "missing required field 'op' (the comparison the alert promises)"]),
    "no contract route for an alert": (
        "contract.yaml", "    - labels: {severity: warning}\n      channels: [slack-alerts]\n", "",
        ["rules_src/contract.yaml:8: contract.routes: no entry gives the channels of HealthDegraded "
         "(labels alertname: HealthDegraded, or severity: warning)",
         "rules_src/contract.yaml:8: contract.routes: no entry gives the channels of HighMemoryUsage "
         "(labels alertname: HighMemoryUsage, or severity: warning)"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_spec_exact_message(good, case):
    file, old, new, expected = BAD[case]
    edit(good / file, old, new)
    assert messages(good) == expected


def test_histogram_threshold_the_tests_cannot_straddle(good):
    # The generated tests put the value one step either side of the contract's threshold.
    edit(good / "alerts.yaml", "carries: [component]\n    test: {gauge: dumont_health_status, normal: 1}",
         "carries: [machine_id]\n    test: {histogram: dumont_sync_latency_seconds, quantile: 0.95, window: 1m, normal: 2}")
    edit(good / "contract.yaml", 'op: "<", threshold: 1}', 'op: "<", threshold: 600}')
    assert messages(good) == [
        "rules_src/contract.yaml:5: contract.alerts.HealthDegraded.threshold: the generated tests need "
        "dumont_sync_latency_seconds to give 590 and 610, but its buckets only give values above 0.1 and up to 600"]


def test_alert_name_must_be_an_identifier(good):
    edit(good / "alerts.yaml", "  HealthDegraded:\n", "  ../Health:\n")
    edit(good / "contract.yaml", "    HealthDegraded:", "    ../Health:")
    assert messages(good) == [
        "rules_src/alerts.yaml:20: alerts.../Health: alert name must match ^[A-Za-z][A-Za-z0-9_]*$ (it names the alert's files)"]


def test_environment_name_cannot_leave_the_env_directory(good):
    assert messages(good, "../config") == ["rules_src/env: no environment '../config'"]


def test_duplicate_key_in_one_file(good):
    path = good / "alerts.yaml"
    path.write_text(path.read_text() + "  DiskAlmostFull:\n    group: machines\n")
    assert messages(good) == [
        "rules_src/alerts.yaml:49: alerts.DiskAlmostFull: duplicate alert (first defined at rules_src/alerts.yaml:3)"]


def test_several_errors_are_reported_together(good):
    edit(good / "alerts.yaml", "for: 1m", "for: soon")
    edit(good / "alerts.yaml", "severity: warning\n    value: dumont_health", "severity: urgent\n    value: dumont_health")
    edit(good / "alerts.yaml", "threshold: 0.8\n", "threshold: 1.5\n")
    edit(good / "routing.yaml", "channels: [slack-oncall]", "channels: [pager]")
    assert messages(good) == [
        "rules_src/alerts.yaml:9: alerts.DiskAlmostFull.threshold: must be a number between 0 and 1",
        "rules_src/alerts.yaml:10: alerts.DiskAlmostFull.for: bad duration 'soon' (use Prometheus notation such as 30s, 5m, 1h)",
        "rules_src/alerts.yaml:22: alerts.HealthDegraded.severity: must be one of critical, warning, info",
        "rules_src/routing.yaml:16: routing.routes.critical.channels[0]: undefined channel 'pager'",
    ]


def test_a_duplicate_key_does_not_hide_other_errors(good):
    path = good / "alerts.yaml"
    path.write_text(path.read_text() + "  DiskAlmostFull:\n    group: machines\n")
    edit(good / "routing.yaml", "repeat_interval: 4h", "repeat_interval: 4 hours")
    edit(good / "routing.yaml", "channels: [slack-oncall]", "channels: [pager]")
    assert messages(good) == [
        "rules_src/alerts.yaml:49: alerts.DiskAlmostFull: duplicate alert (first defined at rules_src/alerts.yaml:3)",
        "rules_src/routing.yaml:6: routing.repeat_interval: bad duration '4 hours' (use Prometheus notation such as 30s, 5m, 1h)",
        "rules_src/routing.yaml:16: routing.routes.critical.channels[0]: undefined channel 'pager'",
    ]


def test_a_wrong_version_does_not_hide_other_errors(good):
    edit(good / "routing.yaml", "version: dumont/v1", "version: dumont/v2")
    edit(good / "routing.yaml", "repeat_interval: 4h", "repeat_interval: 4 hours")
    assert messages(good) == [
        "rules_src/routing.yaml:1: version: must be dumont/v1",
        "rules_src/routing.yaml:6: routing.repeat_interval: bad duration '4 hours' (use Prometheus notation such as 30s, 5m, 1h)",
    ]


def test_a_file_that_does_not_parse_is_skipped(good):
    # Without the file, the merged spec would lack all it defines: only what loading found is reported.
    edit(good / "routing.yaml", "group_by: [alertname, machine_id]", "group_by: [alertname, machine_id")
    path = good / "alerts.yaml"
    path.write_text(path.read_text() + "  DiskAlmostFull:\n    group: machines\n")
    assert messages(good) == [
        "rules_src/alerts.yaml:49: alerts.DiskAlmostFull: duplicate alert (first defined at rules_src/alerts.yaml:3)",
        "rules_src/routing.yaml:4: cannot read YAML: while parsing a flow sequence",
    ]


def test_the_cli_reports_mistakes_without_a_traceback(good, capsys):
    edit(good / "alerts.yaml", "carries: [machine_type, machine_id]\n", "carries: [machine_type, machine_id, provider]\n")
    edit(good / "alerts.yaml", "    overrides:\n      cpu: {match: {machine_type: cpu}, threshold: 0.9}\n", "    overrides: 3\n")
    assert main(["--spec", str(good), "validate"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "rules_src/alerts.yaml:12: alerts.DiskAlmostFull.overrides: must be a mapping",
        "rules_src/alerts.yaml:41: alerts.HighMemoryUsage.carries[2]: label provider is not a label of "
        "dumont_memory_usage_bytes (exporter.catalog), which test.ratio drives",
        "2 error(s); nothing written",
    ]


def _paths(node, path=()):
    yield path
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in children:
        yield from _paths(value, path + (key,))


@pytest.mark.parametrize("name", ["alerts.yaml", "channels.yaml", "config.yaml", "contract.yaml", "meta.yaml",
                                  "recording.yaml", "routing.yaml"])
def test_any_value_of_the_wrong_shape_gives_located_errors(good, name):
    """Each value in turn replaced by one of another shape: errors with file and line, never an exception."""
    path = good / name
    data = yaml.safe_load(path.read_text())
    for where in [p for p in _paths(data) if p and p != ("version",)]:
        changed = copy.deepcopy(data)
        parent = changed
        for key in where[:-1]:
            parent = parent[key]
        parent[where[-1]] = 3 if isinstance(parent[where[-1]], (dict, list)) else [1]
        path.write_text(yaml.safe_dump(changed, sort_keys=False))
        spec, errors = load("test", good)  # valid only where env/test.yaml sets the value anyway
        assert all(e.file.startswith("rules_src/") and e.line for e in errors), (where, [str(e) for e in errors])
        render(spec) if spec else None


def test_overlay_sets_runtime_keys_and_names_its_own_file(good, tmp_path):
    overlay = tmp_path / "run.yml"
    overlay.write_text("endpoints: {receiver: 127.0.0.1:19878}\nreceiver_token_file: /run/token\n"
                       "channels:\n  slack-alerts: {webhook_url_file: /run/slack}\n  slack-oncall: {colour: red}\n")
    assert messages(good, overlay=overlay) == ["run.yml:5: channels.slack-oncall.colour: unknown field"]
    overlay.write_text(overlay.read_text().replace("{colour: red}", "{channel: '#x'}"))
    spec, errors = load("test", good, overlay)
    assert errors == []
    assert spec.endpoints["receiver"] == "127.0.0.1:19878" and spec.receiver_token_file == "/run/token"
    # Setting the *_file of a secret drops the base's *_env for it.
    assert spec.channels["slack-alerts"] == {"type": "slack", "webhook_url_file": "/run/slack"}


def test_contract_covers_every_alert(good):
    edit(good / "contract.yaml", '    HighMemoryUsage: {severity: warning, op: ">", threshold: 0.9}\n', "")
    assert messages(good) == [
        "rules_src/alerts.yaml:35: alerts.HighMemoryUsage: not in the contract (rules_src/contract.yaml contract.alerts)"]


def test_the_project_spec_is_valid_in_every_environment():
    for env in ("dev", "fast", "prod"):
        assert messages(Path(__file__).resolve().parents[2] / "rules_src", env) == []
