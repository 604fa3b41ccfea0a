"""The alert storm on PostgreSQL: one receiver on SQLite, one on PostgreSQL, two on one PostgreSQL database, side by side.

The same storm as receiver_storm.py (10,000 distinct alerts, CLIENTS keep-alive clients, raw HTTP/1.1, the relay on
and delivering to a local SlackSink), with its functions: for each of 1 and 10 alerts per webhook, the three setups
start on fresh databases and take turns in slices (the others stopped with SIGSTOP meanwhile), so all three meet the
same machine (this VM's speed drifts by +-20% within a minute). Two receivers share the clients, half each, as
Alertmanager spreads its posts over the receivers it lists. Then every webhook is posted again as a redelivery (to
the other receiver of the pair, as the HA peer's copy arrives): history must still hold each alert exactly once.

PostgreSQL runs as the HA stack runs it (deploy/local/ha.py): fsync and synchronous_commit on, so a commit is on
disk when the webhook is answered; SQLite runs as it ships (synchronous = NORMAL: a commit survives a crash of the
receiver, not a power loss). Where the time goes: the receivers' CPU per request (gunicorn workers and relays, every
process of their sessions) and PostgreSQL's (the postmaster and its backends).
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from receiver_storm import (ALERTS, CLIENTS, PATH, THREADS, WORKERS, blast, bodies_for, figures,  # noqa: E402
                            history_counts, line, stopped, write_setup)

from deploy.local.postgres import TempPostgres  # noqa: E402
from deploy.local.sinks import SlackSink  # noqa: E402
from tests.receiver.serving import Served  # noqa: E402

SLICES = 5           # turns per setup and storm
SETUPS = (("sqlite, 1 receiver", "sqlite", 1), ("postgresql, 1 receiver", "postgresql", 1),
          ("postgresql, 2 receivers", "postgresql", 2))


def postgres_cpu_seconds(postmaster: int) -> float:
    """CPU seconds (user + system) of the postmaster, its live backends and the backends it has reaped."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, parent = int(stat.parent.name), int(fields[1])
        if pid == postmaster:  # cutime/cstime: backends that ended (a pool reconnecting) stay counted
            total += sum(int(x) for x in fields[11:15])
        elif parent == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


class Setup:
    """Receivers on one database, started fresh; their ports, sessions and the history they hold."""

    def __init__(self, name: str, kind: str, receivers: int, workdir: Path, sink: SlackSink, pg: TempPostgres):
        self.name, self.kind, self.pg = name, kind, pg
        config = write_setup(workdir, sink)
        if kind == "postgresql":
            self.database = f"bench_{os.getpid()}_{id(self)}"
            config["database"] = pg.create_database(self.database)
        self.url = config["database"]
        self.servers = []
        for number in range(receivers):
            (workdir / f"r{number}").mkdir()
            self.servers.append(Served(config, workdir / f"r{number}").start())

    @property
    def ports(self) -> list[int]:
        """The receivers' ports."""
        return [server.port for server in self.servers]

    @property
    def sessions(self) -> list[int]:
        """The receivers' sessions (each `serve` leads one: gunicorn, its workers, the relay)."""
        return [server.process.pid for server in self.servers]

    def counts(self) -> tuple[int, int, int]:
        """State changes stored, distinct alerts among them, and messages not yet delivered."""
        if self.kind == "sqlite":
            return history_counts(self.url)
        import psycopg

        with psycopg.connect(self.url) as conn:
            events, distinct = conn.execute("SELECT count(*), count(DISTINCT fingerprint) FROM events").fetchone()
            depth = conn.execute("SELECT count(*) FROM outbox WHERE state IN ('pending', 'sending')").fetchone()[0]
        return events, distinct, depth

    def stop(self) -> None:
        """Stop the receivers and drop a PostgreSQL database."""
        for server in self.servers:
            server.stop()
        if self.kind == "postgresql":
            self.pg.drop_database(self.database)


def turn(setup: Setup, others: list[Setup], bodies: list[bytes], postmaster: int, ports: list[int]) -> dict:
    """One setup posts `bodies` while every other setup's processes are stopped; the slice's figures, with
    PostgreSQL's CPU."""
    with ExitStack() as paused:
        for other in others:
            for session in other.sessions:
                paused.enter_context(stopped(session))
        pg_before = postgres_cpu_seconds(postmaster)
        result = blast(ports, PATH, bodies, setup.sessions)
        result["pg_cpu"] = postgres_cpu_seconds(postmaster) - pg_before
    return result


def run_storm(per_webhook: int, sink: SlackSink, pg: TempPostgres, postmaster: int) -> list[tuple[str, dict, bool]]:
    """The three setups through one storm of `per_webhook` alerts per webhook: (name, figures, exact) each."""
    bodies = bodies_for(per_webhook)
    size = len(bodies) // SLICES
    results = []
    with tempfile.TemporaryDirectory(prefix="receiver-bench-pg-") as tmp, ExitStack() as running:
        setups = []
        for number, (name, kind, receivers) in enumerate(SETUPS):
            (Path(tmp) / str(number)).mkdir()
            setups.append(Setup(name, kind, receivers, Path(tmp) / str(number), sink, pg))
            running.callback(setups[-1].stop)
        slices = {setup.name: [] for setup in setups}
        for number in range(SLICES):
            part = bodies[number * size:(number + 1) * size]
            for offset in range(len(setups)):  # a different setup first in every slice
                setup = setups[(number + offset) % len(setups)]
                others = [s for s in setups if s is not setup]
                slices[setup.name].append(turn(setup, others, part, postmaster, setup.ports))
        for setup in setups:
            # The redelivery goes to the other receiver of a pair: the HA peer's copy.
            again = turn(setup, [s for s in setups if s is not setup], bodies, postmaster, setup.ports[::-1])
            first = figures(slices[setup.name])
            first["pg_ms"] = sum(s["pg_cpu"] for s in slices[setup.name]) * 1000 / first["requests"]
            first["busy"] = busy_share(slices[setup.name])
            first["redelivery"] = figures([again])
            events, distinct, depth = setup.counts()
            first["lost"], first["duplicated"], first["depth"] = ALERTS - distinct, events - distinct, depth
            results.append((setup.name, first, events == distinct == ALERTS))
    return results


def busy_share(slices: list[dict]) -> float:
    """How much of the machine's CPU time was used (not idle, not iowait) during the slices."""
    machine = [sum(kind) for kind in zip(*(part["machine"] for part in slices))]
    return 1 - (machine[3] + machine[4]) / sum(machine)


def main() -> int:
    """Run the storms and print the figures and the targets' verdicts."""
    started = time.monotonic()
    print(f"receiver storm on PostgreSQL: {ALERTS} distinct alerts, {CLIENTS} keep-alive clients, gunicorn gthread"
          f" {WORKERS} workers x {THREADS} threads per receiver, relay on; {SLICES} slices per setup, taking turns")
    print("  PostgreSQL 15 as the HA stack runs it (fsync and synchronous_commit on); SQLite as shipped"
          " (synchronous NORMAL)")
    verdicts = {}
    with tempfile.TemporaryDirectory(prefix="receiver-bench-pgdata-") as tmp, SlackSink(port=0) as sink:
        pg = TempPostgres(tmp, fsync=True)
        try:
            pg.start()
            postmaster = int((pg.data_dir / "postmaster.pid").read_text().split()[0])
            for per_webhook in (1, 10):
                print(f"{per_webhook} alert(s) per webhook:")
                for name, f, exact in run_storm(per_webhook, sink, pg, postmaster):
                    verdicts[(per_webhook, name)] = (f, exact)
                    print(f"  {name:<24} {f['rps'] * per_webhook:7.0f} alerts/s {line(f)}")
                    print(f"  {'':<24} PostgreSQL CPU {f['pg_ms']:5.2f} ms/req, machine busy {f['busy']:4.0%};"
                          f" redelivery {f['redelivery']['rps']:5.0f} req/s, p99 {f['redelivery']['p99_ms']:6.2f} ms;"
                          f" lost {f['lost']}, duplicated {f['duplicated']}, outbox depth left {f['depth']}")
        finally:
            pg.stop()
    exact = all(ok for _, ok in verdicts.values())
    print("targets:")
    print(f"  zero lost and zero duplicated, in every run: {'OK' if exact else 'MISSED'}")
    for per_webhook in (1, 10):
        sqlite = verdicts[(per_webhook, "sqlite, 1 receiver")][0]["rps"] * per_webhook
        pair = verdicts[(per_webhook, "postgresql, 2 receivers")][0]["rps"] * per_webhook
        print(f"  {per_webhook:>2} alert(s)/webhook: two receivers on PostgreSQL {pair:.0f} alerts/s >= one SQLite"
              f" receiver {sqlite:.0f}: {pair / sqlite:.0%} {'OK' if pair >= sqlite else 'MISSED'}")
    print(f"(benchmark took {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
