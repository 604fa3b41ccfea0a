"""The outbound heartbeat: the real relay pings a local stand-in of healthchecks.io while it works, and stops
when it stops or stalls; a hanging endpoint holds back no delivery; the URL (a secret) is never logged.

Like test_relay_isolation.py, the relay runs as `serve` runs it (run_forever: a thread per channel), and the
tests assert what happened first or what did not happen over many relay passes, never how long anything took.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from deploy.local.sinks import SlackSink
from webhook_receiver.config import ConfigError, build_config, load_config
from webhook_receiver.relay.ping import Pinger
from webhook_receiver.relay.worker import RelayWorker

from .payloads import alert, notification
from .serving import Served, free_port


class PingSink:
    """A stand-in for an outside check (healthchecks.io): counts GETs; can answer a status, or hang until released."""

    def __init__(self):
        self.status = 200
        self.hold = threading.Event()      # set: each GET waits for release() before answering
        self.released = threading.Event()
        self.pings: list[dict] = []        # answered GETs: path, user agent
        self.hanging = 0
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if sink.hold.is_set():
                    with sink._lock:
                        sink.hanging += 1
                    sink.released.wait(120)
                    with sink._lock:
                        sink.hanging -= 1
                with sink._lock:
                    sink.pings.append({"path": self.path, "agent": self.headers.get("User-Agent")})
                body = b"OK"
                self.send_response(sink.status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # the request line holds the secret path
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="ping-sink", daemon=True)
        self._thread.start()

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.pings)

    def release(self):
        self.released.set()

    def stop(self):
        self.release()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class MaybeHangingSlackSink(SlackSink):
    """The Slack stand-in; while `hold` is set, a post waits for release() before it is answered."""

    def __init__(self):
        super().__init__(port=0)
        self.hold, self.released = threading.Event(), threading.Event()
        self.hanging = 0
        self._count_lock = threading.Lock()

    def _answer(self, path, body):
        if self.hold.is_set():
            with self._count_lock:
                self.hanging += 1
            self.released.wait(120)
            with self._count_lock:
                self.hanging -= 1
        return super()._answer(path, body)


SECRET = uuid.uuid4().hex  # the check's id: whoever knows it can keep the check quiet


@pytest.fixture
def sink():
    ping_sink = PingSink()
    try:
        yield ping_sink
    finally:
        ping_sink.stop()
        # A ping the relay left hanging ends once released: no thread of ours outlives the test.
        assert wait_for(lambda: not [t for t in threading.enumerate() if t.name == "relay-heartbeat-ping"])


@pytest.fixture
def slack():
    slack_sink = MaybeHangingSlackSink().start()
    try:
        yield slack_sink
    finally:
        slack_sink.released.set()
        slack_sink.stop()


@pytest.fixture
def url_file(tmp_path, sink):
    path = tmp_path / "heartbeat_url"
    path.write_text(f"http://127.0.0.1:{sink.port}/ping/{SECRET}\n")
    return path


@pytest.fixture
def config_values(config_values, url_file):
    """Passes every 50 ms, a ping at most every 50 ms; no pass for a second is a stall."""
    return {**config_values, "relay_interval": "50ms", "relay_stall_after": "1s", "heartbeat_url_file": str(url_file),
            "heartbeat_interval": "50ms", "heartbeat_timeout": "60s"}


def wait_for(condition, timeout=60.0):
    """Poll `condition` until true; a bound against hanging, not a measured time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


class Relay:
    """A running relay (run_forever in a thread) and the number of housekeeping passes it completed."""

    def __init__(self, worker: RelayWorker):
        self.worker, self.stop_event, self.passes = worker, threading.Event(), 0
        beat = worker.beat

        def counted_beat(now):
            beat(now)
            self.passes += 1
        worker.beat = counted_beat  # run_threads calls it at the end of every completed pass
        self.thread = threading.Thread(target=worker.run_forever, args=(self.stop_event,), daemon=True)
        self.thread.start()

    def wait_passes(self, more: int) -> bool:
        target = self.passes + more
        return wait_for(lambda: self.passes >= target)

    def stop(self):
        self.stop_event.set()
        self.thread.join(60)
        assert not self.thread.is_alive()


@pytest.fixture
def running_relay(app):
    started: list[Relay] = []

    def start(**overrides) -> Relay:
        config = app.config["RECEIVER"]
        config = build_config({**{k: getattr(config, k) for k in config.__dataclass_fields__}, **overrides})
        relay = Relay(RelayWorker(app.extensions["dumont.store"], app.extensions["dumont.channels"], config))
        started.append(relay)
        return relay

    yield start
    for relay in started:
        if relay.thread.is_alive():
            relay.stop()


@pytest.fixture
def logs(caplog):
    """Every record, urllib3's DEBUG lines (which name request paths) included."""
    caplog.set_level(logging.DEBUG)
    return caplog


def metric(client, name, **labels):
    for family in text_string_to_metric_families(client.get("/metrics").get_data(as_text=True)):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


def test_pings_arrive_while_the_relay_works_and_stop_when_it_stops(running_relay, sink, client, logs):
    relay = running_relay()
    assert wait_for(lambda: sink.count >= 3)
    assert {p["path"] for p in sink.pings} == {f"/ping/{SECRET}"}  # a plain GET of the check's URL
    assert all(p["agent"] == "dumont-receiver" for p in sink.pings)
    # The relay process's counts reach the database within a second; every web worker reads them there.
    assert wait_for(lambda: (metric(client, "dumont_receiver_heartbeat_pings_total", outcome="ok") or 0) >= 3)
    assert metric(client, "dumont_receiver_heartbeat_pings_total", outcome="failed") == 0
    assert metric(client, "dumont_receiver_heartbeat_last_ok_timestamp_seconds") > time.time() - 3600

    relay.stop()
    stopped_at = sink.count
    time.sleep(1.0)  # twenty ping intervals
    assert sink.count == stopped_at
    assert f"relay.heartbeat_ping_enabled host=127.0.0.1:{sink.port} interval=0.05s" in logs.text
    assert SECRET not in logs.text


def test_a_stalled_channel_stops_the_pings_until_its_delivery_completes_a_pass(running_relay, sink, slack, post,
                                                                             app, logs):
    app.extensions["dumont.channels"].channels["slack-oncall"].timeout = 120  # the send hangs until released
    relay = running_relay()
    assert wait_for(lambda: sink.count >= 2)
    slack.hold.set()
    post(notification(alert(machine="gpu-1")))
    assert wait_for(lambda: slack.hanging == 1)  # Slack's delivery thread is stuck in its send
    assert wait_for(lambda: "relay.heartbeat_withheld" in logs.text)
    assert "the relay's delivery to slack-oncall has completed no pass since" in logs.text
    assert relay.wait_passes(5)  # a ping begun before the stall has been answered by now
    withheld = sink.count
    assert relay.wait_passes(20)  # housekeeping goes on, pass after pass...
    assert sink.count == withheld  # ... and the outside check hears nothing
    assert slack.hanging == 1

    slack.released.set()
    assert wait_for(lambda: len(slack.received) == 1)
    assert wait_for(lambda: sink.count > withheld)  # the relay works again: so do the pings
    assert "relay.heartbeat_resumed" in logs.text
    assert SECRET not in logs.text


def test_a_hanging_heartbeat_endpoint_holds_back_neither_email_nor_the_relays_passes(running_relay, sink, post,
                                                                                   smtp, logs):
    sink.hold.set()
    relay = running_relay()
    assert wait_for(lambda: sink.hanging == 1)  # the ping is sent and nothing answers
    post(notification(alert(machine="gpu-1"), receiver="email-oncall"), channel="email-oncall")
    assert wait_for(lambda: len(smtp.messages) == 1)  # the email went out meanwhile ...
    assert relay.wait_passes(10)  # ... and housekeeping (the dead man's switch, the intake) keeps its pace
    assert sink.hanging == 1 and sink.count == 0  # ... while the one ping still hangs: no second one started
    relay.stop()  # stopping does not wait for the hung ping either
    sink.release()
    assert SECRET not in logs.text


def test_failures_are_counted_and_logged_by_host_only(running_relay, sink, url_file, tmp_path, client, logs):
    sink.status = 500
    relay = running_relay()
    assert wait_for(lambda: (metric(client, "dumont_receiver_heartbeat_pings_total", outcome="failed") or 0) >= 2)
    assert f"relay.heartbeat_ping_failed host=127.0.0.1:{sink.port} error='HTTP 500'" in logs.text
    assert metric(client, "dumont_receiver_heartbeat_last_ok_timestamp_seconds") is None

    closed = free_port()  # nobody listens: refused; the URL is read again at every ping
    url_file.write_text(f"http://127.0.0.1:{closed}/ping/{SECRET}?create=1\n")
    assert wait_for(lambda: f"host=127.0.0.1:{closed} error='connection failed: Connection refused'" in logs.text)
    url_file.write_text(f"ftp://127.0.0.1/{SECRET}\n")
    assert wait_for(lambda: f"error='the URL from file {url_file} is not an http(s) URL with a host'" in logs.text)
    url_file.write_text("")
    assert wait_for(lambda: f"error='secret file {url_file} is empty'" in logs.text)

    sink.status = 200
    url_file.write_text(f"https://user:{SECRET}@127.0.0.1:{sink.port}/ping/{SECRET}\n")  # not TLS: fails
    assert wait_for(lambda: "host=127.0.0.1:%d error='connection failed" % sink.port in logs.text)
    url_file.write_text(f"http://127.0.0.1:{sink.port}/ping/{SECRET}\n")
    assert wait_for(lambda: f"relay.heartbeat_ping_ok host=127.0.0.1:{sink.port} after_failures=" in logs.text)
    relay.stop()
    assert SECRET not in logs.text
    assert any(r.name.startswith("urllib3") for r in logs.records)  # its DEBUG lines were captured, redacted


def test_no_ping_while_a_relay_thread_has_ended_or_a_channel_is_stalled(config_values, store):
    config = build_config({**config_values, "heartbeat_interval": "1h"})
    pinger = Pinger(config, store)  # not started: offer() only says whether a ping would begin
    ended = threading.Thread(target=lambda: None)
    ended.start()
    ended.join()
    now = time.time()
    assert not pinger.offer(now, {"slack-oncall": now}, [ended])
    assert not pinger.offer(now, {"slack-oncall": now - 120}, [])  # relay_stall_after is 1s
    assert pinger.offer(now, {"slack-oncall": now}, [threading.current_thread()])
    assert not pinger.offer(now, {"slack-oncall": now}, [])  # one under way, and at most one an hour


def test_the_real_serve_pings_with_the_url_from_a_variable_and_never_logs_it(tmp_path, config_values, sink,
                                                                          monkeypatch):
    monkeypatch.setenv("DUMONT_TEST_HEARTBEAT_URL", f"http://127.0.0.1:{sink.port}/ping/{SECRET}")
    values = {**config_values, "heartbeat_url_env": "DUMONT_TEST_HEARTBEAT_URL", "log_level": "debug"}
    del values["heartbeat_url_file"]
    served = Served(values, tmp_path)
    try:
        served.start()
        assert wait_for(lambda: sink.count >= 3), served.log()
        assert wait_for(lambda: 'dumont_receiver_heartbeat_pings_total{outcome="ok"}' in
                        requests.get(served.url + "/metrics", timeout=10).text)
        assert "dumont_receiver_heartbeat_last_ok_timestamp_seconds" in requests.get(served.url + "/metrics",
                                                                                     timeout=10).text
    finally:
        assert served.stop() == 0
    stopped_at = sink.count
    time.sleep(1.0)  # twenty ping intervals: the relay left with serve
    assert sink.count == stopped_at
    log = served.log()
    assert f"relay.heartbeat_ping_enabled host=127.0.0.1:{sink.port}" in log
    assert SECRET not in log


# -- configuration: like every key, errors name the file (or variable) and the key, and never quote the URL
BASE = "database: /tmp/h.db\nchannels_file: c.yml\ntoken_file: t\n"
URL = f"https://hc-ping.com/{SECRET}"


@pytest.mark.parametrize("text, env, message", [
    (BASE + f"heartbeat_url: {URL}\n", {},
     "receiver.yml: heartbeat_url: secrets are never inline; use heartbeat_url_file or heartbeat_url_env"),
    (BASE + f"heartbeat_url_file: {URL}\n", {},
     "receiver.yml: heartbeat_url_file: secrets are never inline: expected where the URL is"),
    (BASE, {"DUMONT_RECEIVER_HEARTBEAT_URL_ENV": URL},
     "environment DUMONT_RECEIVER_HEARTBEAT_URL_ENV: secrets are never inline"),
    (BASE + "heartbeat_url_env: hc-ping.com/x\n", {},
     "receiver.yml: heartbeat_url_env: expected an environment variable's name (letters, digits and _)"),
    (BASE + "heartbeat_url_file: /run/hc\nheartbeat_url_env: HC\n", {},
     "receiver.yml: heartbeat_url_env: set only one of heartbeat_url_file and heartbeat_url_env"),
    (BASE + "heartbeat_interval: 0s\n", {}, "receiver.yml: heartbeat_interval: must be greater than 0"),
    (BASE + "heartbeat_timeout: soon\n", {},
     "receiver.yml: heartbeat_timeout: expected a duration like 30s or 5m, got 'soon'"),
])
def test_config_errors_name_file_and_key_and_never_the_url(tmp_path, text, env, message):
    path = tmp_path / "receiver.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env)
    assert message in str(info.value)
    assert SECRET not in str(info.value)


def test_config_defaults_and_overrides(tmp_path):
    path = tmp_path / "receiver.yml"
    path.write_text(BASE + "heartbeat_url_file: /run/secrets/hc\nheartbeat_interval: 5m\n")
    config = load_config(path, env={})
    assert (config.heartbeat_url_file, config.heartbeat_url_env) == ("/run/secrets/hc", None)
    assert (config.heartbeat_interval, config.heartbeat_timeout) == (300, 10)
    config = load_config(path, env={"DUMONT_RECEIVER_HEARTBEAT_URL_FILE": "",
                                    "DUMONT_RECEIVER_HEARTBEAT_URL_ENV": "HC"})
    assert (config.heartbeat_url_file, config.heartbeat_url_env) == (None, "HC")
    path.write_text(BASE)
    assert Pinger.from_config(load_config(path, env={}), store=None) is None  # no heartbeat configured: no pinger
