"""oversized.py: a body past max_body_bytes keeps its first alerts that fit, counts the rest, in bounded memory."""
import json
import tracemalloc

import pytest

from webhook_receiver.oversized import CHUNK, TooLarge, read_oversized
from webhook_receiver.payload import BodyCut, PayloadError, notification_from

from .payloads import alert, notification


def go_order(body: dict) -> bytes:
    """The body with its members in the order Go's encoder writes them: alerts before the group's maps."""
    order = ("receiver", "status", "alerts", "groupLabels", "commonLabels", "commonAnnotations", "externalURL",
             "version", "groupKey", "truncatedAlerts")
    return json.dumps({key: body[key] for key in order if key in body}).encode()


def chunks(data: bytes, size: int):
    for start in range(0, len(data), size):
        yield data[start:start + size]


def group(n: int, note: str = "", truncated: int = 0) -> dict:
    body = notification(*(alert(machine=f"gpu-{i:03d}", note=f"{note} {i}") for i in range(n)))
    body["truncatedAlerts"] = truncated
    return body


def alert_bytes(body: dict, i: int) -> int:
    return len(json.dumps(body["alerts"][i]).encode())


def members_before_alerts(body: dict) -> int:
    """What the members Go writes before `alerts` count against the budget: value, name and 4 bytes each."""
    return sum(len(json.dumps(body[key]).encode()) + len(key) + 4 for key in ("receiver", "status"))


@pytest.mark.parametrize("chunk", [1, 7, 500, CHUNK])
def test_keeps_the_first_alerts_that_fit_and_counts_the_rest(chunk):
    body = group(30, note="n" * 3000, truncated=5)  # alerts of ~3.5 KB
    raw = go_order(body)
    tail = 2000  # room for the members after the alerts, smaller than one alert
    for fit in (1, 11, 29):
        budget = members_before_alerts(body) + sum(alert_bytes(body, i) + 1 for i in range(fit)) + tail
        kept = read_oversized(chunks(raw, chunk), budget, len(raw))
        assert kept.body["alerts"] == body["alerts"][:fit]
        assert kept.cut == 30 - fit and kept.body_bytes == len(raw)
        # Every member written after the alerts is read and kept as it was.
        assert {k: v for k, v in kept.body.items() if k != "alerts"} == {
            k: v for k, v in body.items() if k != "alerts"}


def test_strings_with_escaped_quotes_and_brackets_do_not_end_anything():
    tricky = 'a "quoted" ]}, {"alerts": [ \\ \\" \\\\" ] } \u00e9\u4e2d \U0001F525 \n\t end'
    body = group(12, note=tricky)
    body["alerts"][3]["annotations"]["description"] = '"]' * 300 + "\\"
    raw = go_order(body)
    assert b'\\\\\\"' in raw  # an escaped backslash followed by an escaped quote is in the body
    for chunk in (1, 2, 3, 64):  # every escape split across chunks somewhere
        kept = read_oversized(chunks(raw, chunk), len(raw) // 2, len(raw))
        assert kept.body["alerts"] == body["alerts"][:len(kept.body["alerts"])]
        assert kept.cut == 12 - len(kept.body["alerts"]) and 0 < kept.cut < 12


def test_nested_values_and_unknown_members_are_skipped_whole():
    body = group(6)
    body["alerts"][1]["extra"] = {"deep": [[{"x": "]]"}], {"y": [1, 2, {"z": "{"}]}], "n": None, "t": True}
    raw = b'{"routeLabels": {"a": [[{"b": "}"}]]}, "notification_reason": "x", ' + go_order(body)[1:-1] + \
        b', "later": [{"q": ["\\"]"]}, -1.5e3, false, null]}'
    kept = read_oversized(chunks(raw, 5), len(raw) - 1, len(raw))
    assert kept.cut == 0 and kept.body["alerts"] == body["alerts"]
    assert "routeLabels" not in kept.body and "later" not in kept.body  # fields the parser ignores are not kept
    assert kept.body["truncatedAlerts"] == 0 and kept.body["groupKey"] == body["groupKey"]


def test_a_derived_map_too_large_to_hold_becomes_empty():
    body = group(4)
    body["commonAnnotations"] = {f"k{i}": "v" * 100 for i in range(200)}  # ~21 KB, derived from the alerts
    raw = go_order(body)
    kept = read_oversized(chunks(raw, 1000), 8000, len(raw))
    assert kept.body["commonAnnotations"] == {} and kept.body["alerts"] == body["alerts"] and kept.cut == 0


def test_a_needed_member_after_the_alerts_takes_room_from_the_last_kept_ones():
    body = group(10)
    raw_without_key = go_order({**body, "groupKey": ""})
    body["groupKey"] = "g" * 3000  # written after the alerts: kept alerts are given back to make room
    raw = go_order(body)
    budget = len(raw_without_key)  # all ten alerts fit before the key arrives
    kept = read_oversized(chunks(raw, 256), budget, len(raw))
    assert kept.body["groupKey"] == body["groupKey"]
    assert 0 < len(kept.body["alerts"]) < 10 and kept.cut == 10 - len(kept.body["alerts"])
    assert kept.body["alerts"] == body["alerts"][:len(kept.body["alerts"])]


def test_a_needed_member_that_cannot_fit_even_with_one_alert_is_too_large():
    body = group(3)
    body["groupKey"] = "g" * 20_000
    raw = go_order(body)
    with pytest.raises(TooLarge, match=r"^groupKey: larger than 10000 bytes \(max_body_bytes\) on its own$"):
        read_oversized(chunks(raw, 4096), 10_000, len(raw))


def test_one_alert_larger_than_the_budget_is_too_large():
    body = group(3, note="x" * 20_000)
    with pytest.raises(TooLarge, match=r"^alerts\[0\]: one alert larger than 10000 bytes \(max_body_bytes\)$"):
        read_oversized(chunks(go_order(body), 4096), 10_000, 10**6)


def test_past_the_read_limit_is_too_large():
    raw = go_order(group(50))
    with pytest.raises(TooLarge, match=r"^body larger than 5000 bytes \(max_read_bytes\)$"):
        read_oversized(chunks(raw, 1000), 2000, 5000)


def parse(raw: bytes, budget: int = 4000):
    """What ingest makes of an oversized body: the kept part, validated like any other body."""
    kept = read_oversized(chunks(raw, 333), budget, len(raw) + 10)
    return notification_from(kept.body)


@pytest.mark.parametrize("mutate, message", [
    (lambda raw: raw[:raw.index(b', {"status"', 20000)], r"^malformed JSON: expected ',', got the end of the body at"
                                                         r" byte \d+$"),
    (lambda raw: raw[:raw.index(b'"labels": {', 20000) + 11], r"^malformed JSON: unexpected end of the body at byte"
                                                              r" \d+$"),
    (lambda raw: raw[:raw.index(b'"gpu-007"') + 3], r"^malformed JSON: unterminated string at byte \d+$"),
    (lambda raw: raw.replace(b'}, "annotations"', b'], "annotations"', 1), r"^malformed JSON: unexpected '\]' at"
                                                                        r" byte \d+$"),
    (lambda raw: raw + b' {"more": 1}', r"^malformed JSON: extra data after the object at byte \d+$"),
    (lambda raw: raw[:-1] + b", }", r"^malformed JSON: expected a member name at byte \d+$"),
    (lambda raw: raw.replace(b'"status": "firing", "alerts"', b'"status" "firing", "alerts"', 1),
     r"^malformed JSON: expected ':', got '\"' at byte \d+$"),
    (lambda raw: raw.replace(b', "groupLabels"', b' "groupLabels"', 1),
     r"^malformed JSON: expected ',', got '\"' at byte \d+$"),
    (lambda raw: raw.replace(b'"machine_id": "gpu-040"', b'"machine_id" "gpu-040"', 1),
     r"^alerts\[40\]: malformed JSON: Expecting ':' delimiter"),  # cut, and still checked
    (lambda raw: raw.replace(b', {"status"', b', 7, {"status"', 1), r"^alerts\[1\]: expected an object, got number$"),
    (lambda raw: b"[" + raw + b"]", r"^body: expected a JSON object, got array$"),
    (lambda raw: b"\xef\xbb\xbf" + raw, r"^malformed JSON: expected a JSON object at byte 0$"),
    (lambda raw: raw.replace(b'"alerts": [', b'"alerts": "', 1), r"^alerts: expected an array, got string$"),
    (lambda raw: raw.replace(b'"groupKey": "', b'"groupKey": ["', 1).replace(b'", "truncatedAlerts"', b'"], "t"', 1),
     r"^groupKey: expected a string, got array$"),
    (lambda raw: raw.replace(b'"version": "4"', b'"version": "3"', 1), r"^version: expected \"4\", got '3'$"),
    (lambda raw: raw.replace(b'"commonLabels": {', b'"commonLabels": [{', 1).replace(
        b'}, "commonAnnotations"', b'}], "commonAnnotations"', 1), r"^commonLabels: expected an object, got array$"),
    (lambda raw: b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b", " + raw[1:],
     r"^malformed JSON: nested too deeply at byte \d+$"),
])
def test_a_malformed_oversized_body_is_an_error_naming_the_problem(mutate, message):
    raw = mutate(go_order(group(60, note="n" * 100)))
    with pytest.raises(PayloadError, match=message):
        parse(raw)


def test_the_parse_of_a_well_formed_oversized_body_counts_the_cut():
    kept = read_oversized(chunks(go_order(group(60, truncated=40)), 333), 4000, 10**6)
    notification = notification_from(kept.body, BodyCut(kept.cut, kept.body_bytes, 4000))
    assert len(notification.alerts) + kept.cut == 60 and notification.truncated_alerts == 40 + kept.cut


def test_memory_stays_near_the_budget_whatever_the_body_size():
    budget = 256 * 1024
    one = json.dumps(alert(machine="gpu-x", note="y" * 2000)).encode()
    count = (24 << 20) // len(one)  # a 24 MiB body, produced as it is read

    def body():
        yield b'{"receiver": "r", "status": "firing", "alerts": ['
        for i in range(count):
            yield (b", " if i else b"") + one
        yield b'], "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "",'
        yield b' "version": "4", "groupKey": "{}:{}", "truncatedAlerts": 3}'

    tracemalloc.start()
    try:
        kept = read_oversized(body(), budget, 64 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert kept.cut + len(kept.body["alerts"]) == count and kept.body["truncatedAlerts"] == 3
    assert kept.body_bytes > 24 << 20
    # The decoded alerts kept cost a few times their bytes; the 24 MiB read do not show at all.
    assert peak < 8 * budget, peak
