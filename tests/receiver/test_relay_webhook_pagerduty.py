"""The webhook and PagerDuty channels through the real receiver: the Flask app takes Alertmanager's posts, the
relay worker delivers them to the real stand-ins (deploy/local/sinks.py) over loopback HTTP, on both stores."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import jsonschema
import pytest
import yaml

from deploy.local.sinks import PagerDutySink, WebhookSink, verify_webhook
from webhook_receiver.channels import RateLimiter
from webhook_receiver.channels.pagerduty_format import dedup_key

from . import storesql
from .payloads import ZERO, alert, notification

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs" / "webhook-document.schema.json").read_text())
ROUTING_KEY = "R0ut1ngK3yR0ut1ngK3yR0ut1ngK3y32"  # PagerDuty's keys are 32 characters
SIGNING_SECRET = "s1gn1ng-s3cr3t-for-the-webhook"
URL_TOKEN = "hooks-s3cr3t-path-t0ken"
HEADER_TOKEN = "Bearer h3ader-s3cr3t"
SECRETS = (ROUTING_KEY, SIGNING_SECRET, URL_TOKEN, HEADER_TOKEN)


@pytest.fixture
def hook():
    with WebhookSink(secret=SIGNING_SECRET) as sink:
        yield sink


@pytest.fixture
def pager():
    with PagerDutySink() as sink:
        yield sink


@pytest.fixture
def secret_files(tmp_path, hook):
    files = {"url": hook.url_for(f"/hooks/{URL_TOKEN}"), "secret": SIGNING_SECRET, "auth": HEADER_TOKEN,
             "key": ROUTING_KEY}
    for name, value in files.items():
        (tmp_path / name).write_text(value + "\n")
    return {name: str(tmp_path / name) for name in files}


@pytest.fixture
def channels_file(tmp_path, secret_files, pager):
    """Overrides conftest's: a webhook and a PagerDuty channel at the stand-ins (and the deadman's heartbeat)."""
    path = tmp_path / "channels.yml"
    path.write_text(yaml.safe_dump({"channels": {
        "hook": {"type": "webhook", "url_file": secret_files["url"], "secret_file": secret_files["secret"],
                 "headers": {"X-Team": "sre", "Authorization": {"value_file": secret_files["auth"]}},
                 "timeout": "5s"},
        "pager": {"type": "pagerduty", "routing_key_file": secret_files["key"], "api_url": pager.api_url,
                  "timeout": "5s"},
        "watchdog": {"type": "heartbeat"},
    }}))
    return path


@pytest.fixture
def clock(app):
    """The test's clock for the channels' limiters, so a Retry-After they remember ends when the test says."""
    now = [time.time()]
    for name in ("hook", "pager"):
        app.extensions["dumont.channels"].channels[name].limiter = RateLimiter(interval=0, clock=lambda: now[0])
    return now


def rows(store, channel):
    return storesql.query(store, "SELECT state, attempts, due_at, detail FROM outbox WHERE channel = ? ORDER BY id",
                          (channel,))


def post_both(post, *alerts):
    for channel in ("hook", "pager"):
        assert post(notification(*alerts, receiver=channel), channel=channel).status_code == 200


def test_fire_then_resolve_is_one_document_each_and_one_incident_opened_then_closed(post, make_worker, hook, pager,
                                                                                    store, client):
    firing = alert(severity="critical")
    post_both(post, firing)
    make_worker().run_once(time.time())
    (document,) = hook.received
    jsonschema.validate(document["body"], SCHEMA)
    doc = document["body"]
    assert (doc["version"], doc["receiver"], doc["channel"], doc["status"], doc["left_out"]) == (
        "1", "http://receiver.test", "hook", "firing", 0)
    (one,) = doc["alerts"]
    assert (one["fingerprint"], one["episode"], one["status"], one["ends_at"]) == (firing["fingerprint"], 0,
                                                                                 "firing", None)
    assert one["labels"] == firing["labels"] and one["annotations"] == firing["annotations"]
    assert one["starts_at"] == "2024-05-01T10:00:00.123456789Z"
    assert one["history_url"] == doc["history_url"] == f"http://receiver.test/alerts/{firing['fingerprint']}"
    assert document["headers"]["X-Team"] == "sre" and hook.rejected == []  # the sink verified the signature
    (trigger,) = pager.events
    assert (trigger["event_action"], trigger["routing_key"], trigger["payload"]["severity"]) == (
        "trigger", ROUTING_KEY, "critical")
    (incident,) = pager.incidents
    assert incident["status"] == "triggered" and incident["summary"] == "DiskAlmostFull on gpu-1"

    post_both(post, alert(severity="critical", status="resolved"))
    make_worker().run_once(time.time())
    resolved = hook.received[1]["body"]
    jsonschema.validate(resolved, SCHEMA)
    assert resolved["status"] == "resolved"
    assert resolved["alerts"][0]["ends_at"] == "2024-05-01T10:05:00.123456789Z"
    assert [e["event_action"] for e in pager.events] == ["trigger", "resolve"]
    assert pager.events[1]["dedup_key"] == trigger["dedup_key"]
    assert [i["status"] for i in pager.incidents] == ["resolved"]
    entries = client.get("/api/v1/history").get_json()["entries"]
    assert {(d["channel"], d["state"], d["attempts"]) for e in entries for d in e["deliveries"]} == {
        ("hook", "delivered", 1), ("pager", "delivered", 1)}


def test_a_re_fire_of_the_same_starts_at_is_a_new_incident(post, make_worker, hook, pager):
    for status in ("firing", "resolved", "firing"):  # Alertmanager resolved it, then it fired again
        post_both(post, alert(status=status))
        make_worker().run_once(time.time())
    assert [e["event_action"] for e in pager.events] == ["trigger", "resolve", "trigger"]
    first, second = pager.incidents
    assert (first["status"], second["status"]) == ("resolved", "triggered")
    assert first["dedup_key"] != second["dedup_key"] == pager.events[2]["dedup_key"]
    assert [d["body"]["alerts"][0]["episode"] for d in hook.received] == [0, 0, 1]


def test_a_redelivered_webhook_sends_nothing_new(post, make_worker, hook, pager):
    post_both(post, alert())
    post_both(post, alert())  # Alertmanager's retry, or the HA peer's copy
    worker = make_worker()
    worker.run_once(time.time())
    post_both(post, alert())  # repeat_interval's re-send, after delivery
    worker.run_once(time.time() + 3600)
    assert len(hook.received) == 1 and len(pager.events) == 1 and len(pager.incidents) == 1


def test_a_batch_is_one_document_and_one_event_per_alert(post, make_worker, hook, pager):
    alerts = [alert(machine=f"gpu-{i}", severity=s) for i, s in enumerate(("critical", "warning", "info", "page"))]
    post_both(post, *alerts)
    make_worker().run_once(time.time())
    (document,) = hook.received
    jsonschema.validate(document["body"], SCHEMA)
    assert document["body"]["receiver"] == "http://receiver.test"  # recovered from a batch's history link too
    assert document["body"]["history_url"].startswith("http://receiver.test/?channel=hook&since=")
    assert [a["labels"]["machine_id"] for a in document["body"]["alerts"]] == ["gpu-0", "gpu-1", "gpu-2", "gpu-3"]
    assert [e["payload"]["severity"] for e in pager.events] == ["critical", "warning", "info", "error"]
    assert len(pager.open_incidents()) == 4


def test_a_storm_is_never_a_digest_for_these_channels(post, make_worker, hook, pager, store):
    post_both(post, *(alert(machine=f"gpu-{i}") for i in range(25)))  # past storm_threshold (20)
    make_worker().run_once(time.time())
    assert [len(d["body"]["alerts"]) for d in hook.received] == [5] * 5  # batches of batch_size
    assert len(pager.events) == 25 and len(pager.open_incidents()) == 25
    assert {row[0] for channel in ("hook", "pager") for row in rows(store, channel)} == {"delivered"}


@pytest.mark.parametrize("outage", ["down", "500", "429 without Retry-After"])
def test_a_stand_in_that_fails_gets_every_change_exactly_once_after_it_recovers(post, make_worker, hook, pager,
                                                                             store, outage, clock):
    post_both(post, alert(machine="gpu-1"), alert(machine="gpu-2"))
    if outage == "down":
        hook.stop()
        pager.stop()
    else:
        answer = (500, {}) if outage == "500" else (429, {})
        hook.script([answer])
        pager.script([answer])
    worker = make_worker()
    now = time.time()
    worker.run_once(now)
    for channel in ("hook", "pager"):
        assert [row[:2] for row in rows(store, channel)] == [("pending", 1)] * 2
    if outage == "down":
        assert "connection failed: Connection refused" in rows(store, "pager")[0][3]
        hook.start()  # the same ports again
        pager.start()
    worker.run_once(now + 3600)
    assert len(hook.received) == 1 and len(hook.received[0]["body"]["alerts"]) == 2
    assert len(pager.events) == 2 and len(pager.incidents) == 2
    for channel in ("hook", "pager"):
        assert [row[:2] for row in rows(store, channel)] == [("delivered", 2)] * 2
    worker.run_once(now + 7200)
    assert len(hook.received) == 1 and len(pager.events) == 2


def test_retry_after_defers_without_using_an_attempt_then_delivers_once(post, make_worker, hook, pager, store,
                                                                        clock):
    post_both(post, alert())
    hook.script([(429, {"Retry-After": "120"})])
    pager.script([(429, {"Retry-After": "120"})])
    worker = make_worker()
    now = clock[0] = time.time()  # after the posts: their rows are due
    worker.run_once(now)
    (hook_row,), (pager_row,) = rows(store, "hook"), rows(store, "pager")
    assert hook_row[:2] == ("pending", 0) and hook_row[2] >= now + 120
    assert hook_row[3] == "HTTP 429 (Retry-After 120s)"
    assert pager_row[:2] == ("pending", 0) and pager_row[3].startswith("HTTP 429 (Retry-After 120s) (trigger dumont-")
    clock[0] = now + 121
    worker.run_once(now + 121)
    assert len(hook.received) == 1 and len(pager.events) == 1
    assert rows(store, "hook")[0][:2] == rows(store, "pager")[0][:2] == ("delivered", 1)


def test_a_refused_event_fails_at_once_with_pagerdutys_reason(post, make_worker, pager, store, secret_files):
    Path(secret_files["key"]).write_text("too-short-a-key\n")  # read at every send
    post(notification(alert(), receiver="pager"), channel="pager")
    make_worker().run_once(time.time())
    ((state, attempts, _, detail),) = rows(store, "pager")
    assert (state, attempts) == ("failed", 1)
    assert detail == ("HTTP 400 Event object is invalid: Length of 'routing_key' is incorrect (should be 32"
                      f" characters) (trigger {dedup_key_of(alert())})")
    assert pager.events == []


def test_a_wrong_signing_secret_is_refused_by_the_receiving_end(post, make_worker, hook, store, secret_files):
    Path(secret_files["secret"]).write_text("not-the-shared-secret\n")
    post(notification(alert(), receiver="hook"), channel="hook")
    make_worker().run_once(time.time())
    ((state, attempts, _, detail),) = rows(store, "hook")
    assert (state, attempts) == ("failed", 1)
    assert detail == 'HTTP 401 {"error": "invalid signature: X-Dumont-Signature does not match"}'
    assert hook.received == [] and hook.rejected == [{"path": f"/hooks/{URL_TOKEN}",
                                                      "reason": "X-Dumont-Signature does not match"}]


def test_the_signature_covers_the_exact_body(post, make_worker, hook):
    post(notification(alert(), receiver="hook"), channel="hook")
    make_worker().run_once(time.time())
    (document,) = hook.received
    raw, headers = document["raw"].encode(), document["headers"]
    stamp, signature = headers["X-Dumont-Timestamp"], headers["X-Dumont-Signature"]
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    assert verify_webhook(SIGNING_SECRET, stamp, signature, raw, time.time()) is None
    tampered = raw.replace(b'"firing"', b'"resolved"', 1)
    assert tampered != raw
    assert verify_webhook(SIGNING_SECRET, stamp, signature, tampered, time.time()) == \
        "X-Dumont-Signature does not match"
    assert verify_webhook(SIGNING_SECRET, str(int(stamp) - 1), signature, raw, time.time()) == \
        "X-Dumont-Signature does not match"  # the timestamp is signed too
    assert verify_webhook(SIGNING_SECRET, stamp, signature, raw, time.time() + 301) == \
        "X-Dumont-Timestamp is more than 300s away from now"  # a replay after the tolerance


def test_no_secret_reaches_the_history_or_the_logs(post, make_worker, hook, pager, client, caplog, clock):
    caplog.set_level(logging.DEBUG)
    post_both(post, alert())
    hook.script([(429, {"Retry-After": "0"}), (500, {}), (400, {}, f"echo: {HEADER_TOKEN} {SIGNING_SECRET}")])
    pager.script([(429, {"Retry-After": "0"}), (500, {}), (400, {}, json.dumps(
        {"status": "invalid event", "message": f"bad key {ROUTING_KEY}", "errors": [ROUTING_KEY]}))])
    worker = make_worker()
    now = time.time()
    for hours in range(3):
        worker.run_once(now + hours * 3600)
    entries = client.get("/api/v1/history").get_json()["entries"]
    (entry,) = entries
    timeline = client.get(f"/api/v1/alerts/{entry['fingerprint']}").get_json()
    shown = json.dumps(entries) + json.dumps(timeline) + client.get("/").get_data(as_text=True)
    details = [a["detail"] for d in timeline["timeline"][0]["deliveries"] for a in d["attempt_log"]]
    assert len(details) == 6 and any("<redacted>" in d for d in details)  # each answer was recorded, blanked out
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert any(r.name.startswith("urllib3") for r in caplog.records)  # the request logging was exercised
    for secret in SECRETS:
        assert secret not in shown and secret not in logged, secret


def dedup_key_of(body: dict) -> str:
    from webhook_receiver.channels.model import AlertEvent
    from webhook_receiver.payload import canonical_time

    return dedup_key(AlertEvent(body["fingerprint"], body["status"], body["labels"], body["annotations"],
                                canonical_time(body["startsAt"]), None if body["endsAt"] == ZERO else body["endsAt"]))
