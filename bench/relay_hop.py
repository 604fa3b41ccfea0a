"""The relay's hop: from a webhook's 200 to the Slack stand-in holding its message, on SQLite and on PostgreSQL.

Since the wake-up (webhook_receiver/README.md, Wake-up) a webhook's commit rings the relay, which holds a
`relay_coalesce` window (20 ms) and delivers; before it the relay polled every `relay_interval` (1 s). For each
store, a real `dumont-receiver serve` with the shipped defaults (relay_interval 1 s, relay_coalesce 20 ms,
batch_size, storm_threshold) and one Slack channel, and a real Alertmanager 0.25, on 127.0.0.1:

- direct: the benchmark posts Alertmanager's version-4 bodies, one alert each, and times each from its 200 to
  the post that carries it: single alerts spaced apart, then a storm of STORM webhooks from CLIENTS threads
  (the i-th acknowledged alert is delivered when the messages' `[FIRING:n]` headlines first add up to i:
  messages go out in outbox order), then a few single alerts again once the storm is delivered (the waker
  keeps the window it had grown until a window passes with no ring: a page after a storm can wait it).
- through Alertmanager: ONE receiver holding two integrations, `webhook_configs` to the receiver and
  `slack_configs` (Alertmanager's own Slack, the floor) to the same stand-in at another path, grouped by
  alertname and machine_id with group_wait 0s; alerts posted to /api/v2/alerts, single ones spaced apart and
  a storm of STORM in one post. What the receiver adds = its path's receipt minus the native one's, per alert
  for single alerts, rank by rank for the storm (the native path sends each alert alone; the receiver folds
  them into digests). Target (issue 20): at most 50 ms added at the median and 150 ms at p99 (for pages:
  a storm is folded on purpose, see below).
- before any of it, the benchmark waits for the relay's first pass (a webhook earlier waits for it: the relay
  is a process `serve` starts once it listens) and sends one warm-up alert, printed apart.
- the old behaviour, measured: a SQLite receiver whose wake-up socket the benchmark binds first (the
  relay then logs relay.wakeup_unavailable and polls only, every relay_interval), single alerts posted at
  phases spread over the poll.

The Slack channel spaces posts to one webhook URL at least 1 s apart (channels/ratelimit.py, Slack's limit),
so single alerts go at least 1.05 s after the previous one's message (SPACING from the previous post
otherwise): 300 ms apart they would queue behind the limiter and be batched, measuring the limiter, not the
hop. The same limit paces a storm's messages, and the waker's window doubles while webhooks keep coming (up to
relay_interval): a storm's alerts wait seconds by design, in a few digests instead of one message each.
PostgreSQL runs as the HA stack runs it (fsync and synchronous_commit on); SQLite as shipped.
"""
from __future__ import annotations

import json
import math
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
import yaml  # noqa: E402

from deploy.local.postgres import TempPostgres  # noqa: E402
from deploy.local.sinks import SlackSink  # noqa: E402
from tests.e2e.alertmanager import Alertmanager  # noqa: E402
from tests.receiver.payloads import alert, notification  # noqa: E402
from tests.receiver.serving import BIN, Served  # noqa: E402
from webhook_receiver.config import Config  # noqa: E402
from webhook_receiver.store.sqlite_wakeup import address  # noqa: E402

SINGLES = 20         # single alerts per series
AFTER_STORM = 3      # single alerts once a storm is delivered
BASELINE = 12        # single alerts through the poll-only receiver
SPACING = 1.1        # seconds between single alerts' posts (not a multiple of relay_interval)
LIMITER_GAP = 1.05   # and at least this after the previous one's message (the Slack channel's 1 s spacing)
STORM = 200          # alerts (webhooks of one alert) in a storm
CLIENTS = 8          # threads posting the direct storm
TOKEN = "bench-token"
CHANNEL = "slack-oncall"
TARGET_MS = {"median": 50, "p99": 150}
FIRING = re.compile(r"\[FIRING:(\d+)")


class TimedSink(SlackSink):
    """The Slack stand-in, keeping each post's monotonic arrival time and waking waiters on each post."""

    def __init__(self) -> None:
        super().__init__(port=0)
        self._arrived = threading.Condition()  # an RLock: posts() may be called by a check under wait_for()
        self._posts: list[tuple[float, str, dict, str]] = []

    def _answer(self, path, body):
        at = time.monotonic()  # the whole post is read; before the answer
        answer = super()._answer(path, body)
        body = body if isinstance(body, dict) else {}
        text = json.dumps(body)  # searched for machine ids: once per post, not once per check
        with self._arrived:
            self._posts.append((at, path, body, text))
            self._arrived.notify_all()
        return answer

    def posts(self, path: str) -> list[tuple[float, dict, str]]:
        """(arrival, body, body as JSON text) of the posts to `path`, in arrival order."""
        with self._arrived:
            return [(at, body, text) for at, where, body, text in self._posts if where == path]

    def wait_for(self, check, timeout: float, what: str):
        """Until `check()` returns something other than None (checked at each post); that value."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while (found := check()) is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
                self._arrived.wait(left)
            return found


def carrying(sink: TimedSink, path: str, machine: str) -> float | None:
    """When the first post to `path` naming `machine` arrived, or None."""
    return next((at for at, _, text in sink.posts(path) if machine in text), None)


def announced(sink: TimedSink, path: str) -> list[int]:
    """The firing alerts each post to `path` announces (its `[FIRING:n]` headline)."""
    return [int(found.group(1)) if (found := FIRING.search(str(body.get("text", "")))) else 0
            for _, body, _ in sink.posts(path)]


def delivered(sink: TimedSink, path: str) -> list[float]:
    """The i-th alert announced on `path` is delivered at the i-th time: the `[FIRING:n]` headlines added up."""
    return [at for (at, _, _), count in zip(sink.posts(path), announced(sink, path)) for _ in range(count)]


def stats(seconds: list[float]) -> dict:
    """Median, p99 (nearest rank: of 20 values, the largest) and max, in ms."""
    ordered = sorted(seconds)
    return {"median": statistics.median(ordered) * 1000, "p99": ordered[math.ceil(len(ordered) * 0.99) - 1] * 1000,
            "max": ordered[-1] * 1000, "n": len(ordered)}


def shown(s: dict) -> str:
    return f"{s['median']:6.0f} {s['p99']:6.0f} {s['max']:6.0f}"


def now_iso(offset: float = 0.0) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=offset)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Receiver(Served):
    """Served, whose start() also says what /-/ready last answered when it gives up."""

    def start(self, timeout: float = 60.0) -> Receiver:
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([str(BIN), "serve", "--config", str(self.config_path)],
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline, last = time.monotonic() + timeout, "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited {self.process.returncode}:\n{self.log()}")
            try:
                answer = requests.get(self.url + "/-/ready", timeout=1)
                if answer.status_code == 200:
                    return self
                last = f"{answer.status_code} {answer.text[:300]}"
            except requests.RequestException as exc:
                last = repr(exc)
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"serve not ready within {timeout:.0f} s (/-/ready last: {last}):\n{self.log()}")


class Setup:
    """One receiver (on `database`) and, optionally, the Alertmanager that posts to it; stop() ends both."""

    def __init__(self, name: str, database: str, workdir: Path, sink: TimedSink, with_alertmanager: bool):
        self.name, self.sink, self.workdir = name, sink, workdir
        self.slack_file = workdir / "slack_url"
        self.slack_file.write_text(sink.url_for(f"/services/{name}-setup"))
        (workdir / "token").write_text(TOKEN)
        (workdir / "channels.yml").write_text(yaml.safe_dump({"channels": {
            CHANNEL: {"type": "slack", "webhook_url_file": str(self.slack_file)}}}))
        (workdir / "receiver").mkdir()
        self.receiver = Receiver({"database": database, "channels_file": str(workdir / "channels.yml"),
                                "token_file": str(workdir / "token"), "log_level": "warning"}, workdir / "receiver")
        self.native_path = f"/services/{name}-native"
        self.alertmanager = None
        self.with_alertmanager = with_alertmanager
        self.session = requests.Session()

    def start(self) -> Setup:
        """Start the receiver, wait for its relay's first pass (its wake-up is bound then: a webhook before it
        waits for that pass), send one warm-up alert (kept apart), then start Alertmanager."""
        self.receiver.start()
        deadline = time.monotonic() + 60
        while self.session.get(f"{self.receiver.url}/api/v1/relay", timeout=10).json().get("last_pass_at") is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: the relay made no pass within 60 s:\n{self.receiver.log()}")
            time.sleep(0.05)
        self.warmup = self.singles("warmup", 1)
        if self.with_alertmanager:
            self.alertmanager = Alertmanager({
                "route": {"receiver": "oncall", "group_by": ["alertname", "machine_id"], "group_wait": "0s",
                          "group_interval": "1h", "repeat_interval": "4h"},
                "receivers": [{"name": "oncall",
                               "webhook_configs": [{
                                   "url": f"{self.receiver.url}/webhook/{CHANNEL}", "send_resolved": True,
                                   "http_config": {"authorization": {"credentials_file": str(self.workdir / "token")}}}],
                               "slack_configs": [{"api_url": self.sink.url_for(self.native_path),
                                                  "send_resolved": False}]}],
            }, self.workdir / "alertmanager").start()
        return self

    def stop(self) -> None:
        try:
            if self.alertmanager is not None:
                self.alertmanager.stop()
        finally:
            self.receiver.stop()
            self.session.close()

    def route(self, phase: str) -> str:
        """Point the receiver's Slack channel at a path of this phase's own (read at every send); that path."""
        path = f"/services/{self.name}-{phase}"
        self.slack_file.write_text(self.sink.url_for(path))
        return path

    def post(self, body: bytes, session: requests.Session | None = None) -> float:
        """POST one webhook to the receiver; the monotonic time of its 200."""
        answer = (session or self.session).post(
            f"{self.receiver.url}/webhook/{CHANNEL}", data=body, timeout=30,
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        at = time.monotonic()
        if answer.status_code != 200:
            raise RuntimeError(f"{self.name}: webhook answered {answer.status_code}: {answer.text[:200]}")
        return at

    # -- direct
    def singles(self, phase: str, count: int, spread: bool = False) -> tuple[list[float], int]:
        """`count` single alerts, each from its 200 to its message; and how many messages came.

        The next goes SPACING after the previous post, and at least LIMITER_GAP after its message; with
        `spread`, a further fraction of a second that walks the post's phase over the relay's 1 s poll.
        """
        path = self.route(phase)
        hops, arrived = [], 0.0
        for number in range(count):
            machine = f"{self.name}-{phase}-{number:03d}"
            body = json.dumps(notification(alert("RelayHop", machine=machine, severity="critical",
                                                 starts=now_iso()))).encode()
            posted = time.monotonic()
            acked = self.post(body)
            arrived = self.sink.wait_for(lambda: carrying(self.sink, path, machine), 15, f"{machine}'s message")
            hops.append(arrived - acked)
            extra = (number * 0.618034) % 1 if spread else 0.0
            time.sleep(max(posted + SPACING, arrived + LIMITER_GAP + extra) - time.monotonic())
        return hops, len(self.sink.posts(path))

    def storm(self, phase: str) -> tuple[list[float], int, float, list[int]]:
        """STORM webhooks from CLIENTS threads: each acknowledged alert's hop (by rank), messages, the time from
        the first 200 to the last, and the alerts each message announced."""
        path = self.route(phase)
        bodies = [json.dumps(notification(alert("RelayStorm", machine=f"{self.name}-{phase}-{i:03d}",
                                                severity="critical", starts=now_iso()))).encode()
                  for i in range(STORM)]
        barrier = threading.Barrier(CLIENTS)
        acks: list[float] = []
        errors: list[BaseException] = []

        def client(share: list[bytes]) -> None:
            with requests.Session() as session:
                try:
                    session.get(f"{self.receiver.url}/-/ready", timeout=10)  # connected before the start
                    barrier.wait(30)
                    for body in share:
                        acks.append(self.post(body, session))
                except BaseException as exc:  # reported after the join
                    errors.append(exc)
                    barrier.abort()

        threads = [threading.Thread(target=client, args=(bodies[i::CLIENTS],)) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise RuntimeError(f"{self.name}: the storm failed: {errors[0]!r}")
        acks.sort()
        times = self.sink.wait_for(lambda: (lambda t: t if len(t) >= STORM else None)(delivered(self.sink, path)),
                                   60, f"{STORM} storm alerts on {path}")
        return ([at - ack for at, ack in zip(times, acks)], len(self.sink.posts(path)), acks[-1] - acks[0],
                announced(self.sink, path))

    # -- through Alertmanager
    def am_alert(self, machine: str, name: str) -> dict:
        return {"labels": {"alertname": name, "machine_id": machine, "severity": "critical"},
                "annotations": {"summary": f"{name} on {machine}"}, "startsAt": now_iso(), "endsAt": now_iso(3600)}

    def am_singles(self, phase: str, count: int) -> dict:
        """`count` single alerts posted to Alertmanager: each one's native and receiver-path times from the post."""
        path = self.route(phase)
        native, relayed = [], []
        for number in range(count):
            machine = f"{self.name}-{phase}-{number:03d}"
            posted = time.monotonic()
            self.alertmanager.post_alerts([self.am_alert(machine, "RelayHop")])
            acked = time.monotonic()
            at_native = self.sink.wait_for(lambda: carrying(self.sink, self.native_path, machine), 30,
                                           f"{machine}'s native Slack message")
            at_relayed = self.sink.wait_for(lambda: carrying(self.sink, path, machine), 30,
                                            f"{machine}'s message through the receiver")
            native.append(at_native - acked)
            relayed.append(at_relayed - acked)
            time.sleep(max(posted + SPACING, at_relayed + LIMITER_GAP) - time.monotonic())
        return {"native": native, "relayed": relayed, "added": [r - n for r, n in zip(relayed, native)],
                "messages": len(self.sink.posts(path)),
                "native_messages": sum(1 for _, _, text in self.sink.posts(self.native_path)
                                       if f"{self.name}-{phase}-" in text)}

    def am_storm(self, phase: str) -> dict:
        """STORM alerts in one post to Alertmanager: native and receiver-path times by rank, from the post."""
        path = self.route(phase)
        prefix = f"{self.name}-{phase}-"
        self.alertmanager.post_alerts([self.am_alert(f"{prefix}{i:03d}", "RelayStorm") for i in range(STORM)])
        acked = time.monotonic()

        def native_times():
            times = [at for at, _, text in self.sink.posts(self.native_path) if prefix in text]
            return times if len(times) >= STORM else None

        native = self.sink.wait_for(native_times, 60, f"{STORM} native Slack messages")
        relayed = self.sink.wait_for(lambda: (lambda t: t if len(t) >= STORM else None)(delivered(self.sink, path)),
                                     60, f"{STORM} storm alerts through the receiver")
        native = [at - acked for at in sorted(native)]
        relayed = [at - acked for at in relayed[:STORM]]
        return {"native": native, "relayed": relayed, "added": [r - n for r, n in zip(relayed, native)],
                "messages": len(self.sink.posts(path)), "native_messages": len(native),
                "per_message": announced(self.sink, path)}


def run_store(kind: str, sink: TimedSink, pg: TempPostgres | None, tmp: Path) -> dict:
    """Every measurement on one store: single alerts first, then the storms (a storm grows the waker's window)."""
    name = {"sqlite": "sq", "postgresql": "pg"}[kind]
    workdir = tmp / kind
    workdir.mkdir()
    database = str(workdir / "history.db")
    if kind == "postgresql":
        database = pg.create_database(f"relay_hop_{os.getpid()}")
    setup = Setup(name, database, workdir, sink, with_alertmanager=True)
    try:
        setup.start()
        figures = {"warmup": setup.warmup}
        figures["singles"] = setup.singles("one", SINGLES)
        figures["am_singles"] = setup.am_singles("am1", SINGLES)
        figures["storm"] = setup.storm("storm")
        time.sleep(2)  # the storm's last message out, then quiet: as a page after a storm would meet it
        figures["after_storm"] = setup.singles("after", AFTER_STORM)
        figures["am_storm"] = setup.am_storm("amstorm")
        return figures
    finally:
        setup.stop()
        if kind == "postgresql":
            pg.drop_database(f"relay_hop_{os.getpid()}")


def run_poll_only(sink: TimedSink, tmp: Path) -> tuple[list[float], int, bool]:
    """Single alerts through a SQLite receiver whose relay could not bind its wake-up socket: it polls only."""
    workdir = tmp / "poll-only"
    workdir.mkdir()
    database = str(workdir / "history.db")
    taken = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    setup = None
    try:
        taken.bind(address(database))  # the relay's bind fails: relay.wakeup_unavailable, polling only
        setup = Setup("poll", database, workdir, sink, with_alertmanager=False).start()
        hops, messages = setup.singles("one", BASELINE, spread=True)
        return hops, messages, "relay.wakeup_unavailable" in setup.receiver.log()
    finally:
        if setup is not None:
            setup.stop()
        taken.close()


def verdict(added: dict) -> str:
    ok = added["median"] <= TARGET_MS["median"] and added["p99"] <= TARGET_MS["p99"]
    return "PASS" if ok else "MISS"


def main() -> int:
    started = time.monotonic()
    config = Config(database="", channels_file="", token_file="")
    print(f"relay hop: the real receiver (defaults: relay_interval {config.relay_interval:g} s, relay_coalesce"
          f" {config.relay_coalesce * 1000:g} ms, batch_size {config.batch_size}, storm_threshold"
          f" {config.storm_threshold}) and Alertmanager 0.25 on 127.0.0.1; load average at start"
          f" {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (shared machine: figures move with it)")
    print(f"single alerts {SPACING:g} s apart and >= {LIMITER_GAP:g} s after the previous message (the Slack"
          f" channel's 1 s spacing per webhook URL); storms of {STORM} alerts")
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="relay-hop-") as tmp, ExitStack() as running:
        sink = running.enter_context(TimedSink())
        results["sqlite"] = run_store("sqlite", sink, None, Path(tmp))
        poll = run_poll_only(sink, Path(tmp))
        pg = TempPostgres(Path(tmp) / "pg", fsync=True)
        running.callback(pg.stop)
        pg.start()
        results["postgresql"] = run_store("postgresql", sink, pg, Path(tmp))

    sq, pg_ = results["sqlite"], results["postgresql"]
    head = f"{'':<44}{'SQLite':>26}   {'PostgreSQL':>26}"
    cols = f"{'':<44}{'median    p99    max  msgs':>26}   {'median    p99    max  msgs':>26}"

    def row(label: str, left: tuple[list[float], int | None], right: tuple[list[float], int | None]) -> str:
        count = lambda n: f"{n:5d}" if n is not None else " " * 5  # noqa: E731
        return f"  {label:<42}{shown(stats(left[0]))} {count(left[1])}   {shown(stats(right[0]))} {count(right[1])}"

    def text(label: str, left: str, right: str) -> str:
        return f"  {label:<42}{left:>26}   {right:>26}"

    def hops(values: list[float]) -> str:
        return ", ".join(f"{value * 1000:.0f}" for value in values)

    def hops_n(values: list[int]) -> str:
        return ", ".join(str(value) for value in values)

    print("direct: the webhook's 200 -> the Slack stand-in holding its message, ms")
    print(head)
    print(cols)
    print(row(f"{SINGLES} single alerts", sq["singles"], pg_["singles"]))
    print(row(f"storm: {STORM} webhooks, {CLIENTS} threads", sq["storm"][:2], pg_["storm"][:2]))
    print(text("  (the storm's 200s came within)", f"{sq['storm'][2] * 1000:.0f} ms", f"{pg_['storm'][2] * 1000:.0f} ms"))
    print(text("  (alerts per message)", hops_n(sq["storm"][3]), hops_n(pg_["storm"][3])))
    print(text(f"first {AFTER_STORM} single alerts after the storm", hops(sq["after_storm"][0]),
               hops(pg_["after_storm"][0])))
    print("    (relay/waker.py keeps the window a storm grew until a window passes with no ring: the first page after"
          " a storm,\n     however much later, waits that window, up to relay_interval, unless the poll takes it first)")
    print(text("first alert once the relay is up (warm-up)", hops(sq["warmup"][0]), hops(pg_["warmup"][0])))
    poll_hops, poll_messages, poll_ok = poll
    print("baseline, the old behaviour: SQLite, relay polling only (its wake-up socket taken by the benchmark)")
    print(f"  {f'{BASELINE} single alerts, phases spread over the poll':<42}{shown(stats(poll_hops))} {poll_messages:5d}"
          f"   (expected: uniform over the {config.relay_interval:g} s poll, median ~{config.relay_interval * 500:.0f} ms)")
    if not poll_ok:
        print("  WARNING: the relay did not log relay.wakeup_unavailable: it may have had its wake-up after all")
    print(f"  wake-up vs polling, single alerts on SQLite: median {stats(sq['singles'][0])['median']:.0f} ms"
          f" vs {stats(poll_hops)['median']:.0f} ms")

    print("through Alertmanager 0.25 (group_by alertname, machine_id; group_wait 0s): from its /api/v2/alerts 200, ms")
    print(head)
    print(cols)
    verdicts = []
    for key, label in (("am_singles", f"{SINGLES} single alerts"), ("am_storm", f"storm: {STORM} alerts, one post")):
        left, right = sq[key], pg_[key]
        print(f"  {label}")
        print(row("  floor: Alertmanager's own Slack", (left["native"], left["native_messages"]),
                  (right["native"], right["native_messages"])))
        print(row("  through the receiver", (left["relayed"], left["messages"]),
                  (right["relayed"], right["messages"])))
        print(row("  added by the receiver" + (" (per alert)" if key == "am_singles" else " (rank by rank)"),
                  (left["added"], None), (right["added"], None)))
        verdicts.append((key, stats(left["added"]), stats(right["added"])))
    print(f"  storm messages: receiver {sq['am_storm']['messages']} (SQLite), {pg_['am_storm']['messages']}"
          f" (PostgreSQL) vs Alertmanager's own Slack {sq['am_storm']['native_messages']},"
          f" {pg_['am_storm']['native_messages']}: the receiver still folds a storm into digests")
    print(f"    (alerts per message through the receiver: {hops_n(sq['am_storm']['per_message'])} on SQLite,"
          f" {hops_n(pg_['am_storm']['per_message'])} on PostgreSQL; the Slack channel posts at most once a second)")
    print(f"target (issue 20): the receiver adds <= {TARGET_MS['median']} ms at the median and <= {TARGET_MS['p99']} ms"
          f" at p99 over Alertmanager's own Slack")
    for key, left, right in verdicts:
        what = "single alerts (pages)" if key == "am_singles" else "storm (informational: folded on purpose)"
        print(f"  {what:<42} SQLite: median {left['median']:.0f} ms, p99 {left['p99']:.0f} ms {verdict(left)};"
              f" PostgreSQL: median {right['median']:.0f} ms, p99 {right['p99']:.0f} ms {verdict(right)}")
    print(f"(p99 of {SINGLES} is their largest; load average at the end {os.getloadavg()[0]:.2f};"
          f" benchmark took {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
