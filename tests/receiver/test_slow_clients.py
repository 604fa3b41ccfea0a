"""Slow and idle connections against the real `dumont-receiver serve`: webhooks are answered meanwhile."""
from __future__ import annotations

import json
import re
import select
import socket
import sqlite3
import threading
import time

import pytest
import requests

from .conftest import TOKEN
from .payloads import alert, notification
from .serving import Served

pytestmark = pytest.mark.sqlite_only("HTTP handling by the real server, the same whatever the store")

PATH = "/webhook/slack-oncall"
TRICKLE_EVERY = 0.2  # seconds between two bytes of a trickling client
# Four threads in all, far fewer than the slow connections: any of them holding a thread would show.
LIMITS = {"workers": 2, "threads": 2, "header_timeout": "1500ms", "body_timeout": "1500ms", "body_min_rate": 1024,
          "relay": False}


class Trickler:
    """One connection sending `data` a byte at a time (after `at_once` in one go) and keeping what it is sent."""

    def __init__(self, port: int, kind: str, data: bytes = b"", at_once: bytes = b""):
        self.kind, self.data, self.answer, self.done = kind, data, b"", False
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        if at_once:
            self.sock.sendall(at_once)
        self.sock.setblocking(False)

    def step(self) -> None:
        """Take what the server sent (then stop trickling), or send the next byte."""
        if self.done:
            return
        try:
            if select.select([self.sock], [], [], 0)[0]:
                chunk = self.sock.recv(65536)
                self.answer += chunk
                self.done = not chunk
            elif self.data and not self.answer:
                self.data = self.data[self.sock.send(self.data[:1]):]
        except BlockingIOError:
            pass
        except OSError:
            self.done = True  # reset: what it was answered is kept


def head(content_length: int | None = None, chunked: bool = False) -> bytes:
    """A webhook's request head (complete, with its blank line)."""
    fields = [f"POST {PATH} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {TOKEN}",
              "Content-Type: application/json"]
    if content_length is not None:
        fields.append(f"Content-Length: {content_length}")
    if chunked:
        fields.append("Transfer-Encoding: chunked")
    return ("\r\n".join(fields) + "\r\n\r\n").encode()


def healthy_then_trickle(port: int) -> Trickler:
    """A kept-alive connection: one request answered, then the next one's head trickled."""
    get = b"GET /-/healthy HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    client = Trickler(port, "keepalive", data=get[:-2] + b"X-Pad: " + b"p" * 500 + b"\r\n\r\n", at_once=get)
    client.sock.setblocking(True)
    first = b""
    while b"\r\n\r\n" not in first:
        first += client.sock.recv(65536)
    assert first.startswith(b"HTTP/1.1 200"), first
    end = first.index(b"\r\n\r\n") + 4
    length = int(next(line.split(b":")[1] for line in first[:end].split(b"\r\n")
                      if line.lower().startswith(b"content-length")))
    while len(first) < end + length:
        first += client.sock.recv(65536)
    client.sock.setblocking(False)
    return client


@pytest.fixture
def tricklers():
    """The slow clients of a test, stepped by a background thread, all closed whatever happens."""
    clients: list[Trickler] = []
    stop = threading.Event()

    def drive():
        while not stop.is_set():
            for client in list(clients):
                client.step()
            stop.wait(TRICKLE_EVERY)

    driver = threading.Thread(target=drive, name="tricklers", daemon=True)
    driver.start()
    try:
        yield clients
    finally:
        stop.set()
        driver.join(10)
        for client in clients:
            client.sock.close()


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_webhooks_are_answered_while_slow_and_idle_connections_hang_on(tmp_path, config_values, tricklers):
    server = Served({**config_values, **LIMITS}, tmp_path).start()
    try:
        port = server.port
        body = json.dumps(notification(alert(machine="slow-1"))).encode()
        big = config_values["max_body_bytes"] + 1  # past what the event loop waits for: a thread reads the rest
        request_line, rest = head(len(body)).split(b"\r\n", 1)
        # Each starts trickling as soon as it is connected (the driver steps every client in the list).
        for make in (
            [lambda: Trickler(port, "header", data=rest + body, at_once=request_line + b"\r\n")] * 24
            + [lambda: Trickler(port, "body", data=body, at_once=head(len(body)))] * 24
            + [lambda: Trickler(port, "chunked", data=f"{len(body):x}\r\n".encode() + body,
                                at_once=head(chunked=True))] * 8
            + [lambda: Trickler(port, "large", data=b" " * 1000,
                                at_once=head(big * 2) + b'{"alerts": [' + b" " * big)] * 2
            + [lambda: Trickler(port, "idle")] * 24
            + [lambda: healthy_then_trickle(port)] * 4
        ):
            tricklers.append(make())
        clients = list(tricklers)

        # Alertmanager meanwhile: two keep-alive connections, one webhook after the other on each.
        answers: list[int] = []

        def post(worker: int) -> None:
            with requests.Session() as session:
                session.headers["Authorization"] = f"Bearer {TOKEN}"
                for i in range(15):
                    body = notification(alert(machine=f"gpu-{worker}-{i}"))
                    answers.append(session.post(server.url + PATH, json=body, timeout=60).status_code)

        posters = [threading.Thread(target=post, args=(worker,), daemon=True) for worker in range(2)]
        for poster in posters:
            poster.start()
        for poster in posters:
            poster.join(120)
        assert answers == [200] * 30

        assert wait_for(lambda: all(client.done for client in clients), timeout=60), \
            [(c.kind, c.answer[:40]) for c in clients if not c.done]
        for client in clients:
            if client.kind == "idle":
                assert client.answer == b"", client.answer  # it asked nothing: closed without an answer
            elif client.kind == "large":
                # Read by a thread, inside the app: ingest answers 400 for any body it cannot read, so the 408
                # (werkzeug's RequestTimeout, raised by the read) comes through only where the app lets it pass.
                assert client.answer.split(b" ", 2)[1] in (b"408", b"400"), client.answer.decode()
                assert b"\r\nConnection: close\r\n" in client.answer, client.answer.decode()
            else:
                assert client.answer.startswith(b"HTTP/1.1 408"), (client.kind, client.answer.decode())

        # Still serving once they are gone.
        again = requests.post(server.url + PATH, json=notification(alert(machine="after")), timeout=30,
                              headers={"Authorization": f"Bearer {TOKEN}"})
        assert again.status_code == 200
        assert server.stop() == 0  # a stopping worker writes the counts it holds
    finally:
        server.stop()

    conn = sqlite3.connect(config_values["database"])
    try:
        stored = {row[0] for row in conn.execute("SELECT json_extract(labels, '$.machine_id') FROM events")}
        cut = dict(conn.execute("SELECT label, value FROM counters WHERE name = 'slow_client'").fetchall())
    finally:
        conn.close()
    assert stored == {f"gpu-{w}-{i}" for w in range(2) for i in range(15)} | {"after"}
    assert cut == {"header": 24 + 4, "body": 24 + 8 + 2, "idle": 24}


def exchange(port: int, data: bytes, answers: int = 1) -> bytes:
    """Send `data` on a fresh connection and read until `answers` answers (or the close) are in."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data)
        received = b""
        while received.count(b"HTTP/1.1 ") < answers or not received.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def test_what_the_event_loop_reads_is_served_as_gunicorn_would(tmp_path, config_values):
    server = Served({**config_values, **LIMITS}, tmp_path).start()
    try:
        body = json.dumps(notification(alert(machine="gpu-a"))).encode()
        # Expect: 100-continue: one "100 Continue" (from the event loop, not a second from gunicorn), then 200.
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(head(len(body))[:-2] + b"Expect: 100-continue\r\n\r\n")
            assert sock.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
            sock.sendall(body)
            answer = b""
            while not answer.endswith(b"}\n"):
                answer += sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200") and b"100 Continue" not in answer, answer
        # Two webhooks in one packet (pipelined), the second chunked: both answered, in order.
        second = json.dumps(notification(alert(machine="gpu-b"))).encode()
        chunked = head(chunked=True) + f"{len(second):x}\r\n".encode() + second + b"\r\n0\r\n\r\n"
        answers = exchange(server.port, head(len(body)) + body + chunked, answers=2)
        assert re.findall(rb"HTTP/1\.1 (\d{3}) ", answers) == [b"200", b"200"], answers
        # A bare LF can never end a head: refused at once, not left to time out.
        assert exchange(server.port, b"GET /-/healthy HTTP/1.1\nHost: x\n\n").startswith(b"HTTP/1.1 400")
        # A head past 64 KiB.
        huge = b"GET /-/healthy HTTP/1.1\r\n" + b"X-Pad: " + b"p" * 70_000
        assert exchange(server.port, huge).startswith(b"HTTP/1.1 431")
        history = requests.get(server.url + "/api/v1/history", timeout=30).json()["entries"]
        assert {entry["labels"]["machine_id"] for entry in history} == {"gpu-a", "gpu-b"}
    finally:
        server.stop()


@pytest.mark.parametrize("key, value, message", [
    ("header_timeout", "0s", "header_timeout: must be greater than 0"),
    ("body_min_rate", "fast", "body_min_rate: expected an integer"),
    ("max_connections", 17, "max_connections: must be at least workers x (threads + 1) (18)"),
])
def test_limits_are_validated(config_values, key, value, message):
    from webhook_receiver.config import ConfigError, build_config

    with pytest.raises(ConfigError, match=re.escape(message)):
        build_config({**config_values, key: value})
