"""Local stand-ins for Slack and an SMTP server that keep what they receive (for `make up` and tests)."""
from __future__ import annotations

import argparse
import email
import email.policy
import html
import itertools
import json
import os
import re
import signal
import ssl
import threading
import time
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


class SlackSink:
    """An HTTP server that takes Slack incoming-webhook posts under /services/ and answers as scripted."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, store_dir=None, mail: SmtpSink | None = None) -> None:
        self.host, self.port = host, port
        self.mail = mail  # shown on / and /api/mail when given
        self._store = _Store(store_dir)
        self._lock = threading.Lock()
        self._received: list[dict[str, Any]] = []
        self._script: list[tuple[int, dict[str, str], str | None]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def received(self) -> list[dict[str, Any]]:
        """Delivered posts ({path, body, received_at}), oldest first."""
        with self._lock:
            return list(self._received)

    def script(self, answers) -> None:
        """Queue the next answers: [(status, headers), ...] or (status, headers, body); then 200 again."""
        with self._lock:
            for answer in answers:
                status, headers, body = (list(answer) + [None])[:3]
                self._script.append((int(status), dict(headers or {}), body))

    def url_for(self, path: str = "/services/test") -> str:
        """The URL a client posts to."""
        return f"http://{self.host}:{self.port}{path}"

    def start(self) -> SlackSink:
        """Listen and serve in a background thread."""
        handler = type("Handler", (_SlackHandler,), {"sink": self})
        self._server = ThreadingHTTPServer((self.host, self.port), handler)
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


class _SlackHandler(BaseHTTPRequestHandler):
    sink: SlackSink

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw)
        except ValueError:
            return self._reply(400, "invalid_payload")
        if self.path == "/-/script":
            self.sink.script(body)
            return self._reply(200, "ok")
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
            self._reply(200, render_page(self.sink.received, mail.messages if mail else []), "text/html; charset=utf-8")
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


def render_page(posts: list[dict[str, Any]], mails: list[dict[str, Any]]) -> str:
    """A page listing Slack posts and mails, newest first, refreshed every 5 s."""
    rows = [(p["received_at"], "Slack", _slack_text(p["body"])) for p in posts]
    rows += [(m["received_at"], "Email", str(m["message"]["Subject"] or "")) for m in mails]
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
        f"</head><body><h1>Slack posts and emails ({len(rows)})</h1><table>"
        "<tr><th>received</th><th>via</th><th>state</th><th>alert</th><th>severity</th></tr>"
        + "".join(cells)
        + "</table></body></html>"
    )


def _slack_text(body: Any) -> str:
    return str(body.get("text", "")) if isinstance(body, dict) else ""


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
    args = parser.parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with SmtpSink(*args.smtp, store_dir=args.store) as smtp, SlackSink(
        *args.http, store_dir=args.store, mail=smtp
    ) as slack:
        print(f"slack sink: {slack.url_for('/services/...')}  page: http://{slack.host}:{slack.port}/", flush=True)
        print(f"smtp sink: {smtp.host}:{smtp.port}", flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
