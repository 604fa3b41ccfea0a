"""The receiver takes what a real Alertmanager 0.25 sends: its fingerprints, old bodies, oversized groups."""
from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import requests
import yaml

from tests.e2e.alertmanager import Alertmanager
from tests.e2e.conftest import wait_for
from tests.receiver.serving import Served
from webhook_receiver.fingerprint import label_fingerprint

TOKEN = "e2e-intake-token"
# Label sets of every shape Alertmanager 0.25 takes: UTF-8 values, one label, an empty value, names whose
# byte order differs from their case-insensitive order, separators and quotes inside values.
LABEL_SETS = [
    {"alertname": "OnlyName"},
    {"alertname": "DiskAlmostFull", "machine_id": "gpu-1", "mountpoint": "/data", "severity": "critical"},
    {"alertname": "Ünïcødé", "summary_label": "日本語のラベル 🔥", "zone": "eu-west-1"},
    {"alertname": "Quotes", "value": 'a="b",c\\d\n\t', "other": "\xff\x00\u200b"},
    {"alertname": "Order", "a": "1", "A": "2", "B_": "3", "b": "4", "_x": "5", "a1": "6"},
    {"alertname": "Empty", "blank": "", "machine_id": "gpu-2"},
    {"alertname": "Sep", "ab": "c"},
    {"alertname": "Sep", "a": "bc"},
]


def _now(offset: float = 0.0) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=offset)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture
def workdir(tmp_path):
    return tmp_path


@pytest.fixture
def receiver(workdir, slack):
    """The real `dumont-receiver serve` with its defaults (max_body_bytes 1 MiB), posting to a Slack stand-in."""
    slack_url = workdir / "slack_url"
    slack_url.write_text(slack.url_for(f"/services/{uuid.uuid4().hex}") + "\n")
    (workdir / "token").write_text(TOKEN + "\n")
    (workdir / "receiver").mkdir()
    (workdir / "channels.yml").write_text(yaml.safe_dump({"channels": {
        "slack-oncall": {"type": "slack", "webhook_url_file": str(slack_url), "timeout": "10s"}}}))
    server = Served({"database": str(workdir / "history.db"), "channels_file": str(workdir / "channels.yml"),
                     "token_file": str(workdir / "token"), "relay_interval": "200ms"}, workdir / "receiver")
    try:
        yield server.start()
    finally:
        server.stop()


def _am_config(receiver_url: str, token_file: str) -> dict:
    return {
        "route": {"receiver": "oncall", "group_by": ["alertname"], "group_wait": "1s", "group_interval": "1h",
                  "repeat_interval": "4h"},
        "receivers": [{"name": "oncall", "webhook_configs": [{
            "url": f"{receiver_url}/webhook/slack-oncall", "send_resolved": True, "max_alerts": 500,
            "http_config": {"authorization": {"credentials_file": token_file}}}]}],
    }


@pytest.fixture
def alertmanager(workdir):
    """A factory of real Alertmanagers; every one started is stopped, even when the test fails."""
    started: list[Alertmanager] = []

    def start(config: dict) -> Alertmanager:
        am = Alertmanager(config, workdir / f"alertmanager-{len(started)}")
        started.append(am)
        return am.start()

    yield start
    for am in started:
        am.stop()


def test_fingerprints_are_the_ones_alertmanager_computes(alertmanager, receiver, workdir):
    # A route to a receiver without integrations: this Alertmanager only holds the alerts.
    am = alertmanager({"route": {"receiver": "nobody"}, "receivers": [{"name": "nobody"}]})
    am.post_alerts([{"labels": labels, "annotations": {"summary": "s"}, "startsAt": _now(), "endsAt": _now(3600)}
                    for labels in LABEL_SETS])
    held = wait_for(lambda: (lambda got: got if len(got) == len(LABEL_SETS) else None)(am.alerts()), 30,
                    "Alertmanager to hold every alert")
    assert sorted(json.dumps(a["labels"], sort_keys=True) for a in held) == sorted(
        json.dumps({k: v for k, v in labels.items() if v}, sort_keys=True) for labels in LABEL_SETS)  # "" dropped
    for one in held:
        assert label_fingerprint(one["labels"]) == one["fingerprint"], one["labels"]

    # A body as Alertmanager 0.16-0.18 sends it (no fingerprint, no truncatedAlerts) is stored under the
    # fingerprint Alertmanager gives, and a redelivery is a duplicate like any other.
    alerts = [{"status": "firing", "labels": one["labels"], "annotations": one["annotations"],
               "startsAt": one["startsAt"], "endsAt": "0001-01-01T00:00:00Z", "generatorURL": ""} for one in held]
    body = {"receiver": "oncall", "status": "firing", "alerts": alerts, "groupLabels": {}, "commonLabels": {},
            "commonAnnotations": {"summary": "s"}, "externalURL": am.url, "version": "4", "groupKey": "{}:{}"}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    first = requests.post(receiver.url + "/webhook/slack-oncall", json=body, headers=headers, timeout=10)
    assert first.status_code == 200 and first.json()["new"] == len(held), first.text
    again = requests.post(receiver.url + "/webhook/slack-oncall", json=body, headers=headers, timeout=10)
    assert again.json() == {"status": "ok", "new": 0, "queued": 0, "duplicates": len(held)}
    entries = requests.get(receiver.url + "/api/v1/history", timeout=10).json()["entries"]
    assert sorted(e["fingerprint"] for e in entries) == sorted(a["fingerprint"] for a in held)
    for one in held:
        timeline = requests.get(f"{receiver.url}/api/v1/alerts/{one['fingerprint']}", timeout=10).json()["timeline"]
        assert timeline[0]["labels"] == one["labels"]


def _cut_counter(receiver) -> float | None:
    text = requests.get(receiver.url + "/metrics", timeout=10).text
    found = re.search(r'^dumont_receiver_cut_alerts_total\{channel="slack-oncall"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else None


@pytest.mark.e2e
def test_a_group_too_large_for_the_receiver_is_stored_in_part_and_the_loss_said(alertmanager, receiver, slack,
                                                                                workdir):
    am = alertmanager(_am_config(receiver.url, str(workdir / "token")))
    # 600 alerts of ~2 KB of annotations: Alertmanager posts 500 (max_alerts) and counts 100 as truncated;
    # those 500 make ~1.2 MB, past the receiver's 1 MiB.
    am.post_alerts([{"labels": {"alertname": "HugeGroup", "machine_id": f"gpu-{i:03d}", "severity": "critical"},
                     "annotations": {"summary": f"gpu-{i:03d} is unwell", "description": f"{i} " + "d" * 2000},
                     "startsAt": _now(), "endsAt": _now(3600)} for i in range(600)])

    def stored_group():
        entries = requests.get(receiver.url + "/api/v1/history", params={"limit": 500}, timeout=10).json()["entries"]
        return entries or None
    entries = wait_for(stored_group, 60, "the receiver to store the group")
    notification = entries[0]["deliveries"][0]["notification"]
    cut = notification["cut_by_receiver"]
    assert cut is not None and cut["alerts"] > 0 and cut["max_body_bytes"] == 1 << 20
    assert cut["body_bytes"] > 1 << 20
    assert notification["truncated_alerts"] == 100 + cut["alerts"]  # Alertmanager's and the receiver's
    assert len(entries) + notification["truncated_alerts"] == 600  # every alert stored or counted as left out
    assert all(e["deliveries"][0]["notification"] == notification for e in entries)
    assert "100 by Alertmanager (max_alerts)" in requests.get(receiver.url + "/", timeout=10).text

    assert wait_for(lambda: _cut_counter(receiver), 10, "the cut counter on /metrics") == cut["alerts"]
    (post,) = wait_for(lambda: slack.received, 30, "the relayed message")
    assert (f"Alertmanager left 100 more alerts of these groups out of its posts (max_alerts), and the receiver"
            f" cut {cut['alerts']} more alerts from posts larger than its limit of 1,048,576 bytes"
            " (max_body_bytes)") in post["body"]["text"]
    assert "ingest.cut channel=slack-oncall" in receiver.log()
    assert "HugeGroup" in post["body"]["text"]
