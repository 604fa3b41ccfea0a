"""EmailChannel against the real aiosmtpd SmtpSink: content, STARTTLS, AUTH and SMTP's answers."""
from __future__ import annotations

import logging

from deploy.local.sinks import SmtpSink
from webhook_receiver.channels import EmailChannel, Message, SendResult
from webhook_receiver.channels import email as email_channel

from .helpers import HISTORY, SMTP_PASSWORD, event


def message(*events, digest=False):
    return Message("email-oncall", list(events) or [event()], HISTORY, digest=digest)


def plain(sink, **overrides) -> EmailChannel:
    """A channel to `sink` without TLS, as the local stack uses."""
    config = dict(to=["oncall@example.com"], sender="alerts@dumont.cloud", smarthost=("127.0.0.1", sink.port))
    return EmailChannel("email-oncall", **{"require_tls": False, **config, **overrides})


def secure(sink, test_ca, password_file, **overrides) -> EmailChannel:
    """A channel that requires STARTTLS, trusts the test CA and logs in."""
    return plain(
        sink,
        require_tls=True,
        ca_file=str(test_ca["ca"]),
        username="alerts",
        password_file=str(password_file),
        **overrides,
    )


def test_mail_has_subject_text_and_html_parts(smtp_sink):
    events = [event(), event("SyncStalled", severity="warning")]
    assert plain(smtp_sink).send(message(*events)) == SendResult(ok=True, detail="sent to 1 recipient(s)")
    [mail] = smtp_sink.messages
    assert mail["mail_from"] == "alerts@dumont.cloud"
    assert mail["rcpt_tos"] == ["oncall@example.com"]
    msg = mail["message"]
    assert msg["Subject"] == "[FIRING:2] DiskAlmostFull, SyncStalled (critical)"
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(preferencelist=("plain",)).get_content()
    assert text.startswith("[FIRING:2] DiskAlmostFull, SyncStalled (critical)\n\nFIRING · DiskAlmostFull · critical\n")
    for line in [
        "DiskAlmostFull on gpu-1",
        "Machine: gpu-1",
        "Description: Disk / is 95% full",
        "Runbook: https://runbooks.example/DiskAlmostFull.md",
        "Source: http://prometheus:9090/graph?g0.expr=x&g0.tab=1",
        f"History: {HISTORY}",
    ]:
        assert line + "\n" in text
    page = msg.get_body(preferencelist=("html",)).get_content()
    assert "border-left:6px solid #D00000" in page  # critical firing: red
    assert "border-left:6px solid #F2A900" in page  # warning firing: orange
    assert f'<a href="{HISTORY}">Alert history</a>' in page
    assert 'href="http://prometheus:9090/graph?g0.expr=x&amp;g0.tab=1"' in page


def test_resolved_mail_is_green(smtp_sink):
    assert plain(smtp_sink).send(message(event(status="resolved"))).ok
    msg = smtp_sink.messages[0]["message"]
    assert msg["Subject"] == "[RESOLVED] DiskAlmostFull (critical)"
    assert "Resolved: 2024-05-01T10:05:00Z\n" in msg.get_body(preferencelist=("plain",)).get_content()
    assert "border-left:6px solid #2EB67D" in msg.get_body(preferencelist=("html",)).get_content()


def test_digest_mail_is_a_summary(smtp_sink):
    events = [event(fingerprint=f"d{i}") for i in range(30)] + [event("SyncStalled", status="resolved")]
    assert plain(smtp_sink).send(message(*events, digest=True)).ok
    msg = smtp_sink.messages[0]["message"]
    assert msg["Subject"] == "[FIRING:30, RESOLVED:1] DiskAlmostFull, SyncStalled (critical)"
    text = msg.get_body(preferencelist=("plain",)).get_content()
    assert "Alert storm: 31 alerts (30 firing, 1 resolved)\n" in text
    assert "  - DiskAlmostFull (critical): 30 firing\n  - SyncStalled (critical): 1 resolved\n" in text
    assert text.count("  - FIRING gpu-1: DiskAlmostFull on gpu-1") == 5
    assert text.endswith(f"Every alert, in full: {HISTORY}\n")
    assert "Alert storm: 31 alerts" in msg.get_body(preferencelist=("html",)).get_content()


def _assert_summary_of_too_many_details(msg, alerts):
    text = msg.get_body(preferencelist=("plain",)).get_content()
    assert f"Too many details for one email: {alerts} alerts ({alerts} firing, 0 resolved)\n" in text
    assert text.endswith(f"Every alert, in full: {HISTORY}\n")
    assert "x" * 100 not in text  # the giant descriptions stay in the history
    assert f'<a href="{HISTORY}">Alert history</a>' in msg.get_body(preferencelist=("html",)).get_content()


def test_details_larger_than_the_servers_size_become_a_summary():
    events = [event(fingerprint=f"big{i}", description="x" * 3000) for i in range(5)]
    with SmtpSink(data_size_limit=8000) as sink:  # advertises SIZE 8000; the details are ~35 KB
        assert plain(sink).send(message(*events)).ok
        [mail] = sink.messages
    _assert_summary_of_too_many_details(mail["message"], 5)


def test_details_over_the_receivers_own_cap_become_a_summary(smtp_sink, monkeypatch):
    monkeypatch.setattr(email_channel, "MAX_EMAIL_BYTES", 8000)  # the sink allows 32 MiB
    events = [event(fingerprint=f"big{i}", description="x" * 3000) for i in range(3)]
    assert plain(smtp_sink).send(message(*events)).ok
    _assert_summary_of_too_many_details(smtp_sink.messages[0]["message"], 3)
    assert plain(smtp_sink).send(message(event(description="x" * 1000))).ok  # one fits: details kept
    assert "x" * 1000 in smtp_sink.messages[1]["message"].get_body(preferencelist=("plain",)).get_content()


def test_alerts_alertmanager_left_out_are_said_in_both_parts(smtp_sink):
    events = [event(fingerprint=f"d{i}") for i in range(30)]
    for digest in (False, True):
        assert plain(smtp_sink).send(Message("email-oncall", events, HISTORY, digest=digest, left_out=1500)).ok
    for mail in smtp_sink.messages:
        line = ("Alertmanager left 1,500 more alerts of these groups out of its posts (max_alerts): they are in"
                " Alertmanager, not in the alert history.")
        assert f"\n\n{line}\n\n" in mail["message"].get_body(preferencelist=("plain",)).get_content()
        assert f"<p><i>{line}</i></p>" in mail["message"].get_body(preferencelist=("html",)).get_content()


def test_starttls_and_auth_with_a_password_file(tls_smtp_sink, test_ca, password_file):
    result = secure(tls_smtp_sink, test_ca, password_file).send(message())
    assert result == SendResult(ok=True, detail="sent to 1 recipient(s)")
    assert len(tls_smtp_sink.messages) == 1


def test_wrong_password_is_permanent(tls_smtp_sink, test_ca, tmp_path):
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    result = secure(tls_smtp_sink, test_ca, wrong).send(message())
    assert (result.ok, result.permanent, result.detail[:8]) == (False, True, "SMTP 535")
    assert tls_smtp_sink.messages == []


def test_require_tls_fails_when_starttls_is_not_offered(smtp_sink, test_ca):
    result = plain(smtp_sink, require_tls=True, ca_file=str(test_ca["ca"])).send(message())
    assert result == SendResult(
        ok=False, permanent=True, detail=f"127.0.0.1:{smtp_sink.port} does not offer STARTTLS and require_tls is true"
    )
    assert smtp_sink.messages == []


def test_an_untrusted_certificate_is_permanent(tls_smtp_sink):
    # No ca_file: the system CAs do not know the test CA
    result = plain(tls_smtp_sink, require_tls=True).send(message())
    assert (result.ok, result.permanent) == (False, True)
    assert result.detail.startswith("TLS certificate rejected: ")


def test_451_is_retryable_and_550_permanent(smtp_sink):
    channel = plain(smtp_sink)
    smtp_sink.fail_next(1, code=451)
    assert channel.send(message()) == SendResult(ok=False, detail="SMTP 451 Temporary local problem, try again")
    smtp_sink.fail_next(1, code=550, text="Mailbox unavailable")
    assert channel.send(message()) == SendResult(ok=False, permanent=True, detail="SMTP 550 Mailbox unavailable")
    assert channel.send(message()).ok
    assert len(smtp_sink.messages) == 1


def test_connection_refused_is_retryable(refused_port):
    channel = EmailChannel(
        "e", to=["a@example.com"], sender="b@example.com", smarthost=("127.0.0.1", refused_port), require_tls=False
    )
    assert channel.send(message()) == SendResult(ok=False, detail="SMTP connection failed: Connection refused")


def test_missing_password_file_is_permanent_and_names_the_path(tls_smtp_sink, test_ca, tmp_path):
    missing = tmp_path / "missing_password"
    result = secure(tls_smtp_sink, test_ca, missing).send(message())
    assert result == SendResult(
        ok=False, permanent=True, detail=f"cannot read secret file {missing}: No such file or directory"
    )


def test_a_server_without_auth_needs_no_password(smtp_sink, tmp_path):
    # The local stack overrides smarthost and require_tls but keeps username and password_file
    channel = plain(smtp_sink, username="alerts", password_file=str(tmp_path / "absent"))
    assert channel.send(message()).ok


def test_credentials_are_never_sent_without_tls(tmp_path, password_file):
    from deploy.local.sinks import SmtpSink

    with SmtpSink(auth=("alerts", SMTP_PASSWORD)) as sink:  # offers AUTH in the clear
        result = plain(sink, username="alerts", password_file=str(password_file)).send(message())
        assert sink.messages == []
    assert result == SendResult(
        ok=False, permanent=True, detail="refusing to send SMTP credentials without TLS (set require_tls: true)"
    )


def test_missing_ca_file_is_permanent_and_names_the_path(tls_smtp_sink, tmp_path):
    missing = tmp_path / "missing_ca.pem"
    result = plain(tls_smtp_sink, require_tls=True, ca_file=str(missing)).send(message())
    assert result == SendResult(ok=False, permanent=True, detail=f"cannot load CA file {missing}")


def test_password_from_env_and_never_in_logs_or_results(monkeypatch, caplog, tls_smtp_sink, test_ca, tmp_path):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("DUMONT_TEST_SMTP_PASSWORD", SMTP_PASSWORD)
    channel = plain(
        tls_smtp_sink, require_tls=True, ca_file=str(test_ca["ca"]), username="alerts",
        password_env="DUMONT_TEST_SMTP_PASSWORD",
    )
    results = [channel.send(message())]
    monkeypatch.setenv("DUMONT_TEST_SMTP_PASSWORD", SMTP_PASSWORD + "-rotated")
    results.append(channel.send(message()))
    assert [r.ok for r in results] == [True, False]
    assert SMTP_PASSWORD not in "\n".join(r.getMessage() for r in caplog.records)
    assert SMTP_PASSWORD not in repr(results)
