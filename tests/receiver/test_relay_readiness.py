"""Readiness: /-/ready and dumont_receiver_relay_* report a relay that completed no pass for relay_stall_after."""
import os
import signal
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from .serving import Served


def samples(text):
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_ready_until_the_relays_last_pass_is_older_than_relay_stall_after(make_worker, client):
    assert client.get("/-/ready").status_code == 200  # no relay ever ran on this database
    worker = make_worker()
    now = time.time()
    worker.run_once(now - 120)  # the last pass, two minutes ago (relay_stall_after: 1m)
    ready = client.get("/-/ready")
    assert ready.status_code == 503
    assert ready.get_data(as_text=True).startswith("the relay has completed no pass since 20")
    metrics = samples(client.get("/metrics").get_data(as_text=True))
    assert metrics[("dumont_receiver_relay_stalled", ())] == 1
    assert metrics[("dumont_receiver_relay_last_pass_timestamp_seconds", ())] == pytest.approx(now - 120)
    assert client.get("/api/v1/relay").get_json()["stalled"]

    worker.run_once(time.time())
    assert client.get("/-/ready").get_data(as_text=True) == "ready\n"
    metrics = samples(client.get("/metrics").get_data(as_text=True))
    assert metrics[("dumont_receiver_relay_stalled", ())] == 0
    assert metrics[("dumont_receiver_relay_channel_last_pass_timestamp_seconds",
                    (("channel", "email-oncall"),))] >= now


@pytest.fixture
def served(tmp_path, config_values):
    server = Served({**config_values, "relay_interval": "100ms", "relay_stall_after": "1s"}, tmp_path)
    try:
        yield server.start()
    finally:
        relay = server.relay_pid()
        if relay:  # never leave it stopped
            try:
                os.kill(relay, signal.SIGCONT)
            except ProcessLookupError:
                pass
        server.stop()


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_serve_reports_a_frozen_relay_as_not_ready(served):
    def ready():
        return requests.get(served.url + "/-/ready", timeout=10)

    assert wait_for(lambda: served.relay_pid() is not None and ready().status_code == 200), served.log()
    assert wait_for(lambda: "dumont_receiver_relay_last_pass_timestamp_seconds" in
                    requests.get(served.url + "/metrics", timeout=10).text), served.log()
    os.kill(served.relay_pid(), signal.SIGSTOP)  # alive but doing nothing, as a wedged relay would
    # Its delivery threads' passes, then its own, grow older than relay_stall_after.
    assert wait_for(lambda: ready().status_code == 503 and "the relay has completed no pass since" in ready().text)
    os.kill(served.relay_pid(), signal.SIGCONT)
    assert wait_for(lambda: ready().status_code == 200), served.log()
