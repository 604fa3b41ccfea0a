"""The dashboard API when its sources fail: Prometheus unset, refusing connections, too slow, or rejecting a query;
an Alertmanager slow or down. Each answer comes within dashboard_timeout and names the service and its URL."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from deploy.local.processes import free_port
from tests.receiver.am_api import AlertmanagerApi

pytestmark = pytest.mark.sqlite_only(reason="the sources' failures do not depend on the store")


class PrometheusStandIn:
    """Answers every instant query with `vector` (after `delay` seconds), or with `status` and an error."""

    def __init__(self, delay: float = 0.0, status: int = 200, vector: list | None = None):
        self.delay, self.status, self.vector = delay, status, vector or []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(stand_in.delay)
                body = ({"status": "success", "data": {"resultType": "vector", "result": stand_in.vector}}
                        if stand_in.status == 200 else
                        {"status": "error", "errorType": "bad_data", "error": "parse error: unexpected <by>"})
                data = json.dumps(body).encode()
                try:
                    self.send_response(stand_in.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the receiver gave up waiting and closed
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        """Stop serving and close the port."""
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stand_ins():
    """Stand-ins started by a test, stopped after it whatever happens."""
    started = []

    def start(stand_in):
        started.append(stand_in)
        return stand_in

    yield start
    for stand_in in started:
        stand_in.stop()


@pytest.fixture
def dashboard_client(receiver_client):
    """make(**keys): a test client of a receiver whose dashboard reads give up after half a second."""
    return lambda **extra: receiver_client(**{"dashboard_timeout": "500ms", **extra})


def _timed_get(client, path):
    started = time.monotonic()
    response = client.get(path)
    return response, time.monotonic() - started


def test_without_prometheus_url_the_api_says_what_to_set(dashboard_client):
    client = dashboard_client()
    response = client.get("/api/dashboard/metrics/realtime")
    assert response.status_code == 503
    assert "prometheus_url is not set" in response.json["error"]
    health = client.get("/api/dashboard/health").json
    assert health["services"]["prometheus"]["up"] is False and health["components"] is None


def test_a_refused_connection_is_a_503_naming_prometheus_and_its_url(dashboard_client):
    url = f"http://127.0.0.1:{free_port()}"
    client = dashboard_client(prometheus_url=url)
    for path in ("/api/dashboard/savings", "/api/dashboard/metrics/realtime"):
        response, took = _timed_get(client, path)
        assert response.status_code == 503
        assert response.json["service"] == "prometheus" and response.json["url"] == url
        assert response.json["error"] == f"prometheus at {url}: unreachable (connection failed)"


def test_a_slow_prometheus_is_a_503_within_the_timeout(dashboard_client, stand_ins):
    slow = stand_ins(PrometheusStandIn(delay=5.0))
    client = dashboard_client(prometheus_url=slow.url)
    for path in ("/api/dashboard/savings", "/api/dashboard/metrics/realtime"):
        response, took = _timed_get(client, path)
        assert response.status_code == 503
        assert response.json["url"] == slow.url
        assert "no answer within 0.5s" in response.json["error"]
        assert took < 2.5  # the deadline, not the stand-in's five seconds


def test_a_rejected_query_is_a_503_carrying_prometheus_own_words(dashboard_client, stand_ins):
    rejecting = stand_ins(PrometheusStandIn(status=400))
    response = dashboard_client(prometheus_url=rejecting.url).get("/api/dashboard/metrics/realtime")
    assert response.status_code == 503
    assert "HTTP 400: parse error: unexpected <by>" in response.json["error"]


@pytest.mark.parametrize("item", [
    {"metric": ["machine_id", "gpu-1"], "value": [0, "1"]},
    {"metric": {"machine_id": "gpu-1"}},
    {"metric": {"machine_id": "gpu-1"}, "value": [0, "one"]},
], ids=["labels-not-an-object", "no-value", "value-not-a-number"])
def test_a_malformed_vector_is_a_503_naming_prometheus(dashboard_client, stand_ins, item):
    odd = stand_ins(PrometheusStandIn(vector=[item]))
    response = dashboard_client(prometheus_url=odd.url).get("/api/dashboard/metrics/realtime")
    assert response.status_code == 503
    assert response.json["error"] == f"prometheus at {odd.url}: answered a malformed vector"


def test_a_silent_alertmanager_leaves_the_machines_and_says_alerts_are_missing(dashboard_client, stand_ins):
    machine = {"metric": {"machine_id": "gpu-1", "machine_type": "gpu", "state": "up"}, "value": [0, "12"]}
    prometheus = stand_ins(PrometheusStandIn(vector=[machine]))
    alertmanager = stand_ins(AlertmanagerApi().start())
    alertmanager.down = True
    client = dashboard_client(prometheus_url=prometheus.url, alertmanager_urls=[alertmanager.url])
    body = client.get("/api/dashboard/metrics/realtime").json
    assert [m["machine_id"] for m in body["machines"]] == ["gpu-1"]
    assert body["machines"][0]["alerts"] is None  # unknown, not "none firing"
    assert body["missing"] == [{"service": "alertmanager", "url": alertmanager.url,
                                "error": f"GET {alertmanager.url}/api/v2/status: HTTP 503"}]
    health = client.get("/api/dashboard/health").json
    assert health["services"]["alertmanagers"] == [{"url": alertmanager.url, "up": False,
                                                    "error": f"GET {alertmanager.url}/api/v2/status: HTTP 503"}]
    assert health["alerts"] is None


def test_the_api_needs_the_history_token_when_one_is_set(dashboard_client, tmp_path):
    token = tmp_path / "history_token"
    token.write_text("s3cret\n")
    client = dashboard_client(history_token_file=str(token))
    assert client.get("/api/dashboard/health").status_code == 401
    assert client.get("/dashboard").status_code == 401  # the sign-in form
    assert client.get("/api/dashboard/health", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    client.set_cookie("dumont_history_token", "s3cret")
    assert client.get("/api/dashboard/health").status_code == 200  # the page's script fetches with the cookie
