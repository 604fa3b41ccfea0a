"""Local stand-ins for Slack, an SMTP server, a webhook endpoint and PagerDuty's Events API v2 that keep what they
receive (for `make up` and tests)."""
from __future__ import annotations

import argparse
import email
import email.policy
import hashlib
import hmac
import html
import itertools
import json
import os
import re
import signal
import ssl
import threading
import time
import uuid
from datetime import datetime, timezone
from email.message import EmailMessage
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

# What real Slack answers besides "ok", so a client's error handling sees realistic bodies
SLACK_BODIES = {
    400: "invalid_payload",
    403: "action_prohibited",
    404: "no_service",
    410: "channel_is_archived",
    429: "rate_limited",
}
HEADLINE = re.compile(r"\[((?:FIRING|RESOLVED)[^\]]*)\]\s*(.*?)\s*\(([^()]*)\)")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class _Store:
    """Write each received item atomically into a directory another process can read."""

    def __init__(self, directory: str | os.PathLike | None) -> None:
        self.directory = Path(directory) if directory else None
        self._seq = itertools.count(1)
        if self.directory:
            self.directory.mkdir(parents=True, exist_ok=True)

    def write(self, prefix: str, suffix: str, data: bytes) -> None:
        if not self.directory:
            return
        name = f"{prefix}-{time.time_ns()}-{next(self._seq):06d}{suffix}"
        tmp = self.directory / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, self.directory / name)  # readers never see half a file



class _BackloggedServer(ThreadingHTTPServer):
    """http.server with a listen backlog for a storm: its default of 5 drops the SYNs of Alertmanager's concurrent
    posts, which the kernel retries 1 s and 3 s later."""

    request_queue_size = 1024

class SlackSink:
    """An HTTP server that takes Slack incoming-webhook posts under /services/ and Web API calls under /api/ (with
    `bot_token`: SlackWebApi), and answers as scripted."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, store_dir=None, mail: SmtpSink | None = None,
                 bot_token: str | None = None, webhook: WebhookSink | None = None,
                 pagerduty: PagerDutySink | None = None) -> None:
        self.host, self.port = host, port
        self.mail = mail  # shown on / and /api/mail when given
        # Served on this port too, when given (`make up`: one page shows every channel type): the webhook
        # channel's documents under /hooks/, PagerDuty's Events API under /pagerduty/ (its api_url).
        self.webhook, self.pagerduty = webhook, pagerduty
        self.web_api = SlackWebApi(bot_token)
        self._store = _Store(store_dir)
        self._lock = threading.Lock()
        self._received: list[dict[str, Any]] = []
        self._script: list[tuple[int, dict[str, str], str | None]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def received(self) -> list[dict[str, Any]]:
        """Delivered posts ({path, body, received_at}; a Web API call's also its `ts`), oldest first."""
        with self._lock:
            return list(self._received)

    def api_calls(self, method: str = "chat.postMessage") -> list[dict[str, Any]]:
        """The Web API calls of `method` that succeeded, oldest first."""
        return [item for item in self.received if item["path"] == f"/api/{method}"]

    def script(self, answers) -> None:
        """Queue the next answers: [(status, headers), ...] or (status, headers, body); then 200 again.

        A body may be a dict (sent as JSON), e.g. the Web API's (200, {}, {"ok": False, "error": "ratelimited"}).
        """
        with self._lock:
            for answer in answers:
                status, headers, body = (list(answer) + [None])[:3]
                body = body if body is None or isinstance(body, str) else json.dumps(body)
                self._script.append((int(status), dict(headers or {}), body))

    def url_for(self, path: str = "/services/test") -> str:
        """The URL a client posts to."""
        return f"http://{self.host}:{self.port}{path}"

    def start(self) -> SlackSink:
        """Listen and serve in a background thread."""
        handler = type("Handler", (_SlackHandler,), {"sink": self})
        self._server = _BackloggedServer((self.host, self.port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # a short poll keeps stop() quick
            name="slack-sink",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._server = self._thread = None

    def __enter__(self) -> SlackSink:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _answer(self, path: str, body: Any) -> tuple[int, dict[str, str], str]:
        with self._lock:
            status, headers, text = self._script.pop(0) if self._script else (200, {}, None)
            if 200 <= status < 300:
                record = {"path": path, "body": body, "received_at": _now()}
                self._received.append(record)
                self._store.write("slack", ".json", json.dumps(record, indent=2).encode())
        default = "ok" if status < 300 else SLACK_BODIES.get(status, HTTPStatus(status).phrase)
        return status, headers, default if text is None else text

    def _answer_api(self, method: str, authorization: str | None, body: Any) -> tuple[int, dict[str, str], str]:
        """A scripted answer, else the Web API's (a plain scripted 200 lets the call through, with its headers)."""
        with self._lock:
            status, headers, text = self._script.pop(0) if self._script else (200, {}, None)
            if text is not None or not 200 <= status < 300:
                default = json.dumps({"ok": False, "error": "ratelimited"}) if status == 429 else \
                    HTTPStatus(status).phrase
                return status, headers, default if text is None else text
            answer = self.web_api.call(method, authorization, body)
            if answer["ok"]:
                record = {"path": f"/api/{method}", "body": body, "received_at": _now(), "ts": answer["ts"]}
                self._received.append(record)
                self._store.write("slack", ".json", json.dumps(record, indent=2).encode())
        return 200, headers, json.dumps(answer)


class _SlackHandler(BaseHTTPRequestHandler):
    sink: SlackSink

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        for prefix, stand_in, strip in (("/hooks/", self.sink.webhook, 0),
                                        ("/pagerduty/", self.sink.pagerduty, len("/pagerduty"))):
            if stand_in is not None and self.path.startswith(prefix):  # the raw body: a signature covers it
                status, headers, text = stand_in.handle_post(self.path[strip:], self.headers, raw)
                return self._reply(status, text, "application/json", headers=headers)
        try:
            body = json.loads(raw)
        except ValueError:
            return self._reply(400, "invalid_payload")
        if self.path == "/-/script":
            self.sink.script(body)
            return self._reply(200, "ok")
        if self.path.startswith("/api/"):
            status, headers, text = self.sink._answer_api(self.path[5:], self.headers.get("Authorization"), body)
            kind = "application/json; charset=utf-8" if text.startswith("{") else "text/plain"
            return self._reply(status, text, kind, headers=headers)
        if not self.path.startswith("/services/"):
            return self._reply(404, "no_service")
        status, headers, text = self.sink._answer(self.path, body)
        self._reply(status, text, headers=headers)

    def do_GET(self) -> None:
        mail = self.sink.mail
        if self.path == "/api/messages":
            self._reply(200, json.dumps(self.sink.received), "application/json")
        elif self.path == "/api/mail":
            self._reply(200, json.dumps([mail_summary(m) for m in mail.messages] if mail else []), "application/json")
        elif self.path == "/":
            hooks, pager = self.sink.webhook, self.sink.pagerduty
            page = render_page(self.sink.received, mail.messages if mail else [],
                               hooks.received if hooks else [], pager.events_received() if pager else [])
            self._reply(200, page, "text/html; charset=utf-8")
        else:
            self._reply(404, "not found")

    def _reply(self, status: int, text: str, content_type: str = "text/plain", headers=None) -> None:
        data = text.encode()
        self.send_response(status)
        for key, value in {"Content-Type": content_type, "Content-Length": str(len(data)), **(headers or {})}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would drown the test and `make up` output


def mail_summary(item: dict[str, Any]) -> dict[str, Any]:
    """The JSON /api/mail gives for one received mail."""
    message: EmailMessage = item["message"]
    part = message.get_body(preferencelist=("plain",))
    return {
        "subject": message["Subject"],
        "from": message["From"],
        "to": list(item["rcpt_tos"]),  # the envelope: who really got it
        "text": part.get_content() if part else "",
        "received_at": item["received_at"],
    }


def render_page(posts: list[dict[str, Any]], mails: list[dict[str, Any]], documents: list[dict[str, Any]] = (),
                events: list[dict[str, Any]] = ()) -> str:
    """A page listing Slack posts, mails, webhook documents and PagerDuty events, newest first, refreshed every 5 s."""
    rows = [(p["received_at"], "Slack" + (" (thread reply)" if _reply_in_thread(p) else ""), _slack_text(p["body"]))
            for p in posts]
    rows += [(m["received_at"], "Email", str(m["message"]["Subject"] or "")) for m in mails]
    rows += [(d["received_at"], "Webhook", _document_headline(d["body"])) for d in documents]
    rows += [(e.get("received_at", ""), "PagerDuty", _pagerduty_headline(e)) for e in events]
    cells = []
    for received_at, kind, headline in sorted(rows, reverse=True):
        match = HEADLINE.search(headline)
        state, name, severity = match.groups() if match else ("?", headline, "")
        css = "resolved" if state.startswith("RESOLVED") else "firing"
        cells.append(
            f'<tr class="{css}"><td>{html.escape(received_at)}</td><td>{kind}</td><td>{html.escape(state)}</td>'
            f"<td>{html.escape(name)}</td><td>{html.escape(severity)}</td></tr>"
        )
    return (
        '<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">'
        "<title>Dumont sinks</title><style>body{font-family:sans-serif}td,th{padding:4px 10px;text-align:left}"
        ".firing td:nth-child(3){color:#D00000;font-weight:bold}.resolved td:nth-child(3){color:#2EB67D}</style>"
        f"</head><body><h1>Slack posts, emails, webhook documents and PagerDuty events ({len(rows)})</h1><table>"
        "<tr><th>received</th><th>via</th><th>state</th><th>alert</th><th>severity</th></tr>"
        + "".join(cells)
        + "</table></body></html>"
    )


def _slack_text(body: Any) -> str:
    return str(body.get("text", "")) if isinstance(body, dict) else ""


def _reply_in_thread(post: dict[str, Any]) -> bool:
    return isinstance(post.get("body"), dict) and bool(post["body"].get("thread_ts"))


def _document_headline(document: Any) -> str:
    """A webhook document as a headline HEADLINE reads: `[FIRING:2] DiskAlmostFull, SyncStopped (critical)`."""
    alerts = document.get("alerts", []) if isinstance(document, dict) else []
    names = ", ".join(dict.fromkeys(str(a.get("labels", {}).get("alertname", "?")) for a in alerts))
    severities = ", ".join(dict.fromkeys(str(a.get("labels", {}).get("severity", "")) for a in alerts))
    state = str(document.get("status", "?")).upper() if isinstance(document, dict) else "?"
    return f"[{state}:{len(alerts)}] {names} ({severities})"


def _pagerduty_headline(event: dict[str, Any]) -> str:
    """A PagerDuty event as a headline: a trigger reads as FIRING, a resolve as RESOLVED."""
    payload = event.get("payload") or {}
    state = {"trigger": "FIRING", "resolve": "RESOLVED"}.get(event.get("event_action"), "?")
    return f"[{state}] {payload.get('summary', event.get('dedup_key', ''))} ({payload.get('severity', '')})"


class _Controller(Controller):
    def _trigger_server(self) -> None:
        # Asked for port 0: learn the port the OS chose before aiosmtpd connects to it
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpSink:
    """An aiosmtpd server that keeps every mail; optional STARTTLS, AUTH and scripted failures."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        store_dir=None,
        tls_context: ssl.SSLContext | None = None,
        auth: tuple[str, str] | None = None,
        data_size_limit: int = 33554432,
    ) -> None:
        self.host, self.port = host, port
        self._store = _Store(store_dir)
        self._lock = threading.Lock()
        self._messages: list[dict[str, Any]] = []
        self._failures: list[tuple[int, str]] = []
        self._auth = (auth[0].encode(), auth[1].encode()) if auth else None  # aiosmtpd hands over bytes
        self._controller = _Controller(
            self,
            hostname=host,
            port=port,
            server_hostname="smtp-sink.local",  # skips aiosmtpd's slow getfqdn()
            tls_context=tls_context,
            require_starttls=tls_context is not None,
            authenticator=self._authenticate if auth else None,
            auth_required=auth is not None and tls_context is not None,
            # aiosmtpd offers AUTH unless it is held back until STARTTLS: hold it back when there are no
            # credentials to check, and offer it in the clear only when given credentials but no TLS
            auth_require_tls=auth is None or tls_context is not None,
            data_size_limit=data_size_limit,  # advertised as SIZE; larger mails are refused with 552
        )

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Received mails ({mail_from, rcpt_tos, message: EmailMessage, received_at}), oldest first."""
        with self._lock:
            return list(self._messages)

    def fail_next(self, n: int = 1, code: int = 451, text: str = "Temporary local problem, try again") -> None:
        """Answer the next `n` mails' DATA with `code`, to simulate an outage (4xx) or a rejection (5xx)."""
        with self._lock:
            self._failures += [(code, text)] * n

    def start(self) -> SmtpSink:
        """Listen and serve in a background thread."""
        self._controller.start()
        self.port = self._controller.port
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._controller.stop(no_assert=True)

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _authenticate(self, server, session, envelope, mechanism: str, auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == self._auth
        # handled=False: aiosmtpd then answers 535 itself (handled=True would leave the client waiting)
        return AuthResult(success=ok, handled=False)

    async def handle_DATA(self, server, session, envelope) -> str:
        """aiosmtpd hook: keep the mail, or fail as scripted."""
        with self._lock:
            if self._failures:
                code, text = self._failures.pop(0)
                return f"{code} {text}"
            raw = envelope.original_content
            # Local line endings, so get_content() gives "\n" as a client would expect
            message = email.message_from_bytes(raw.replace(b"\r\n", b"\n"), policy=email.policy.default)
            rcpt_tos = list(envelope.rcpt_tos)
            self._messages.append(
                {"mail_from": envelope.mail_from, "rcpt_tos": rcpt_tos, "message": message, "received_at": _now()}
            )
            headers = f"X-Envelope-From: {envelope.mail_from}\r\nX-Envelope-To: {', '.join(rcpt_tos)}\r\n"
            self._store.write("mail", ".eml", headers.encode() + raw)
        return "250 OK"


def _hostport(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host or "127.0.0.1", int(port)


def main(argv: list[str] | None = None) -> int:
    """Run both sinks until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m deploy.local.sinks", description=__doc__)
    parser.add_argument("--http", default="127.0.0.1:9880", type=_hostport, help="Slack stand-in and page (host:port)")
    parser.add_argument("--smtp", default="127.0.0.1:2525", type=_hostport, help="SMTP stand-in (host:port)")
    parser.add_argument("--store", default=None, help="also write every post (.json) and mail (.eml) here")
    parser.add_argument("--slack-token-file", default=None,
                        help="the bot token the Slack Web API stand-in (/api/chat.*) accepts, from this file")
    parser.add_argument("--webhook-secret-file", default=None,
                        help="the webhook channel's signing secret: the stand-in under /hooks/ checks signatures")
    args = parser.parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    bot_token = Path(args.slack_token_file).read_text().strip() if args.slack_token_file else None
    secret = Path(args.webhook_secret_file).read_text().strip() if args.webhook_secret_file else None
    hooks, pager = WebhookSink(secret=secret, store_dir=args.store), PagerDutySink(store_dir=args.store)
    with SmtpSink(*args.smtp, store_dir=args.store) as smtp, SlackSink(
        *args.http, store_dir=args.store, mail=smtp, bot_token=bot_token, webhook=hooks, pagerduty=pager
    ) as slack:
        print(f"slack sink: {slack.url_for('/services/...')}  page: http://{slack.host}:{slack.port}/", flush=True)
        print(f"smtp sink: {smtp.host}:{smtp.port}", flush=True)
        while not stop.wait(0.5):
            pass
    return 0


# --- Stand-ins for the webhook and PagerDuty channels -------------------------------------------------------------

WEBHOOK_TOLERANCE = 300.0  # seconds a signed timestamp may be off: what webhook_receiver/README.md recommends
PAGERDUTY_SEVERITIES = ("critical", "error", "warning", "info")
PAGERDUTY_ACTIONS = ("trigger", "acknowledge", "resolve")


def verify_webhook(secret: str, timestamp: str | None, signature: str | None, body: bytes, now: float,
                   tolerance: float = WEBHOOK_TOLERANCE) -> str | None:
    """None when `signature` is `sha256=` HMAC-SHA256(secret, "<timestamp>.<body>") of a fresh timestamp, else why not.

    Written from the documented scheme (webhook_receiver/README.md), as a receiving system would, not from the
    channel's code: the tests that post through it check the channel against the documentation.
    """
    if not timestamp or not timestamp.isdigit():
        return "missing or malformed X-Dumont-Timestamp"
    if abs(now - int(timestamp)) > tolerance:
        return f"X-Dumont-Timestamp is more than {tolerance:g}s away from now"
    expected = "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    if not signature or not hmac.compare_digest(expected.encode(), signature.encode()):
        return "X-Dumont-Signature does not match"
    return None


class _StandIn:
    """An HTTP server in a background thread whose next answers tests can script (then its own again)."""

    name = "stand-in"

    def __init__(self, host: str, port: int, store_dir) -> None:
        self.host, self.port = host, port
        self._store = _Store(store_dir)
        self._lock = threading.Lock()
        self._script: list[tuple[int, dict[str, str], str | None]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def script(self, answers) -> None:
        """Queue the next answers: [(status, headers), ...] or (status, headers, body); then its own again."""
        with self._lock:
            for answer in answers:
                status, headers, body = (list(answer) + [None])[:3]
                self._script.append((int(status), dict(headers or {}), body))

    def _scripted(self) -> tuple[int, dict[str, str], str | None] | None:
        with self._lock:
            return self._script.pop(0) if self._script else None

    def start(self):
        """Listen (on the same port again after stop()) and serve in a background thread."""
        handler = type("Handler", (_StandInHandler,), {"sink": self})
        self._server = _BackloggedServer((self.host, self.port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port (what it received is kept)."""
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._server = self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def handle_post(self, path: str, headers, raw: bytes) -> tuple[int, dict[str, str], str]:
        raise NotImplementedError

    def handle_get(self, path: str) -> tuple[int, dict[str, str], str] | None:
        return None


class _StandInHandler(BaseHTTPRequestHandler):
    sink: _StandIn

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._reply(*self.sink.handle_post(self.path, self.headers, raw))

    def do_GET(self) -> None:
        self._reply(*(self.sink.handle_get(self.path) or (404, {}, "not found")))

    def _reply(self, status: int, headers: dict[str, str], text: str) -> None:
        data = text.encode()
        self.send_response(status)
        for key, value in {"Content-Type": "application/json", "Content-Length": str(len(data)), **headers}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class WebhookSink(_StandIn):
    """Takes the webhook channel's documents on any path: checks the signature when given the secret, keeps each."""

    name = "webhook-sink"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, secret: str | None = None,
                 tolerance: float = WEBHOOK_TOLERANCE, store_dir=None) -> None:
        super().__init__(host, port, store_dir)
        self.secret = secret
        self.tolerance = tolerance
        self._received: list[dict[str, Any]] = []
        self._rejected: list[dict[str, Any]] = []

    @property
    def received(self) -> list[dict[str, Any]]:
        """Accepted documents ({path, headers, body, raw, received_at}), oldest first."""
        with self._lock:
            return list(self._received)

    @property
    def rejected(self) -> list[dict[str, Any]]:
        """Posts refused with 401 ({path, reason}): a bad or stale signature."""
        with self._lock:
            return list(self._rejected)

    def url_for(self, path: str = "/hooks/test") -> str:
        """The URL a client posts to."""
        return f"http://{self.host}:{self.port}{path}"

    def handle_post(self, path: str, headers, raw: bytes) -> tuple[int, dict[str, str], str]:
        if self.secret is not None:
            why = verify_webhook(self.secret, headers.get("X-Dumont-Timestamp"), headers.get("X-Dumont-Signature"),
                                 raw, time.time(), self.tolerance)
            if why is not None:
                with self._lock:
                    self._rejected.append({"path": path, "reason": why})
                return 401, {}, json.dumps({"error": f"invalid signature: {why}"})
        scripted = self._scripted()
        if scripted is not None and not 200 <= scripted[0] < 300:
            status, extra, text = scripted
            return status, extra, text if text is not None else json.dumps({"error": HTTPStatus(status).phrase})
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, {}, json.dumps({"error": "the body is not JSON"})
        record = {"path": path, "headers": {k: v for k, v in headers.items() if k.lower().startswith("x-")},
                  "body": body, "raw": raw.decode("utf-8", "replace"), "received_at": _now()}
        with self._lock:
            self._received.append(record)
        self._store.write("webhook", ".json", json.dumps(record, indent=2).encode())
        return 200, {}, json.dumps({"status": "ok"})

    def handle_get(self, path: str) -> tuple[int, dict[str, str], str] | None:
        if path == "/api/documents":
            return 200, {}, json.dumps(self.received)
        return None


class PagerDutySink(_StandIn):
    """PagerDuty's Events API v2 (`POST /v2/enqueue`): validates events as it does, keeps incidents by dedup_key."""

    name = "pagerduty-sink"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, store_dir=None) -> None:
        super().__init__(host, port, store_dir)
        self._events: list[dict[str, Any]] = []
        self._arrivals: list[str] = []  # when each of _events arrived (the page's order)
        self._incidents: list[dict[str, Any]] = []
        self._open: dict[str, dict[str, Any]] = {}

    @property
    def api_url(self) -> str:
        """The base URL a pagerduty channel's api_url points at."""
        return f"http://{self.host}:{self.port}"

    @property
    def events(self) -> list[dict[str, Any]]:
        """Accepted events, as received (routing key included), oldest first."""
        with self._lock:
            return [dict(e) for e in self._events]

    def events_received(self) -> list[dict[str, Any]]:
        """Accepted events, each with `received_at`, oldest first (the page's rows)."""
        with self._lock:
            return [{**event, "received_at": at} for event, at in zip(self._events, self._arrivals)]

    @property
    def incidents(self) -> list[dict[str, Any]]:
        """Every incident ({dedup_key, status, summary, severity, source, triggers}), oldest first."""
        with self._lock:
            return [dict(i) for i in self._incidents]

    def open_incidents(self) -> dict[str, dict[str, Any]]:
        """The incidents still triggered or acknowledged, by dedup_key."""
        with self._lock:
            return {key: dict(i) for key, i in self._open.items()}

    def handle_post(self, path: str, headers, raw: bytes) -> tuple[int, dict[str, str], str]:
        if path != "/v2/enqueue":
            return 404, {}, json.dumps({"status": "not found", "message": "Not Found"})
        scripted = self._scripted()
        if scripted is not None and not 200 <= scripted[0] < 300:
            status, extra, text = scripted
            default = {429: {"status": "throttle event", "message": "Requests for this service are arriving too "
                                                                    "quickly.  Please retry later."}}.get(
                status, {"status": "unrecognized status", "message": HTTPStatus(status).phrase})
            return status, extra, text if text is not None else json.dumps(default)
        try:
            event = json.loads(raw)
        except ValueError:
            return _invalid(["Event object is not valid JSON"])
        errors = _event_errors(event)
        if errors:
            return _invalid(errors)
        key = event.get("dedup_key") or uuid.uuid4().hex
        with self._lock:
            self._events.append(event)
            self._arrivals.append(_now())
            self._apply(event, key)
        self._store.write("pagerduty", ".json", json.dumps(event, indent=2).encode())
        return 202, {}, json.dumps({"status": "success", "message": "Event processed", "dedup_key": key})

    def _apply(self, event: dict[str, Any], key: str) -> None:
        """Incident state as PagerDuty keeps it: a trigger opens one or joins the open one; resolve closes it."""
        action, incident = event["event_action"], self._open.get(key)
        if action == "trigger":
            if incident is None:
                payload = event["payload"]
                incident = {"dedup_key": key, "status": "triggered", "summary": payload["summary"],
                            "severity": payload["severity"], "source": payload["source"], "triggers": 0,
                            "opened_at": _now(), "resolved_at": None}
                self._incidents.append(incident)
                self._open[key] = incident
            incident["triggers"] += 1
        elif incident is not None and action == "acknowledge":
            incident["status"] = "acknowledged"
        elif incident is not None:  # resolve; a resolve with nothing open is accepted and changes nothing
            incident["status"], incident["resolved_at"] = "resolved", _now()
            del self._open[key]

    def handle_get(self, path: str) -> tuple[int, dict[str, str], str] | None:
        if path == "/api/incidents":
            return 200, {}, json.dumps(self.incidents)
        if path == "/api/events":
            return 200, {}, json.dumps(self.events)
        return None


def _invalid(errors: list[str]) -> tuple[int, dict[str, str], str]:
    return 400, {}, json.dumps({"status": "invalid event", "message": "Event object is invalid", "errors": errors})


def _event_errors(event: Any) -> list[str]:
    """What PagerDuty says of an invalid Events API v2 event (its wording), or nothing."""
    if not isinstance(event, dict):
        return ["Event object must be a JSON object"]
    errors = []
    routing_key = event.get("routing_key")
    if not isinstance(routing_key, str) or not routing_key.strip():
        errors.append("'routing_key' is missing or blank")
    elif len(routing_key) != 32:
        errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    action = event.get("event_action")
    if not isinstance(action, str) or not action:
        errors.append("'event_action' is missing or blank")
    elif action not in PAGERDUTY_ACTIONS:
        errors.append("'event_action' is invalid (must be one of trigger, acknowledge, resolve)")
    key = event.get("dedup_key")
    if key is not None and (not isinstance(key, str) or len(key) > 255):
        errors.append("'dedup_key' must be a string of at most 255 characters")
    if action in ("acknowledge", "resolve") and not key:
        errors.append("'dedup_key' is missing or blank")
    if action == "trigger":
        payload = event.get("payload")
        if not isinstance(payload, dict):
            return errors + ["'payload' is missing or blank"]
        for field in ("summary", "source", "severity"):
            if not isinstance(payload.get(field), str) or not payload[field].strip():
                errors.append(f"'payload.{field}' is missing or blank")
        if isinstance(payload.get("summary"), str) and len(payload["summary"]) > 1024:
            errors.append("'payload.summary' is longer than 1024 characters")
        if isinstance(payload.get("severity"), str) and payload["severity"] not in PAGERDUTY_SEVERITIES:
            errors.append("'payload.severity' is invalid (must be one of critical, error, warning, info)")
    return errors


# --- The Slack Web API, for channels with a bot token (SlackSink serves it under /api/) ---------------------------

class SlackWebApi:
    """chat.postMessage and chat.update as Slack answers them (HTTP 200, `ok` true or an `error`), with threads.

    Not thread-safe: SlackSink calls it under its lock.
    """

    def __init__(self, bot_token: str | None = None) -> None:
        self.bot_token = bot_token  # None: every call is refused (not_authed)
        self._roots: dict[tuple[str, str], str | None] = {}  # (channel, ts) -> its thread's first ts (None: is one)
        self._second = int(time.time())
        self._seq = itertools.count(1)

    def call(self, method: str, authorization: str | None, body: Any) -> dict[str, Any]:
        """Slack's answer to one call of `method`."""
        if self.bot_token is None or not authorization:
            return {"ok": False, "error": "not_authed"}
        if authorization != f"Bearer {self.bot_token}":
            return {"ok": False, "error": "invalid_auth"}
        if not isinstance(body, dict):
            return {"ok": False, "error": "invalid_arguments"}
        if method == "chat.postMessage":
            return self._post(body)
        if method == "chat.update":
            return self._update(body)
        return {"ok": False, "error": "unknown_method"}

    def delete(self, channel: str, ts: str) -> None:
        """Forget a message, as if someone deleted it in Slack (a reply to it then gets thread_not_found)."""
        self._roots.pop((channel, ts), None)

    def _post(self, body: dict) -> dict[str, Any]:
        channel = body.get("channel")
        if not isinstance(channel, str) or not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not (body.get("text") or body.get("attachments") or body.get("blocks")):
            return {"ok": False, "error": "no_text"}
        thread = body.get("thread_ts")
        if thread is not None and (not isinstance(thread, str) or (channel, thread) not in self._roots):
            return {"ok": False, "error": "thread_not_found"}
        ts = f"{self._second}.{next(self._seq):06d}"  # Slack's shape; unique per stand-in
        root = None if thread is None else (self._roots[(channel, thread)] or thread)  # a reply's reply: same thread
        self._roots[(channel, ts)] = root
        return {"ok": True, "channel": channel, "ts": ts,
                "message": {"text": body.get("text", ""), "ts": ts, **({"thread_ts": root} if root else {})}}

    def _update(self, body: dict) -> dict[str, Any]:
        channel, ts = body.get("channel"), body.get("ts")
        if not isinstance(channel, str) or not isinstance(ts, str) or (channel, ts) not in self._roots:
            return {"ok": False, "error": "message_not_found"}
        return {"ok": True, "channel": channel, "ts": ts, "text": body.get("text", "")}


if __name__ == "__main__":
    raise SystemExit(main())
