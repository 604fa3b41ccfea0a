"""Fixtures of the rule generator's tests: a copy of the known-good spec, and the real tools."""
from __future__ import annotations

import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.rules.rules_helpers import REPO, TESTDATA
from rules_src.tools import binary


@pytest.fixture
def good(tmp_path: Path) -> Path:
    """A writable copy of testdata/good as <tmp>/rules_src, so messages read `rules_src/<file>:<line>`."""
    spec = tmp_path / "rules_src"
    shutil.copytree(TESTDATA / "good", spec)
    return spec


@pytest.fixture
def rules_copy(tmp_path: Path) -> Path:
    """A writable copy of the project's own rules_src (YAML only) as <tmp>/rules_src."""
    spec = tmp_path / "rules_src"
    shutil.copytree(REPO / "rules_src", spec, ignore=shutil.ignore_patterns("*.py", "__pycache__", "templates"))
    return spec


@pytest.fixture(scope="session")
def tools() -> None:
    """promtool and amtool must be installed: a test that needs them fails, never skips, without them."""
    for name in ("promtool", "amtool"):
        assert binary(name), f"{name} is not installed (run `make setup`)"


class _Sink(BaseHTTPRequestHandler):
    bodies: list[bytes] = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        self.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def sink():
    """An HTTP server on loopback that keeps every body posted to it: (its URL, the bodies as bytes)."""
    handler = type("Sink", (_Sink,), {"bodies": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", handler.bodies
    finally:
        server.shutdown()
        server.server_close()
