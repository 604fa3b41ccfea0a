"""Whatever Retry-After Slack answers, email goes on, the pages answer, and the message is delivered later.

Against the Slack stand-in and the SMTP stand-in, with the relay driven by `now` (no test waits): the Slack
channel's limiter is given the same clock, so a back-off it remembers ends when the test says.
"""
import math
import time
from email.utils import format_datetime
from datetime import datetime, timezone

import pytest

from webhook_receiver.channels import RateLimiter

from . import storesql
from .payloads import alert, notification

HOUR = 3600.0  # defer_limit's default, which the test config keeps


def http_date(seconds: float) -> str:
    return format_datetime(datetime.fromtimestamp(seconds, tz=timezone.utc), usegmt=True)


class Now:
    """The test's clock, shared by the relay passes and the Slack limiter."""

    def __init__(self):
        self.value = time.time()

    def __call__(self) -> float:
        return self.value


def slack_row(store):
    return storesql.query(store, "SELECT state, attempts, due_at, detail FROM outbox WHERE channel = 'slack-oncall'")[0]


# (Retry-After, how it is taken: "deferred" for `seconds` without using an attempt, or "failure")
CASES = {
    "nan": ("nan", "failure", None),
    "inf": ("inf", "deferred", HOUR),
    "negative": ("-1", "failure", None),
    "huge": ("1e9", "deferred", HOUR),
    "past date": (lambda now: http_date(now - 86400), "deferred", 0.0),
    "future date": (lambda now: http_date(now + 86400 * 400), "deferred", HOUR),
    "near date": (lambda now: http_date(now + 120), "deferred", 120.0),
    "garbage": ("soon, maybe", "failure", None),
    "empty": ("", "failure", None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_any_retry_after_leaves_email_delivering_and_the_message_delivered_later(
        case, app, post, make_worker, slack, smtp, store, client):
    header, treatment, seconds = CASES[case]
    post(notification(alert(machine="gpu-1")))
    post(notification(alert(machine="gpu-1"), receiver="email-oncall"), channel="email-oncall")
    now = Now()  # after the posts: ingest stamps them with the real time
    app.extensions["dumont.channels"].channels["slack-oncall"].limiter = RateLimiter(
        interval=0, clock=now, sleep=lambda _: None)
    slack.script([(429, {"Retry-After": header(now.value) if callable(header) else header})])
    worker = make_worker(start=now.value)

    worker.run_once(now.value)
    assert len(smtp.messages) == 1  # email was not held back by Slack's answer
    state, attempts, due_at, detail = slack_row(store)
    assert state == "pending" and math.isfinite(due_at) and detail.startswith("HTTP 429")
    if treatment == "deferred":
        assert attempts == 0  # what Slack asked for, capped: no attempt used
        assert due_at - now.value == pytest.approx(seconds, abs=2)
    else:
        assert attempts == 1 and "unusable Retry-After" in detail
        assert now.value < due_at <= now.value + 10  # an ordinary failure: backoff_initial, jittered
    # Every page and API still answers.
    fingerprint = alert(machine="gpu-1")["fingerprint"]
    for path in ("/api/v1/history", f"/api/v1/alerts/{fingerprint}", "/", f"/alerts/{fingerprint}", "/metrics"):
        assert client.get(path).status_code == 200, path
    (entry,) = client.get("/api/v1/history").get_json()["entries"]
    assert {d["channel"]: d["state"] for d in entry["deliveries"]} == {"slack-oncall": "pending",
                                                                      "email-oncall": "delivered"}

    now.value = due_at + 1  # Slack has recovered (its script is empty: 200)
    worker.run_once(now.value)
    assert len(slack.received) == 1 and slack_row(store)[0] == "delivered"
    assert len(smtp.messages) == 1


def test_a_retry_after_past_defer_limit_since_the_change_uses_an_attempt(post, make_worker, slack, store):
    post(notification(alert()))
    slack.script([(429, {"Retry-After": "inf"})])
    now = time.time() + 2 * HOUR  # the change arrived two hours before this pass
    make_worker().run_once(now)
    state, attempts, due_at, _ = slack_row(store)
    assert (state, attempts) == ("pending", 1) and due_at == pytest.approx(now + HOUR, abs=1)


def test_a_channel_answering_nonsense_is_validated_by_the_relay_too(app, post, make_worker, store, client):
    """A channel (a bug, a future one) that returns nan or inf as retry_after cannot park a message."""
    from webhook_receiver.channels.model import SendResult

    answers = iter([SendResult(False, retry_after=math.nan, detail="nan"),
                    SendResult(False, retry_after=math.inf, detail="inf")])
    channel = app.extensions["dumont.channels"].channels["slack-oncall"]
    channel.send = lambda message: next(answers)
    post(notification(alert()))
    now = time.time()
    worker = make_worker()
    worker.run_once(now)
    state, attempts, due_at, _ = slack_row(store)
    assert (state, attempts) == ("pending", 1) and now < due_at <= now + 10  # nan: no Retry-After
    worker.run_once(due_at)
    state, attempts, due_at2, _ = slack_row(store)
    assert (state, attempts) == ("pending", 1) and due_at2 == pytest.approx(due_at + HOUR)  # inf: the cap
    assert client.get("/").status_code == 200
