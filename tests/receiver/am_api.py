"""An HTTP stand-in for the reads of Alertmanager's API v2 that reconciliation makes: tests script what it lists."""
from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def api_time(seconds: float) -> str:
    """Unix seconds as the API writes times: RFC3339 to the millisecond."""
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class AlertmanagerApi:
    """Serves /api/v2/status, /api/v2/alerts and /api/v2/silences from its attributes; `down` answers 503."""

    def __init__(self, started_at: float | None = None):
        self.listed: list[dict] = []
        self.silences: list[dict] = []
        self.started_at = time.time() - 3600 if started_at is None else started_at
        self.down = False
        self.requests: list[str] = []
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """The base URL, as receiver.yml's alertmanager_urls lists it."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> AlertmanagerApi:
        """Serve on a free loopback port, in a thread."""
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                api.requests.append(self.path)
                if api.down:
                    self.send_error(503)
                    return
                path = self.path.split("?")[0]
                body = {"/api/v2/status": lambda: {"uptime": api_time(api.started_at), "cluster": {}},
                        "/api/v2/alerts": lambda: api.listed,
                        "/api/v2/silences": lambda: api.silences}.get(path)
                if body is None:
                    self.send_error(404)
                    return
                data = json.dumps(body()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving and close the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def list(self, alert: dict, state: str = "active", silenced_by=(), inhibited_by=()) -> None:
        """List a webhook-shaped alert (tests/receiver/payloads.alert) as the API shows it."""
        self.listed.append({
            "labels": alert["labels"], "annotations": alert["annotations"],
            "startsAt": alert["startsAt"][:23] + "Z",  # the API's milliseconds
            "endsAt": api_time(time.time() + 300), "updatedAt": api_time(time.time()),
            "generatorURL": alert["generatorURL"], "fingerprint": alert["fingerprint"], "receivers": [{"name": "x"}],
            "status": {"state": state, "silencedBy": list(silenced_by), "inhibitedBy": list(inhibited_by)}})

    def silence(self, silence_id: str, created_by: str, comment: str, ends_at: float, **matchers: str) -> None:
        """Add a silence as the API lists it."""
        self.silences.append({
            "id": silence_id, "createdBy": created_by, "comment": comment, "startsAt": api_time(time.time() - 60),
            "endsAt": api_time(ends_at), "updatedAt": api_time(time.time()), "status": {"state": "active"},
            "matchers": [{"name": name, "value": value, "isRegex": False, "isEqual": True}
                         for name, value in matchers.items()]})
