"""Validation: one known-good spec, one changed field per bad case, each asserting its exact message."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from rules_src.cli import main
from rules_src.render import render
from rules_src.spec import load

from tests.rules.rules_helpers import edit, messages


def test_good_spec_is_valid(good):
    assert messages(good) == []


def _email(field: str, value: str, expected: list[str]) -> tuple:
    """A BAD case: channels.yaml gains an email channel whose `field` is `value`."""
    fields = {"to": "[team@example.com]", "from": "alerts@example.com", "smarthost": "smtp.example.com:587",
              "username": "alerts", field: value}
    channel = "  email-team:\n    type: email\n" + "".join(f"    {k}: {v}\n" for k, v in fields.items())
    return ("channels.yaml", "  watchdog:\n", channel + "    password_file: /etc/dumont/secrets/smtp\n  watchdog:\n",
            expected)


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
         "secret written inline (give the path of a file that holds it)"]),
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
        # CostHigh is tiered: its warning tier needs the entry, though its critical tier has one.
        [f"rules_src/contract.yaml:13: contract.routes: no entry gives the channels of {alert} "
         f"(labels alertname: {alert}, or severity: warning)"
         for alert in ("CostHigh", "DiskFillingUp", "HealthDegraded", "HighMemoryUsage", "SyncFilesBurst")]),
    # Secrets are references: a file path or a variable name, never the secret, a URL or a credential.
    "relative receiver token file": (
        "config.yaml", "receiver_token_file: /etc/dumont/secrets/receiver_token", "receiver_token_file: s3cr3t-token",
        ["rules_src/config.yaml:13: receiver_token_file: must be an absolute file path"]),
    "URL as the receiver token file": (
        "config.yaml", "receiver_token_file: /etc/dumont/secrets/receiver_token",
        "receiver_token_file: https://vault.example.com/v1/receiver_token",
        ["rules_src/config.yaml:13: receiver_token_file: secret written inline (give the path of a file that holds it)"]),
    "URL in an env field": (
        "channels.yaml", "webhook_url_env: SLACK_ALERTS_URL", "webhook_url_env: https://hooks.slack.com/services/T0/B0/XX",
        ["rules_src/channels.yaml:8: channels.slack-alerts.webhook_url_env: "
         "secret written inline (give the name of an environment variable that holds it)"]),
    "webhook URL as a slack channel": (
        "channels.yaml", "    webhook_url_env: SLACK_ALERTS_URL\n",
        "    webhook_url_env: SLACK_ALERTS_URL\n    channel: https://hooks.slack.com/services/T0/B0/XX\n",
        ["rules_src/channels.yaml:9: channels.slack-alerts.channel: "
         "must not hold a URL or credential (a secret goes in webhook_url_file or webhook_url_env)"]),
    "webhook host without a scheme as a slack channel": (
        "channels.yaml", "    webhook_url_env: SLACK_ALERTS_URL\n",
        "    webhook_url_env: SLACK_ALERTS_URL\n    channel: hooks.slack.com/services/T0/B0/XX\n",
        ["rules_src/channels.yaml:9: channels.slack-alerts.channel: "
         "must not hold a URL or credential (a secret goes in webhook_url_file or webhook_url_env)"]),
    # An email channel is added before `watchdog` (line 9); its fields from line 10 on.
    "webhook URL among email recipients": _email(
        "to", '[team@example.com, "https://hooks.slack.com/services/T0/B0/XX"]',
        ["rules_src/channels.yaml:11: channels.email-team.to[1]: "
         "must not hold a URL or credential (a secret goes in password_file or password_env)"]),
    "URL as the email sender": _email(
        "from", "mailto://alerts@example.com",
        ["rules_src/channels.yaml:12: channels.email-team.from: "
         "must not hold a URL or credential (a secret goes in password_file or password_env)"]),
    "credentials in the smarthost": _email(
        "smarthost", "smtp://alerts:hunter2@smtp.example.com:587",
        ["rules_src/channels.yaml:13: channels.email-team.smarthost: "
         "must not hold a URL or credential (a secret goes in password_file or password_env)"]),
    "URL as the SMTP username": _email(
        "username", "https://hooks.slack.com/services/T0/B0/XX",
        ["rules_src/channels.yaml:14: channels.email-team.username: "
         "must not hold a URL or credential (a secret goes in password_file or password_env)"]),
    # A group's own evaluation interval (the good spec's savings group: interval 1m at line 7).
    "group interval below the evaluation interval": (
        "recording.yaml", "    interval: 1m\n", "    interval: 5s\n",
        ["rules_src/recording.yaml:7: recording.savings.interval: must be at least prometheus.evaluation_interval (10s)"]),
    # A group of tiles (savings_hourly) may pass the lookback; its rules read exactly its interval; nothing reads them.
    "a tile reading two hours": (
        "recording.yaml", "increase(dumont_savings_total_usd_total[1h])", "increase(dumont_savings_total_usd_total[2h])",
        ["rules_src/recording.yaml:48: recording.savings_hourly.category:dumont_savings_usd:increase1h: reads a range "
         "of 2h: a tile must read exactly its group's interval (1h), or its samples would overlap or leave gaps"]),
    "tiles without an interval": (
        "recording.yaml", '    interval: "1h"  # quoted: tests edit the unquoted one above by its text, which must stay unique\n',
        "", ["rules_src/recording.yaml:46: recording.savings_hourly.tiles: a group of tiles needs its own `interval`: "
             "the span each sample covers"]),
    "a rule reading a tile": (
        "recording.yaml", "    machine:dumont_memory_usage:ratio: dumont_memory_usage_bytes / dumont_memory_total_bytes\n",
        "    machine:dumont_memory_usage:ratio: dumont_memory_usage_bytes / dumont_memory_total_bytes\n"
        "    category:dumont_savings_usd:last1h: max by (category) (category:dumont_savings_usd:increase1h)\n",
        ["rules_src/recording.yaml:6: recording.machines.category:dumont_savings_usd:last1h: no alert reads this rule, "
         "so only a test can hold it to its values: give it `expr` and `test` (input series, `at`, expected samples)",
         "rules_src/recording.yaml:6: recording.machines.category:dumont_savings_usd:last1h: reads "
         "category:dumont_savings_usd:increase1h, a tile recorded once per group interval: it is for dashboards' sums "
         "over ranges; read the series it is built from instead"]),
    "group interval as long as the lookback delta": (
        "recording.yaml", "    interval: 1m\n", "    interval: 5m\n",
        ["rules_src/recording.yaml:7: recording.savings.interval: must be shorter than 5m, Prometheus' lookback delta: "
         "a series recorded less often vanishes from queries between evaluations"]),
    "group interval not a duration": (
        "recording.yaml", "    interval: 1m\n", "    interval: 1 minute\n",
        ["rules_src/recording.yaml:7: recording.savings.interval: "
         "bad duration '1 minute' (use Prometheus notation such as 30s, 5m, 1h)"]),
    "group interval where alerts are": (
        "recording.yaml", "  machines:\n", "  machines:\n    interval: 1m\n",
        ["rules_src/recording.yaml:4: recording.machines.interval: alerts DiskAlmostFull, HighMemoryUsage, "
         "MachineVanished, DiskFillingUp use this group and would be evaluated this rarely too: give the slow "
         "recording rules a group of their own"]),
    # Recording rules' tests (the good spec's savings.category:dumont_savings_usd:increase1d, lines 8-18).
    "dashboard rule without a test": (
        "recording.yaml", "    interval: 1m\n", "    interval: 1m\n    category:dumont_savings_usd:increase30d: "
        "sum by (category) (increase(dumont_savings_total_usd_total[30d]))\n",
        ["rules_src/recording.yaml:8: recording.savings.category:dumont_savings_usd:increase30d: no alert reads this "
         "rule, so only a test can hold it to its values: give it `expr` and `test` (input series, `at`, expected samples)"]),
    "test read between two evaluations": (
        "recording.yaml", "at: 2d", "at: 90m",
        ["rules_src/recording.yaml:15: recording.savings.category:dumont_savings_usd:increase1d.test.at: "
         "must be a multiple of test.interval (1h): the test evaluates the rules only that often"]),
    "test interval of 0s": (
        "recording.yaml", "interval: 1h", "interval: 0s",
        ["rules_src/recording.yaml:11: recording.savings.category:dumont_savings_usd:increase1d.test.interval: "
         "must be longer than 0s"]),
    "test input of an unknown metric": (
        "recording.yaml", 'dumont_savings_total_usd_total{category="transfer"}', 'dumont_saving_total_usd{category="transfer"}',
        ['rules_src/recording.yaml:14: recording.savings.category:dumont_savings_usd:increase1d.test.input.'
         'dumont_saving_total_usd{category="transfer"}: unknown metric dumont_saving_total_usd (not in exporter.catalog)']),
    "test input with labels the metric does not have": (
        "recording.yaml", '_total{category="transfer"}', '_total{kind="transfer"}',
        ['rules_src/recording.yaml:14: recording.savings.category:dumont_savings_usd:increase1d.test.input.'
         'dumont_savings_total_usd_total{kind="transfer"}: label kind is not a label of dumont_savings_total_usd_total '
         '(exporter.catalog) nor one a scrape adds',
         'rules_src/recording.yaml:14: recording.savings.category:dumont_savings_usd:increase1d.test.input.'
         'dumont_savings_total_usd_total{kind="transfer"}: lacks label category, which every '
         'dumont_savings_total_usd_total series has (exporter.catalog)']),
    "test input of a recording rule": (
        "recording.yaml", 'dumont_savings_total_usd_total{category="transfer"}',
        'category:dumont_savings_usd:increase1d{category="transfer"}',
        ['rules_src/recording.yaml:14: recording.savings.category:dumont_savings_usd:increase1d.test.input.'
         'category:dumont_savings_usd:increase1d{category="transfer"}: category:dumont_savings_usd:increase1d is a '
         'recording rule: give the series it reads (the test records it itself)']),
    "test input that is no series": (
        "recording.yaml", '_total{category="transfer"}', '_total{category=transfer}',
        ['rules_src/recording.yaml:14: recording.savings.category:dumont_savings_usd:increase1d.test.input.'
         'dumont_savings_total_usd_total{category=transfer}: not a series (write name{label="value", ...})']),
    "expected sample with a name": (
        "recording.yaml", """'{category="spot"}': 48""", """'x{category="spot"}': 48""",
        ['rules_src/recording.yaml:17: recording.savings.category:dumont_savings_usd:increase1d.test.expect.'
         'x{category="spot"}: not a label set (write {label="value", ...}, quoted in YAML)']),
    "recording rule mapping without expr": (
        "recording.yaml", "      expr: sum by (category) (increase(dumont_savings_total_usd_total[1d]))\n", "",
        ["rules_src/recording.yaml:8: recording.savings.category:dumont_savings_usd:increase1d: "
         "missing required field 'expr'"]),
    "recording rule of the wrong type": (
        "recording.yaml", "machine:dumont_memory_usage:ratio: dumont_memory_usage_bytes / dumont_memory_total_bytes",
        "machine:dumont_memory_usage:ratio: [dumont_memory_usage_bytes]",
        ["rules_src/recording.yaml:5: recording.machines.machine:dumont_memory_usage:ratio: "
         "must be PromQL, or a mapping with expr and test"]),
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
        "rules_src/alerts.yaml:132: alerts.DiskAlmostFull: duplicate alert (first defined at rules_src/alerts.yaml:3)"]


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
        "rules_src/alerts.yaml:132: alerts.DiskAlmostFull: duplicate alert (first defined at rules_src/alerts.yaml:3)",
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
        "rules_src/alerts.yaml:132: alerts.DiskAlmostFull: duplicate alert (first defined at rules_src/alerts.yaml:3)",
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
    assert spec.endpoints["receiver"] == ["127.0.0.1:19878"] and spec.receiver_token_file == "/run/token"
    # Setting the *_file of a secret drops the base's *_env for it.
    assert spec.channels["slack-alerts"] == {"type": "slack", "webhook_url_file": "/run/slack"}


def test_an_overlay_is_held_to_the_same_secret_rules(good, tmp_path):
    # Run-time values arrive in overlays (deploy/local/stack.py writes one): they are checked like the base.
    overlay = tmp_path / "run.yml"
    overlay.write_text("receiver_token_file: s3cr3t-token\nchannels:\n  slack-oncall: {channel: 'https://hooks.slack.com/x'}\n")
    assert messages(good, overlay=overlay) == [
        "run.yml:1: receiver_token_file: must be an absolute file path",
        "run.yml:3: channels.slack-oncall.channel: "
        "must not hold a URL or credential (a secret goes in webhook_url_file or webhook_url_env)"]


def test_an_environment_sets_a_group_interval_of_its_own(good, tmp_path):
    # The interval must not be shorter than the environment's evaluation_interval: an overlay may change both.
    overlay = tmp_path / "slow.yml"
    overlay.write_text("prometheus: {evaluation_interval: 2m}\n")
    assert messages(good, overlay=overlay) == [
        "rules_src/recording.yaml:7: recording.savings.interval: must be at least prometheus.evaluation_interval (2m)"]
    overlay.write_text("prometheus: {evaluation_interval: 2m}\nrecording: {savings: {interval: 4m}}\n")
    spec, errors = load("test", good, overlay)
    assert errors == [] and spec.interval_of("savings") == 240 and spec.interval_of("machines") == 0


def test_contract_covers_every_alert(good):
    edit(good / "contract.yaml", '    HighMemoryUsage: {severity: warning, op: ">", threshold: 0.9}\n', "")
    assert messages(good) == [
        "rules_src/alerts.yaml:35: alerts.HighMemoryUsage: not in the contract (rules_src/contract.yaml contract.alerts)"]


def test_the_project_spec_is_valid_in_every_environment():
    for env in ("dev", "fast", "prod"):
        assert messages(Path(__file__).resolve().parents[2] / "rules_src", env) == []
