"""The HA shape for fault tests: one PostgreSQL, two receivers on it, two clustered Alertmanagers, the stand-ins.

Config is rendered as `make up-ha` renders it (HAStack.prepare: the `fast` environment with an overlay listing both
receivers, so every channel has a webhook config per receiver), and each process is started on its own so a test
can kill -9 one, restart PostgreSQL under the others and start the killed one again. Prometheus and the exporter
are left out: the tests post alerts to both Alertmanagers themselves, as Prometheus does.
"""
from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

import yaml

from deploy.local.ha import DATABASE, HAPorts, HAStack
from deploy.local.postgres import TempPostgres
from deploy.local.processes import ManagedProcess, ServiceSpec

RECEIVERS = ("receiver-1", "receiver-2")
ALERTMANAGERS = ("alertmanager-1", "alertmanager-2")


class HAShape:
    """Every process of the shape, by service name; stop() ends all of them, whatever state they are in."""

    def __init__(self, run_dir: Path, receiver_settings: Callable[[str], dict] = lambda name: {},
                 alertmanager_flags: tuple = ()):
        self.run_dir = Path(run_dir)
        self.stack = HAStack(self.run_dir, env="fast", ports=HAPorts.free(), ready_timeout=60)
        self.receiver_settings = receiver_settings  # receiver name -> keys added to its receiver.yml
        self.alertmanager_flags = list(alertmanager_flags)
        self.postgres: TempPostgres | None = None
        self.specs: dict[str, ServiceSpec] = {}
        self.running: dict[str, ManagedProcess] = {}

    def start(self, services: tuple = ("sinks", *RECEIVERS, *ALERTMANAGERS)) -> "HAShape":
        """Start PostgreSQL (creating the database) and then `services` in order, each waited for."""
        # fsync stays off as in every test cluster: a restart of the server, not of the host, is what is tested.
        self.postgres = TempPostgres(self.run_dir / "postgres", port=self.stack.ports.postgres)
        self.postgres.start()
        self.postgres.create_database(DATABASE)
        self.stack.prepare()
        for name in RECEIVERS:
            path = self.run_dir / f"{name}.yml"
            path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), **self.receiver_settings(name)}))
        for spec in self.stack.services():
            if spec.name in ALERTMANAGERS:  # a flag given here replaces the stack's own (Alertmanager refuses repeats)
                given = {flag.split("=", 1)[0] for flag in self.alertmanager_flags}
                spec.argv = [a for a in spec.argv if a.split("=", 1)[0] not in given] + self.alertmanager_flags
            self.specs[spec.name] = spec
        for name in services:
            self.start_service(name)
        return self

    def url(self, name: str) -> str:
        """http://127.0.0.1:<port> of a service."""
        return self.specs[name].url

    def start_service(self, name: str) -> None:
        """Start one service (again: same port, same config, same data) and wait until it is ready."""
        process = ManagedProcess(self.specs[name], self.run_dir)
        self.running[name] = process
        process.start()
        process.wait_ready(self.stack.ready_timeout)

    def kill(self, name: str) -> None:
        """kill -9 the service's whole process group (gunicorn's master, workers and relay alike), as a host
        that dies takes them all at once."""
        process = self.running.pop(name)
        os.killpg(process.popen.pid, signal.SIGKILL)
        process.popen.wait(10)

    def stop_service(self, name: str) -> None:
        """Stop one service cleanly (SIGTERM)."""
        self.running.pop(name).stop()

    def restart_postgres(self, down_for: float = 1.0) -> None:
        """Stop PostgreSQL (fast shutdown: every session is cut), keep it down a moment, start it on the same data
        directory and port."""
        # TempPostgres.stop() would also remove a directory it made for itself (as root): pg_ctl stop alone.
        self.postgres._run("pg_ctl", "-D", str(self.postgres.data_dir), "-m", "fast", "-w", "-t", "60", "stop")
        time.sleep(down_for)
        self.postgres.start()

    def stop(self) -> None:
        """Stop every service still running, then PostgreSQL."""
        try:
            for name in reversed(list(self.running)):
                self.running.pop(name).stop()
        finally:
            if self.postgres is not None:
                self.postgres.stop()

    def post_alerts(self, name: str, alerts: list[dict]) -> bool:
        """POST /api/v2/alerts to one Alertmanager, as Prometheus does; False when it does not answer (Prometheus
        logs that and goes on with the other)."""
        request = urllib.request.Request(self.url(name) + "/api/v2/alerts", data=json.dumps(alerts).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def get_json(self, name: str, path: str):
        """GET a service's JSON."""
        with urllib.request.urlopen(self.url(name) + path, timeout=10) as response:
            return json.load(response)

    def get_text(self, name: str, path: str) -> str:
        """GET a service's text (/metrics)."""
        with urllib.request.urlopen(self.url(name) + path, timeout=10) as response:
            return response.read().decode()

    def sql(self, query: str) -> list[tuple]:
        """Rows of a query on the receivers' database."""
        import psycopg

        with psycopg.connect(self.postgres.url_for(DATABASE), connect_timeout=10) as conn:
            return conn.execute(query).fetchall()
