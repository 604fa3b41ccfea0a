"""The real `dumont-receiver serve`: gunicorn workers, one relay process, clean SIGTERM, crash safety."""
import http.client
import json
import os
import signal
import subprocess
import time

import pytest
import requests

from . import storesql
from .conftest import TOKEN
from .payloads import alert, notification
from .serving import BIN, Served, free_port


@pytest.fixture
def served(tmp_path, config_values):
    server = Served({**config_values, "workers": 2, "threads": 4, "relay_interval": "100ms"}, tmp_path)
    try:
        yield server.start()
    finally:
        server.stop()


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_serve_stores_relays_and_stops_cleanly(served, slack):
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {TOKEN}"
        body = notification(alert(machine="gpu-1"), alert(machine="gpu-2"))
        first = session.post(served.url + "/webhook/slack-oncall", json=body, timeout=10)
        assert first.status_code == 200 and first.json()["queued"] == 2
        assert session.post(served.url + "/webhook/slack-oncall", json=body, timeout=10).json()["duplicates"] == 2
        assert session.post(served.url + "/webhook/slack-oncall", json=body,
                            headers={"Authorization": "Bearer nope"}, timeout=10).status_code == 401

        assert wait_for(lambda: len(slack.received) == 1), served.log()
        entries = session.get(served.url + "/api/v1/history", timeout=10).json()["entries"]
        assert wait_for(lambda: all(d["state"] == "delivered" for e in session.get(
            served.url + "/api/v1/history", timeout=10).json()["entries"] for d in e["deliveries"]))
        assert len(entries) == 2
        assert "dumont_receiver_received_total" in session.get(served.url + "/metrics", timeout=10).text
    assert len(slack.received) == 1  # exactly one relay: no second delivery

    relay = served.relay_pid()
    assert relay is not None
    assert served.stop() == 0
    with pytest.raises(ProcessLookupError):
        os.kill(relay, 0)
    assert TOKEN not in served.log()


def test_rejections_counted_in_memory_are_written_when_serve_stops(served, config_values):
    for _ in range(3):
        response = requests.post(served.url + "/webhook/slack-oncall", json=notification(alert()),
                                 headers={"Authorization": "Bearer nope"}, timeout=10)
        assert response.status_code == 401
    assert served.stop() == 0  # counts wait in memory for up to a second; a stopping worker writes its own
    assert storesql.query(config_values["database"], "SELECT value FROM counters WHERE name = 'rejected'") == [(3,)]


def test_a_killed_receiver_delivers_what_it_acknowledged_after_restart(tmp_path, config_values, slack, slack_path):
    """SIGKILL of the whole process group (gunicorn and relay) while Slack is unreachable loses nothing."""
    slack_url_file = tmp_path / "slack_url"
    dead_end = f"http://127.0.0.1:{free_port()}/services/T000/B000/down-secret"
    slack_url_file.write_text(dead_end + "\n")  # Slack is down: connection refused
    values = {**config_values, "relay_interval": "100ms", "backoff_initial": "100ms", "backoff_max": "200ms",
              "max_attempts": 1000}
    first = Served(values, tmp_path).start()
    try:
        body = notification(alert(machine="gpu-1"), alert(machine="gpu-2"))
        answer = requests.post(first.url + "/webhook/slack-oncall", json=body, timeout=10,
                               headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.status_code == 200 and answer.json()["queued"] == 2
        assert wait_for(lambda: any(d["attempts"] >= 2 for e in requests.get(
            first.url + "/api/v1/history", timeout=10).json()["entries"] for d in e["deliveries"])), first.log()
    finally:
        os.killpg(first.process.pid, signal.SIGKILL)  # no cleanup, no graceful shutdown
        first.process.wait()
    assert "down-secret" not in first.log()  # the Slack URL is a secret: never logged

    slack_url_file.write_text(slack.url_for(slack_path) + "\n")  # Slack is back
    second = Served(values, tmp_path).start()
    try:
        assert wait_for(lambda: len(slack.received) == 1), second.log()
        entries = requests.get(second.url + "/api/v1/history", timeout=10).json()["entries"]
        assert [d["state"] for e in entries for d in e["deliveries"]] == ["delivered", "delivered"]
        assert "gpu-1" in json.dumps(slack.received[0]["body"]) and "gpu-2" in json.dumps(slack.received[0]["body"])
    finally:
        second.stop()
    assert len(slack.received) == 1


def test_serve_restarts_a_relay_that_died(served, slack):
    first = served.relay_pid()
    os.kill(first, signal.SIGKILL)
    assert wait_for(lambda: served.relay_pid() not in (None, first)), served.log()
    assert "serve.relay_died pid=%d" % first in served.log()
    body = notification(alert(machine="gpu-7"))
    answer = requests.post(served.url + "/webhook/slack-oncall", json=body, timeout=10,
                           headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200
    assert wait_for(lambda: len(slack.received) == 1), served.log()  # the new relay delivers
    relay = served.relay_pid()
    assert served.stop() == 0
    with pytest.raises(ProcessLookupError):
        os.kill(relay, 0)


@pytest.mark.sqlite_only("the SQLite relay lock; on PostgreSQL relays share the database (test_postgres_store.py)")
def test_a_second_relay_beside_serve_refuses_to_start(served):
    assert wait_for(lambda: "relay.started" in served.log()), served.log()  # it holds the relay lock
    second = subprocess.run([str(BIN), "relay", "--config", str(served.config_path)], capture_output=True,
                            text=True, timeout=60)
    assert second.returncode == 1
    assert "dumont-receiver relay: error: another relay is running on" in second.stderr


@pytest.mark.sqlite_only("HTTP body handling, the same whatever the store")
def test_a_chunked_body_past_the_limit_is_413_not_cut(served, config_values):
    def chunks(body: bytes):
        for i in range(0, len(body), 4096):
            yield body[i:i + 4096]

    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    padded = json.dumps(notification(alert(note="x" * (config_values["max_body_bytes"] + 10)))).encode()
    answer = requests.post(served.url + "/webhook/slack-oncall", data=chunks(padded), headers=headers, timeout=10)
    assert answer.status_code == 413, answer.text
    small = json.dumps(notification(alert())).encode()
    answer = requests.post(served.url + "/webhook/slack-oncall", data=chunks(small), headers=headers, timeout=10)
    assert answer.status_code == 200 and answer.json()["queued"] == 1
    exact = notification(alert(machine="gpu-2"))
    exact["alerts"][0]["generatorURL"] += "x" * (config_values["max_body_bytes"] - len(json.dumps(exact).encode()))
    exact = json.dumps(exact).encode()
    assert len(exact) == config_values["max_body_bytes"]
    answer = requests.post(served.url + "/webhook/slack-oncall", data=chunks(exact), headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text  # the limit itself is allowed
    assert len(requests.get(served.url + "/api/v1/history", timeout=10).json()["entries"]) == 2


@pytest.mark.sqlite_only("HTTP connection handling, the same whatever the store")
def test_a_keep_alive_connection_is_closed_after_keepalive_requests(tmp_path, config_values):
    server = Served({**config_values, "workers": 2, "threads": 2, "keepalive_requests": 3}, tmp_path).start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        answers = []
        for i in range(4):
            conn.request("POST", "/webhook/slack-oncall", json.dumps(notification(alert(machine=f"gpu-{i}"))),
                         headers)
            response = conn.getresponse()
            response.read()
            answers.append((response.status, response.getheader("Connection"), conn.sock is None))
        conn.close()
    finally:
        server.stop()
    # The third answer says close and the server closes; http.client reconnects for the fourth.
    assert answers == [(200, "keep-alive", False), (200, "keep-alive", False), (200, "close", True),
                       (200, "keep-alive", False)]
