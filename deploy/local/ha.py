"""The HA shape on 127.0.0.1 (`make up-ha`): PostgreSQL, two receivers sharing it, two clustered Alertmanagers.

The same services as `make up` otherwise (stand-ins, exporter, Prometheus), rendered from the same environment
with an overlay that lists both receivers and both Alertmanagers, as the prod environment does with its hosts.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from deploy.local.postgres import SUPERUSER, PostgresUnavailable, TempPostgres, find_bindir
from deploy.local.processes import ServiceSpec, StackError, service_ready, write_record
from deploy.local.stack import HOST, Ports, Stack
from exporter.durations import format_duration, parse_duration

DATABASE = "dumont"
# Service name -> the Ports field of its port; the first of each pair keeps `make up`'s variable.
PORT_FIELDS = {"receiver-1": "receiver", "receiver-2": "receiver_2", "alertmanager-1": "alertmanager",
               "alertmanager-2": "alertmanager_2"}


@dataclass
class HAPorts(Ports):
    """`make up`'s ports plus the second receiver and Alertmanager, the cluster's gossip and PostgreSQL."""

    receiver_2: int = 9879
    alertmanager_2: int = 9095
    alertmanager_cluster: int = 9094       # Alertmanager's usual gossip port
    alertmanager_2_cluster: int = 9096
    postgres: int = 5433                   # not 5432: Debian's postgresql package runs its own cluster there


class PostgresService:
    """The HA stack's PostgreSQL: a TempPostgres cluster in <run>/data/postgres, recorded like the other services.

    `make down` runs in another process and has no TempPostgres object: the pid file tells it to send the
    postmaster SIGINT (PostgreSQL's fast shutdown, what `pg_ctl stop -m fast` sends) rather than SIGTERM to
    the group, which would hit every backend before the postmaster could stop them in order.
    """

    def __init__(self, spec: ServiceSpec, run_dir: Path):
        self.spec = spec
        self.run_dir = run_dir
        self.pid_path = run_dir / "pids" / f"{spec.name}.json"
        self.log_path = run_dir / "logs" / f"{spec.name}.log"
        self.cluster: TempPostgres | None = None

    def start(self) -> None:
        """Start the cluster (initdb the first time), create the database once, write the pid file."""
        try:
            # fsync on: the demo's history is kept across `make down` and `make up-ha`, and must survive a crash.
            self.cluster = TempPostgres(self.run_dir / "data" / "postgres", fsync=True, port=self.spec.port)
            self._link_log()
            self.cluster.start()
            self._create_database()
        except PostgresUnavailable as exc:
            raise StackError(f"postgres: {exc}") from exc
        pid = int((self.cluster.data_dir / "postmaster.pid").read_text().split()[0])
        # As root, a run folder the `postgres` user cannot enter makes TempPostgres use a directory of its own.
        remove = [str(d) for d in (self.cluster.base, self.cluster.socket_dir)
                  if not d.is_relative_to(self.run_dir)]
        write_record(self.pid_path, pid, self.spec, stop_signal="SIGINT", stop_timeout=60, remove_dirs=remove)

    def _link_log(self) -> None:
        """<run>/logs/postgres.log points at the server's own log, so every log is in one folder."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.unlink(missing_ok=True)
        self.log_path.symlink_to(self.cluster.log_file)

    def _create_database(self) -> None:
        import psycopg

        with psycopg.connect(self.cluster.url, autocommit=True, connect_timeout=10) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
        if not exists:  # kept from the last run otherwise, like `make up`'s SQLite history
            self.cluster.create_database(DATABASE)

    def wait_ready(self, timeout: float) -> None:
        """pg_ctl already waited for the server; check that the database answers."""
        if not service_ready(self.spec.url, timeout):
            raise StackError(f"postgres does not answer at {self.spec.url}.\nLast lines of {self.log_path}:\n"
                             f"{self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of the server's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the server (pg_ctl stop -m fast) and remove the pid file."""
        try:
            if self.cluster is not None:
                self.cluster.stop()
        except PostgresUnavailable as exc:
            raise StackError(f"postgres: {exc}") from exc
        finally:
            self.pid_path.unlink(missing_ok=True)


class HAStack(Stack):
    """The HA stack of one run folder: PostgreSQL, stand-ins, receiver-1 and -2, exporter, alertmanager-1 and -2,
    Prometheus."""

    def __init__(self, run_dir: Path, env: str = "dev", ports: HAPorts | None = None, **kwargs):
        super().__init__(run_dir, env=env, ports=ports or HAPorts(), **kwargs)

    def url(self, service: str) -> str:
        """http://127.0.0.1:<port> of a service (`receiver-2`, or a port's name such as `sink_http`)."""
        if service == "postgres":
            return self.database_url
        return f"http://{HOST}:{getattr(self.ports, PORT_FIELDS.get(service, service))}"

    @property
    def database_url(self) -> str:
        """The receivers' database (no password: the loopback cluster trusts local connections)."""
        return f"postgresql://{SUPERUSER}@{HOST}:{self.ports.postgres}/{DATABASE}"

    def endpoints(self) -> dict:
        """Both receivers and both Alertmanagers listed, as generated/prod lists its hosts."""
        return {**super().endpoints(),
                "alertmanager": [f"{HOST}:{self.ports.alertmanager}", f"{HOST}:{self.ports.alertmanager_2}"],
                "receiver": [f"{HOST}:{self.ports.receiver}", f"{HOST}:{self.ports.receiver_2}"]}

    def receiver_configs(self, token_file: Path) -> dict[str, dict]:
        """receiver-1.yml and receiver-2.yml: same database, same channels, each its own port."""
        return {name: self.receiver_config(getattr(self.ports, PORT_FIELDS[name]), self.database_url, token_file)
                for name in ("receiver-1", "receiver-2")}

    def alertmanager_names(self) -> list[str]:
        """alertmanager-1 and alertmanager-2."""
        return ["alertmanager-1", "alertmanager-2"]

    def alertmanager_urls(self) -> list[str]:
        """Both Alertmanagers of the pair."""
        return [f"http://{HOST}:{self.ports.alertmanager}", f"http://{HOST}:{self.ports.alertmanager_2}"]

    def services(self) -> list[ServiceSpec]:
        """PostgreSQL first: the receivers migrate it when they start."""
        postgres = ServiceSpec("postgres", [f"{find_bindir()}/postgres", "-D", str(self.run_dir / "data" / "postgres"),
                                            "-p", str(self.ports.postgres)],
                               self.ports.postgres, "", self.database_url)
        return [postgres, *super().services()]

    def receiver_services(self) -> list[ServiceSpec]:
        """Two `dumont-receiver serve`, each with its relay: the database makes their work one."""
        return [self.receiver_service(name, getattr(self.ports, PORT_FIELDS[name]))
                for name in ("receiver-1", "receiver-2")]

    def alertmanager_services(self) -> list[ServiceSpec]:
        """Two Alertmanagers gossiping on loopback: each peers with the other, so they send a notification once."""
        p = self.ports
        pair = [("alertmanager-1", p.alertmanager, p.alertmanager_cluster, p.alertmanager_2_cluster),
                ("alertmanager-2", p.alertmanager_2, p.alertmanager_2_cluster, p.alertmanager_cluster)]
        timeout = f"--cluster.peer-timeout={format_duration(self.peer_timeout())}"
        return [self.alertmanager_service(name, port, [f"--cluster.listen-address={HOST}:{gossip}",
                                                       f"--cluster.peer={HOST}:{peer}", timeout])
                for name, port, gossip, peer in pair]

    def peer_timeout(self) -> float:
        """How long the second Alertmanager waits for the first's notification: well under group_interval.

        A peer that waits longer than a group's interval sends a firing it took before the resolution after the
        resolution went out, and the receivers, taking it for a re-fire, page again. Production's 5m interval
        leaves Alertmanager's default 15s alone; the demo's and tests' seconds need less.
        """
        config = yaml.safe_load((self.config_dir / "alertmanager" / "alertmanager.yml").read_text())
        group_interval = parse_duration(config["route"]["group_interval"]) or 15.0
        return min(15.0, group_interval / 4)

    def process_for(self, spec: ServiceSpec):
        """PostgreSQL is started by pg_ctl, the rest as ManagedProcess."""
        return PostgresService(spec, self.run_dir) if spec.name == "postgres" else super().process_for(spec)

    def check_binaries(self) -> None:
        """The single stack's binaries plus PostgreSQL's initdb, pg_ctl and postgres."""
        super().check_binaries()
        try:
            find_bindir()
        except PostgresUnavailable as exc:
            raise StackError(str(exc)) from exc
