"""Never give up silently: past max_attempts a firing alert's message is re-sent until give_up_after, and a
channel that keeps failing shows on /metrics, /api/v1/relay and the pages' banner.

Against the Slack and SMTP stand-ins; the test config has max_attempts 3, backoff_max 1m.
"""
import time

from flask import render_template_string
from prometheus_client.parser import text_string_to_metric_families

from . import storesql
from .payloads import alert, notification

HOUR = 3600


def samples(client):
    text = client.get("/metrics").get_data(as_text=True)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def failing(client, channel):
    return samples(client)[("dumont_receiver_channel_failing", (("channel", channel),))]


def slack_row(store):
    return storesql.query(store, "SELECT state, attempts, detail FROM outbox WHERE channel = 'slack-oncall'")[0]


def banner(app, client):
    """What the one-line banner in base.html would show (see ops.relay_problems)."""
    with app.test_request_context("/"):
        return render_template_string("{% for p in relay_problems() %}{{ p }}\n{% endfor %}")


def test_a_long_outage_past_max_attempts_is_delivered_after_recovery(app, post, make_worker, slack, smtp,
                                                                   store, client):
    post(notification(alert()))
    post(notification(alert(machine="gpu-2")), channel="email-oncall")
    slack.script([(503, {})] * 6)  # twice max_attempts
    worker = make_worker()
    now = time.time()
    assert failing(client, "slack-oncall") == 0
    for hour in range(6):
        worker.run_once(now + hour * HOUR)
        assert slack_row(store)[:2] == ("pending", hour + 1)  # never failed while the alert fires
    assert slack.received == [] and len(smtp.messages) == 1
    metrics = samples(client)
    assert metrics[("dumont_receiver_channel_failing", (("channel", "slack-oncall"),))] == 1
    assert metrics[("dumont_receiver_channel_consecutive_failures", (("channel", "slack-oncall"),))] == 6
    assert metrics[("dumont_receiver_channel_failing", (("channel", "email-oncall"),))] == 0
    assert ("dumont_receiver_channel_last_success_timestamp_seconds", (("channel", "email-oncall"),)) in metrics
    relay = client.get("/api/v1/relay").get_json()
    assert relay["channels"]["slack-oncall"]["failing"] and relay["channels"]["slack-oncall"]["detail"] == "HTTP 503"
    assert "channel slack-oncall is failing: 6 failed attempt(s) since" in banner(app, client)

    worker.run_once(now + 6 * HOUR)  # Slack is back
    assert len(slack.received) == 1 and slack_row(store)[:2] == ("delivered", 7)
    assert failing(client, "slack-oncall") == 0 and banner(app, client) == ""
    assert not client.get("/api/v1/relay").get_json()["problems"]


def test_a_resolved_alerts_exhausted_message_is_not_sent_again(post, make_worker, slack, store):
    post(notification(alert()))
    slack.script([(503, {})] * 3)
    worker = make_worker()
    now = time.time()
    worker.run_once(now)
    worker.run_once(now + HOUR)
    post(notification(alert(status="resolved")), channel="email-oncall")  # resolved meanwhile
    worker.run_once(now + 2 * HOUR)  # the third failure: the alert no longer fires
    state, attempts, detail = slack_row(store)
    assert (state, attempts) == ("failed", 3)
    assert detail == "HTTP 503 (gave up after 3 attempts: the alert is no longer firing)"
    worker.run_once(now + 3 * HOUR)
    assert slack.received == [] and slack_row(store)[:2] == ("failed", 3)


def test_the_horizon_ends_the_re_sending(post, make_worker, slack, store, client):
    post(notification(alert()))
    slack.script([(503, {})] * 10)
    worker = make_worker(give_up_after="4h")
    now = time.time()
    for hour in range(5):
        worker.run_once(now + hour * HOUR)
    state, attempts, detail = slack_row(store)
    assert (state, attempts) == ("failed", 5)  # 4 h after its first attempt, though still firing
    assert detail == "HTTP 503 (gave up after 5 attempts, give_up_after 14400s after the first)"
    assert samples(client)[("dumont_receiver_failed_total", (("channel", "slack-oncall"),))] == 1
    worker.run_once(now + 6 * HOUR)
    assert slack_row(store)[:2] == ("failed", 5) and slack.received == []
    assert failing(client, "slack-oncall") == 1  # still visible: nothing has succeeded since


def test_a_rate_limit_deferral_does_not_make_a_channel_failing(post, make_worker, slack, client):
    post(notification(alert()))
    slack.script([(429, {"Retry-After": "30"})])
    make_worker().run_once(time.time())
    assert failing(client, "slack-oncall") == 0
