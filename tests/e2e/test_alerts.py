"""Each of the seven alerts, through real Prometheus and Alertmanager: fires, routes by severity, is recorded,
is relayed to the Slack and SMTP stand-ins, and resolves. Plus MachineDown's inhibition.

All troubles are played at once on separate machines, so one fire-and-resolve cycle covers every alert.
"""
from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import mentions, scenario, wait_for

# alert -> (identifying label, its value, what goes wrong, severity: the users' contract)
CASES = {
    "HighSyncLatency": ("machine_id", "sync-slow", {"sync_latency_seconds": 25}, "warning"),
    "SyncStopped": ("machine_id", "sync-stopped", {"sync_ok": False}, "critical"),
    "DiskAlmostFull": ("machine_id", "disk-full", {"disk_used_ratio": 0.95}, "critical"),
    "HighMemoryUsage": ("machine_id", "mem-full", {"memory_used_ratio": 0.95}, "warning"),
    "HighCostAnomaly": ("machine_id", "costly", {"cost_hourly_usd": 1.5}, "warning"),
    "MachineDown": ("machine_id", "dead", {"up": False}, "critical"),
    "HealthDegraded": ("component", "storage", None, "warning"),
}
# Routing contract of rules_src: severity -> the channels Alertmanager posts to.
CHANNELS_BY_SEVERITY = {"critical": ("slack-oncall", "email-oncall"), "warning": ("slack-alerts", "email-team")}
# A machine that is down and whose disk is full: MachineDown must inhibit its DiskAlmostFull.
INHIBITED = "down-and-full"

MACHINES = {value: {"type": "gpu", "provider": "vast"} for label, value, _, _ in CASES.values()
            if label == "machine_id"}
MACHINES[INHIBITED] = {"type": "gpu", "provider": "vast"}
HEALTHY_COMPONENTS = {"sync": 1.0, "storage": 1.0}
TROUBLES = {value: trouble for label, value, trouble, _ in CASES.values() if trouble}
TROUBLES[INHIBITED] = {"up": False, "disk_used_ratio": 0.95}

FIRE_TIMEOUT = 90


@pytest.fixture(scope="module")
def incident(make_stack):
    """A stack where every trouble is played at once, after every alert reached its channels."""
    client = make_stack(scenario(MACHINES, components=HEALTHY_COMPONENTS))
    wait_for(lambda: any(a["labels"]["alertname"] == "Watchdog" for a in client.prometheus_alerts()),
             30, "Prometheus to evaluate the rules (Watchdog firing)")
    client.stack.write_scenario(scenario(MACHINES, TROUBLES, {"sync": 1.0, "storage": 0.5}))
    for alertname, (label, value, _, severity) in CASES.items():
        slack_path = f"/services/{CHANNELS_BY_SEVERITY[severity][0]}"
        wait_for(lambda: [p for p in client.slack_posts()
                          if p["path"] == slack_path and mentions(p, alertname, value, "FIRING")],
                 FIRE_TIMEOUT, f"{alertname} for {label}={value} to reach {slack_path}")
    return client


@pytest.fixture(scope="module")
def recovery(incident):
    """The same stack after every value went back to normal and every alert's resolution reached Slack."""
    incident.stack.write_scenario(scenario(MACHINES, components=HEALTHY_COMPONENTS))
    for alertname, (label, value, _, severity) in CASES.items():
        slack_path = f"/services/{CHANNELS_BY_SEVERITY[severity][0]}"
        wait_for(lambda: [p for p in incident.slack_posts()
                          if p["path"] == slack_path and mentions(p, alertname, value, "RESOLVED")],
                 FIRE_TIMEOUT, f"{alertname} for {label}={value} to resolve on {slack_path}")
    return incident


@pytest.mark.e2e
@pytest.mark.parametrize("alertname", CASES)
def test_alert_fires_routes_records_and_relays(incident, alertname):
    label, value, _, severity = CASES[alertname]
    firing = [a for a in incident.prometheus_alerts()
              if a["labels"]["alertname"] == alertname and a["labels"].get(label) == value]
    assert [a["state"] for a in firing] == ["firing"]
    assert firing[0]["labels"]["severity"] == severity

    held = [a for a in incident.alertmanager_alerts(alertname=alertname) if a["labels"].get(label) == value]
    assert len(held) == 1 and held[0]["status"]["state"] == "active"

    slack_channel, email_channel = CHANNELS_BY_SEVERITY[severity]
    other_slack = {"critical": "slack-alerts", "warning": "slack-oncall"}[severity]
    posts = [p for p in incident.slack_posts() if mentions(p, alertname, value)]
    assert {p["path"] for p in posts} == {f"/services/{slack_channel}"}, "routed to the wrong Slack channel"
    assert all(p["path"] != f"/services/{other_slack}" for p in posts)

    recipients = set(incident.channels()["channels"][email_channel]["to"])
    mails = wait_for(lambda: [m for m in incident.mails() if mentions(m, alertname, value)], 30,
                     f"a mail about {alertname} {value}")
    assert all(set(m["to"]) == recipients for m in mails)
    # One mail may speak of several alerts of its severity: "[FIRING:4] DiskAlmostFull, MachineDown (critical)";
    # past three names the subject says how many more ("A, B, C +1 more (warning)") and the body names them.
    assert all((alertname in m["subject"] or re.search(r" \+\d+ more \(", m["subject"]))
               and m["subject"].endswith(f" ({severity})") for m in mails), [m["subject"] for m in mails]

    recorded = [a for a in incident.receiver("/api/v1/alerts")["alerts"]
                if a["labels"]["alertname"] == alertname and a["labels"].get(label) == value]
    assert len(recorded) == 1
    wait_for(lambda: {slack_channel, email_channel} <= delivered_channels(incident, recorded[0]["fingerprint"]),
             30, f"the receiver to record {alertname}'s deliveries to {slack_channel} and {email_channel}")


def delivered_channels(client, fingerprint: str) -> set[str]:
    """The channels the receiver's timeline of one alert shows as delivered."""
    timeline = client.receiver(f"/api/v1/alerts/{fingerprint}")["timeline"]
    return {d["channel"] for entry in timeline for d in entry["deliveries"] if d["state"] == "delivered"}


@pytest.mark.e2e
def test_machine_down_inhibits_the_machines_other_alerts(incident):
    disk = [a for a in incident.prometheus_alerts()
            if a["labels"]["alertname"] == "DiskAlmostFull" and a["labels"].get("machine_id") == INHIBITED]
    assert disk and all(a["state"] == "firing" for a in disk), "Prometheus must still evaluate it as firing"

    held = [a for a in incident.alertmanager_alerts(alertname="DiskAlmostFull")
            if a["labels"].get("machine_id") == INHIBITED]
    assert held and all(a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"] for a in held)
    down = [a for a in incident.alertmanager_alerts(alertname="MachineDown")
            if a["labels"].get("machine_id") == INHIBITED]
    assert down and down[0]["status"]["state"] == "active"

    assert not [p for p in incident.slack_posts() if mentions(p, "DiskAlmostFull", INHIBITED)]
    # Reconciliation puts it in the history, marked suppressed, relayed to nobody, with why.
    history = wait_for(lambda: incident.receiver("/api/v1/history", alertname="DiskAlmostFull",
                                                 label=f"machine_id={INHIBITED}")["entries"],
                       30, "the inhibited alert in the history")
    assert all(entry["suppressed"] and entry["deliveries"] == [] for entry in history)
    timeline = incident.receiver(f"/api/v1/alerts/{history[0]['fingerprint']}")
    assert [change["state"] for change in timeline["suppression"]] == ["inhibited"]
    assert timeline["suppression"][0]["inhibited_by"][0]["alertname"] == "MachineDown"


@pytest.mark.e2e
@pytest.mark.parametrize("alertname", CASES)
def test_alert_resolves_everywhere(recovery, alertname):
    label, value, _, severity = CASES[alertname]
    assert not [a for a in recovery.prometheus_alerts()
                if a["labels"]["alertname"] == alertname and a["labels"].get(label) == value]
    mails = wait_for(lambda: [m for m in recovery.mails() if mentions(m, alertname, value, "RESOLVED")],
                     30, f"a resolved mail about {alertname} {value}")
    assert set(mails[0]["to"]) == set(recovery.channels()["channels"][CHANNELS_BY_SEVERITY[severity][1]]["to"])
    wait_for(lambda: not [a for a in recovery.receiver("/api/v1/alerts")["alerts"]
                           if a["labels"]["alertname"] == alertname and a["labels"].get(label) == value],
             30, f"the receiver to close {alertname} {value}")
    history = recovery.receiver("/api/v1/history", alertname=alertname, label=f"{label}={value}")["entries"]
    assert [e["status"] for e in history] == ["resolved", "firing"], "the closed entry follows the firing one"
    assert history[0]["fingerprint"] == history[1]["fingerprint"]
    # The relay records a delivery just after the stand-in has it: poll rather than race it.
    wait_for(lambda: {d["channel"] for d in recovery.receiver(
        "/api/v1/history", alertname=alertname, label=f"{label}={value}", status="resolved")["entries"][0][
        "deliveries"] if d["state"] == "delivered"} == set(CHANNELS_BY_SEVERITY[severity]),
        30, f"the resolution of {alertname} {value} to be recorded as delivered to both channels")
