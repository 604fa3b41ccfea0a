"""Alert-storm benchmark of the webhook receiver under its production server (`dumont-receiver serve`).

10,000 distinct alerts are posted by concurrent keep-alive clients, once as webhooks of one alert and once
as webhooks of ten (each on a fresh database), then the same webhooks again as redeliveries. The clients
speak raw HTTP/1.1 (~0.1 ms of CPU per request) so that they leave the two cores to the server. The relay
runs, delivering to a local SlackSink (storms fold into digests, so it costs the database little).
Baseline: an empty Flask endpoint under the same gunicorn configuration.

The one-alert storm and the baseline take turns in slices of 1,000 webhooks, so both meet the same machine:
this VM's speed drifts by +-20% within a minute (the hypervisor's steal), which made a receiver run and a
baseline run seconds apart disagree by more than the target's margin. While the baseline has its turn, the
receiver's processes are stopped (SIGSTOP), so its relay cannot spend the baseline's time. A slice's rate
counts the answers from the moment every client, already connected, is released at once, until the first
client is done: start-up and the tail of clients finishing one by one would otherwise weigh more in the
baseline's shorter slices (measured: ten slices of the baseline came out at 0.68-0.82 of one long run; with
this window, 0.92-1.11, the machine's drift). Server CPU per request counts everything. Beside the
target's figure (the median of the rounds' shares) it prints the spread of the shares of single slice pairs.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
import yaml  # noqa: E402

from deploy.local.sinks import SlackSink  # noqa: E402
from tests.receiver.payloads import alert, notification  # noqa: E402
from tests.receiver.serving import Served, free_port  # noqa: E402
from webhook_receiver.config import Config  # noqa: E402

ALERTS = 10_000
CLIENTS = 8          # concurrent keep-alive connections, one per client process
WORKERS, THREADS = Config.workers, Config.threads  # what ships, for the receiver and the baseline alike
TOKEN = "bench-token"
ROUNDS = 3
SLICES = 10          # turns per round of the one-alert storm and of the baseline
TARGETS = {"alerts_per_s": 1000, "p99_ms": 100, "baseline_share": 0.5}
PATH = "/webhook/slack-oncall"


_start = None  # the slice's barrier, in each client process (blast)


def _set_start(barrier) -> None:
    global _start
    _start = barrier


def _exchange(sock: socket.socket, reader, request: bytes) -> tuple[int, bool]:
    """Send one request and read its answer: the status, and whether the server closes the connection."""
    sock.sendall(request)
    status = int(reader.readline().split(b" ", 2)[1])
    length, close = 0, False
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        name = name.lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection":
            close = value.strip().lower() == b"close"
    reader.read(length)
    return status, close


def _connect(port: int):
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock, sock.makefile("rb")


def _client(args):
    """One keep-alive connection posting its share of bodies: latencies (s), failures, CPU (s), the start
    and each answer's time (perf_counter, CLOCK_MONOTONIC: comparable between the client processes).

    Raw HTTP/1.1 over one socket, like wrk: http.client spent ~0.45 ms of CPU per request, a quarter of
    this 2-core machine taken from the server it measures. Every client connects (and asks /-/ready once)
    before a barrier lets them all go together.
    """
    port, path, bodies = args
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {TOKEN}\r\n")
    requests_ = [f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body for body in bodies]
    sock, reader = _connect(port)
    _exchange(sock, reader, f"GET /-/ready HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    _start.wait(timeout=60)
    latencies, answered, failures = [], [], 0
    cpu_started = time.process_time()
    began = time.perf_counter()
    for request in requests_:
        started = time.perf_counter()
        if sock is None:  # the server closes a keep-alive connection now and then (keepalive_requests)
            sock, reader = _connect(port)
        status, close = _exchange(sock, reader, request)
        answered.append(time.perf_counter())
        latencies.append(answered[-1] - started)
        failures += status != 200
        if close:
            reader.close()
            sock.close()
            sock = None
    cpu = time.process_time() - cpu_started
    if sock is not None:
        reader.close()
        sock.close()
    return latencies, failures, cpu, began, answered


def session_cpu_seconds(session: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of one session (the server under test)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def cpu_times() -> list[int]:
    """The machine's CPU time so far by kind (the `cpu` line of /proc/stat: user, nice, system, idle, ...)."""
    with open("/proc/stat") as stat:
        return [int(field) for field in stat.readline().split()[1:]]


def blast(port: int | Sequence[int], path: str, bodies: list[bytes], session: int | Sequence[int]) -> dict:
    """Post every body over CLIENTS concurrent connections: what figures() needs, for this one slice.

    Given several ports (receivers sharing a database), the clients take turns among them, and the server CPU
    counts every session given.
    """
    ports = [port] if isinstance(port, int) else list(port)
    sessions = [session] if isinstance(session, int) else list(session)
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(CLIENTS)
    shares = [(ports[i % len(ports)], path, bodies[i::CLIENTS]) for i in range(CLIENTS)]
    with context.Pool(CLIENTS, initializer=_set_start, initargs=(barrier,)) as pool:
        cpu_before, machine_before = sum(map(session_cpu_seconds, sessions)), cpu_times()
        results = pool.map(_client, shares)
        cpu = sum(map(session_cpu_seconds, sessions)) - cpu_before
        machine = [after - before for before, after in zip(machine_before, cpu_times())]
    # The rate counts the answers while every client was posting: from the barrier to the first client done.
    # Without the tail (clients ending one by one) a short slice measures the same as a long run.
    begin, end = max(result[3] for result in results), min(result[4][-1] for result in results)
    return {"latencies": [x for result in results for x in result[0]],
            "answered": sum(1 for result in results for at in result[4] if begin < at <= end),
            "elapsed": end - begin, "failures": sum(result[1] for result in results), "cpu": cpu,
            "client_cpu": sum(result[2] for result in results), "machine": machine}


def figures(slices: list[dict]) -> dict:
    """Request figures over one or more slices: rate, answer-time percentiles, CPU per request, steal.

    The server's CPU time per request is the steadier figure to compare: wall-clock rates on this shared
    2-core machine drift (the clients share the cores, the hypervisor takes its steal).
    """
    latencies = sorted(x for part in slices for x in part["latencies"])
    elapsed = sum(part["elapsed"] for part in slices)
    machine = [sum(kind) for kind in zip(*(part["machine"] for part in slices))]
    return {"requests": len(latencies), "rps": sum(part["answered"] for part in slices) / elapsed,
            "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
            "failures": sum(part["failures"] for part in slices),
            "cpu_ms": sum(part["cpu"] for part in slices) * 1000 / len(latencies),
            "client_cpu_ms": sum(part["client_cpu"] for part in slices) * 1000 / len(latencies),
            # The hypervisor's share of this VM's cores (steal) moves from run to run: part of the drift
            "steal": machine[7] / sum(machine)}


def bodies_for(per_webhook: int) -> list[bytes]:
    """10,000 distinct alerts in webhooks of `per_webhook`, as Alertmanager would group them."""
    alerts = [alert(f"Storm{i % 50}", machine=f"gpu-{i}", severity=("warning", "critical")[i % 2])
              for i in range(ALERTS)]
    return [json.dumps(notification(*alerts[i:i + per_webhook])).encode()
            for i in range(0, ALERTS, per_webhook)]


def write_setup(workdir: Path, sink: SlackSink) -> dict:
    (workdir / "slack_url").write_text(sink.url_for("/services/bench"))
    (workdir / "token").write_text(TOKEN)
    (workdir / "channels.yml").write_text(yaml.safe_dump({
        "channels": {"slack-oncall": {"type": "slack", "webhook_url_file": str(workdir / "slack_url")},
                     "watchdog": {"type": "heartbeat"}},
        "deadman": {"channel": "watchdog", "timeout": "1h", "notify": ["slack-oncall"]}}))
    return {"database": str(workdir / "history.db"), "channels_file": str(workdir / "channels.yml"),
            "token_file": str(workdir / "token"), "workers": WORKERS, "threads": THREADS,
            "log_level": "warning"}


def history_counts(database: str) -> tuple[int, int, int]:
    conn = sqlite3.connect(database)
    try:
        events, distinct = conn.execute("SELECT count(*), count(DISTINCT fingerprint) FROM events").fetchone()
        depth = conn.execute("SELECT (SELECT count(*) FROM outbox WHERE state IN ('pending', 'sending'))"
                             " + (SELECT count(*) FROM intake)").fetchone()[0]  # not yet applied: queued too
    finally:
        conn.close()
    return events, distinct, depth


def run_mode(per_webhook: int, sink: SlackSink, baseline: tuple[int, int] | None = None):
    """Post the storm on a fresh database (taking turns with the baseline server at `baseline`, its port and
    pid, when given), then again as redeliveries: printable lines, the first delivery's figures, the
    baseline's (or None), and whether history holds exactly ALERTS distinct alerts, once each."""
    with tempfile.TemporaryDirectory(prefix="receiver-bench-") as tmp:
        workdir = Path(tmp)
        config = write_setup(workdir, sink)
        bodies = bodies_for(per_webhook)
        server = Served(config, workdir).start()
        try:
            if baseline is None:
                first, base = figures([blast(server.port, PATH, bodies, server.process.pid)]), None
            else:
                first, base = take_turns(server, baseline, bodies)
            again = figures([blast(server.port, PATH, bodies, server.process.pid)])
            events, distinct, depth = history_counts(config["database"])
        finally:
            server.stop()
    lines = [f"  {per_webhook:>2} alert(s)/webhook, {name:<14}: {f['rps'] * per_webhook:8.0f} alerts/s {line(f)}"
             for name, f in (("first delivery", first), ("redelivery", again))]
    lines.append(f"  {per_webhook:>2} alert(s)/webhook: history holds {events} state changes of {distinct} distinct"
                 f" alerts (want exactly {ALERTS}: lost {ALERTS - distinct}, duplicated {events - distinct});"
                 f" outbox depth left {depth}")
    return lines, first, base, events == distinct == ALERTS


def take_turns(server: Served, baseline: tuple[int, int], bodies: list[bytes]) -> tuple[dict, dict]:
    """The receiver's and the baseline's figures, each posting every body in SLICES turns, alternating."""
    size = len(bodies) // SLICES
    turns: dict[str, list[dict]] = {"receiver": [], "baseline": []}
    for number in range(SLICES):
        part = bodies[number * size:(number + 1) * size]
        for who in ("receiver", "baseline") if number % 2 == 0 else ("baseline", "receiver"):
            if who == "receiver":
                turns[who].append(blast(server.port, PATH, part, server.process.pid))
            else:
                with stopped(server.process.pid):  # its relay must not run on the baseline's time
                    turns[who].append(blast(baseline[0], PATH, part, baseline[1]))
    receiver = figures(turns["receiver"])
    # Each slice's share against the baseline's turn beside it: how far the machine's drift spreads the figure.
    receiver["slice_shares"] = [figures([mine])["rps"] / figures([theirs])["rps"]
                                for mine, theirs in zip(turns["receiver"], turns["baseline"])]
    return receiver, figures(turns["baseline"])


@contextmanager
def stopped(session: int) -> Iterator[None]:
    """Every process of `session` stopped (SIGSTOP) for the block, and continued after it, whatever happens."""
    os.killpg(session, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(session, signal.SIGCONT)


def line(f: dict) -> str:
    """One run's request figures, printed."""
    return (f" {f['rps']:7.0f} req/s  p50 {f['p50_ms']:6.2f} ms  p99 {f['p99_ms']:6.2f} ms  server CPU"
            f" {f['cpu_ms']:5.2f} ms/req (clients {f['client_cpu_ms']:4.2f})  steal {f['steal']:4.0%}"
            f"  non-200: {f['failures']}")


def serve_empty(port: int) -> None:
    """Serve an empty Flask endpoint under the receiver's gunicorn configuration (the baseline)."""
    from flask import Flask, request

    from webhook_receiver.server import ReceiverServer

    class EmptyServer(ReceiverServer):
        def load(self):
            app = Flask("empty")

            @app.post("/webhook/<channel>")
            def empty(channel):
                request.get_data()
                return "{}"

            @app.get("/-/ready")
            def ready():
                return "ready"
            return app

    config = Config(database="", channels_file="", token_file="", listen=f"127.0.0.1:{port}",
                    workers=WORKERS, threads=THREADS, log_level="warning")
    EmptyServer(config).run()


@contextmanager
def baseline_server() -> Iterator[tuple[int, int]]:
    """The empty endpoint served in a child process: its port and pid, until the block ends."""
    port = free_port()
    process = subprocess.Popen([sys.executable, __file__, "--serve-empty", str(port)], start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(f"http://127.0.0.1:{port}/-/ready", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        yield port, process.pid
    finally:
        process.terminate()
        process.wait(30)


def main() -> int:
    started = time.monotonic()
    print(f"receiver storm: {ALERTS} distinct alerts, {CLIENTS} keep-alive clients, gunicorn gthread "
          f"{WORKERS} workers x {THREADS} threads, relay on (local SlackSink), log_level warning")
    print(f"({ROUNDS} rounds; in each the one-alert storm and the baseline take turns in {SLICES} slices of"
          f" {ALERTS // SLICES:,} webhooks, so both meet the same machine; targets use the medians of the rounds)")
    rounds, exact = [], True
    with SlackSink(port=0) as sink, baseline_server() as baseline:
        for number in range(1, ROUNDS + 1):
            lines, one, base, ok = run_mode(1, sink, baseline)
            rounds.append((one, base))
            exact &= ok
            print(f"round {number}:")
            print("\n".join(lines))
            print(f"   baseline empty Flask endpoint (same server config, 1-alert bodies):{line(base)}")
            print(f"   one-alert webhooks at {one['rps'] / base['rps']:.0%} of the baseline's request rate")
        ten_lines, _, _, ok = run_mode(10, sink)
        exact &= ok
    print("ten alerts per webhook:")
    print("\n".join(ten_lines))
    rate = statistics.median(one["rps"] for one, _ in rounds)  # one alert per webhook: alerts/s
    p99 = max(one["p99_ms"] for one, _ in rounds)
    share = statistics.median(one["rps"] / base["rps"] for one, base in rounds)
    print("targets (medians of the rounds; p99 the worst round):")
    print(f"  >= {TARGETS['alerts_per_s']} alerts/s with one alert per webhook: {rate:.0f}"
          f" {'OK' if rate >= TARGETS['alerts_per_s'] else 'MISSED'}")
    print(f"  p99 < {TARGETS['p99_ms']} ms: {p99:.2f} ms {'OK' if p99 < TARGETS['p99_ms'] else 'MISSED'}")
    print(f"  >= half the empty endpoint's request rate: {share:.0%}"
          f" {'OK' if share >= TARGETS['baseline_share'] else 'MISSED'}")
    pairs = sorted(x for one, _ in rounds for x in one["slice_shares"])
    quartiles = statistics.quantiles(pairs, n=4)
    print(f"    (its {len(pairs)} slice pairs: median {statistics.median(pairs):.0%}, middle half"
          f" {quartiles[0]:.0%}-{quartiles[2]:.0%}, all {pairs[0]:.0%}-{pairs[-1]:.0%})")
    print(f"  zero lost, zero duplicated, in every run: {'OK' if exact else 'MISSED'}")
    print(f"(benchmark took {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-empty":
        serve_empty(int(sys.argv[2]))
    else:
        sys.exit(main())
