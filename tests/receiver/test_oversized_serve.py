"""The real `dumont-receiver serve` with posts past max_body_bytes: nothing of the group is lost silently."""
import json
import re
import time

import pytest
import requests

from .conftest import TOKEN
from .payloads import alert, notification
from .serving import Served

pytestmark = pytest.mark.sqlite_only("HTTP handling by the real server, the same whatever the store")

HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


@pytest.fixture
def served(tmp_path, config_values):
    server = Served({**config_values, "relay_interval": "100ms", "max_read_bytes": 1 << 20}, tmp_path)
    try:
        yield server.start()
    finally:
        server.stop()


def wait_for(check, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s; last: {value!r}"[:2000])


def big_group(n: int, truncated: int = 0) -> bytes:
    """A group of `n` alerts of ~2.4 KB each, members in the order Go writes them."""
    body = notification(*(alert(machine=f"gpu-{i:03d}", note=f"{i}" + "x" * 2000) for i in range(n)))
    body["truncatedAlerts"] = truncated
    order = ("receiver", "status", "alerts", "groupLabels", "commonLabels", "commonAnnotations", "externalURL",
             "version", "groupKey", "truncatedAlerts")
    return json.dumps({key: body[key] for key in order}).encode()


def cut_counter(served, channel="slack-oncall") -> float | None:
    text = requests.get(served.url + "/metrics", timeout=10).text
    found = re.search(r'^dumont_receiver_cut_alerts_total\{channel="%s"\} (\S+)$' % channel, text, re.M)
    return float(found.group(1)) if found else None


def chunked(body: bytes):
    for start in range(0, len(body), 10_000):
        yield body[start:start + 10_000]


@pytest.mark.parametrize("send", [lambda b: b, chunked], ids=["content-length", "chunked"])
def test_an_oversized_group_keeps_its_first_alerts_and_says_how_many_were_cut(served, slack, send):
    body = big_group(60, truncated=25)  # ~145 KB against max_body_bytes of 64 KiB
    answer = requests.post(served.url + "/webhook/slack-oncall", data=send(body), headers=HEADERS, timeout=30)
    assert answer.status_code == 200, answer.text
    kept = answer.json()["queued"]
    assert 0 < kept < 60
    cut = 60 - kept

    entries = requests.get(served.url + "/api/v1/history", params={"limit": 500}, timeout=10).json()["entries"]
    assert sorted(e["labels"]["machine_id"] for e in entries) == [f"gpu-{i:03d}" for i in range(kept)]
    notification_ = entries[0]["deliveries"][0]["notification"]
    assert notification_["truncated_alerts"] == 25 + cut
    assert notification_["cut_by_receiver"] == {"alerts": cut, "body_bytes": len(body), "max_body_bytes": 65536}
    page = requests.get(served.url + "/", timeout=10).text
    assert f"{25 + cut} alert(s) of this group left out of the post: 25 by Alertmanager (max_alerts)" in page
    assert f"{cut} cut by the receiver because the post ({len(body):,} bytes)" in page

    assert wait_for(lambda: cut_counter(served)) == cut
    (post,) = wait_for(lambda: slack.received)  # one digest: more changes than storm_threshold
    assert (f"Alertmanager left 25 more alerts of these groups out of its posts (max_alerts), and the receiver cut"
            f" {cut} more alerts from posts larger than its limit of 65,536 bytes (max_body_bytes)") in post["body"]["text"]

    again = requests.post(served.url + "/webhook/slack-oncall", data=send(body), headers=HEADERS, timeout=30)
    assert again.json() == {"status": "ok", "new": 0, "queued": 0, "duplicates": kept}  # a redelivery, as any


def test_past_max_read_bytes_is_413_and_counted(served):
    body = big_group(500)  # ~1.2 MB against max_read_bytes of 1 MiB
    for data in (body, chunked(body)):
        answer = requests.post(served.url + "/webhook/slack-oncall", data=data, headers=HEADERS, timeout=30)
        assert answer.status_code == 413
        assert answer.json() == {"error": "body larger than 1048576 bytes (max_read_bytes)"}
    assert requests.get(served.url + "/api/v1/history", timeout=10).json()["entries"] == []
    assert wait_for(lambda: 'dumont_receiver_rejected_total{reason="too_large"} 2.0' in requests.get(
        served.url + "/metrics", timeout=10).text)


def test_a_malformed_oversized_post_is_400_naming_the_problem(served):
    body = big_group(60).replace(b'"machine_id": "gpu-050"', b'"machine_id" "gpu-050"')
    answer = requests.post(served.url + "/webhook/slack-oncall", data=body, headers=HEADERS, timeout=30)
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("alerts[50]: malformed JSON: Expecting ':' delimiter")
    cut_short = big_group(60)[:-5000]
    answer = requests.post(served.url + "/webhook/slack-oncall", data=cut_short, headers=HEADERS, timeout=30)
    assert answer.status_code == 400 and answer.json()["error"].startswith("malformed JSON: ")
    assert requests.get(served.url + "/api/v1/history", timeout=10).json()["entries"] == []
