"""The relay worker: delivery through real sinks, retries, failures, restarts and storm digests."""
import json
import os
import time

import pytest

from webhook_receiver import create_app
from webhook_receiver.channels import formatting as fmt
from webhook_receiver.relay.worker import RelayWorker
from webhook_receiver.store.base import StorageError

from . import storesql
from .payloads import alert, notification


def outbox(store):
    return storesql.query(store, "SELECT channel, state, attempts, due_at, detail FROM outbox ORDER BY id")


def test_delivers_to_slack_and_email(post, make_worker, slack, smtp, client):
    post(notification(alert()), channel="slack-oncall")
    post(notification(alert(), receiver="email-oncall"), channel="email-oncall")
    assert make_worker().run_once(time.time()) == 2
    assert len(slack.received) == 1 and len(smtp.messages) == 1
    (entry,) = client.get("/api/v1/history").get_json()["entries"]
    assert sorted((d["channel"], d["state"], d["attempts"]) for d in entry["deliveries"]) == [
        ("email-oncall", "delivered", 1), ("slack-oncall", "delivered", 1)]


def test_one_group_is_one_message(post, make_worker, slack):
    post(notification(alert(machine="gpu-1"), alert(machine="gpu-2"), alert(machine="gpu-3")))
    make_worker().run_once(time.time())
    assert len(slack.received) == 1


def test_restart_delivers_what_a_crashed_relay_claimed(post, app, relay_pass_after_restart, slack):
    post(notification(alert(machine="gpu-1"), alert(machine="gpu-2")))
    store = app.extensions["dumont.store"]
    store.apply_intake()  # the relay's pass applies the intake before it claims
    assert len(store.claim("slack-oncall", time.time(), None)) == 2  # claimed, then the relay "crashed"
    assert [row[1] for row in outbox(store)] == ["sending", "sending"]

    relay_pass_after_restart()
    assert len(slack.received) == 1
    assert [row[1] for row in outbox(store)] == ["delivered", "delivered"]


def test_slack_down_then_up_loses_nothing(post, make_worker, slack, store):
    post(notification(alert()))
    slack.script([(500, {})])
    worker = make_worker()
    now = time.time()
    worker.run_once(now)
    (row,) = outbox(store)
    assert row[1:3] == ("pending", 1) and row[3] > now and row[4] == "HTTP 500"
    worker.run_once(now)  # not due yet: nothing is sent
    assert slack.received == []
    worker.run_once(now + 3600)
    assert len(slack.received) == 1
    assert outbox(store)[0][1:3] == ("delivered", 2)


def test_smtp_down_then_up_loses_nothing(post, make_worker, smtp, store):
    post(notification(alert(), receiver="email-oncall"), channel="email-oncall")
    smtp.fail_next(1)
    worker = make_worker()
    now = time.time()
    worker.run_once(now)
    assert outbox(store)[0][1] == "pending" and smtp.messages == []
    worker.run_once(now + 3600)
    assert len(smtp.messages) == 1 and outbox(store)[0][1] == "delivered"


def test_retry_limit_marks_failed_and_history_shows_it(post, make_worker, slack, client):
    post(notification(alert()))
    slack.script([(503, {})] * 3)
    # A firing alert's message is re-sent past max_attempts until give_up_after (test_relay_give_up.py):
    # here the third attempt is already past it.
    worker = make_worker(give_up_after="1h")
    now = time.time()
    for hours in range(3):
        worker.run_once(now + hours * 3600)
    assert slack.received == []
    (entry,) = client.get("/api/v1/history").get_json()["entries"]
    (delivery,) = entry["deliveries"]
    assert (delivery["state"], delivery["attempts"]) == ("failed", 3)
    assert delivery["detail"] == "HTTP 503 (gave up after 3 attempts, give_up_after 3600s after the first)"
    timeline = client.get(f"/api/v1/alerts/{entry['fingerprint']}").get_json()["timeline"]
    assert [(a["ok"], a["detail"]) for a in timeline[0]["deliveries"][0]["attempt_log"]] == [
        (False, "HTTP 503")] * 3
    worker.run_once(now + 10 * 3600)  # failed is final
    assert slack.received == []


def test_permanent_failure_fails_at_once(post, make_worker, slack, store):
    post(notification(alert()))
    slack.script([(404, {})])
    make_worker().run_once(time.time())
    assert outbox(store)[0][1:3] == ("failed", 1)


def test_retry_after_is_respected(post, make_worker, slack, store):
    post(notification(alert()))
    slack.script([(429, {"Retry-After": "120"})])
    now = time.time()
    make_worker().run_once(now)
    state, attempts, due_at, detail = outbox(store)[0][1:5]
    # A deferral Slack asked for: due when it said, and no attempt used up.
    assert (state, attempts, detail) == ("pending", 0, "HTTP 429 (Retry-After 120s)") and due_at >= now + 120


def test_rate_limiting_never_uses_up_the_attempts(post, make_worker, slack, store, client):
    post(notification(alert()))
    slack.script([(429, {"Retry-After": "0"})] * 3)  # more 429s than max_attempts allows failures
    worker = make_worker(max_attempts=2)
    now = time.time()
    for seconds in range(4):
        worker.run_once(now + seconds)
    assert len(slack.received) == 1
    assert outbox(store)[0][1:3] == ("delivered", 1)
    (entry,) = client.get("/api/v1/history").get_json()["entries"]
    timeline = client.get(f"/api/v1/alerts/{entry['fingerprint']}").get_json()["timeline"]
    attempt_log = timeline[0]["deliveries"][0]["attempt_log"]
    assert [(a["ok"], a["detail"]) for a in attempt_log] == [(False, "HTTP 429 (Retry-After 0s)")] * 3 + [
        (True, "HTTP 200")]


def test_deferrals_count_as_attempts_past_the_defer_limit(post, make_worker, slack, store):
    post(notification(alert()))
    slack.script([(429, {"Retry-After": "0"})] * 2)
    worker = make_worker(max_attempts=2, defer_limit="10s", give_up_after="30m")
    now = time.time()
    worker.run_once(now + 60)  # the change arrived over 10 s ago: this 429 is counted
    assert outbox(store)[0][1:3] == ("pending", 1)
    worker.run_once(now + 3600)
    assert outbox(store)[0][1:3] == ("failed", 2) and slack.received == []


def test_failure_on_one_channel_never_resends_to_the_other(post, make_worker, slack, smtp, store):
    post(notification(alert()), channel="slack-oncall")
    post(notification(alert(), receiver="email-oncall"), channel="email-oncall")
    smtp.fail_next(1)
    worker = make_worker()
    now = time.time()
    worker.run_once(now)
    worker.run_once(now + 3600)
    assert len(slack.received) == 1 and len(smtp.messages) == 1
    assert {(row[0], row[1]) for row in outbox(store)} == {("slack-oncall", "delivered"),
                                                            ("email-oncall", "delivered")}


def test_storm_becomes_one_digest(post, make_worker, slack, store, client):
    post(notification(*(alert(machine=f"gpu-{i}") for i in range(25))))
    assert make_worker().run_once(time.time()) == 1
    (post_,) = slack.received
    assert {row[1] for row in outbox(store)} == {"delivered"}
    entries = client.get("/api/v1/history?limit=1").get_json()["entries"]
    fingerprint = entries[0]["fingerprint"]
    (event,) = client.get(f"/api/v1/alerts/{fingerprint}").get_json()["timeline"]
    assert event["deliveries"][0]["attempt_log"][0]["digest"] is True
    body = json.dumps(post_["body"])
    assert "25 alerts* (25 firing, 0 resolved)" in body  # the digest speaks of all of them
    assert "[FIRING:25]" in post_["body"]["text"] and "since=" in post_["body"]["text"]  # linking to them


def test_a_digest_says_how_many_alerts_alertmanager_left_out_of_its_posts(post, make_worker, slack):
    group = notification(*(alert(machine=f"gpu-{i}") for i in range(25)))
    group["truncatedAlerts"] = 1500  # max_alerts: 25 of a group of 1,525
    post(group)
    group["alerts"][0] = alert(machine="gpu-25")  # the group's next post, 1,500 still left out: counted once
    post(group)
    other = notification(alert("SyncStalled", machine="gpu-1"))
    other["truncatedAlerts"] = 7
    post(other)
    assert make_worker().run_once(time.time()) == 1
    (digest,) = slack.received
    assert ("_Alertmanager left 1,507 more alerts of these groups out of its posts (max_alerts): they are in"
            " Alertmanager, not in the alert history._") in digest["body"]["text"]


def test_a_digest_counted_in_the_database_says_what_every_row_would(post, store):
    severities = ["critical", "Critical", "warning", "info", "page", "page", "pager", None]
    alerts = []
    for i in range(60):
        one = alert(f"Alert{i % 13}", machine=f"gpu-{i}", severity=severities[i % len(severities)] or "",
                    status="resolved" if i % 4 == 0 else "firing")
        if severities[i % len(severities)] is None:
            del one["labels"]["severity"]  # no severity label at all
        alerts.append(one)
    unnamed = alert(machine="gpu-60")
    del unnamed["labels"]["alertname"]
    post(notification(*alerts[:30]))
    post(notification(*alerts[30:], unnamed))
    now = time.time()
    store.apply_intake()  # the relay's pass applies the intake before it claims
    every_row = [item.event for item in store.claim("slack-oncall", now, None)]
    assert store.release_claims() == 61
    items, groups, examples = store.claim_digest("slack-oncall", now, 5000, fmt.EXAMPLES, fmt.SEVERITIES)
    summary = fmt.summarize_groups(groups, examples)
    assert summary == fmt.summarize(every_row)
    assert summary.hidden_groups > 0 and summary.worst_firing == "critical" and "(unnamed alert)" in summary.names
    assert len(items) == 61 and {item.event for item in items} == {None}
    assert store.claim_digest("slack-oncall", now, 5000, fmt.EXAMPLES, fmt.SEVERITIES) == ([], [], [])


def test_below_the_storm_threshold_batches(post, make_worker, slack):
    post(notification(*(alert(machine=f"gpu-{i}") for i in range(7))))
    assert make_worker().run_once(time.time()) == 2  # batch_size 5: 5 + 2
    assert len(slack.received) == 2


def test_an_unrecorded_send_is_recorded_later_and_never_sent_twice(post, make_worker, slack, store):
    post(notification(alert()))
    worker = make_worker()
    real_finish, calls = store.finish, []

    def finish_failing_once(*args):
        calls.append(args)
        if len(calls) == 1:
            raise StorageError("database is locked (writer lock)")
        return real_finish(*args)

    store.finish = finish_failing_once
    now = time.time()
    with pytest.raises(StorageError):
        worker.run_once(now)
    assert len(slack.received) == 1 and outbox(store)[0][1] == "sending"  # sent, still claimed
    worker.run_once(now + 3600)
    assert len(slack.received) == 1 and outbox(store)[0][1:3] == ("delivered", 1)


@pytest.mark.sqlite_only("the SQLite relay lock file; PostgreSQL takes any number of relays (test_postgres_relays.py)")
def test_a_second_relay_on_the_same_database_is_refused(app, config_values, make_worker):
    make_worker()
    other = create_app(config_values)
    try:
        with pytest.raises(StorageError, match=r"another relay is running on .*history\.db"):
            RelayWorker(other.extensions["dumont.store"], other.extensions["dumont.channels"],
                        other.config["RECEIVER"])
    finally:
        other.extensions["dumont.store"].close()


def test_rows_that_failed_in_one_message_retry_in_one(post, make_worker, slack, store):
    post(notification(alert(machine="gpu-1"), alert(machine="gpu-2"), alert(machine="gpu-3")))
    slack.script([(500, {})])
    worker = make_worker()
    now = time.time()
    worker.run_once(now)
    assert len({row[3] for row in outbox(store)}) == 1  # one due time for the whole message
    worker.run_once(now + 3600)
    assert len(slack.received) == 1


def test_rows_of_one_message_with_different_attempts_each_get_their_own_backoff(post, make_worker, slack,
                                                                              store, client):
    post(notification(alert(machine="gpu-1")))
    slack.script([(500, {}), (500, {})])
    worker = make_worker(backoff_initial="10s", backoff_max="1h")
    now = time.time()
    worker.run_once(now)  # gpu-1 fails once
    post(notification(alert(machine="gpu-2")))
    worker.run_once(now + 3600)  # gpu-1 (second attempt) and gpu-2 (first) fail in one message
    (first, second) = outbox(store)
    assert (first[1:3], second[1:3]) == (("pending", 2), ("pending", 1))
    # Exponential backoff per row, one jitter for the message: gpu-1 waits twice as long as gpu-2.
    assert first[3] - (now + 3600) == pytest.approx(2 * (second[3] - (now + 3600)), rel=1e-6)
    for machine, attempts in (("gpu-1", 2), ("gpu-2", 1)):
        fingerprint = alert(machine=machine)["fingerprint"]
        (delivery,) = client.get(f"/api/v1/alerts/{fingerprint}").get_json()["timeline"][0]["deliveries"]
        assert [attempt["ok"] for attempt in delivery["attempt_log"]] == [False] * attempts
    slack.script([])
    worker.run_once(now + 3 * 3600)
    assert [row[1:3] for row in outbox(store)] == [("delivered", 3), ("delivered", 2)]


def test_a_digest_speaks_for_at_most_digest_max_rows(post, make_worker, slack, store, monkeypatch):
    monkeypatch.setattr("webhook_receiver.relay.worker.DIGEST_MAX", 10)
    post(notification(*(alert(machine=f"gpu-{i}") for i in range(25))))
    worker = make_worker()
    now = time.time()
    assert worker.run_once(now) == 1  # a digest of 10
    assert [row[1] for row in outbox(store)].count("delivered") == 10
    assert worker.run_once(now) == 3  # the 15 left are below the storm threshold: batches of 5
    assert [row[1] for row in outbox(store)].count("delivered") == 25
    assert "10 alerts* (10 firing, 0 resolved)" in json.dumps(slack.received[0]["body"])


@pytest.mark.sqlite_only("SQLite's WAL checkpoints")
def test_the_relay_checkpoints_so_webhooks_never_do(post, make_worker, store):
    for i in range(20):
        post(notification(alert(machine=f"gpu-{i}")))
    before = os.path.getsize(store.path)
    make_worker().run_once(time.time())
    assert os.path.getsize(store.path) > before  # the WAL's pages reached the database file
