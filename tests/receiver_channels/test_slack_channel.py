"""SlackChannel against the real SlackSink HTTP server: delivery, Slack's answers, secrets."""
from __future__ import annotations

import logging

from webhook_receiver.channels import HeartbeatChannel, Message, RateLimiter, SendResult, SlackChannel

from .helpers import HISTORY, SLACK_SECRET_PATH, event


def message(*events, digest=False):
    return Message("slack-oncall", list(events) or [event()], HISTORY, digest=digest)


def test_delivers_the_payload_to_the_webhook(slack, slack_sink):
    assert slack.send(message()) == SendResult(ok=True, detail="HTTP 200")
    [post] = slack_sink.received
    assert post["path"] == SLACK_SECRET_PATH
    assert post["body"]["text"].startswith("*[FIRING:1] DiskAlmostFull (critical)*")


def test_429_reports_retry_after_and_holds_further_posts_back(slack, slack_sink):
    slack_sink.script([(429, {"Retry-After": "30"})])
    assert slack.send(message()) == SendResult(ok=False, retry_after=30.0, detail="HTTP 429 (Retry-After 30s)")
    # The next send does not post into the back-off window Slack asked for
    held = slack.send(message())
    assert not held.ok and not held.permanent and 0 < held.retry_after <= 30
    assert slack_sink.received == []


def test_429_without_retry_after_is_retryable(slack, slack_sink):
    slack_sink.script([(429, {})])
    assert slack.send(message()) == SendResult(ok=False, retry_after=None, detail="HTTP 429")


def test_500_is_retryable(slack, slack_sink):
    slack_sink.script([(500, {})])
    assert slack.send(message()) == SendResult(ok=False, detail="HTTP 500")


def test_404_is_permanent_and_names_slacks_reason(slack, slack_sink):
    slack_sink.script([(404, {})])
    assert slack.send(message()) == SendResult(ok=False, permanent=True, detail="HTTP 404 no_service")


def test_after_scripted_failures_the_sink_accepts_again(slack, slack_sink):
    slack_sink.script([(500, {}), (503, {})])
    assert [slack.send(message()).ok for _ in range(3)] == [False, False, True]
    assert len(slack_sink.received) == 1


def test_connection_refused_is_retryable(tmp_path, refused_port):
    url_file = tmp_path / "url"
    url_file.write_text(f"http://127.0.0.1:{refused_port}{SLACK_SECRET_PATH}\n")
    channel = SlackChannel("s", webhook_url_file=str(url_file), limiter=RateLimiter(interval=0))
    assert channel.send(message()) == SendResult(ok=False, detail="connection failed: Connection refused")


def test_missing_secret_file_is_permanent_and_names_the_path(tmp_path):
    missing = tmp_path / "nope"
    result = SlackChannel("s", webhook_url_file=str(missing)).send(message())
    assert result == SendResult(
        ok=False, permanent=True, detail=f"cannot read secret file {missing}: No such file or directory"
    )


def test_missing_env_variable_is_permanent(monkeypatch):
    monkeypatch.delenv("DUMONT_TEST_SLACK_URL", raising=False)
    result = SlackChannel("s", webhook_url_env="DUMONT_TEST_SLACK_URL").send(message())
    assert result == SendResult(
        ok=False, permanent=True, detail="environment variable DUMONT_TEST_SLACK_URL is not set or empty"
    )


def test_url_from_env_and_a_rotated_file_are_read_at_send_time(monkeypatch, slack, slack_url_file, slack_sink):
    monkeypatch.setenv("DUMONT_TEST_SLACK_URL", slack_sink.url_for("/services/from-env"))
    assert SlackChannel("s", webhook_url_env="DUMONT_TEST_SLACK_URL").send(message()).ok
    slack_url_file.write_text(slack_sink.url_for("/services/rotated"))
    assert slack.send(message()).ok
    assert [p["path"] for p in slack_sink.received] == ["/services/from-env", "/services/rotated"]


def test_an_invalid_url_is_permanent_and_not_quoted(tmp_path):
    url_file = tmp_path / "url"
    url_file.write_text("not-a-url/s3cr3t-t0ken\n")
    result = SlackChannel("s", webhook_url_file=str(url_file)).send(message())
    assert result == SendResult(ok=False, permanent=True, detail=f"the webhook URL from file {url_file} is not valid")


def test_the_secret_never_reaches_logs_or_results(caplog, slack, slack_sink, refused_port, tmp_path):
    caplog.set_level(logging.DEBUG)
    slack_sink.script([(429, {"Retry-After": "0"}), (500, {}), (404, {})])
    results = [slack.send(message()) for _ in range(4)]
    url_file = tmp_path / "refused"
    url_file.write_text(f"http://127.0.0.1:{refused_port}{SLACK_SECRET_PATH}")
    results.append(SlackChannel("s", webhook_url_file=str(url_file), limiter=RateLimiter(0)).send(message()))
    assert [r.ok for r in results] == [False, False, False, True, False]
    assert any(r.name.startswith("urllib3") for r in caplog.records)  # the redaction was exercised
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "s3cr3t-t0ken" not in logged
    assert "s3cr3t-t0ken" not in repr(results)


def test_a_heartbeat_channel_refuses_to_send():
    result = HeartbeatChannel("watchdog").send(message())
    assert result == SendResult(ok=False, permanent=True, detail="watchdog is a heartbeat channel; nothing is relayed")
