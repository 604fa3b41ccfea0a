"""The local Slack and SMTP stand-ins: scripting over HTTP, the JSON APIs, the page, the store, the CLI."""
from __future__ import annotations

import email
import email.policy
import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from deploy.local.sinks import SlackSink, SmtpSink
from webhook_receiver.channels import EmailChannel, Message, RateLimiter, SlackChannel

from .helpers import HISTORY, event

ROOT = Path(__file__).resolve().parents[2]


def post_alert(sink: SlackSink, tmp_path: Path, status: str = "firing") -> None:
    url_file = tmp_path / "slack_url"
    url_file.write_text(sink.url_for("/services/T/B/C"))
    channel = SlackChannel("s", webhook_url_file=str(url_file), limiter=RateLimiter(interval=0))
    assert channel.send(Message("s", [event(status=status)], HISTORY)).ok


def mail_alert(port: int, status: str = "firing") -> None:
    channel = EmailChannel(
        "e", to=["oncall@example.com"], sender="alerts@dumont.cloud", smarthost=("127.0.0.1", port), require_tls=False
    )
    assert channel.send(Message("e", [event(status=status)], HISTORY)).ok


def test_slack_answers_can_be_scripted_over_http(slack_sink):
    base = f"http://127.0.0.1:{slack_sink.port}"
    assert requests.post(f"{base}/-/script", json=[[429, {"Retry-After": "2"}], [500, {}]], timeout=5).ok
    answers = [requests.post(f"{base}/services/x", json={"text": "hi"}, timeout=5) for _ in range(3)]
    assert [(a.status_code, a.text) for a in answers] == [(429, "rate_limited"), (500, "Internal Server Error"), (200, "ok")]
    assert answers[0].headers["Retry-After"] == "2"
    assert [(m["path"], m["body"]) for m in requests.get(f"{base}/api/messages", timeout=5).json()] == [
        ("/services/x", {"text": "hi"})
    ]


def test_slack_sink_rejects_what_slack_rejects(slack_sink):
    base = f"http://127.0.0.1:{slack_sink.port}"
    assert requests.post(f"{base}/services/x", data=b"{not json", timeout=5).status_code == 400
    assert requests.post(f"{base}/elsewhere", json={}, timeout=5).status_code == 404
    assert slack_sink.received == []


def test_page_and_mail_api_show_both_sinks(smtp_sink, tmp_path):
    with SlackSink(mail=smtp_sink) as slack_sink:
        post_alert(slack_sink, tmp_path)
        mail_alert(smtp_sink.port, status="resolved")
        base = f"http://127.0.0.1:{slack_sink.port}"
        [mail] = requests.get(f"{base}/api/mail", timeout=5).json()
        page = requests.get(f"{base}/", timeout=5).text
    assert (mail["subject"], mail["from"], mail["to"]) == (
        "[RESOLVED] DiskAlmostFull (critical)", "alerts@dumont.cloud", ["oncall@example.com"]
    )
    assert mail["text"].startswith("[RESOLVED] DiskAlmostFull (critical)\n")
    assert '<meta http-equiv="refresh" content="5">' in page
    rows = page.split("<tr")[2:]
    # Newest first: the mail came after the Slack post
    assert "<td>Email</td><td>RESOLVED</td><td>DiskAlmostFull</td><td>critical</td>" in rows[0]
    assert "<td>Slack</td><td>FIRING:1</td><td>DiskAlmostFull</td><td>critical</td>" in rows[1]


def test_store_dir_keeps_every_post_and_mail(tmp_path):
    store = tmp_path / "store"
    with SlackSink(store_dir=store) as slack_sink, SmtpSink(store_dir=store) as smtp_sink:
        post_alert(slack_sink, tmp_path)
        mail_alert(smtp_sink.port)
    [post] = [json.loads(p.read_text()) for p in store.glob("slack-*.json")]
    assert post["path"] == "/services/T/B/C"
    assert post["body"]["text"].startswith("*[FIRING:1] DiskAlmostFull")
    [eml] = store.glob("mail-*.eml")
    stored = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert (stored["X-Envelope-To"], stored["Subject"]) == ("oncall@example.com", "[FIRING:1] DiskAlmostFull (critical)")
    assert not list(store.glob(".*.tmp"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def sinks_process(tmp_path):
    """`python -m deploy.local.sinks` on free ports; killed if the test fails before stopping it."""
    http, smtp = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "deploy.local.sinks", "--http", f"127.0.0.1:{http}", "--smtp", f"127.0.0.1:{smtp}",
         "--store", str(tmp_path / "store")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        yield proc, http, smtp
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_cli_serves_both_sinks_and_exits_cleanly_on_sigterm(sinks_process, tmp_path):
    proc, http, smtp = sinks_process
    # The second line is printed once both sinks listen
    assert proc.stdout.readline().startswith("slack sink: ")
    assert proc.stdout.readline() == f"smtp sink: 127.0.0.1:{smtp}\n"
    mail_alert(smtp)
    assert requests.get(f"http://127.0.0.1:{http}/api/mail", timeout=5).json()[0]["subject"].startswith("[FIRING:1]")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert len(list((tmp_path / "store").glob("mail-*.eml"))) == 1

