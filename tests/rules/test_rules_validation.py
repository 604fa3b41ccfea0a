"""Validation: one known-good spec, one changed field per bad case, each asserting its exact message."""
from __future__ import annotations

from pathlib import Path

import pytest

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
        ["rules_src/routing.yaml:16: routing.routes.critical.channels: [] should be non-empty",
         "rules_src/routing.yaml:16: routing.routes.critical.channels: alert DiskAlmostFull reaches no channel"]),
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
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_spec_exact_message(good, case):
    file, old, new, expected = BAD[case]
    edit(good / file, old, new)
    assert messages(good) == expected


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
    edit(good / "contract.yaml", "    HighMemoryUsage: {severity: warning, threshold: 0.9}\n", "")
    assert messages(good) == [
        "rules_src/alerts.yaml:35: alerts.HighMemoryUsage: not in the contract (rules_src/contract.yaml contract.alerts)"]


def test_the_project_spec_is_valid_in_every_environment():
    for env in ("dev", "fast", "prod"):
        assert messages(Path(__file__).resolve().parents[2] / "rules_src", env) == []
