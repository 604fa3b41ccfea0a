"""The relay learns of new work when a webhook commits it: with a poll of an hour, only the wake-up can deliver."""
from __future__ import annotations

import concurrent.futures
import json

import requests

from tests.e2e.conftest import wait_for
from webhook_receiver.store.sqlite_wakeup import Ringer, SocketWakeup

from .conftest import TOKEN
from .payloads import alert, notification
from .serving import Served

# The relay polls once an hour: a message delivered within the test's wait was woken by the commit.
SLEEPY = {"relay_interval": "1h", "relay_stall_after": "2h", "prune_interval": "1h"}


def _serve(config_values, tmp_path) -> Served:
    return Served({**config_values, **SLEEPY}, tmp_path).start()


def _post(server: Served, body: dict) -> None:
    answer = requests.post(server.url + "/webhook/slack-oncall", json=body, timeout=10,
                           headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200, answer.text


def _announced(slack) -> int:
    """Alerts the Slack stand-in was told of, from each message's [FIRING:n] headline."""
    total = 0
    for post in slack.received:
        text = post["body"]["text"]
        total += int(text.split("[FIRING:", 1)[1].split("]", 1)[0]) if "[FIRING:" in text else 0
    return total


def test_a_webhook_wakes_the_relay_at_once(config_values, tmp_path, slack, store_kind):
    server = _serve(config_values, tmp_path)
    try:
        wait_for(lambda: "relay.started" in server.log(), 30, "the relay to start")
        _post(server, notification(alert(machine="gpu-1")))
        wait_for(lambda: slack.received, 30, "the message, woken by the commit rather than the hourly poll")
        _post(server, notification(alert(machine="gpu-2")))  # and again: each commit rings
        wait_for(lambda: len(slack.received) == 2, 30, "the second message")
        assert "gpu-2" in json.dumps(slack.received[-1])
    finally:
        server.stop()


def test_a_burst_of_webhooks_is_grouped_not_one_message_each(config_values, tmp_path, slack, store_kind):
    server = _serve(config_values, tmp_path)
    webhooks = 60
    try:
        wait_for(lambda: "relay.started" in server.log(), 30, "the relay to start")
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: _post(server, notification(alert(machine=f"gpu-{i:02d}"))), range(webhooks)))
        wait_for(lambda: _announced(slack) == webhooks, 60, "every alert announced")
        assert len(slack.received) < webhooks // 2  # coalesced into passes, each one message or a digest
    finally:
        server.stop()


def test_a_ring_with_no_relay_listening_is_harmless_and_a_listener_hears_each(tmp_path):
    database = str(tmp_path / "history.db")
    ringer = Ringer(database)
    ringer.ring()  # nobody bound: ignored, and a poll covers it
    listener, other = SocketWakeup(database), SocketWakeup(str(tmp_path / "other.db"))
    try:
        assert listener.wait(0) is False
        ringer.ring()
        assert listener.wait(5) is True
        ringer.ring()
        ringer.ring()
        assert listener.drain() == 2 and listener.drain() == 0
        assert other.wait(0) is False  # another database's relay hears nothing
    finally:
        listener.close()
        other.close()
        ringer.close()
