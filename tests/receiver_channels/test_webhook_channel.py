"""WebhookChannel against the real WebhookSink over loopback: the document, its signature, headers, answers, secrets."""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from pathlib import Path

import jsonschema
import pytest
import requests

from deploy.local.sinks import WebhookSink, verify_webhook
from webhook_receiver.channels import Message, RateLimiter, SendResult
from webhook_receiver.channels.webhook import WebhookChannel
from webhook_receiver.channels.webhook_format import build_document, encode, sign
from webhook_receiver.channels.webhook_headers import SecretValue

from .helpers import event

SECRET = "wh-s1gning-s3cret"
URL_TOKEN = "s3cr3t-hook-path"
SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs" / "webhook-document.schema.json").read_text())
ONE = "http://receiver.test/alerts/fp-DiskAlmostFull-firing"


@pytest.fixture
def sink():
    with WebhookSink(secret=SECRET) as s:
        yield s


@pytest.fixture
def files(tmp_path, sink):
    paths = {"url": tmp_path / "url", "secret": tmp_path / "secret", "auth": tmp_path / "auth"}
    paths["url"].write_text(sink.url_for(f"/hooks/{URL_TOKEN}") + "\n")
    paths["secret"].write_text(SECRET + "\n")
    paths["auth"].write_text("Bearer h3ader-t0ken\n")
    return paths


def channel(files, **extra) -> WebhookChannel:
    options = {"url_file": str(files["url"]), "secret_file": str(files["secret"]),
               "limiter": RateLimiter(interval=0), **extra}
    return WebhookChannel("hook", **options)


def message(*events, history=ONE, left_out=0, receiver="http://receiver.test"):
    return Message("hook", list(events) or [event()], history, left_out=left_out, receiver_url=receiver)


def test_posts_a_signed_document(files, sink):
    assert channel(files).send(message()) == SendResult(ok=True, detail="HTTP 200")
    (got,) = sink.received
    assert got["path"] == f"/hooks/{URL_TOKEN}" and sink.rejected == []
    doc = got["body"]
    assert doc == {
        "version": "1", "receiver": "http://receiver.test", "channel": "hook", "status": "firing", "left_out": 0,
        "history_url": ONE,
        "alerts": [{"status": "firing", "fingerprint": "fp-DiskAlmostFull-firing", "episode": 0,
                    "labels": {"alertname": "DiskAlmostFull", "severity": "critical", "machine_id": "gpu-1"},
                    "annotations": {"summary": "DiskAlmostFull on gpu-1", "description": "Disk / is 95% full",
                                    "runbook_url": "https://runbooks.example/DiskAlmostFull.md"},
                    "starts_at": "2024-05-01T10:00:00Z", "ends_at": None,
                    "generator_url": "http://prometheus:9090/graph?g0.expr=x&g0.tab=1", "history_url": ONE}]}
    stamp = got["headers"]["X-Dumont-Timestamp"]
    expected = hmac.new(SECRET.encode(), stamp.encode() + b"." + got["raw"].encode(), hashlib.sha256).hexdigest()
    assert got["headers"]["X-Dumont-Signature"] == f"sha256={expected}"


def test_the_documented_snippet_verifies_and_catches_tampering():
    body = encode(build_document(message(event(), event(status="resolved"))))
    signature = sign(SECRET, "1700000000", body)
    assert verify_webhook(SECRET, "1700000000", signature, body, 1700000100) is None
    assert verify_webhook(SECRET, "1700000000", signature, body.replace(b"gpu-1", b"gpu-2"), 1700000100) is not None
    assert verify_webhook("another", "1700000000", signature, body, 1700000100) is not None
    assert verify_webhook(SECRET, "1700000000", signature, body, 1700000301) is not None  # older than 5 minutes
    assert verify_webhook(SECRET, None, signature, body, 1700000100) is not None


def test_status_is_firing_if_any_alert_fires_and_each_alert_links_its_page():
    batch = "https://alerts.example/dumont/?channel=hook&since=2024-05-01T10%3A00%3A00.000000000Z"
    doc = build_document(message(event(status="resolved"), event(name="B"), history=batch, left_out=7,
                                 receiver="https://alerts.example/dumont"))
    assert (doc["status"], doc["receiver"], doc["left_out"]) == ("firing", "https://alerts.example/dumont", 7)
    assert doc["alerts"][1]["history_url"] == "https://alerts.example/dumont/alerts/fp-B-firing"
    assert build_document(message(event(status="resolved")))["status"] == "resolved"


def test_a_lone_surrogate_is_sent_as_valid_json(files, sink):
    odd = event(summary="bad \ud800 text")
    assert channel(files).send(message(odd)).ok
    assert sink.received[0]["body"]["alerts"][0]["annotations"]["summary"] == "bad \ufffd text"


def test_without_a_secret_there_is_no_signature(files):
    with WebhookSink() as open_sink:  # verifies nothing
        files["url"].write_text(open_sink.url_for("/hooks/open"))
        assert WebhookChannel("hook", url_file=str(files["url"]), limiter=RateLimiter(0)).send(message()).ok
        (got,) = open_sink.received
    assert "X-Dumont-Signature" not in got["headers"] and got["headers"]["X-Dumont-Timestamp"].isdigit()


def test_extra_headers_and_secret_ones_read_at_every_send(files, monkeypatch):
    seen = []

    class Recording(WebhookSink):
        def handle_post(self, path, headers, raw):
            seen.append((headers.get("Authorization"), headers.get("X-Api-Key"), headers.get("X-Team")))
            return super().handle_post(path, headers, raw)

    monkeypatch.setenv("DUMONT_TEST_HOOK_KEY", "k-1")
    with Recording(secret=SECRET) as recording:
        files["url"].write_text(recording.url_for("/hooks/x"))
        hook = channel(files, headers={"X-Team": "sre", "Authorization": SecretValue(file=str(files["auth"])),
                                       "X-Api-Key": SecretValue(env="DUMONT_TEST_HOOK_KEY")})
        assert hook.send(message()).ok
        files["auth"].write_text("Bearer rotated\n")
        monkeypatch.setenv("DUMONT_TEST_HOOK_KEY", "k-2")
        assert hook.send(message()).ok
        assert len(recording.received) == 2 and recording.rejected == []
    assert seen == [("Bearer h3ader-t0ken", "k-1", "sre"), ("Bearer rotated", "k-2", "sre")]


@pytest.mark.parametrize("answer, expected", [
    ((500, {}), SendResult(ok=False, detail="HTTP 500")),
    ((503, {}), SendResult(ok=False, detail="HTTP 503")),
    ((429, {}), SendResult(ok=False, detail="HTTP 429")),
    ((429, {"Retry-After": "30"}), SendResult(ok=False, retry_after=30.0, detail="HTTP 429 (Retry-After 30s)")),
    ((429, {"Retry-After": "1e9"}), SendResult(ok=False, retry_after=3600.0,
                                                detail="HTTP 429 (Retry-After '1e9' = 1000000000s capped to 3600s)")),
    ((429, {"Retry-After": "soon"}), SendResult(ok=False, detail="HTTP 429 (unusable Retry-After 'soon')")),
    ((404, {}, "no such hook   here\n"), SendResult(ok=False, permanent=True, detail="HTTP 404 no such hook here")),
    ((422, {}, "x" * 500), SendResult(ok=False, permanent=True, detail="HTTP 422 " + "x" * 120)),
    ((301, {"Location": "http://elsewhere/"}, ""), SendResult(ok=False, permanent=True, detail="HTTP 301")),
])
def test_answers(files, sink, answer, expected):
    sink.script([answer])
    assert channel(files).send(message()) == expected
    assert sink.received == []


def test_a_429_holds_further_posts_back_for_as_long_as_it_said(files, sink):
    now = [1000.0]
    hook = channel(files, limiter=RateLimiter(interval=0, clock=lambda: now[0]))
    sink.script([(429, {"Retry-After": "30"})])
    assert hook.send(message()).retry_after == 30.0
    held = hook.send(message())
    assert (held.ok, held.permanent, held.retry_after) == (False, False, 30.0) and sink.received == []
    now[0] += 30
    assert hook.send(message()).ok and len(sink.received) == 1


def test_retry_after_is_capped_by_the_relays_defer_limit(files, sink):
    sink.script([(429, {"Retry-After": "600"})])
    assert channel(files, max_retry_after=60.0).send(message()).retry_after == 60.0


def test_a_bad_signature_is_refused_by_the_sink_and_permanent(files, sink):
    files["secret"].write_text("wrong")
    result = channel(files).send(message())
    assert result == SendResult(ok=False, permanent=True,
                                detail='HTTP 401 {"error": "invalid signature: X-Dumont-Signature does not match"}')
    assert sink.received == [] and len(sink.rejected) == 1


def test_a_forged_post_is_refused_with_401(sink):
    body = encode(build_document(message()))
    stamp = "1700000000"
    answer = requests.post(sink.url_for(), data=body, timeout=5,
                           headers={"X-Dumont-Timestamp": stamp, "X-Dumont-Signature": sign(SECRET, stamp, body)})
    assert answer.status_code == 401 and "more than 300s away" in answer.text  # a replay of an old post
    stamp = str(int(time.time()))
    answer = requests.post(sink.url_for(), data=body + b" ", timeout=5,
                           headers={"X-Dumont-Timestamp": stamp, "X-Dumont-Signature": sign(SECRET, stamp, body)})
    assert answer.status_code == 401 and "does not match" in answer.text
    assert sink.received == []


def test_unreadable_secrets_are_permanent_and_named(files, tmp_path, monkeypatch):
    missing = tmp_path / "nope"
    assert channel(files, url_file=str(missing)).send(message()) == SendResult(
        ok=False, permanent=True, detail=f"cannot read secret file {missing}: No such file or directory")
    assert channel(files, secret_file=str(missing)).send(message()).detail.startswith("cannot read secret file")
    monkeypatch.delenv("DUMONT_TEST_NONE", raising=False)
    hook = channel(files, headers={"X-Key": SecretValue(env="DUMONT_TEST_NONE")})
    assert hook.send(message()) == SendResult(
        ok=False, permanent=True, detail="environment variable DUMONT_TEST_NONE is not set or empty")
    files["auth"].write_text("two\nlines\n")
    hook = channel(files, headers={"Authorization": SecretValue(file=str(files["auth"]))})
    assert hook.send(message()) == SendResult(ok=False, permanent=True, detail=(
        f"header Authorization from file {files['auth']} holds a line break, a control character or a character"
        " beyond Latin-1"))
    files["auth"].write_text("Bearer \u2603\n")
    assert "beyond Latin-1" in hook.send(message()).detail


def test_connection_refused_and_a_bad_url_never_quote_the_url(files, refused_port):
    files["url"].write_text(f"http://127.0.0.1:{refused_port}/hooks/{URL_TOKEN}")
    assert channel(files).send(message()) == SendResult(ok=False, detail="connection failed: Connection refused")
    files["url"].write_text(f"not-a-url/{URL_TOKEN}")
    assert channel(files).send(message()) == SendResult(
        ok=False, permanent=True, detail=f"the URL from file {files['url']} is not valid")


def test_no_secret_in_results_or_logs(caplog, files, sink, refused_port):
    caplog.set_level(logging.DEBUG)
    hook = channel(files, headers={"Authorization": SecretValue(file=str(files["auth"]))})
    sink.script([(429, {"Retry-After": "0"}), (500, {}), (400, {}, "you sent Bearer h3ader-t0ken to s3cr3t-hook-path")])
    results = [hook.send(message()) for _ in range(4)]
    files["url"].write_text(f"http://127.0.0.1:{refused_port}/hooks/{URL_TOKEN}")
    results.append(hook.send(message()))
    assert [r.ok for r in results] == [False, False, False, True, False]
    assert results[2].detail == "HTTP 400 you sent <redacted> to <redacted>"
    assert any(r.name.startswith("urllib3") for r in caplog.records)
    logged = "\n".join(r.getMessage() for r in caplog.records) + repr(results)
    for secret in (URL_TOKEN, SECRET, "h3ader-t0ken"):
        assert secret not in logged


def test_documents_of_every_shape_validate_against_the_schema():
    resolved_without_end = event(status="resolved")
    resolved_without_end = type(resolved_without_end)(**{**resolved_without_end.__dict__, "ends_at": None,
                                                         "starts_at": "2024-05-01T10:00:00.000000000Z"})
    doc = build_document(message(resolved_without_end, left_out=3))
    jsonschema.validate(doc, SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**doc, "version": "2"}, SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**doc, "alerts": [{**doc["alerts"][0], "episode": -1}]}, SCHEMA)


def test_the_readme_snippet_verifies_what_the_channel_signs(files, sink):
    readme = (Path(__file__).resolve().parents[2] / "webhook_receiver" / "README.md").read_text()
    snippet = readme.split("**Signature.**", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(snippet, namespace)  # the documented code, as a receiving system would paste it
    verify = namespace["verify"]
    assert channel(files).send(message()).ok
    (got,) = sink.received
    raw, headers = got["raw"].encode(), got["headers"]
    assert verify(SECRET.encode(), headers, raw)
    assert not verify(SECRET.encode(), headers, raw.replace(b"gpu-1", b"gpu-9"))
    assert not verify(b"another secret", headers, raw)
    assert not verify(SECRET.encode(), headers, raw, now=int(headers["X-Dumont-Timestamp"]) + 301)
    assert not verify(SECRET.encode(), {}, raw)
