"""payload.py: what Alertmanager sends parses; every malformed field is named."""
import json

import pytest

from webhook_receiver.fingerprint import label_fingerprint
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
    (lambda b: {**b, "truncatedAlerts": -1}, "truncatedAlerts: expected an integer from 0 to 2147483647"),
    (lambda b: (b["alerts"][2].update(fingerprint=""), b)[1], "alerts[2].fingerprint: must not be empty"),
    (lambda b: (b["alerts"][2].update(fingerprint=7), b)[1], "alerts[2].fingerprint: expected a string, got number"),
    (lambda b: {**b, "groupLabels": None}, "groupLabels: expected an object, got null"),
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


def _fnv1a_reference(data: bytes) -> str:
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) % 2**64
    return f"{h:016x}"


def test_alertmanager_0_16_bodies_without_fingerprint_or_truncated_alerts_parse():
    body = notification(alert(machine="a"), alert(machine="b"))
    del body["truncatedAlerts"]  # added in 0.21
    for one in body["alerts"]:
        del one["fingerprint"]  # added in 0.19
    body["routeLabels"], body["notification_reason"] = {"x": "y"}, "new"  # newer releases: ignored
    n = parse(body)
    assert n.truncated_alerts == 0 and n.cut is None
    for parsed, sent in zip(n.alerts, body["alerts"]):
        # prometheus/common LabelSet.Fingerprint(): FNV-1a 64 over sorted name, 0xff, value, 0xff
        data = b"".join(k.encode() + b"\xff" + v.encode() + b"\xff" for k, v in sorted(sent["labels"].items()))
        assert parsed.fingerprint == _fnv1a_reference(data)
    assert n.alerts[0].fingerprint != n.alerts[1].fingerprint


def test_fingerprints_of_utf8_label_names_sort_by_bytes():
    labels = {"zone": "1", "ünïcødé=name": "x", "service.name": "sync", "\u4e2d": "", "Z": "\U0001F525"}
    data = b"".join(k + b"\xff" + v + b"\xff" for k, v in sorted((k.encode(), v.encode()) for k, v in labels.items()))
    assert label_fingerprint(labels) == _fnv1a_reference(data)
    assert label_fingerprint({}) == "cbf29ce484222325"  # the empty set: FNV's offset basis
    assert label_fingerprint({"a": "bc"}) != label_fingerprint({"ab": "c"})  # the separator keeps them apart
