"""payload.py: what Alertmanager sends parses; every malformed field is named."""
import json

import pytest

from webhook_receiver.payload import PayloadError, canonical_time, epoch, format_epoch, parse_webhook

from .payloads import alert, notification


def parse(body) -> object:
    return parse_webhook(json.dumps(body).encode())


def test_firing_alert_has_no_end_and_canonical_times():
    n = parse(notification(alert(starts="2024-05-01T12:00:00.5+02:00")))
    assert n.status == "firing" and n.group_key.endswith('{alertname="DiskAlmostFull"}')
    (a,) = n.alerts
    assert a.starts_at == "2024-05-01T10:00:00.500000000Z"
    assert a.ends_at is None


def test_resolved_alert_keeps_its_end():
    (a,) = parse(notification(alert(status="resolved"))).alerts
    assert a.status == "resolved" and a.ends_at == "2024-05-01T10:05:00.123456789Z"


def test_time_helpers_round_trip():
    assert canonical_time("2024-05-01T10:00:00Z") == "2024-05-01T10:00:00.000000000Z"
    assert format_epoch(epoch("2024-05-01T10:00:00.250000000Z")) == "2024-05-01T10:00:00.250000000Z"
    with pytest.raises(ValueError, match="not an RFC3339 time"):
        canonical_time("yesterday")


def _without(body, *path):
    target = body
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return body


@pytest.mark.parametrize("mutate, message", [
    (lambda b: "[1, 2]", "body: expected a JSON object, got array"),
    (lambda b: {**b, "version": "3"}, "version: expected \"4\", got '3'"),
    (lambda b: _without(b, "version"), "version: required"),
    (lambda b: _without(b, "groupKey"), "groupKey: required"),
    (lambda b: {**b, "truncatedAlerts": "0"}, "truncatedAlerts: expected an integer, got string"),
    (lambda b: {**b, "status": "pending"}, "status: expected \"firing\" or \"resolved\", got 'pending'"),
    (lambda b: {**b, "alerts": []}, "alerts: must not be empty"),
    (lambda b: {**b, "alerts": {}}, "alerts: expected an array, got object"),
    (lambda b: {**b, "commonLabels": {"x": 1}}, "commonLabels.x: expected a string, got number"),
    (lambda b: _without(b, "alerts", 2, "fingerprint"), "alerts[2].fingerprint: required"),
    (lambda b: _without(b, "alerts", 0, "startsAt"), "alerts[0].startsAt: required"),
    (lambda b: (b["alerts"][1].update(endsAt="soon"), b)[1], "alerts[1].endsAt: not an RFC3339 time: 'soon'"),
    (lambda b: (b["alerts"][1].update(labels=None), b)[1], "alerts[1].labels: expected an object, got null"),
    (lambda b: (b["alerts"].append(7), b)[1], "alerts[3]: expected an object, got number"),
])
def test_each_bad_field_is_named(mutate, message):
    body = mutate(notification(alert(machine="a"), alert(machine="b"), alert(machine="c")))
    with pytest.raises(PayloadError) as info:
        parse_webhook(body.encode() if isinstance(body, str) else json.dumps(body).encode())
    assert str(info.value) == message


def test_malformed_json_is_named():
    with pytest.raises(PayloadError, match=r"^malformed JSON: Expecting"):
        parse_webhook(b'{"version": "4",')
