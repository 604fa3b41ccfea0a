"""`dumont-rules explain` and rules_src/amroute.py: the receivers explain computes are amtool's for every alert and
severity of every environment, its timing arithmetic is the spec's, group keys are written as a real Alertmanager
0.25 writes them, inhibitions name their source alerts, and bad inputs end with one error line and exit 2."""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from rules_src import explain as explain_module
from rules_src.amroute import InhibitRule, Matcher, group_key, load_routing, parse_matchers
from rules_src.spec import environments, load
from tests.e2e.alertmanager import Alertmanager

REPO = Path(__file__).resolve().parents[2]
EXPLAIN = [str(Path(sys.executable).with_name("dumont-rules")), "explain"]


def explain(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run `dumont-rules explain ARGS` as people do."""
    done = subprocess.run([*EXPLAIN, *args], capture_output=True, text=True, timeout=120, cwd=REPO)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def amtool_receivers(config: Path, labels: dict[str, str]) -> list[str]:
    """The receivers amtool says an alert with `labels` reaches, one per route taken."""
    amtool = shutil.which("amtool")
    if amtool is None:  # fails, never skips: the comparison must run
        pytest.fail("amtool is not installed (run `make setup`, which installs Debian's prometheus-alertmanager)")
    done = subprocess.run([amtool, "config", "routes", "test", f"--config.file={config}",
                           *(str(Matcher(k, "=", v)) for k, v in labels.items())],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().split(",")


@pytest.mark.parametrize("env", environments())
def test_explain_routes_every_alert_and_severity_where_amtool_does(env):
    table = json.loads(explain("--all", "--env", env, "--json").stdout)
    spec, errors = load(env)
    assert not errors
    assert [(row["alert"], row["severity"]) for row in table["alerts"]] == [
        (alert.name, severity) for alert in spec.alerts for severity in alert.severities]
    config = REPO / "generated" / env / "alertmanager" / "alertmanager.yml"
    inputs = explain_module.load_inputs(env, REPO / "generated" / env)
    for row in table["alerts"]:
        assert row["receivers"] == amtool_receivers(config, row["labels"]), row["alert"]
        one = explain_module.explain(inputs, row["alert"], {}, row["severity"])  # what `explain ALERT` prints
        assert one["severities"][0]["receivers"] == row["receivers"]


def test_the_json_has_its_keys_and_the_spec_s_timing_arithmetic():
    out = json.loads(explain("HighSyncLatency", "--env", "prod", "--json").stdout)
    assert list(out) == ["alert", "env", "alertmanager_file", "channels_file", "runbook_url", "severities"]
    [one] = out["severities"]
    assert list(one) == ["severity", "labels", "placeholders", "for", "keep_firing_for", "scrape_interval",
                         "evaluation_interval", "receivers", "routes", "inhibited_by", "notes"]
    [route] = one["routes"]
    assert list(route) == ["where", "key", "receiver", "continue", "path", "group_by", "group_key", "group_wait",
                           "group_interval", "repeat_interval", "channels", "integrations", "first_notification",
                           "joining_group", "repeat_every", "resolved"]
    assert list(route["channels"][0]) == ["name", "kind", "thread", "send_resolved", "via"]

    # By hand: `for` and keep_firing_for from the spec, the intervals from the rendered prometheus.yml, the
    # timings from the rendered alertmanager.yml (the warning route sets none of its own but repeat_interval).
    spec, _ = load("prod")
    alert = next(a for a in spec.alerts if a.name == "HighSyncLatency")
    prometheus = yaml.safe_load((REPO / "generated/prod/prometheus/prometheus.yml").read_text())["global"]
    am = yaml.safe_load((REPO / "generated/prod/alertmanager/alertmanager.yml").read_text())["route"]
    warning = next(r for r in am["routes"] if r.get("matchers") == ['severity="warning"'])
    seconds = {"15s": 15, "30s": 30, "5m": 300, "1h": 3600, "4h": 14400}
    scrape, evaluation = seconds[prometheus["scrape_interval"]], seconds[prometheus["evaluation_interval"]]
    wait = seconds[warning.get("group_wait", am["group_wait"])]
    interval = seconds[warning.get("group_interval", am["group_interval"])]
    repeat = seconds[warning.get("repeat_interval", am["repeat_interval"])]
    for_, keep = alert.tiers[0].for_, alert.keep_firing_for
    assert (for_, keep, scrape, evaluation, wait, interval, repeat) == (300, 300, 15, 15, 30, 300, 14400)
    assert route["first_notification"] == {"best": for_ + wait,  # 5m30s
                                           "worst": scrape + evaluation + math.ceil(for_ / evaluation) * evaluation
                                           + evaluation + wait}  # 6m15s
    assert route["first_notification"] == {"best": 330, "worst": 375}
    assert route["joining_group"] == {"best": 300, "worst": 15 + 15 + 300 + 15 + 300}
    # 4h is 48 flushes of 5m: the 48th races the notification log's timestamp, so the 48th or the 49th.
    assert route["repeat_every"] == {"best": repeat, "worst": repeat + interval} == {"best": 14400, "worst": 14700}
    assert route["resolved"] == {"best": keep, "worst": keep + scrape + evaluation + interval} == {
        "best": 300, "worst": 630}
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == (30, 300, 14400)
    assert one["receivers"] == ["warning"] and [c["name"] for c in route["channels"]] == ["slack-alerts", "email-team"]
    assert out["runbook_url"] == alert.runbook_url


def test_repeats_go_out_at_the_next_flush_after_repeat_interval(tmp_path):
    generated = tmp_path / "prod"
    shutil.copytree(REPO / "generated" / "prod", generated)
    am = generated / "alertmanager" / "alertmanager.yml"
    config = yaml.safe_load(am.read_text())
    config["route"]["routes"][3]["group_interval"] = "7m"  # the warning route: 4h is no multiple of 7m
    am.write_text(yaml.safe_dump(config))
    out = json.loads(explain("HighSyncLatency", "--generated", str(generated), "--json").stdout)
    route = out["severities"][0]["routes"][0]
    # 4h05m, the 35th flush of 7m: no race, as 4h is no multiple of 7m.
    assert out["env"] == "prod" and route["repeat_every"] == {"best": 35 * 420, "worst": 35 * 420} == {
        "best": 14700, "worst": 14700}


def test_a_label_given_shows_in_the_group_key_and_carried_ones_as_placeholders():
    text = explain("HighSyncLatency", "--env", "prod", "--label", "machine_id=gpu-7").stdout
    assert '{}/{severity="warning"}:{alertname="HighSyncLatency", machine_id="gpu-7"}' in text
    out = json.loads(explain("DiskAlmostFull", "--env", "prod", "--json").stdout)
    [one] = out["severities"]
    assert one["placeholders"] == ["machine_type", "machine_id", "mount"]
    assert one["labels"]["mount"] == "<mount>"
    assert one["routes"][0]["group_key"] == (
        '{}/{severity="critical"}:{alertname="DiskAlmostFull", machine_id=<machine_id>}')
    given = json.loads(explain("DiskAlmostFull", "--label", "machine_id=gpu-7", "--label", "mount=/data",
                               "--json").stdout)["severities"][0]
    assert given["placeholders"] == ["machine_type"] and given["labels"]["mount"] == "/data"
    assert given["routes"][0]["group_key"].endswith(':{alertname="DiskAlmostFull", machine_id="gpu-7"}')


def test_machine_down_is_named_as_what_inhibits_an_alert_about_the_same_machine():
    rules = yaml.safe_load((REPO / "rules_src" / "routing.yaml").read_text())["routing"]["inhibit"]
    assert rules["machine-down"]["equal"] == ["machine_id"]
    out = json.loads(explain("DiskFillingUp", "--env", "prod", "--json").stdout)
    inhibited = {rule["rule"]: rule for rule in out["severities"][0]["inhibited_by"]}
    down = inhibited["inhibit_rules[0]"]
    assert down["equal"] == ["machine_id"] and down["source"] == ['alertname=~"MachineDown|MachineVanished"']
    assert down["alerts"] == [{"alert": "MachineDown", "severity": "critical"},
                              {"alert": "MachineVanished", "severity": "critical"}]
    full = inhibited["inhibit_rules[1]"]
    assert full["equal"] == ["machine_id", "mount"]
    assert full["alerts"] == [{"alert": "DiskAlmostFull", "severity": "critical"}]
    text = explain("HighSyncLatency", "--env", "prod").stdout
    assert "inhibit_rules[0], equal on machine_id: MachineDown (critical), MachineVanished (critical)" in text
    # MachineDown is no target of the rule it is the source of, and an alert without machine_id none of it.
    machine_down = json.loads(explain("MachineDown", "--json").stdout)["severities"][0]
    assert "inhibit_rules[0]" not in [rule["rule"] for rule in machine_down["inhibited_by"]]
    provider = json.loads(explain("ProviderCostHigh", "--severity", "warning", "--json").stdout)["severities"][0]
    assert provider["inhibited_by"] == []


def _lines(done: subprocess.CompletedProcess) -> list[str]:
    return done.stderr.splitlines()


@pytest.mark.parametrize("args, message", [
    (["Nope"], "no alert 'Nope' in prod (alerts: DiskAlmostFull,"),
    (["DiskAlmostFul"], "no alert 'DiskAlmostFul' in prod (did you mean DiskAlmostFull?)"),
    (["DiskAlmostFull", "--label", "machine_id"], "--label 'machine_id': expected NAME=VALUE"),
    (["DiskAlmostFull", "--label", "1x=y"], "--label '1x=y': '1x' is not a label name"),
    (["DiskAlmostFull", "--label", "severity=page"], "--label severity=...: the rule sets severity"),
    (["DiskAlmostFull", "--severity", "page"], "--severity page: DiskAlmostFull fires with critical only"),
    (["DiskAlmostFull", "--env", "staging"], "--env staging: no such environment (there are: dev, fast, prod)"),
    (["DiskAlmostFull", "--generated", "{tmp}"], "{tmp}/alertmanager/alertmanager.yml: not found"),
    (["DiskAlmostFull", "--generated", "{broken}"], "{broken}/alertmanager/alertmanager.yml: not valid YAML"),
    ([], "give an ALERT to explain, or --all"),
    (["--all", "--label", "machine_id=gpu-7"], "--label and --severity go with one ALERT"),
])
def test_bad_inputs_exit_2_with_one_error_line(tmp_path, args, message):
    broken = tmp_path / "broken"
    (broken / "alertmanager").mkdir(parents=True)
    shutil.copytree(REPO / "generated" / "prod" / "receiver", broken / "receiver")
    (broken / "alertmanager" / "alertmanager.yml").write_text("route: [\n  receiver: x\n")
    fill = {"tmp": str(tmp_path), "broken": str(broken)}
    done = explain(*[a.format(**fill) for a in args], check=False)
    assert done.returncode == 2 and done.stdout == ""
    assert "Traceback" not in done.stderr
    [line] = _lines(done)
    assert line.startswith("dumont-rules explain: error: " + message.format(**fill)), line


def test_the_all_table_lists_every_alert_with_its_timings():
    text = explain("--all", "--env", "prod").stdout
    header = next(line for line in text.splitlines() if line.startswith("ALERT"))
    assert header.split() == ["ALERT", "SEVERITY", "RECEIVERS", "CHANNELS", "WAIT", "INTERVAL", "REPEAT", "FIRST",
                              "BEST", "FIRST", "WORST"]
    row = next(line for line in text.splitlines() if line.startswith("HighSyncLatency "))
    assert row.split() == ["HighSyncLatency", "warning", "warning", "slack-alerts,email-team", "30s", "5m", "4h-4h5m",
                           "5m30s", "6m15s"]
    assert next(line for line in text.splitlines() if line.startswith("ReceiversDown ")).split()[3] == \
        "am:email,am:slack"


# rules_src/amroute.py against Alertmanager's own formatting


def test_group_keys_are_written_as_alertmanager_writes_them():
    generated = REPO / "generated" / "prod"
    routing = load_routing(generated / "alertmanager" / "alertmanager.yml", generated / "receiver" / "channels.yml")
    labels = {"alertname": "MachineVanished", "severity": "critical", "machine_id": "cpu-2", "machine_type": "cpu",
              "cluster": "dumont-prod", "env": "prod"}
    [route] = routing.root.match(labels)
    # As the receiver's logs show it for a real MachineVanished.
    assert group_key(route, labels) == '{}/{severity="critical"}:{alertname="MachineVanished", machine_id="cpu-2"}'
    assert (route.receiver, route.group_by, route.group_wait, route.group_interval, route.repeat_interval) == (
        "critical", ("alertname", "machine_id", "component"), 30.0, 300.0, 3600.0)
    assert routing.root.key == "{}" and group_key(routing.root, {}) == "{}:{}"
    assert [(r.source, r.target, r.equal) for r in routing.inhibit_rules][0] == (
        (Matcher("alertname", "=~", "MachineDown|MachineVanished"),),
        (Matcher("alertname", "!~", "MachineDown|MachineVanished"), Matcher("machine_id", "=~", ".+")),
        ("machine_id",))
    assert [r.where for r in routing.inhibitors({**labels, "alertname": "DiskFillingUp", "mount": "/"})] == [
        "inhibit_rules[0]", "inhibit_rules[1]"]


def test_legacy_inhibit_rule_forms_are_read(tmp_path):
    config = tmp_path / "alertmanager.yml"
    config.write_text(yaml.safe_dump({
        "route": {"receiver": "r"}, "receivers": [{"name": "r"}],
        "inhibit_rules": [{"source_match": {"severity": "critical"}, "source_match_re": {"team": "a|b"},
                           "target_match": {"severity": "warning"}, "equal": ["alertname"]}]}))
    channels = tmp_path / "channels.yml"
    channels.write_text("channels: {}\n")
    [rule] = load_routing(config, channels).inhibit_rules
    assert rule == InhibitRule((Matcher("severity", "=", "critical"), Matcher("team", "=~", "^(?:a|b)$")),
                               (Matcher("severity", "=", "warning"),), ("alertname",), "inhibit_rules[0]")
    assert rule.mutes({"alertname": "X", "severity": "warning"},
                      {"alertname": "X", "severity": "critical", "team": "a"})
    assert not rule.mutes({"alertname": "X", "severity": "warning"},
                          {"alertname": "Y", "severity": "critical", "team": "a"})


def test_a_real_alertmanager_writes_the_group_keys_and_inhibits_as_amroute_says(sink, tmp_path):
    url, bodies = sink
    hook = [{"url": url, "send_resolved": False}]
    config = {
        "route": {"receiver": "root", "group_by": ["alertname", "machine_id"], "group_wait": "0s",
                  "group_interval": "1m", "routes": [
                      # Several matchers, sorted in the key; a wildcard group_by; `continue`.
                      {"matchers": ['{team="x", severity!="info"}'], "receiver": "a", "continue": True,
                       "group_by": ["..."]},
                      {"match": {"severity": "critical"}, "match_re": {"env": "prod|dev"}, "receiver": "b",
                       "routes": [{"matchers": ['note=~".*\\\\\\\\.*"'], "receiver": "c"}]},
                      {"matchers": ["severity=critical"], "receiver": "d"},
                  ]},
        "receivers": [{"name": name, "webhook_configs": hook} for name in ("root", "a", "b", "c", "d")],
        "inhibit_rules": [{"source_matchers": ['alertname="MachineDown"'],
                           "target_matchers": ['alertname!="MachineDown"', 'machine_id=~".+"'],
                           "equal": ["machine_id"]}],
    }
    am = Alertmanager(config, tmp_path / "am").start()
    try:
        alerts = [
            {"alertname": "MachineVanished", "severity": "critical", "machine_id": "cpu-2", "team": "x",
             "env": "prod"},
            {"alertname": "Quoted", "severity": "critical", "machine_id": 'gpu "7"\\n\nü\t', "env": "dev",
             "note": "a\\b"},
            {"alertname": "Plain", "severity": "critical", "machine_id": "gpu-8"},
            {"alertname": "Other", "severity": "info"},
        ]
        now = datetime.now(timezone.utc)
        am.post_alerts([{"labels": labels, "startsAt": stamp(now - timedelta(minutes=1)),
                         "endsAt": stamp(now + timedelta(hours=1))} for labels in alerts])
        routing = load_routing(tmp_path / "am" / "alertmanager.yml", _empty_channels(tmp_path))
        expected = {group_key(route, labels): route.receiver
                    for labels in alerts for route in routing.root.match(labels)}
        assert len(expected) == 5
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len({json.loads(b)["groupKey"] for b in bodies}) < len(expected):
            time.sleep(0.1)
        assert {json.loads(b)["groupKey"]: json.loads(b)["receiver"] for b in bodies} == expected

        # Inhibition: MachineDown mutes the alerts about its machine, not itself nor another machine's.
        target = {"alertname": "Plain", "severity": "critical", "machine_id": "gpu-8"}
        source = {"alertname": "MachineDown", "severity": "critical", "machine_id": "gpu-8"}
        other = {"alertname": "Plain", "severity": "critical", "machine_id": "gpu-9"}
        am.post_alerts([{"labels": labels, "startsAt": stamp(now), "endsAt": stamp(now + timedelta(hours=1))}
                        for labels in (source, other)])
        [rule] = routing.inhibit_rules
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            states = {a["labels"]["alertname"] + a["labels"].get("machine_id", ""): a["status"]["state"]
                      for a in am.alerts()}
            if states.get("Plaingpu-8") == "suppressed":
                break
            time.sleep(0.1)
        assert states["Plaingpu-8"] == "suppressed" and rule.mutes(target, source)
        assert states["Plaingpu-9"] == "active" and not rule.mutes(other, source)
        assert states["MachineDowngpu-8"] == "active" and not rule.mutes(source, source)
        assert routing.inhibitors(target) == [rule] and routing.inhibitors(source) == []
    finally:
        am.stop()


def stamp(moment: datetime) -> str:
    """RFC 3339, as Alertmanager's API reads startsAt and endsAt."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _empty_channels(tmp_path: Path) -> Path:
    path = tmp_path / "channels.yml"
    path.write_text("channels: {}\n")
    return path


def test_route_keys_sort_matchers_and_escape_values_as_alertmanager():
    [key_matcher] = parse_matchers(r'note=~"a\\b\"c"')
    assert str(key_matcher) == r'note=~"a\\b\"c"'  # openMetricsEscape
    assert key_matcher.value == 'a\\b"c'


@pytest.mark.parametrize("doc", ["README.md", "docs/rules.md"])
def test_the_documented_examples_are_what_explain_prints(doc):
    blocks = (REPO / doc).read_text().split("```")[1::2]
    examples = [block.strip("\n").splitlines() for block in blocks
                if block.lstrip("\n").startswith("$ dumont-rules explain")]
    assert examples, f"{doc} shows no example of dumont-rules explain"
    for command, *shown in examples:
        printed = explain(*command.split()[3:]).stdout.splitlines()
        if shown[-1] == "...":  # an excerpt: its first lines
            shown, printed = shown[:-1], printed[:len(shown) - 1]
        assert shown == printed, f"{doc}: `{command}` prints otherwise now: update the example"
