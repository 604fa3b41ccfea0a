"""One critical alert through real Alertmanager 0.25 and the real `dumont-receiver serve` to a webhook, PagerDuty
and Slack (their stand-ins): fired, then resolved, each told once, the webhook's signature verified."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jsonschema
import pytest
import requests
import yaml

from deploy.local.sinks import PagerDutySink, WebhookSink
from tests.e2e.alertmanager import Alertmanager
from tests.e2e.conftest import wait_for
from tests.receiver.serving import Served

pytestmark = pytest.mark.e2e
TOKEN = "e2e-webhook-pagerduty-token"
SECRET = "e2e-signing-secret"
ROUTING_KEY = "e2eR0ut1ngKeyE2eR0ut1ngKeyE2e032"
CHANNELS = ("slack-oncall", "ops-webhook", "pagerduty-oncall")
EXTERNAL = "https://alerts.example/dumont"  # receiver.yml's external_url: the base of every link sent
SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs" / "webhook-document.schema.json").read_text())


def _now(offset: float = 0.0) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=offset)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture
def sinks(slack):
    with WebhookSink(secret=SECRET) as hook, PagerDutySink() as pager:
        yield slack, hook, pager


@pytest.fixture
def stack(tmp_path, sinks):
    slack, hook, pager = sinks
    secrets = {"token": TOKEN, "slack_url": slack.url_for(f"/services/{uuid.uuid4().hex}"),
               "hook_url": hook.url_for(f"/hooks/{uuid.uuid4().hex}"), "hook_secret": SECRET, "pd_key": ROUTING_KEY}
    for name, value in secrets.items():
        (tmp_path / name).write_text(value + "\n")
    (tmp_path / "channels.yml").write_text(yaml.safe_dump({"channels": {
        "slack-oncall": {"type": "slack", "webhook_url_file": str(tmp_path / "slack_url"), "timeout": "10s"},
        "ops-webhook": {"type": "webhook", "url_file": str(tmp_path / "hook_url"),
                        "secret_file": str(tmp_path / "hook_secret"), "timeout": "10s"},
        "pagerduty-oncall": {"type": "pagerduty", "routing_key_file": str(tmp_path / "pd_key"),
                             "api_url": pager.api_url, "timeout": "10s"}}}))
    (tmp_path / "receiver").mkdir()
    served = Served({"database": str(tmp_path / "history.db"), "channels_file": str(tmp_path / "channels.yml"),
                     "token_file": str(tmp_path / "token"), "relay_interval": "200ms",
                     "external_url": EXTERNAL}, tmp_path / "receiver")
    # As the generator renders it: one webhook per channel of the route, each to /webhook/<channel>
    am = Alertmanager({
        "route": {"receiver": "critical", "group_by": ["alertname", "machine_id"], "group_wait": "1s",
                  "group_interval": "1s", "repeat_interval": "4h"},
        "receivers": [{"name": "critical", "webhook_configs": [{
            "url": f"{served.url}/webhook/{channel}", "send_resolved": True,
            "http_config": {"authorization": {"credentials_file": str(tmp_path / "token")}}} for channel in CHANNELS]}],
    }, tmp_path / "alertmanager")
    try:
        served.start()
        am.start()
        yield am, served
    finally:
        am.stop()
        served.stop()


def test_a_critical_alert_reaches_the_webhook_pagerduty_and_slack_once_each(stack, sinks):
    am, served = stack
    slack, hook, pager = sinks
    labels = {"alertname": "DiskAlmostFull", "machine_id": "gpu-1", "severity": "critical", "machine_type": "gpu"}
    starts = _now(-1)
    am.post_alerts([{"labels": labels, "annotations": {"summary": "Disk / of gpu-1 is almost full"},
                     "startsAt": starts, "endsAt": _now(3600)}])
    wait_for(lambda: slack.received and hook.received and pager.incidents, 30, "the firing on every channel")
    (document,) = hook.received
    jsonschema.validate(document["body"], SCHEMA)
    assert hook.rejected == []  # the stand-in verified the signature with the shared secret
    (one,) = document["body"]["alerts"]
    assert (one["status"], one["labels"], one["episode"]) == ("firing", labels, 0)
    assert document["body"]["receiver"] == EXTERNAL
    assert one["history_url"] == f"{EXTERNAL}/alerts/{one['fingerprint']}"
    (incident,) = pager.incidents
    assert (incident["status"], incident["severity"], incident["summary"], incident["source"]) == (
        "triggered", "critical", "Disk / of gpu-1 is almost full", "gpu-1")
    assert pager.events[0]["routing_key"] == ROUTING_KEY
    assert pager.events[0]["links"][0]["href"] == one["history_url"]

    am.post_alerts([{"labels": labels, "annotations": {"summary": "Disk / of gpu-1 is almost full"},
                     "startsAt": starts, "endsAt": _now(-0.5)}])  # as Prometheus resolves it
    wait_for(lambda: len(slack.received) == 2 and len(hook.received) == 2 and pager.open_incidents() == {}, 30,
             "the resolution on every channel")
    assert hook.received[1]["body"]["status"] == "resolved"
    assert [e["event_action"] for e in pager.events] == ["trigger", "resolve"]
    assert [i["status"] for i in pager.incidents] == ["resolved"]

    def all_delivered():
        entries = served_history(served)
        states = {(d["channel"], d["state"]) for e in entries for d in e["deliveries"]}
        return states if states == {(c, "delivered") for c in CHANNELS} and len(entries) == 2 else None
    wait_for(all_delivered, 10, "every delivery recorded")
    assert ROUTING_KEY not in served.log() and SECRET not in served.log()


def served_history(served: Served) -> list[dict]:
    """Every history entry of the receiver."""
    return requests.get(served.url + "/api/v1/history", timeout=10).json()["entries"]
