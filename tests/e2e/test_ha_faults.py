"""Faults in the HA shape, with real binaries on loopback: an alert storm through two clustered Alertmanagers into
two receivers sharing one PostgreSQL, while one Alertmanager and one receiver are killed (-9) and PostgreSQL itself
restarts; and the outbound heartbeat going quiet only when every receiver is down.

What must hold afterwards: every alert's firing and resolution is in history exactly once, every channel got every
message at least once, and the outbox is empty. A message sent twice is allowed only in a crash window
(at-least-once): those are counted and printed, never asserted away.
"""
from __future__ import annotations

import re
import signal
import threading
import time
import urllib.parse
from collections import Counter
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.e2e.conftest import alert_parts, wait_for
from tests.e2e.ha_shape import ALERTMANAGERS, RECEIVERS, HAShape

ALERTS = 200
SLICES = 10                # the storm is posted in slices; the faults come between them
CHANNELS = ("slack-oncall", "email-oncall")  # where the `fast` environment routes severity=critical
NAMES = 10                 # alert names HAStorm0..9, each alert its own group (group_by has machine_id)
PEER_TIMEOUT = "50ms"      # see alertmanager_flags()
MACHINE = re.compile(r"\bha-\d{3}\b")


def alertmanager_flags() -> tuple:
    """The pair's extra flags.

    Alertmanager's default peer timeout (15 s) is longer than the `fast` environment's group_interval (2 s): the
    second peer's flush, taken while an alert fired, is held back 15 s and then sent when the first peer's
    resolution is in the notification log ("firing" is no longer a subset of what was notified), so nearly every
    group would get a stale firing after its resolution, which the receiver must take for a re-fire (README:
    Identity of a state change). Production's 5 m group_interval makes that rare; here a 50 ms timeout keeps it
    out, and makes both peers send almost everything, which is what idempotent intake must absorb.
    """
    return (f"--cluster.peer-timeout={PEER_TIMEOUT}",)


def _sigterm_as_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture
def ha_shape(tmp_path):
    """A function starting the HA shape; whatever it started is stopped after the test, even when it fails."""
    shapes: list[HAShape] = []
    # A SIGTERM (CI timeout) would end pytest without teardown and leave PostgreSQL and the rest running.
    previous = signal.signal(signal.SIGTERM, _sigterm_as_interrupt)

    def start(services: tuple = ("sinks", *RECEIVERS, *ALERTMANAGERS), **kwargs) -> HAShape:
        shapes.append(HAShape(tmp_path / f"ha{len(shapes)}", **kwargs))
        return shapes[-1].start(services)

    try:
        yield start
    finally:
        for shape in shapes:
            shape.stop()
        signal.signal(signal.SIGTERM, previous)


def storm_alert(number: int, starts: str, ends: str) -> dict:
    """One alert as Prometheus posts it: critical, its own machine, so its own group."""
    machine = f"ha-{number:03d}"
    return {"labels": {"alertname": f"HAStorm{number % NAMES}", "machine_id": machine, "severity": "critical"},
            "annotations": {"summary": f"storm alert {machine}"}, "startsAt": starts, "endsAt": ends,
            "generatorURL": "http://127.0.0.1:9090/graph"}


def rfc3339(moment: datetime) -> str:
    """A UTC time as Prometheus writes it to Alertmanager."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def post_slices(shape: HAShape, alerts: list[dict], faults: dict) -> None:
    """Post `alerts` to both Alertmanagers slice by slice; after slice n run faults[n]() (a dead Alertmanager's
    post fails, as Prometheus' would, and the other still gets it)."""
    size = len(alerts) // SLICES
    for number in range(SLICES):
        part = alerts[number * size:(number + 1) * size]
        delivered = [shape.post_alerts(name, part) for name in ALERTMANAGERS]
        assert any(delivered), "no Alertmanager took the alerts"
        if number in faults:
            faults[number]()
        # Slower than group_wait (1 s) in all: Alertmanager and the relays are at work when the faults come.
        time.sleep(0.5)


def history(shape: HAShape, receiver: str) -> list[dict]:
    """Every history entry, through the receiver's API (paged)."""
    entries, cursor = [], None
    while True:
        params = {"limit": "500", **({"cursor": cursor} if cursor else {})}
        page = shape.get_json(receiver, "/api/v1/history?" + urllib.parse.urlencode(params))
        entries += page["entries"]
        cursor = page["next_cursor"]
        if not cursor:
            return entries


def changes(entries: list[dict], prefix: str = "HAStorm") -> Counter:
    """(machine, status) -> how many history entries say that change."""
    return Counter((e["labels"].get("machine_id"), e["status"]) for e in entries
                   if e["alertname"].startswith(prefix))


def delivered(shape: HAShape) -> Counter:
    """(channel, machine, FIRING|RESOLVED) -> how many times a stand-in got that alert in that state."""
    seen = Counter()
    for post in shape.get_json("sinks", "/api/messages"):
        channel = post["path"].rsplit("/", 1)[-1]
        for attachment in post["body"].get("attachments") or []:
            state, _, rest = attachment["fallback"].partition(" ")
            for machine in MACHINE.findall(rest):
                seen[(channel, machine, state)] += 1
    for mail in shape.get_json("sinks", "/api/mail"):
        channel = "email-oncall" if "oncall@example.com" in mail["to"] else "email-other"
        for part in alert_parts(mail):
            state = part.split(" ", 1)[0].strip()
            for machine in set(MACHINE.findall(part)):
                if state in ("FIRING", "RESOLVED"):
                    seen[(channel, machine, state)] += 1
    return seen


def outbox_depth(shape: HAShape, receiver: str) -> float:
    """The sum of dumont_receiver_outbox_depth on a receiver's /metrics."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in shape.get_text(receiver, "/metrics").splitlines()
               if line.startswith("dumont_receiver_outbox_depth{"))


def notification_failures(shape: HAShape) -> tuple:
    """Each running Alertmanager's count of failed webhook requests."""
    counts = []
    for name in ALERTMANAGERS:
        text = shape.get_text(name, "/metrics")
        counts.append(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                          if line.startswith("alertmanager_notification_requests_failed_total{")))
    return tuple(counts)


def quiet(probe, seconds: float, timeout: float, what: str) -> None:
    """Wait until probe() keeps one value for `seconds` in a row."""
    deadline = time.monotonic() + timeout
    last, since = object(), time.monotonic()
    while time.monotonic() < deadline:
        value = probe()
        if value != last:
            last, since = value, time.monotonic()
        elif time.monotonic() - since >= seconds:
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last seen: {last!r}")


@pytest.mark.e2e
def test_storm_through_kills_and_a_postgres_restart_loses_nothing(ha_shape, capsys):
    # No digests (storm_threshold): each alert must be named in a message for the stand-ins' count.
    shape = ha_shape(receiver_settings=lambda name: {"storm_threshold": 100000},
                     alertmanager_flags=alertmanager_flags())
    started = datetime.now(timezone.utc)
    starts = [rfc3339(started + timedelta(milliseconds=i)) for i in range(ALERTS)]
    # Firing: valid for an hour, as Prometheus' endsAt (4 resend delays ahead) is while it keeps sending.
    firing = [storm_alert(i, starts[i], rfc3339(started + timedelta(hours=1))) for i in range(ALERTS)]

    def kill_one_of_each():
        shape.kill("alertmanager-1")
        shape.kill("receiver-1")

    post_slices(shape, firing, {3: kill_one_of_each, 6: shape.restart_postgres})
    shape.start_service("receiver-1")
    shape.start_service("alertmanager-1")

    every_firing = {(machine, "firing") for machine in (f"ha-{i:03d}" for i in range(ALERTS))}
    wait_for(lambda: every_firing <= set(changes(history(shape, "receiver-2"))), 60, "every firing in history")
    # A firing an Alertmanager is still retrying (to a receiver that was down) would land after the resolution and
    # be a re-fire: Alertmanager sends the state it took when the flush began. Resolve once its retries are over.
    quiet(lambda: notification_failures(shape), 4, 60, "Alertmanager's failed webhook requests to stop growing")

    ended = rfc3339(datetime.now(timezone.utc))
    post_slices(shape, [storm_alert(i, starts[i], ended) for i in range(ALERTS)], {})

    every_change = every_firing | {(machine, "resolved") for machine, _ in every_firing}
    wanted = {(channel, machine, state.upper()) for channel in CHANNELS for machine, state in every_change}

    def settled():
        return (set(changes(history(shape, "receiver-1"))) >= every_change and set(delivered(shape)) >= wanted
                and outbox_depth(shape, "receiver-1") == 0 and outbox_depth(shape, "receiver-2") == 0)
    wait_for(settled, 90, "every change in history, every message at the stand-ins and the outbox empty")

    entries, seen = history(shape, "receiver-1"), delivered(shape)
    lost = sorted(wanted - set(seen))
    duplicates = {key: n - 1 for key, n in seen.items() if key in wanted and n > 1}
    with capsys.disabled():  # shown in every run, not only with -s: the duplicates are reported, never asserted
        print(f"\nHA storm: {ALERTS} alerts x fired and resolved x {len(CHANNELS)} channels = {len(wanted)} messages"
              f" wanted; lost {len(lost)}; delivered more than once (crash windows): {sum(duplicates.values())}"
              f" {sorted(duplicates)[:10]}")
    assert not lost, f"messages never delivered: {lost[:20]}"

    # Both receivers read the one database: the same history, each change exactly once.
    assert changes(entries) == changes(history(shape, "receiver-2"))
    twice = {change: n for change, n in changes(entries).items() if n != 1}
    assert set(changes(entries)) == every_change and not twice, f"changes not stored exactly once: {twice}"
    # No Watchdog is posted: the dead man's switch announced the outage once, not once per receiver.
    assert changes(entries, "AlertingPipelineDown") == {(None, "firing"): 1}

    stuck = shape.sql("SELECT channel, state, count(*) FROM outbox WHERE state <> 'delivered'"
                      " GROUP BY channel, state")
    assert stuck == [], f"outbox rows not delivered: {stuck}"


class PingStandIn:
    """An outside check (healthchecks.io style) on loopback: counts GETs per path."""

    def __init__(self):
        counts, lock = Counter(), threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                with lock:
                    counts[self.path] += 1
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

            def log_message(self, *args):
                pass

        self.counts, self.lock = counts, lock
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def pings(self) -> Counter:
        """Pings so far, per path."""
        with self.lock:
            return Counter(self.counts)

    def stop(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.e2e
def test_heartbeat_goes_quiet_only_when_every_receiver_is_down(ha_shape, tmp_path):
    check = PingStandIn()
    try:
        # Each receiver its own check URL (README: to watch each host), so the stand-in tells who pinged.
        for name in RECEIVERS:
            (tmp_path / f"{name}-ping-url").write_text(f"{check.url}/ping/{name}\n")
        shape = ha_shape(services=("sinks", *RECEIVERS),
                         receiver_settings=lambda name: {"heartbeat_url_file": str(tmp_path / f"{name}-ping-url"),
                                                         "heartbeat_interval": "1s"})
        wait_for(lambda: all(check.pings()[f"/ping/{name}"] >= 2 for name in RECEIVERS), 30,
                 "pings from both receivers")

        shape.kill("receiver-1")  # one host dies: the site still works, and the other receiver still pings
        before = check.pings()["/ping/receiver-2"]
        wait_for(lambda: check.pings()["/ping/receiver-2"] >= before + 2, 30, "receiver-2 to keep pinging")

        shape.stop_service("receiver-2")  # the whole site is dark
        time.sleep(0.5)  # a ping already sent when the process ended may still be in the stand-in's hands
        dark = check.pings()
        time.sleep(4)  # four heartbeat intervals
        assert check.pings() == dark, "a ping arrived with every receiver down"
    finally:
        check.stop()
