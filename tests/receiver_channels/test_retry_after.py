"""Slack's Retry-After, validated: what SlackChannel makes of each answer of the Slack stand-in, and the parser."""
from __future__ import annotations

import math
import time
from datetime import datetime, timezone
from email.utils import format_datetime

import pytest

from webhook_receiver.channels import Message, RateLimiter, SendResult, SlackChannel
from webhook_receiver.channels.model import clamp_delay, parse_retry_after

from .helpers import HISTORY, event

NOW = 1_700_000_000.0


def http_date(seconds: float) -> str:
    return format_datetime(datetime.fromtimestamp(seconds, tz=timezone.utc), usegmt=True)


def message():
    return Message("slack-oncall", [event()], HISTORY)


@pytest.mark.parametrize("header, seconds", [
    ("120", 120.0), ("0", 0.0), (" 7 ", 7.0), ("2.5", 2.5),
    ("1e9", 3600.0), ("99999999999999999999999", 3600.0), ("1e999", 3600.0), ("inf", 3600.0), ("Infinity", 3600.0),
    (http_date(NOW + 120), 120.0), (http_date(NOW - 86400), 0.0), (http_date(NOW + 86400 * 365), 3600.0),
    ("Sun Nov  6 08:49:37 1994", 0.0), ("Sunday, 06-Nov-94 08:49:37 GMT", 0.0),
    ("nan", None), ("NaN", None), ("-1", None), ("-inf", None), ("1_000", None), ("0x10", None), ("+5", None),
    ("soon", None), ("", None), ("Mon, 32 Foo 2020 99:99:99 GMT", None), (None, None),
])
def test_parse_retry_after(header, seconds):
    assert parse_retry_after(header, NOW, 3600.0) == seconds


@pytest.mark.parametrize("value, expected", [(5, 5.0), (7200.0, 3600.0), (math.inf, 3600.0), (math.nan, None),
                                             (-1.0, None), (None, None), (True, None), ("5", None)])
def test_clamp_delay(value, expected):
    assert clamp_delay(value, 3600.0) == expected


@pytest.fixture
def limiter():
    return RateLimiter(interval=0)


@pytest.fixture
def capped_slack(slack_url_file, limiter) -> SlackChannel:
    return SlackChannel("slack-oncall", webhook_url_file=str(slack_url_file), limiter=limiter, max_retry_after=600)


@pytest.mark.parametrize("header", ["nan", "-1", "garbage", ""])
def test_an_unusable_retry_after_is_a_plain_failure_and_blocks_nothing(header, capped_slack, slack_sink):
    slack_sink.script([(429, {"Retry-After": header})])
    result = capped_slack.send(message())
    assert result == SendResult(ok=False, detail=f"HTTP 429 (unusable Retry-After {header!r})")
    assert capped_slack.send(message()).ok  # nothing was remembered: the next send goes to Slack
    assert len(slack_sink.received) == 1


@pytest.mark.parametrize("header, shown", [("inf", "'inf'"), ("1e9", "'1e9' = 1000000000s"),
                                           ("86400", "86400s")])
def test_a_long_retry_after_is_capped_at_max_retry_after(header, shown, capped_slack, slack_sink, limiter):
    slack_sink.script([(429, {"Retry-After": header})])
    result = capped_slack.send(message())
    assert result == SendResult(ok=False, retry_after=600.0, detail=f"HTTP 429 (Retry-After {shown} capped to 600s)")
    held = capped_slack.send(message())  # held back by the limiter, for the capped time only
    assert not held.ok and 0 < held.retry_after <= 600
    assert slack_sink.received == []


def test_a_retry_after_date_in_the_past_means_now(capped_slack, slack_sink):
    header = http_date(time.time() - 3600)
    slack_sink.script([(429, {"Retry-After": header})])
    result = capped_slack.send(message())
    assert result.retry_after == 0.0 and not result.permanent and result.detail.endswith("= 0s)")
    assert capped_slack.send(message()).ok and len(slack_sink.received) == 1


def test_a_retry_after_date_in_the_future_is_seconds_from_now(capped_slack, slack_sink):
    slack_sink.script([(429, {"Retry-After": http_date(time.time() + 300)})])
    assert 290 <= capped_slack.send(message()).retry_after <= 300


def test_the_limiter_ignores_a_back_off_it_cannot_compare():
    limiter = RateLimiter(interval=0, max_back_off=60)
    for seconds in (math.nan, -5, 0):
        limiter.back_off("https://hooks/a", seconds)
    assert limiter.acquire("https://hooks/a") is None
    limiter.back_off("https://hooks/a", math.inf)
    assert 0 < limiter.acquire("https://hooks/a") <= 60
