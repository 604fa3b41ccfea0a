"""The real `dumont-receiver serve`: gunicorn workers, one relay process, clean SIGTERM."""
import os
import time

import pytest
import requests

from .conftest import TOKEN
from .payloads import alert, notification
from .serving import Served


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
