"""PagerDutyChannel against the real PagerDuty Events v2 stand-in over loopback: events, incidents, answers, secrets."""
from __future__ import annotations

import dataclasses
import logging

import pytest
import requests

from deploy.local.sinks import PagerDutySink
from webhook_receiver.channels import Message, RateLimiter, SendResult
from webhook_receiver.channels.pagerduty import PagerDutyChannel
from webhook_receiver.channels.pagerduty_format import SUMMARY_MAX, build_event, dedup_key

from .helpers import event

KEY = "0123456789abcdef0123456789abcdef"
ONE = "http://receiver.test/alerts/fp-DiskAlmostFull-firing"


@pytest.fixture
def sink():
    with PagerDutySink() as s:
        yield s


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "routing_key"
    path.write_text(KEY + "\n")
    return path


def channel(sink, key_file, **extra) -> PagerDutyChannel:
    options = {"routing_key_file": str(key_file), "api_url": sink.api_url, "limiter": RateLimiter(interval=0), **extra}
    return PagerDutyChannel("pager", **options)


def message(*events, history=ONE):
    return Message("pager", list(events) or [event()], history, receiver_url="http://receiver.test")


def key_of(e) -> str:
    return dedup_key(e)


def test_a_firing_triggers_and_its_resolution_resolves_one_incident(sink, key_file):
    pager = channel(sink, key_file)
    firing = event()
    assert pager.send(message(firing)) == SendResult(ok=True, detail=f"HTTP 202 trigger {key_of(firing)}")
    (incident,) = sink.incidents
    assert (incident["status"], incident["summary"], incident["severity"], incident["source"]) == (
        "triggered", "DiskAlmostFull on gpu-1", "critical", "gpu-1")
    resolved = dataclasses.replace(firing, status="resolved", ends_at="2024-05-01T10:05:00Z")
    assert pager.send(message(resolved)).ok
    assert [i["status"] for i in sink.incidents] == ["resolved"] and sink.open_incidents() == {}
    assert sink.events[1] == {"routing_key": KEY, "event_action": "resolve", "dedup_key": key_of(firing)}


def test_the_event_maps_the_alert():
    e = dataclasses.replace(event(), labels={"alertname": "DiskAlmostFull", "severity": "critical",
                                             "machine_id": "gpu-1", "machine_type": "gpu", "mountpoint": "/data"})
    got = build_event(e, KEY, "https://alerts.example")
    page = "https://alerts.example/alerts/fp-DiskAlmostFull-firing"
    assert got == {
        "routing_key": KEY, "event_action": "trigger", "dedup_key": key_of(e),
        "payload": {"summary": "DiskAlmostFull on gpu-1", "source": "gpu-1", "severity": "critical",
                    "timestamp": "2024-05-01T10:00:00Z", "class": "DiskAlmostFull", "component": "/data",
                    "group": "gpu",
                    "custom_details": {"labels": dict(e.labels), "annotations": dict(e.annotations),
                                       "fingerprint": e.fingerprint, "starts_at": e.starts_at, "episode": 0,
                                       "history": page}},
        "links": [{"href": page, "text": "Alert history (Dumont)"},
                  {"href": "https://runbooks.example/DiskAlmostFull.md", "text": "Runbook"}],
        "client": "Dumont alerting receiver", "client_url": page}


@pytest.mark.parametrize("severity, expected", [("critical", "critical"), ("Warning", "warning"), ("info", "info"),
                                                ("page", "error"), ("", "error")])
def test_severity_is_mapped(severity, expected):
    assert build_event(event(severity=severity), KEY, "http://r")["payload"]["severity"] == expected


def test_summary_falls_back_to_name_and_labels_is_clipped_and_marks_a_drill():
    bare = dataclasses.replace(event(), annotations={})
    assert build_event(bare, KEY, "http://r")["payload"]["summary"] == \
        "DiskAlmostFull {machine_id=gpu-1, severity=critical}"
    long = build_event(event(summary="x" * 5000), KEY, "http://r")["payload"]["summary"]
    assert len(long) == SUMMARY_MAX and long.endswith("…")
    drill = dataclasses.replace(event(), labels={**event().labels, "dumont_drill": "run-1"})
    assert build_event(drill, KEY, "http://r")["payload"]["summary"] == "[DRILL] DiskAlmostFull on gpu-1"


def test_source_falls_back_to_the_instance_then_the_receiver():
    e = dataclasses.replace(event(), labels={"alertname": "X", "instance": "10.0.0.1:9100"})
    assert build_event(e, KEY, "http://r:9878")["payload"]["source"] == "10.0.0.1:9100"
    e = dataclasses.replace(event(), labels={"alertname": "X"})
    assert build_event(e, KEY, "http://r:9878")["payload"]["source"] == "r:9878"


def test_a_runbook_that_is_no_web_link_is_left_out():
    e = dataclasses.replace(event(), annotations={"summary": "s", "runbook_url": "javascript:alert(1)"})
    assert [link["text"] for link in build_event(e, KEY, "http://r")["links"]] == ["Alert history (Dumont)"]


def test_dedup_key_is_per_episode():
    first = event()
    assert dedup_key(first) == dedup_key(dataclasses.replace(first, status="resolved", ends_at="x"))  # its resolve
    assert dedup_key(first) != dedup_key(dataclasses.replace(first, episode=1))  # a re-fire
    assert dedup_key(first) != dedup_key(dataclasses.replace(first, starts_at="2024-05-01T11:00:00Z"))
    assert dedup_key(first).startswith("dumont-") and len(dedup_key(first)) == 7 + 32


def test_a_retried_trigger_is_the_same_incident(sink, key_file):
    pager = channel(sink, key_file)
    assert pager.send(message()).ok and pager.send(message()).ok
    (incident,) = sink.incidents
    assert incident["triggers"] == 2


@pytest.mark.parametrize("answer, expected", [
    ((500, {}), SendResult(ok=False, detail="HTTP 500 (trigger {key})")),
    ((502, {}), SendResult(ok=False, detail="HTTP 502 (trigger {key})")),
    ((429, {}), SendResult(ok=False, detail="HTTP 429 (trigger {key})")),
    ((429, {"Retry-After": "20"}), SendResult(ok=False, retry_after=20.0,
                                               detail="HTTP 429 (Retry-After 20s) (trigger {key})")),
    ((403, {}, "<html>Forbidden</html>"), SendResult(ok=False, permanent=True,
                                                     detail="HTTP 403 <html>Forbidden</html> (trigger {key})")),
    ((400, {}, '{"status":"invalid event","message":"Event object is invalid","errors":["a","b"]}'),
     SendResult(ok=False, permanent=True, detail="HTTP 400 Event object is invalid: a; b (trigger {key})")),
])
def test_answers(sink, key_file, answer, expected):
    sink.script([answer])
    got = channel(sink, key_file).send(message())
    assert got == dataclasses.replace(expected, detail=expected.detail.format(key=key_of(event())))
    assert sink.events == []


def test_the_stand_in_refuses_an_invalid_event_as_pagerduty_does(sink, key_file):
    key_file.write_text("short")
    assert channel(sink, key_file).send(message()) == SendResult(ok=False, permanent=True, detail=(
        "HTTP 400 Event object is invalid: Length of 'routing_key' is incorrect (should be 32 characters)"
        f" (trigger {key_of(event())})"))
    enqueue = sink.api_url + "/v2/enqueue"
    cases = [
        ({"routing_key": KEY, "event_action": "trigger", "payload": {"source": "s", "severity": "critical"}},
         ["'payload.summary' is missing or blank"]),
        ({"routing_key": KEY, "event_action": "resolve"}, ["'dedup_key' is missing or blank"]),
        ({"routing_key": KEY, "event_action": "page"},
         ["'event_action' is invalid (must be one of trigger, acknowledge, resolve)"]),
        ({"event_action": "trigger", "payload": {"summary": "s", "source": "s", "severity": "fatal"}},
         ["'routing_key' is missing or blank",
          "'payload.severity' is invalid (must be one of critical, error, warning, info)"]),
    ]
    for event_, errors in cases:
        answer = requests.post(enqueue, json=event_, timeout=5)
        assert (answer.status_code, answer.json()) == (400, {"status": "invalid event",
                                                             "message": "Event object is invalid", "errors": errors})
    ok = requests.post(enqueue, json={"routing_key": KEY, "event_action": "trigger", "dedup_key": "k",
                                      "payload": {"summary": "s", "source": "s", "severity": "info"}}, timeout=5)
    assert (ok.status_code, ok.json()) == (202, {"status": "success", "message": "Event processed", "dedup_key": "k"})
    assert requests.get(sink.api_url + "/api/incidents", timeout=5).json()[0]["dedup_key"] == "k"


def test_several_alerts_are_one_event_each_and_a_failure_stops_them(sink, key_file):
    pager = channel(sink, key_file)
    alerts = [event(name=f"A{i}") for i in range(3)]
    sink.script([(202, {}), (503, {})])
    result = pager.send(message(*alerts))
    assert result == SendResult(ok=False, detail=f"HTTP 503 (event 2 of 3: trigger {key_of(alerts[1])})")
    assert [e["dedup_key"] for e in sink.events] == [key_of(alerts[0])]  # the third was not tried
    assert pager.send(message(*alerts)).ok  # the retry sends all three; the first is still one incident
    assert len(sink.incidents) == 3 and [i["triggers"] for i in sink.incidents] == [2, 1, 1]


def test_a_refused_event_does_not_hold_back_the_others(sink, key_file):
    alerts = [event(name=f"A{i}") for i in range(3)]
    sink.script([(202, {}), (400, {}, '{"message":"Event object is invalid","errors":["bad"]}')])
    result = channel(sink, key_file).send(message(*alerts))
    assert result == SendResult(ok=False, permanent=True, detail=(
        f"HTTP 400 Event object is invalid: bad (event 2 of 3: trigger {key_of(alerts[1])})"))
    assert [e["dedup_key"] for e in sink.events] == [key_of(alerts[0]), key_of(alerts[2])]


def test_a_429_holds_the_routing_key_back(sink, key_file):
    now = [1000.0]
    pager = channel(sink, key_file, limiter=RateLimiter(interval=0, clock=lambda: now[0]))
    sink.script([(429, {"Retry-After": "60"})])
    assert pager.send(message()).retry_after == 60.0
    held = pager.send(message())
    assert (held.ok, held.retry_after) == (False, 60.0) and held.detail.startswith("rate limited: asked to wait 60s")
    now[0] += 60
    assert pager.send(message()).ok and len(sink.events) == 1


def test_unreadable_key_and_refused_connection(tmp_path, refused_port, monkeypatch, sink):
    missing = tmp_path / "nope"
    assert channel(sink, missing).send(message()) == SendResult(
        ok=False, permanent=True, detail=f"cannot read secret file {missing}: No such file or directory")
    monkeypatch.delenv("DUMONT_TEST_PD_KEY", raising=False)
    env = PagerDutyChannel("pager", routing_key_env="DUMONT_TEST_PD_KEY", api_url=sink.api_url)
    assert env.send(message()).detail == "environment variable DUMONT_TEST_PD_KEY is not set or empty"
    monkeypatch.setenv("DUMONT_TEST_PD_KEY", KEY)
    assert env.send(message()).ok
    down = PagerDutyChannel("pager", routing_key_env="DUMONT_TEST_PD_KEY", api_url=f"http://127.0.0.1:{refused_port}")
    assert down.send(message()) == SendResult(
        ok=False, detail=f"connection failed: Connection refused (trigger {key_of(event())})")


def test_the_routing_key_never_reaches_results_or_logs(caplog, sink, key_file):
    caplog.set_level(logging.DEBUG)
    sink.script([(500, {}), (400, {}, f'{{"message":"key {KEY} refused","errors":["{KEY}"]}}'),
                 (404, {}, f"no route for {KEY}")])
    pager = channel(sink, key_file)
    results = [pager.send(message()) for _ in range(4)]
    assert [r.ok for r in results] == [False, False, False, True]
    assert results[1].detail.startswith("HTTP 400 key <redacted> refused: <redacted>")
    assert any(r.name.startswith("urllib3") for r in caplog.records)
    assert KEY not in "\n".join(r.getMessage() for r in caplog.records) + repr(results)
