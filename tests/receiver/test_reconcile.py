"""Reconciliation with Alertmanager's API, on both stores: what its webhooks never say reaches the history.

The Alertmanager here is an HTTP stand-in for its API reads (am_api.py); tests/e2e/test_reconcile_alertmanager.py
does the same against a real Alertmanager 0.25.
"""
from __future__ import annotations

import json
import time

import pytest
import yaml

from webhook_receiver import create_app
from webhook_receiver.deadman import ALERTNAME
from webhook_receiver.payload import Alert, epoch
from webhook_receiver.reconcile.merge import ClusterView
from webhook_receiver.reconcile.plan import Absences, plan
from webhook_receiver.reconcile.runner import Reconciler
from webhook_receiver.store.base import ACTIVE, INHIBITED, SILENCED

from . import storesql
from .am_api import AlertmanagerApi
from .payloads import alert, notification

CHANNELS = ("email-oncall", "slack-oncall")
NOW_START = "2024-05-01T10:00:00.123456789Z"


@pytest.fixture
def am():
    api = AlertmanagerApi().start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture
def reconciler(store, am):
    """A reconciler on the test's store and stand-in, grace 10 minutes, warm-up 2, its clock in `now[0]`."""
    now = [time.time()]

    def make(urls=None, grace=600.0, warmup=120.0, channels=CHANNELS):
        made = Reconciler(store, urls or [am.url], channels, timeout=5.0, grace=grace, warmup=warmup,
                          clock=lambda: now[0])
        made.now = now
        return made
    return make


def _fired_and_delivered(post, make_worker, **labels) -> dict:
    """Post a firing to both channels and deliver it; the alert as posted."""
    fired = alert(starts=NOW_START, **labels)
    for channel in CHANNELS:
        assert post(notification(fired), channel=channel).status_code == 200
    make_worker().run_once(time.time())
    return fired


def _timeline(client, fingerprint: str) -> dict:
    answer = client.get(f"/api/v1/alerts/{fingerprint}")
    assert answer.status_code == 200
    return answer.get_json()


def test_an_alert_silenced_then_ended_is_resolved_and_its_channels_told(post, make_worker, client, store, am,
                                                                         reconciler, slack, smtp):
    fired = _fired_and_delivered(post, make_worker)
    until = time.time() + 3600
    am.silence("s-1", "ops@dumont.cloud", "disk swap on gpu-1", until, machine_id="gpu-1")
    am.list(fired, state="suppressed", silenced_by=["s-1"])
    pass_ = reconciler()
    pass_.run_once()
    seen_at = pass_.now[0]
    changes = _timeline(client, fired["fingerprint"])["suppression"]
    assert [(c["state"], c["silences"][0]["created_by"], c["silences"][0]["comment"]) for c in changes] == [
        (SILENCED, "ops@dumont.cloud", "disk swap on gpu-1")]
    assert changes[0]["silences"][0]["matchers"] == ['machine_id="gpu-1"']
    pass_.run_once()  # the same silence again: no new change
    assert len(_timeline(client, fired["fingerprint"])["suppression"]) == 1

    am.listed.clear()  # it ended under the silence: Alertmanager drops it and never sends the resolution
    pass_.now[0] = seen_at + 30
    result = pass_.run_once()
    assert result.resolutions == 1 and result.queued == 2
    timeline = _timeline(client, fired["fingerprint"])
    assert timeline["status"] == "resolved"
    resolution = timeline["timeline"][-1]
    assert resolution["origin"] == "reconciliation" and not resolution["suppressed"]
    assert abs(epoch(resolution["ends_at"]) - seen_at) < 1e-3  # ended when last seen, not when found gone
    assert client.get("/api/v1/alerts").get_json()["alerts"] == []
    sent_before = len(slack.received)
    _relay_until(make_worker, lambda: len(slack.received) > sent_before)
    assert len(slack.received) == sent_before + 1 and "RESOLVED" in json.dumps(slack.received[-1]).upper()
    assert any("resolved" in str(message["message"]["Subject"]).lower() for message in smtp.messages)


def _relay_until(make_worker, done, ahead: float = 60.0, timeout: float = 10.0) -> None:
    """Run relay passes `ahead` seconds from now until `done()`: the Slack channel spaces posts a second apart."""
    worker, deadline = make_worker(), time.monotonic() + timeout
    worker.clock = lambda: time.time() + ahead
    while not done() and time.monotonic() < deadline:
        worker.run_once(worker.clock())
        time.sleep(0.1)


def test_an_alert_last_seen_active_waits_for_alertmanagers_own_resolution(post, make_worker, client, am, reconciler):
    fired = _fired_and_delivered(post, make_worker)
    am.list(fired)
    pass_ = reconciler(grace=600)
    pass_.run_once()
    am.listed.clear()
    pass_.now[0] += 60
    assert pass_.run_once().resolutions == 0  # its resolution may be on its way (group_interval)
    assert _timeline(client, fired["fingerprint"])["status"] == "firing"
    pass_.now[0] += 600
    assert pass_.run_once().resolutions == 1
    assert _timeline(client, fired["fingerprint"])["status"] == "resolved"


def test_alertmanagers_late_resolution_confirms_the_reconciled_one(post, make_worker, client, store, am, reconciler):
    fired = _fired_and_delivered(post, make_worker)
    am.list(fired, state="suppressed", inhibited_by=["0123456789abcdef"])
    pass_ = reconciler()
    pass_.run_once()
    am.listed.clear()
    pass_.now[0] += 10
    assert pass_.run_once().resolutions == 1
    late = alert(starts=NOW_START, status="resolved", ends="2024-05-01T10:30:00Z")
    answer = post(notification(late))
    assert answer.status_code == 200 and answer.get_json()["queued"] == 0
    statuses = [entry["status"] for entry in _timeline(client, fired["fingerprint"])["timeline"]]
    assert statuses == ["firing", "resolved"]


def test_an_alert_that_fired_only_while_suppressed_is_in_history_and_never_relayed(post, make_worker, client, store,
                                                                                   am, reconciler, slack):
    down = alert("MachineDown", severity="critical", starts=NOW_START)
    disk = alert("DiskAlmostFull", starts=NOW_START)
    am.list(down)
    am.list(disk, state="suppressed", inhibited_by=[down["fingerprint"]])
    pass_ = reconciler()
    result = pass_.run_once()
    assert result.suppressed_firings == 1
    entry = _timeline(client, disk["fingerprint"])
    assert entry["status"] == "firing" and entry["timeline"][0]["suppressed"] is True
    assert entry["timeline"][0]["origin"] == "reconciliation" and entry["timeline"][0]["deliveries"] == []
    assert entry["suppression"][0]["state"] == INHIBITED
    assert entry["suppression"][0]["inhibited_by"] == [
        {"fingerprint": down["fingerprint"], "alertname": "MachineDown", "labels": down["labels"]}]
    suppressed = client.get("/api/v1/history?suppressed=true").get_json()["entries"]
    assert [e["alertname"] for e in suppressed] == ["DiskAlmostFull"]
    assert client.get("/api/v1/history?suppressed=false").get_json()["entries"] == []
    assert client.get("/api/v1/history?suppressed=yes").status_code == 400

    am.listed = [item for item in am.listed if item["fingerprint"] != disk["fingerprint"]]
    pass_.now[0] += 10
    result = pass_.run_once()
    assert result.resolutions == 1 and result.queued == 0
    entry = _timeline(client, disk["fingerprint"])
    assert [(e["status"], e["suppressed"]) for e in entry["timeline"]] == [("firing", True), ("resolved", True)]
    make_worker().run_once(time.time())
    assert slack.received == []
    assert storesql.one(store, "SELECT count(*) FROM outbox") == 0


def test_a_suppressed_firing_posted_later_is_one_alert_start_and_relayed_once(post, make_worker, client, store, am,
                                                                              reconciler, slack):
    fired = alert(starts=NOW_START)  # nanoseconds in the webhook, milliseconds in the API
    am.list(fired, state="suppressed", silenced_by=["s-1"])
    pass_ = reconciler()
    pass_.run_once()
    am.listed.clear()
    am.list(fired)  # the silence expired: Alertmanager notifies it now
    pass_.now[0] += 10
    pass_.run_once()
    answer = post(notification(fired))
    assert answer.status_code == 200 and answer.get_json()["queued"] == 1
    entry = _timeline(client, fired["fingerprint"])
    assert [(e["status"], e["suppressed"]) for e in entry["timeline"]] == [("firing", False)]
    assert [c["state"] for c in entry["suppression"]] == [SILENCED, ACTIVE]
    _relay_until(make_worker, lambda: len(slack.received) == 1)
    assert len(slack.received) == 1
    resolved = alert(starts=NOW_START, status="resolved")
    post(notification(resolved))
    statuses = [(e["status"], e["starts_at"]) for e in _timeline(client, fired["fingerprint"])["timeline"]]
    assert [status for status, _ in statuses] == ["firing", "resolved"]
    assert len({starts for _, starts in statuses}) == 1  # one alert start, stored as first seen


def test_an_unreachable_alertmanager_resolves_nothing_and_says_so(post, make_worker, client, am, reconciler,
                                                                  config_values):
    fired = _fired_and_delivered(post, make_worker)
    am.list(fired, state="suppressed", silenced_by=["s-1"])
    pass_ = reconciler()
    pass_.run_once()
    watched = create_app({**config_values, "alertmanager_urls": [am.url]})
    try:
        metrics = watched.test_client().get("/metrics").get_data(as_text=True)
        assert f'dumont_receiver_alertmanager_up{{alertmanager="{am.url}"}} 1.0' in metrics
        am.down = True
        pass_.now[0] += 3600
        assert pass_.run_once() is None
        assert _timeline(client, fired["fingerprint"])["status"] == "firing"
        metrics = watched.test_client().get("/metrics").get_data(as_text=True)
        assert f'dumont_receiver_alertmanager_up{{alertmanager="{am.url}"}} 0.0' in metrics
        page = watched.test_client().get("/").get_data(as_text=True)
        assert f"Alertmanager {am.url} unreachable since" in page and "HTTP 503" in page
        assert "reconciliation resolves nothing" in page
    finally:
        watched.extensions["dumont.store"].close()
    assert "dumont_receiver_alertmanager_up" not in client.get("/metrics").get_data(as_text=True)  # none listed


def test_an_alertmanager_just_started_cannot_say_an_alert_ended(post, make_worker, client, am, reconciler):
    fired = _fired_and_delivered(post, make_worker)
    am.list(fired, state="suppressed", silenced_by=["s-1"])
    pass_ = reconciler(warmup=120)
    pass_.run_once()
    am.listed.clear()
    am.started_at = pass_.now[0]  # restarted: it lists nothing until Prometheus sends again
    pass_.now[0] += 10
    assert pass_.run_once().resolutions == 0
    pass_.now[0] += 120
    assert pass_.run_once().resolutions == 1


def test_the_peers_of_a_cluster_are_merged_and_one_down_is_no_outage(post, make_worker, client, am, reconciler):
    other = AlertmanagerApi().start()
    try:
        fired = _fired_and_delivered(post, make_worker)
        am.list(fired, state="suppressed", silenced_by=["s-1"])
        other.list(fired)  # gossip has not brought the silence yet: this peer will notify
        pass_ = reconciler(urls=[am.url, other.url])
        pass_.run_once()
        assert _timeline(client, fired["fingerprint"])["suppression"] == []
        other.down = True
        pass_.run_once()
        assert [c["state"] for c in _timeline(client, fired["fingerprint"])["suppression"]] == [SILENCED]
        am.listed.clear()
        pass_.now[0] += 10
        assert pass_.run_once().resolutions == 1  # the peer that answers has it no more
    finally:
        other.stop()


def test_a_channel_can_keep_reconciled_resolutions_to_itself(post, make_worker, client, am, reconciler, slack, smtp):
    fired = _fired_and_delivered(post, make_worker)
    am.list(fired, state="suppressed", silenced_by=["s-1"])
    pass_ = reconciler(channels=["slack-oncall"])  # email-oncall: relay_reconciled: false
    pass_.run_once()
    am.listed.clear()
    pass_.now[0] += 10
    assert pass_.run_once().queued == 1
    deliveries = _timeline(client, fired["fingerprint"])["timeline"][-1]["deliveries"]
    assert [d["channel"] for d in deliveries] == ["slack-oncall"]


def test_relay_reconciled_is_read_from_the_channels_file(tmp_path, config_values, channels_file):
    data = yaml.safe_load(channels_file.read_text())
    data["channels"]["email-oncall"]["relay_reconciled"] = False
    channels_file.write_text(yaml.safe_dump(data))
    app = create_app(config_values)
    try:
        assert app.extensions["dumont.channels"].quiet_on_reconcile == {"email-oncall"}
    finally:
        app.extensions["dumont.store"].close()
    data["channels"]["email-oncall"]["relay_reconciled"] = "no"
    channels_file.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match=r"channels\.email-oncall\.relay_reconciled"):
        create_app(config_values)


def test_two_passes_with_the_same_view_store_each_change_once(post, make_worker, client, store, am, reconciler):
    fired = _fired_and_delivered(post, make_worker)
    am.list(fired, state="suppressed", silenced_by=["s-1"])
    first, second = reconciler(), reconciler()
    first.run_once()
    second.run_once()
    am.listed.clear()
    first.now[0] += 10
    # Both relays plan from the same view (nothing listed, and a peer that can tell an absence).
    view = ClusterView({}, True, (am.url,))
    changes = plan(store.tracked_alerts(), view, first.now[0], 600, Absences(), CHANNELS)
    assert store.reconcile(changes).resolutions == 1
    assert store.reconcile(changes).resolutions == 0  # the second relay's pass, on the same view
    assert [e["status"] for e in _timeline(client, fired["fingerprint"])["timeline"]] == ["firing", "resolved"]
    assert len(_timeline(client, fired["fingerprint"])["suppression"]) == 1


def test_the_receivers_own_alert_is_never_reconciled(store):
    own = Alert(fingerprint="00000000deadbeef", status="firing", labels={"alertname": ALERTNAME},
                annotations={}, starts_at=NOW_START, ends_at=None, generator_url="")
    store.add_system_event(own, ["slack-oncall"], time.time(), {"deadman": "{}"})
    assert store.tracked_alerts() == []
