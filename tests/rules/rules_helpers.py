"""Helpers shared by the rule generator's tests."""
from __future__ import annotations

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from rules_src.spec import load

TESTDATA = Path(__file__).parent / "testdata"
REPO = Path(__file__).resolve().parents[2]


def edit(path: Path, old: str, new: str) -> None:
    """Replace the one occurrence of `old` in `path`."""
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {path}"
    path.write_text(text.replace(old, new))


def messages(spec: Path, env: str = "test", overlay: Path | None = None) -> list[str]:
    """Every error of `env`, as the CLI prints them."""
    _, errors = load(env, spec, overlay)
    return [str(e) for e in errors]


class StandIn:
    """A stand-in Prometheus HTTP API on 127.0.0.1: `answer(request)` gives each query's status and JSON body."""

    def __init__(self, answer):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = urllib.parse.unquote_plus(self.rfile.read(length).decode() if length else self.path)
                outer.requests.append(request)
                status, body = answer(request)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, *args) -> None:  # keep the test's output clean
                pass

        self.requests: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop serving and free the port."""
        self.server.shutdown()
        self.server.server_close()
