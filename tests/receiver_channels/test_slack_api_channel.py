"""SlackApiChannel (a bot token, chat.postMessage) against the Slack stand-in's Web API: threads, answers, secrets."""
from __future__ import annotations

import dataclasses
import logging

import pytest

from deploy.local.sinks import SlackSink
from webhook_receiver.channels import Message, RateLimiter, SendResult
from webhook_receiver.channels.slack_api import SlackApiChannel

from .helpers import HISTORY, event

BOT_TOKEN = "xoxb-1234-5678-s3cr3tb0t"
CHANNEL = "C0123456789"


@pytest.fixture
def slack_sink():
    with SlackSink(bot_token=BOT_TOKEN) as sink:
        yield sink


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "slack_bot_token"
    path.write_text(BOT_TOKEN + "\n")
    return path


@pytest.fixture
def channel(slack_sink, token_file) -> SlackApiChannel:
    # No spacing between posts: the limiter's own tests cover spacing with a fake clock
    return SlackApiChannel("slack-oncall", bot_token_file=str(token_file), channel=CHANNEL,
                           api_url=slack_sink.url_for("/api"), limiter=RateLimiter(interval=0))


def message(*events, digest=False, parent=None):
    return Message("slack-oncall", list(events) or [event()], HISTORY, digest=digest, parent=parent)


def resolved(thread):
    return dataclasses.replace(event(status="resolved"), thread=thread)


def test_a_firing_is_a_top_level_post_and_its_ts_the_reference(channel, slack_sink):
    result = channel.send(message())
    (post,) = slack_sink.api_calls()
    assert result == SendResult(ok=True, detail=f"ok, ts {post['ts']}", reference=post["ts"])
    assert post["body"]["channel"] == CHANNEL and "thread_ts" not in post["body"]
    assert post["body"]["text"].startswith("*[FIRING:1] DiskAlmostFull (critical)*")  # slack_format's payload


def test_a_change_with_a_thread_replies_in_it(channel, slack_sink):
    first = channel.send(message()).reference
    result = channel.send(message(resolved(first)))
    reply = slack_sink.api_calls()[-1]
    assert reply["body"]["thread_ts"] == first and "RESOLVED" in reply["body"]["text"]
    assert result.ok and result.reference == reply["ts"] and result.detail.endswith(f", in thread {first}")


def test_a_digest_is_never_a_reply_and_mixed_threads_are_a_new_message(channel, slack_sink):
    first = channel.send(message()).reference
    channel.send(message(resolved(first), digest=True))
    channel.send(message(resolved(first), event(name="SyncStopped")))
    assert [call["body"].get("thread_ts") for call in slack_sink.api_calls()] == [None, None, None]


def test_a_thread_that_is_gone_is_answered_by_a_message_of_its_own(channel, slack_sink):
    first = channel.send(message()).reference
    slack_sink.web_api.delete(CHANNEL, first)
    result = channel.send(message(resolved(first)))
    assert result.ok and result.detail.endswith("(its thread is gone: posted on its own)")
    assert "thread_ts" not in slack_sink.api_calls()[-1]["body"]


def test_update_parent_shows_the_first_message_as_it_now_stands(slack_sink, token_file):
    channel = SlackApiChannel("s", bot_token_file=str(token_file), channel=CHANNEL, update_parent=True,
                              api_url=slack_sink.url_for("/api"), limiter=RateLimiter(interval=0))
    first = channel.send(message()).reference
    now = message(event(status="resolved"))
    result = channel.send(message(resolved(first), parent=now))
    assert result.ok and result.detail.endswith("; first message updated")
    (update,) = slack_sink.api_calls("chat.update")
    assert (update["body"]["channel"], update["body"]["ts"]) == (CHANNEL, first)
    assert update["body"]["attachments"][0]["color"] == "#2EB67D" and "RESOLVED" in update["body"]["text"]
    # An update Slack refuses: the reply still counts, and the detail says what became of the update
    slack_sink.script([(200, {}), (200, {}, {"ok": False, "error": "cant_update_message"})])
    second = channel.send(message(resolved(first), parent=now))
    assert second.ok and second.detail.endswith("; first message not updated: Slack Web API error cant_update_message")
    assert len(slack_sink.api_calls("chat.update")) == 1


def test_without_update_parent_the_first_message_stays(channel, slack_sink):
    first = channel.send(message()).reference
    assert channel.send(message(resolved(first), parent=message(event(status="resolved")))).ok
    assert slack_sink.api_calls("chat.update") == []


@pytest.mark.parametrize("error", ["channel_not_found", "invalid_auth", "not_in_channel", "is_archived"])
def test_web_api_errors_are_permanent_and_named(channel, slack_sink, error):
    slack_sink.script([(200, {}, {"ok": False, "error": error})])
    assert channel.send(message()) == SendResult(ok=False, permanent=True, detail=f"Slack Web API error {error}")


def test_a_wrong_token_is_invalid_auth(slack_sink, tmp_path):
    wrong = tmp_path / "wrong"
    wrong.write_text("xoxb-wrong\n")
    channel = SlackApiChannel("s", bot_token_file=str(wrong), channel=CHANNEL, api_url=slack_sink.url_for("/api"),
                              limiter=RateLimiter(interval=0))
    assert channel.send(message()) == SendResult(ok=False, permanent=True, detail="Slack Web API error invalid_auth")


def test_internal_error_and_5xx_are_retried(channel, slack_sink):
    slack_sink.script([(200, {}, {"ok": False, "error": "internal_error"}), (503, {})])
    assert channel.send(message()) == SendResult(ok=False, detail="Slack Web API error internal_error")
    assert channel.send(message()) == SendResult(ok=False, detail="HTTP 503")
    assert channel.send(message()).ok


def test_ratelimited_waits_as_slack_says_and_holds_further_posts_back(channel, slack_sink):
    slack_sink.script([(200, {"Retry-After": "30"}, {"ok": False, "error": "ratelimited"})])
    assert channel.send(message()) == SendResult(ok=False, retry_after=30.0, detail="ratelimited (Retry-After 30s)")
    held = channel.send(message())
    assert not held.ok and not held.permanent and 0 < held.retry_after <= 30
    assert slack_sink.api_calls() == []


@pytest.mark.parametrize(("header", "expected"), [
    ("7", SendResult(ok=False, retry_after=7.0, detail="HTTP 429 (Retry-After 7s)")),
    ("86400", SendResult(ok=False, retry_after=3600.0, detail="HTTP 429 (Retry-After 86400s capped to 3600s)")),
    ("soon", SendResult(ok=False, detail="HTTP 429 (unusable Retry-After 'soon')")),
    (None, SendResult(ok=False, detail="HTTP 429")),
])
def test_http_429_retry_after_is_validated_and_capped(channel, slack_sink, header, expected):
    slack_sink.script([(429, {"Retry-After": header} if header else {})])
    assert channel.send(message()) == expected


def test_an_answer_that_is_not_the_web_apis_is_retried(channel, slack_sink):
    slack_sink.script([(200, {}, "<html>captive portal</html>")])
    assert channel.send(message()) == SendResult(
        ok=False, detail="HTTP 200 without a Web API answer (is api_url Slack's?)")


def test_connection_refused_is_retryable(token_file, refused_port):
    channel = SlackApiChannel("s", bot_token_file=str(token_file), channel=CHANNEL,
                              api_url=f"http://127.0.0.1:{refused_port}/api", limiter=RateLimiter(interval=0))
    assert channel.send(message()) == SendResult(ok=False, detail="connection failed: Connection refused")


def test_the_token_is_read_at_every_send_from_its_file_or_variable(slack_sink, token_file, monkeypatch, tmp_path):
    monkeypatch.setenv("DUMONT_TEST_SLACK_BOT", BOT_TOKEN)
    by_env = SlackApiChannel("s", bot_token_env="DUMONT_TEST_SLACK_BOT", channel=CHANNEL,
                             api_url=slack_sink.url_for("/api"), limiter=RateLimiter(interval=0))
    assert by_env.send(message()).ok
    missing = tmp_path / "nope"
    result = SlackApiChannel("s", bot_token_file=str(missing), channel=CHANNEL).send(message())
    assert result == SendResult(ok=False, permanent=True,
                                detail=f"cannot read secret file {missing}: No such file or directory")
    token_file.write_text("xoxb with spaces\n")
    result = SlackApiChannel("s", bot_token_file=str(token_file), channel=CHANNEL).send(message())
    assert result == SendResult(ok=False, permanent=True,
                                detail=f"the bot token in file {token_file} holds spaces or control characters")


def test_the_token_is_never_in_a_detail_or_a_log(channel, slack_sink, caplog):
    caplog.set_level(logging.DEBUG)
    # A server that echoes what it was sent must not carry the token into the history either
    slack_sink.script([(400, {}, f"bad request from Bearer {BOT_TOKEN}"), (500, {}), (429, {})])
    details = [channel.send(message()).detail for _ in range(4)]
    assert details[0] == "HTTP 400 bad request from Bearer <token>"
    assert all(BOT_TOKEN not in detail for detail in details)
    assert BOT_TOKEN not in caplog.text and "s3cr3t" not in caplog.text
