"""Channels are delivered independently: a hanging Slack holds back neither email nor the dead man's switch,
and a message whose handling raises is marked with the error and skipped.

The hanging tests run the relay as `serve` runs it (run_forever: a thread per channel) against a Slack
stand-in that answers nothing until the test releases it; they assert what happened first, never how long.
"""
import threading
import time

import pytest

from deploy.local.sinks import SlackSink
from webhook_receiver.config import build_config
from webhook_receiver.deadman import ALERTNAME
from webhook_receiver.relay.worker import RelayWorker

from .payloads import alert, notification

DAY = 86400


class HangingSlackSink(SlackSink):
    """The Slack stand-in, answering each post only once the test calls release()."""

    def __init__(self):
        super().__init__(port=0)
        self.released = threading.Event()
        self.hanging = 0
        self._count_lock = threading.Lock()

    def _answer(self, path, body):
        with self._count_lock:
            self.hanging += 1
        self.released.wait(120)  # past the channel's timeout, unless released
        with self._count_lock:
            self.hanging -= 1
        return super()._answer(path, body)

    def release(self):
        self.released.set()


@pytest.fixture
def config_values(config_values):
    """Passes every 50 ms; a relay (or one channel's delivery) without one for a second is stalled."""
    return {**config_values, "relay_interval": "50ms", "relay_stall_after": "1s"}


@pytest.fixture
def slack():
    sink = HangingSlackSink().start()
    try:
        yield sink
    finally:
        sink.release()
        sink.stop()


def wait_for(condition, timeout=60.0):
    """Poll `condition` until true; a bound against hanging, not a measured time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@pytest.fixture
def running_relay(app):
    """Start the relay's threads (as `relay` does) with a monotonic clock the test can push ahead."""
    started = []

    def start(**overrides):
        config = app.config["RECEIVER"]
        values = {k: getattr(config, k) for k in config.__dataclass_fields__}
        config = build_config({**values, **overrides})
        ahead = [0.0]
        worker = RelayWorker(app.extensions["dumont.store"], app.extensions["dumont.channels"], config,
                             monotonic=lambda: time.monotonic() + ahead[0])
        stop = threading.Event()
        thread = threading.Thread(target=worker.run_forever, args=(stop,), daemon=True)
        thread.start()
        started.append((stop, thread))
        return worker, ahead

    yield start
    for stop, thread in started:
        stop.set()
        thread.join(60)
        assert not thread.is_alive()


def test_a_hanging_slack_holds_back_neither_email_nor_the_dead_mans_switch(post, running_relay, slack, smtp,
                                                                          client):
    post(notification(alert(machine="gpu-1")))
    post(notification(alert(machine="gpu-1"), receiver="email-oncall"), channel="email-oncall")
    worker, ahead = running_relay()
    assert wait_for(lambda: slack.hanging == 1)  # Slack got the post and answers nothing
    assert wait_for(lambda: len(smtp.messages) == 1)  # the email went out meanwhile
    ahead[0] = 2 * DAY  # two days of silence from the Watchdog, on the monotonic clock
    assert wait_for(lambda: len(smtp.messages) == 2)
    assert ALERTNAME in str(smtp.messages[1]["message"]["Subject"])  # the dead man's switch, by email
    assert slack.hanging >= 1 and slack.received == []  # ... while Slack still hangs

    slack.release()
    # Slack delivers both once it answers (a send it timed out on is retried after its backoff).
    assert wait_for(lambda: len(slack.received) == 2, timeout=120)
    (entry,) = [e for e in client.get("/api/v1/history").get_json()["entries"] if e["alertname"] != ALERTNAME]
    assert {d["channel"]: d["state"] for d in entry["deliveries"]} == {"slack-oncall": "delivered",
                                                                      "email-oncall": "delivered"}


def test_a_channel_stuck_in_a_send_is_reported_by_readiness(post, running_relay, slack, client):
    post(notification(alert()))
    running_relay()
    assert wait_for(lambda: slack.hanging == 1)
    # The channel's thread is stuck in its send (timeout 5 s): its pass does not end, the others' do.
    assert wait_for(lambda: client.get("/-/ready").status_code == 503, timeout=30)
    answer = client.get("/-/ready").get_data(as_text=True)
    if "slack-oncall" not in answer:  # the 5 s timeout ended the send between the two requests
        pytest.skip("the send timed out before readiness was read twice")
    assert "the relay's delivery to slack-oncall has completed no pass since" in answer
    assert "the relay has completed" not in answer  # housekeeping goes on
    slack.release()
    assert wait_for(lambda: client.get("/-/ready").status_code == 200, timeout=30)
