"""Slack threads through the real parts: webhooks into the app, the relay, and the Slack stand-in's Web API over
loopback, on both stores. A firing is a top-level post whose ts is stored with its rows; every later change of the
same episode replies in its thread."""
from __future__ import annotations

import json
import logging
import time

import pytest
import yaml

from deploy.local.sinks import SlackSink
from webhook_receiver.channels import RateLimiter

from . import storesql
from .payloads import alert, notification

BOT_TOKEN = "xoxb-7777-8888-thr3adt0ken"
CHANNEL = "C0THREADS01"


@pytest.fixture
def slack():
    sink = SlackSink(port=0, bot_token=BOT_TOKEN).start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def update_parent():
    return False


@pytest.fixture
def channels_file(tmp_path, slack, update_parent):
    token_file = tmp_path / "slack_bot_token"
    token_file.write_text(BOT_TOKEN + "\n")
    path = tmp_path / "channels.yml"
    path.write_text(yaml.safe_dump({"channels": {
        "slack-oncall": {"type": "slack", "bot_token_file": str(token_file), "channel": CHANNEL,
                         "api_url": slack.url_for("/api"), "update_parent": update_parent, "timeout": "5s"}}}))
    return path


@pytest.fixture(autouse=True)
def unpaced(app):
    """No second between posts (Slack's pace per channel): the limiter's own tests cover it."""
    app.extensions["dumont.channels"].channels["slack-oncall"].limiter = RateLimiter(interval=0)


def posts(slack):
    return slack.api_calls("chat.postMessage")


def references(store):
    return [row[0] for row in storesql.query(store, "SELECT reference FROM outbox ORDER BY id")]


def fire_and_resolve(post, worker, **labels):
    post(notification(alert(**labels)))
    worker.run_once(time.time())
    post(notification(alert(status="resolved", **labels)))
    worker.run_once(time.time())


def test_the_firing_is_a_new_message_and_its_resolution_replies_in_its_thread(post, make_worker, slack, store,
                                                                              client):
    worker = make_worker()
    post(notification(alert()))
    worker.run_once(time.time())
    (first,) = posts(slack)
    assert "thread_ts" not in first["body"] and first["body"]["channel"] == CHANNEL
    assert references(store) == [first["ts"]]  # stored with the state change it told

    post(notification(alert(status="resolved")))
    worker.run_once(time.time())
    reply = posts(slack)[1]
    assert reply["body"]["thread_ts"] == first["ts"] and "RESOLVED" in reply["body"]["text"]
    assert references(store) == [first["ts"], reply["ts"]]
    (entry,) = [e for e in client.get("/api/v1/history").get_json()["entries"] if e["status"] == "resolved"]
    assert entry["deliveries"][0]["detail"] == f"ok, ts {reply['ts']}, in thread {first['ts']}"


def test_a_refire_starts_a_new_thread_and_its_resolution_replies_there(post, make_worker, slack):
    worker = make_worker()
    fire_and_resolve(post, worker)
    fire_and_resolve(post, worker)  # the same startsAt fires again: the next episode
    first, reply, refire, second_reply = posts(slack)
    assert "thread_ts" not in refire["body"] and "FIRING" in refire["body"]["text"]
    assert (reply["body"]["thread_ts"], second_reply["body"]["thread_ts"]) == (first["ts"], refire["ts"])


def test_redelivered_webhooks_send_nothing_new(post, make_worker, slack):
    worker = make_worker()
    for _ in range(2):  # Alertmanager's retry, or its HA peer's copy
        post(notification(alert()))
        worker.run_once(time.time())
    for _ in range(2):
        post(notification(alert(status="resolved")))
        worker.run_once(time.time())
    first, reply = posts(slack)
    assert reply["body"]["thread_ts"] == first["ts"]


@pytest.mark.parametrize("answers", [
    [(200, {"Retry-After": "0"}, {"ok": False, "error": "ratelimited"}), (429, {"Retry-After": "0"})],
    [(500, {}), (503, {})],
])
def test_a_reply_slack_refused_for_a_while_is_delivered_once_in_the_thread(post, make_worker, slack, store,
                                                                           answers):
    worker = make_worker()
    post(notification(alert()))
    worker.run_once(time.time())
    slack.script(answers)
    post(notification(alert(status="resolved")))
    for step in range(4):  # past each backoff (10 s, then 20 s; at most 1 m), within defer_limit
        worker.run_once(time.time() + step * 120)
    first, reply = posts(slack)
    assert reply["body"]["thread_ts"] == first["ts"]
    state, attempts, reference = storesql.query(store, "SELECT state, attempts, reference FROM outbox"
                                                       " ORDER BY id")[1]
    # A rate limit Slack asked to wait out uses no attempt; a 5xx does
    assert (state, reference) == ("delivered", reply["ts"]) and attempts == (1 if answers[0][0] == 200 else 3)


def test_a_reply_is_delivered_once_slack_is_back(post, make_worker, slack):
    worker = make_worker()
    post(notification(alert()))
    worker.run_once(time.time())
    slack.stop()  # down: connections refused
    post(notification(alert(status="resolved")))
    worker.run_once(time.time())
    slack.start()  # the same stand-in, with the messages it gave out
    worker.run_once(time.time() + 3600)
    worker.run_once(time.time() + 7200)
    first, reply = posts(slack)
    assert reply["body"]["thread_ts"] == first["ts"]


def test_resolutions_of_two_threads_in_one_batch_are_two_replies(post, make_worker, slack):
    worker = make_worker()
    for machine in ("gpu-1", "gpu-2"):
        post(notification(alert(machine=machine)))
        worker.run_once(time.time())
    post(notification(alert(machine="gpu-1", status="resolved"), alert(machine="gpu-2", status="resolved")))
    worker.run_once(time.time())
    first, second, *replies = posts(slack)
    # One reply per thread, each holding its own alert's resolution only
    told = sorted((r["body"]["thread_ts"], [a["fallback"] for a in r["body"]["attachments"]]) for r in replies)
    assert told == [(first["ts"], ["RESOLVED DiskAlmostFull: DiskAlmostFull on gpu-1"]),
                    (second["ts"], ["RESOLVED DiskAlmostFull: DiskAlmostFull on gpu-2"])]


def test_a_resolution_whose_firing_slack_never_got_is_a_new_message(post, make_worker, slack):
    worker = make_worker()
    slack.script([(200, {}, {"ok": False, "error": "channel_not_found"})])  # the firing fails for good
    fire_and_resolve(post, worker)
    (only,) = posts(slack)
    assert "thread_ts" not in only["body"] and "RESOLVED" in only["body"]["text"]


def test_a_storm_digest_is_a_new_message_and_a_later_resolution_replies_to_it(post, make_worker, slack, store):
    worker = make_worker()
    post(notification(*(alert(machine=f"gpu-{i}") for i in range(25))))
    worker.run_once(time.time())
    (digest,) = posts(slack)
    assert "thread_ts" not in digest["body"] and "Alert storm" in json.dumps(digest["body"])
    assert set(references(store)) == {digest["ts"]}
    post(notification(alert(machine="gpu-3", status="resolved")))
    worker.run_once(time.time())
    assert posts(slack)[1]["body"]["thread_ts"] == digest["ts"]


@pytest.mark.parametrize("update_parent", [True])
def test_update_parent_shows_the_first_message_as_its_alerts_now_stand(post, make_worker, slack):
    worker = make_worker()
    post(notification(alert(machine="gpu-1"), alert(machine="gpu-2")))
    worker.run_once(time.time())
    post(notification(alert(machine="gpu-1", status="resolved")))
    worker.run_once(time.time())
    first, reply = posts(slack)
    (update,) = slack.api_calls("chat.update")
    assert (update["body"]["ts"], reply["body"]["thread_ts"]) == (first["ts"], first["ts"])
    # The same two alerts as the first message, gpu-1 now resolved
    states = [(a["fallback"].split()[0], "gpu-1" in a["fallback"]) for a in update["body"]["attachments"]]
    assert states == [("RESOLVED", True), ("FIRING", False)]
    # Its headline and history link as first posted, the counts as they now stand
    assert update["body"]["text"] == first["body"]["text"].replace("[FIRING:2]", "[FIRING:1, RESOLVED:1]")


def test_the_bot_token_is_never_logged_or_stored(post, make_worker, slack, store, client, caplog):
    caplog.set_level(logging.DEBUG)
    slack.script([(500, {})])
    worker = make_worker()
    post(notification(alert()))
    worker.run_once(time.time())
    worker.run_once(time.time() + 3600)
    assert len(posts(slack)) == 1
    history = json.dumps(client.get("/api/v1/history").get_json())
    details = json.dumps(storesql.query(store, "SELECT detail FROM deliveries"))
    assert BOT_TOKEN not in caplog.text + history + details and "thr3ad" not in caplog.text + history + details
