"""Reconciliation against real Alertmanager 0.25: what it never posts (an alert that ends while silenced or
inhibited, one that fires only while suppressed) reaches the real receiver's history within a poll or so."""
from __future__ import annotations

import json
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import requests
import yaml

from tests.e2e.alertmanager import Alertmanager
from tests.e2e.conftest import wait_for
from tests.receiver.serving import Served
from webhook_receiver.fingerprint import label_fingerprint

pytestmark = pytest.mark.e2e
TOKEN = "e2e-reconcile-token"
# The generated inhibition (rules_src/routing.yaml): a machine that is down mutes its other alerts.
INHIBIT = [{"source_matchers": ['alertname=~"MachineDown|MachineVanished"'],
            "target_matchers": ['alertname!~"MachineDown|MachineVanished"', 'machine_id=~".+"'],
            "equal": ["machine_id"]}]


def _now(offset: float = 0.0) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=offset)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _labels(name: str, machine: str) -> dict:
    return {"alertname": name, "machine_id": machine, "severity": "critical"}


@pytest.fixture
def stack(tmp_path, slack):
    """start(peers): that many real Alertmanagers (not clustered) and the real receiver reconciling with them."""
    started: list = []

    def start(peers: int = 1):
        (tmp_path / "token").write_text(TOKEN + "\n")
        receiver_port_dir = tmp_path / "receiver"
        receiver_port_dir.mkdir()
        served = Served({}, receiver_port_dir)  # its port first: the Alertmanagers post there
        ams = []
        for i in range(peers):
            am = Alertmanager({
                "route": {"receiver": "oncall", "group_by": ["alertname", "machine_id"], "group_wait": "1s",
                          "group_interval": "1s", "repeat_interval": "4h"},
                "inhibit_rules": INHIBIT,
                "receivers": [{"name": "oncall", "webhook_configs": [{
                    "url": f"{served.url}/webhook/slack-oncall", "send_resolved": True,
                    "http_config": {"authorization": {"credentials_file": str(tmp_path / "token")}}}]}],
            }, tmp_path / f"alertmanager-{i}")
            started.append(am)
            ams.append(am.start())
        slack_url = tmp_path / "slack_url"
        slack_url.write_text(slack.url_for(f"/services/{uuid.uuid4().hex}") + "\n")
        (tmp_path / "channels.yml").write_text(yaml.safe_dump({"channels": {
            "slack-oncall": {"type": "slack", "webhook_url_file": str(slack_url), "timeout": "10s"}}}))
        served.config_path.write_text(yaml.safe_dump({
            "listen": f"127.0.0.1:{served.port}", "database": str(tmp_path / "history.db"),
            "channels_file": str(tmp_path / "channels.yml"), "token_file": str(tmp_path / "token"),
            "relay_interval": "200ms", "alertmanager_urls": [am.url for am in ams], "reconcile_interval": "500ms",
            "reconcile_warmup": "0s", "reconcile_grace": "1h"}))
        started.append(served)
        served.start()
        return ams, served

    yield start
    for process in reversed(started):
        process.stop()


def _fire(ams, labels: dict, ends_in: float = 3600) -> None:
    for am in ams:  # as Prometheus does: every Alertmanager of the cluster gets every alert
        am.post_alerts([{"labels": labels, "annotations": {"summary": f"{labels['alertname']} test"},
                         "startsAt": STARTS[labels["alertname"], labels["machine_id"]], "endsAt": _now(ends_in)}])


STARTS: dict = {}


def _start(labels: dict) -> dict:
    STARTS[labels["alertname"], labels["machine_id"]] = _now(-1)
    return labels


def _silence(am: Alertmanager, machine: str, comment: str) -> str:
    body = {"matchers": [{"name": "machine_id", "value": machine, "isRegex": False, "isEqual": True}],
            "startsAt": _now(), "endsAt": _now(3600), "createdBy": "oncall@dumont.cloud", "comment": comment}
    request = urllib.request.Request(am.url + "/api/v2/silences", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["silenceID"]


def _expire(am: Alertmanager, silence_id: str) -> None:
    request = urllib.request.Request(f"{am.url}/api/v2/silence/{silence_id}", method="DELETE")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def _alert(served: Served, labels: dict) -> dict | None:
    answer = requests.get(f"{served.url}/api/v1/alerts/{label_fingerprint(labels)}", timeout=10)
    return answer.json() if answer.status_code == 200 else None


def _when(served: Served, labels: dict, check, what: str, timeout: float = 30) -> dict:
    return wait_for(lambda: (lambda got: got if got is not None and check(got) else None)(_alert(served, labels)),
                    timeout, what)


def test_an_alert_that_ends_under_a_silence_is_resolved_and_on_call_told(stack, slack):
    (am,), served = stack()
    disk = _start(_labels("DiskAlmostFull", "gpu-1"))
    _fire([am], disk)
    wait_for(lambda: slack.received, 30, "the firing relayed to Slack")
    silence_id = _silence(am, "gpu-1", "swapping the disk")
    silenced = _when(served, disk, lambda a: a["suppression"], "the silence in the history")
    (change,) = silenced["suppression"]
    assert change["state"] == "silenced"
    assert [(s["id"], s["created_by"], s["comment"]) for s in change["silences"]] == [
        (silence_id, "oncall@dumont.cloud", "swapping the disk")]
    _fire([am], disk, ends_in=0)  # it ends while silenced: Alertmanager will never post its resolution
    resolved = _when(served, disk, lambda a: a["status"] == "resolved", "the reconciled resolution")
    assert resolved["timeline"][-1]["origin"] == "reconciliation"
    _expire(am, silence_id)
    wait_for(lambda: len(slack.received) >= 2, 30, "the resolution relayed to Slack")
    assert "RESOLVED" in slack.received[-1]["body"]["text"].upper()
    assert requests.get(served.url + "/api/v1/alerts", timeout=10).json()["alerts"] == []
    assert [e["status"] for e in _alert(served, disk)["timeline"]] == ["firing", "resolved"]


def test_an_inhibited_alert_that_ends_meanwhile_is_resolved(stack, slack):
    (am,), served = stack()
    disk = _start(_labels("DiskAlmostFull", "gpu-2"))
    _fire([am], disk)
    wait_for(lambda: slack.received, 30, "the disk alert relayed")
    down = _start(_labels("MachineDown", "gpu-2"))
    _fire([am], down)
    inhibited = _when(served, disk, lambda a: a["suppression"], "the inhibition in the history")
    assert inhibited["suppression"][0]["state"] == "inhibited"
    assert [s["alertname"] for s in inhibited["suppression"][0]["inhibited_by"]] == ["MachineDown"]
    _fire([am], disk, ends_in=0)
    resolved = _when(served, disk, lambda a: a["status"] == "resolved", "the reconciled resolution")
    assert resolved["timeline"][-1]["origin"] == "reconciliation"
    assert _alert(served, down)["status"] == "firing"  # the inhibiting alert is untouched


def test_an_alert_fired_under_a_silence_is_in_history_and_never_relayed(stack, slack):
    (am,), served = stack()
    _silence(am, "gpu-3", "maintenance window")
    hidden = _start(_labels("HighMemoryUsage", "gpu-3"))
    _fire([am], hidden)
    stored = _when(served, hidden, lambda a: True, "the suppressed firing in the history")
    (firing,) = stored["timeline"]
    assert firing["suppressed"] is True and firing["deliveries"] == []
    suppressed = requests.get(served.url + "/api/v1/history", params={"suppressed": "true"}, timeout=10).json()
    assert [e["alertname"] for e in suppressed["entries"]] == ["HighMemoryUsage"]
    # A canary fired after it, unsilenced, is relayed: the suppressed one had its chance and was not.
    canary = _start(_labels("HealthDegraded", "gpu-9"))
    _fire([am], canary)
    wait_for(lambda: slack.received, 30, "the canary relayed")
    assert all("HighMemoryUsage" not in post["body"]["text"] for post in slack.received)


def test_with_alertmanager_stopped_nothing_is_resolved_on_its_account(stack, slack):
    (am,), served = stack()
    disk = _start(_labels("DiskAlmostFull", "gpu-4"))
    _fire([am], disk)
    wait_for(lambda: slack.received, 30, "the firing relayed")
    _silence(am, "gpu-4", "looking into it")
    _when(served, disk, lambda a: a["suppression"], "the silence in the history")
    am.stop()
    metric = f'dumont_receiver_alertmanager_up{{alertmanager="{am.url}"}} 0.0'
    wait_for(lambda: metric in requests.get(served.url + "/metrics", timeout=10).text, 30, "the peer marked down")
    assert "reconciliation resolves nothing" in requests.get(served.url + "/", timeout=10).text
    assert _alert(served, disk)["status"] == "firing"


def test_an_ha_pair_is_merged_and_one_peer_down_is_no_outage(stack, slack):
    ams, served = stack(peers=2)
    disk = _start(_labels("DiskAlmostFull", "gpu-5"))
    _fire(ams, disk)
    wait_for(lambda: slack.received, 30, "the firing relayed")
    for am in ams:  # not clustered here: a silence on each, as gossip would spread it
        _silence(am, "gpu-5", "replacing gpu-5")
    _when(served, disk, lambda a: a["suppression"], "the silence in the history")
    ams[1].stop()
    _fire(ams[:1], disk, ends_in=0)
    resolved = _when(served, disk, lambda a: a["status"] == "resolved", "the reconciled resolution")
    assert resolved["timeline"][-1]["origin"] == "reconciliation"
