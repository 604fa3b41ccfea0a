"""The whole stack on 127.0.0.1: what runs, with which rendered config, in which order."""
from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass, fields
from pathlib import Path

import yaml

from deploy.local.processes import ManagedProcess, ServiceSpec, StackError, free_port, port_is_free
from rules_src.spec import load as load_spec

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"


@dataclass
class Ports:
    """The loopback port of each service; `from_env` reads overrides such as PROMETHEUS_PORT=19090."""

    prometheus: int = 9090
    alertmanager: int = 9093
    exporter: int = 9877
    receiver: int = 9878
    sink_http: int = 9880
    sink_smtp: int = 2525

    @classmethod
    def from_env(cls, environ=os.environ) -> "Ports":
        """Documented defaults, each overridable by <NAME>_PORT in the environment."""
        values = {}
        for item in fields(cls):
            raw = environ.get(f"{item.name.upper()}_PORT")
            if raw:
                if not raw.isdigit() or not 0 < int(raw) < 65536:
                    raise StackError(f"{item.name.upper()}_PORT={raw!r} is not a TCP port number")
                values[item.name] = int(raw)
        return cls(**values)

    @classmethod
    def free(cls) -> "Ports":
        """Ports that are free right now (for tests running beside a `make up` stack)."""
        return cls(**{item.name: free_port() for item in fields(cls)})

    def items(self) -> list[tuple[str, int]]:
        """(service, port) pairs."""
        return [(item.name, getattr(self, item.name)) for item in fields(self)]


def tool(name: str) -> str:
    """Path of an executable: the project's console scripts live beside this Python, the rest on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        hint = " (run `make setup`)" if name.startswith("dumont-") else \
            " (run `make setup`, which installs Debian's prometheus and prometheus-alertmanager)"
        raise StackError(f"{name} is not installed{hint}")
    return found


class Stack:
    """The stack of one run folder: sinks, receiver, exporter, Alertmanager and Prometheus."""

    def __init__(self, run_dir: Path, env: str = "dev", ports: Ports | None = None,
                 scenario: dict | None = None, ready_timeout: float = 30.0):
        self.run_dir = Path(run_dir).resolve()
        self.env = env
        self.ports = ports or Ports()
        self.scenario = scenario
        self.ready_timeout = ready_timeout
        self.started: list[ManagedProcess] = []

    # --- paths and URLs -------------------------------------------------------------------------
    @property
    def config_dir(self) -> Path:
        """Where this run's rendered config lives (`<run>/config/<env>`)."""
        return self.run_dir / "config" / self.env

    @property
    def scenario_path(self) -> Path:
        """The exporter's simulation scenario; rewrite it (atomically) to drive values."""
        return self.run_dir / "scenario.yml"

    def url(self, service: str) -> str:
        """http://127.0.0.1:<port> of a service."""
        return f"http://{HOST}:{getattr(self.ports, service)}"

    # --- preparation ----------------------------------------------------------------------------
    def prepare(self) -> None:
        """Write secrets, the runtime overlay, the rendered config, the receiver's config and the scenario."""
        # Alertmanager's notification log would hold back a FIRING it sent before the last `down` (for
        # repeat_interval): every `up` starts it afresh. Prometheus' data and the receiver's history stay.
        for name in self.alertmanager_names():
            shutil.rmtree(self.run_dir / "data" / name, ignore_errors=True)
        for sub in ("secrets", "logs", "pids", "data/prometheus", "data/receiver", "sinks",
                    *(f"data/{name}" for name in self.alertmanager_names())):
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
        (self.run_dir / "secrets").chmod(0o700)
        token_file = self._secret("receiver_token", secrets.token_urlsafe(32), keep=True)
        # The bot token the Slack stand-in's Web API accepts (and Slack channels with bot_token_* present)
        self._secret("slack_bot_token", "xoxb-local-" + secrets.token_hex(16), keep=True)
        self._secret("webhook_secret", secrets.token_urlsafe(32), keep=True)  # the stand-in checks signatures
        overlay = self.overlay(token_file)
        overlay_path = self.run_dir / "overlay.yml"
        overlay_path.write_text(yaml.safe_dump(overlay, sort_keys=True))
        render = subprocess.run(
            [tool("dumont-rules"), "generate", "--env", self.env, "--out", str(self.run_dir / "config"),
             "--overlay", str(overlay_path)], capture_output=True, text=True)
        if render.returncode != 0:
            raise StackError(f"rendering environment {self.env!r} failed:\n{render.stderr or render.stdout}")
        for name, config in self.receiver_configs(token_file).items():
            (self.run_dir / f"{name}.yml").write_text(yaml.safe_dump(config, sort_keys=True))
        if self.scenario is not None or not self.scenario_path.exists():
            self.write_scenario(self.scenario or demo_scenario())

    def overlay(self, token_file: Path) -> dict:
        """What only exists at run time, rendered over the environment (`dumont-rules generate --overlay`)."""
        return {
            "endpoints": self.endpoints(),
            # Every alert's runbook_url: this stack's (first) receiver serves the pages, whatever the env says.
            "receiver_external_url": self.url("receiver"),
            "receiver_token_file": str(token_file),
            "channels": self._channel_overrides(),
        }

    def endpoints(self) -> dict:
        """The overlay's endpoints: where Prometheus finds Alertmanager, the exporter and the receiver."""
        return {service: f"{HOST}:{getattr(self.ports, service)}"
                for service in ("prometheus", "alertmanager", "exporter", "receiver")}

    def receiver_configs(self, token_file: Path) -> dict[str, dict]:
        """The config of each receiver by service name (written to <run>/<name>.yml): one, on SQLite."""
        return {"receiver": self.receiver_config(self.ports.receiver,
                                                 str(self.run_dir / "data" / "receiver" / "history.db"), token_file)}

    def receiver_config(self, port: int, database: str, token_file: Path) -> dict:
        """One receiver's receiver.yml on loopback: `database` is a SQLite file or a PostgreSQL URL."""
        return {
            "listen": f"{HOST}:{port}",
            "database": database,
            "channels_file": str(self.config_dir / "receiver" / "channels.yml"),
            "token_file": str(token_file),
            "history_token_file": None,
            "external_url": f"http://{HOST}:{port}",
            "runbooks_dir": str(self.config_dir / "runbooks"),
            # Reconciliation: dev's groups flush every 10 s, so a missing alert is surely over within a minute.
            "alertmanager_urls": self.alertmanager_urls(),
            "reconcile_interval": "5s",
            "reconcile_grace": "1m",
            # The fleet dashboard (/dashboard) reads this stack's Prometheus; the stack's times are UTC.
            "prometheus_url": self.url("prometheus"),
        }

    def alertmanager_names(self) -> list[str]:
        """The Alertmanagers' service names (each has its data in <run>/data/<name>)."""
        return ["alertmanager"]

    def alertmanager_urls(self) -> list[str]:
        """Every Alertmanager's base URL, as the receivers reconcile with them."""
        return [f"http://{HOST}:{self.ports.alertmanager}"]

    def _secret(self, name: str, value: str, keep: bool = False) -> Path:
        """Write a secret file readable by us alone; with keep, an existing one stays as it is."""
        path = self.run_dir / "secrets" / name
        if not (keep and path.exists()):
            path.touch(mode=0o600)
            path.write_text(value + "\n")
        return path

    def _channel_overrides(self) -> dict:
        """Point every Slack channel at the Slack stand-in, every email channel at the SMTP stand-in (those
        Alertmanager delivers itself, the direct route around the receiver, included), and every webhook and
        PagerDuty channel at theirs (served by the sinks on the Slack stand-in's port)."""
        spec, errors = load_spec(self.env)
        if spec is None:
            raise StackError(f"cannot read the channels of environment {self.env!r}:\n"
                             + "\n".join(str(e) for e in errors))
        overrides = {}
        for name, channel in sorted(spec.channels.items()):
            kind = channel.get("type")
            if kind == "slack" and ("bot_token_file" in channel or "bot_token_env" in channel):
                # The Web API (threads): the stand-in's, with the token it accepts
                overrides[name] = {"bot_token_file": str(self.run_dir / "secrets" / "slack_bot_token"),
                                   "api_url": f"{self.url('sink_http')}/api"}
            elif kind in ("slack", "alertmanager_slack"):
                url_file = self._secret(f"slack_{name}_url", f"{self.url('sink_http')}/services/{name}")
                overrides[name] = {("api_url_file" if kind == "alertmanager_slack" else "webhook_url_file"):
                                   str(url_file)}
            elif kind == "webhook":  # the stand-in under /hooks/<name>, which checks the signature
                overrides[name] = {"url_file": str(self._secret(f"webhook_{name}_url",
                                                                f"{self.url('sink_http')}/hooks/{name}")),
                                   "secret_file": str(self.run_dir / "secrets" / "webhook_secret")}
            elif kind == "pagerduty":  # the Events API v2 stand-in under /pagerduty
                overrides[name] = {"routing_key_file": str(self._secret(f"pagerduty_{name}_key", secrets.token_hex(16),
                                                                        keep=True)),
                                   "api_url": f"{self.url('sink_http')}/pagerduty"}
            elif kind in ("email", "alertmanager_email"):
                overrides[name] = {"smarthost": f"{HOST}:{self.ports.sink_smtp}", "require_tls": False}
                if "password_file" in channel:  # the stand-in offers no AUTH; the file must exist all the same
                    overrides[name]["password_file"] = str(self._secret("smtp_password", "unused", keep=True))
        return overrides

    def write_scenario(self, scenario: dict) -> None:
        """Replace the exporter's scenario atomically; the exporter picks it up on its next tick."""
        tmp = self.scenario_path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(scenario, sort_keys=False))
        os.replace(tmp, self.scenario_path)

    # --- processes ------------------------------------------------------------------------------
    def services(self) -> list[ServiceSpec]:
        """The services in start order (each one's consumers start after it)."""
        return [self.sinks_service(), *self.receiver_services(), self.exporter_service(),
                *self.alertmanager_services(), self.prometheus_service()]

    def sinks_service(self) -> ServiceSpec:
        """The Slack and SMTP stand-ins."""
        p = self.ports
        python_path = {"PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        return ServiceSpec("sinks", [sys.executable, "-m", "deploy.local.sinks", "--http", f"{HOST}:{p.sink_http}",
                                     "--smtp", f"{HOST}:{p.sink_smtp}", "--store", str(self.run_dir / "sinks"),
                                     "--slack-token-file", str(self.run_dir / "secrets" / "slack_bot_token"),
                                     "--webhook-secret-file", str(self.run_dir / "secrets" / "webhook_secret")],
                           p.sink_http, "/api/messages", self.url("sink_http"), python_path)

    def receiver_services(self) -> list[ServiceSpec]:
        """The receivers: one here."""
        return [self.receiver_service("receiver", self.ports.receiver)]

    def receiver_service(self, name: str, port: int) -> ServiceSpec:
        """`dumont-receiver serve` (HTTP and its relay) with <run>/<name>.yml."""
        return ServiceSpec(name, [tool("dumont-receiver"), "serve", "--config", str(self.run_dir / f"{name}.yml")],
                           port, "/-/ready", f"http://{HOST}:{port}")

    def exporter_service(self) -> ServiceSpec:
        """The exporter playing <run>/scenario.yml."""
        p = self.ports
        return ServiceSpec("exporter", [tool("dumont-exporter"), "--listen", f"{HOST}:{p.exporter}",
                                        "--simulate", str(self.scenario_path), "--no-host-metrics"],
                           p.exporter, "/metrics", self.url("exporter"))

    def alertmanager_services(self) -> list[ServiceSpec]:
        """The Alertmanagers: one, its clustering off."""
        return [self.alertmanager_service("alertmanager", self.ports.alertmanager, ["--cluster.listen-address="])]

    def alertmanager_service(self, name: str, port: int, cluster_args: list[str]) -> ServiceSpec:
        """Debian's Alertmanager on the rendered config, its state in <run>/data/<name>."""
        url = f"http://{HOST}:{port}"
        return ServiceSpec(name, [
            tool("prometheus-alertmanager"),
            f"--config.file={self.config_dir / 'alertmanager' / 'alertmanager.yml'}",
            f"--storage.path={self.run_dir / 'data' / name}",
            f"--web.listen-address={HOST}:{port}",
            f"--web.external-url={url}/",
            *cluster_args], port, "/-/ready", url)

    def prometheus_service(self) -> ServiceSpec:
        """Debian's Prometheus on the rendered config."""
        p = self.ports
        return ServiceSpec("prometheus", [
            tool("prometheus"),
            f"--config.file={self.config_dir / 'prometheus' / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.run_dir / 'data' / 'prometheus'}",
            f"--web.listen-address={HOST}:{p.prometheus}",
            f"--web.external-url={self.url('prometheus')}/",
            # The dashboard's "this year" and its 12 months of savings need a year of samples (the default is 15d).
            "--storage.tsdb.retention.time=400d",
            # Alerts sent to Alertmanager stay valid for 4 resend delays (default 1 m): tie it to the
            # evaluation interval so a dead Prometheus lets Watchdog lapse and the dead man's switch trips.
            f"--rules.alert.resend-delay={self._evaluation_interval()}"],
            p.prometheus, "/-/ready", self.url("prometheus"))

    def _evaluation_interval(self) -> str:
        config = yaml.safe_load((self.config_dir / "prometheus" / "prometheus.yml").read_text())
        return config.get("global", {}).get("evaluation_interval", "1m")

    def check_binaries(self) -> None:
        """Raise StackError naming the first binary the stack needs that is not installed."""
        for binary in ("prometheus", "prometheus-alertmanager", "dumont-rules", "dumont-receiver",
                       "dumont-exporter"):
            tool(binary)

    def start(self) -> None:
        """Check binaries and ports, prepare the run folder, start every service and wait until it is ready.

        On any failure everything this call started is stopped again before StackError propagates.
        """
        self.check_binaries()  # a missing binary fails before anything starts
        busy = [f"{name} port {port}" for name, port in self.ports.items() if not port_is_free(port)]
        if busy:
            raise StackError("port already in use: " + ", ".join(busy) +
                             " (is a stack already up? `make down`. Debian's own services? `sudo systemctl"
                             " disable --now prometheus prometheus-alertmanager`. Or set e.g. PROMETHEUS_PORT=19090)")
        try:
            self.prepare()
            for spec in self.services():
                self._launch(spec)
        except BaseException:
            self.stop()
            raise

    def process_for(self, spec: ServiceSpec) -> ManagedProcess:
        """What runs a service: a ManagedProcess (the HA stack's PostgreSQL is started its own way)."""
        return ManagedProcess(spec, self.run_dir)

    def _launch(self, spec: ServiceSpec) -> None:
        process = self.process_for(spec)
        self.started.append(process)
        process.start()
        process.wait_ready(self.ready_timeout)

    def stop(self) -> None:
        """Stop what this Stack started, newest first."""
        while self.started:
            self.started.pop().stop()

    def stop_service(self, name: str) -> None:
        """Stop one running service (to test what happens when it dies)."""
        process = next(p for p in self.started if p.spec.name == name)
        self.started.remove(process)
        process.stop()

    def start_service(self, name: str) -> None:
        """Start one service again with the same config and wait until it is ready."""
        self._launch(next(spec for spec in self.services() if spec.name == name))

    def __enter__(self) -> "Stack":
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def demo_scenario() -> dict:
    """Two healthy machines; gpu-1's disk fills past 80 % for a minute, then recovers for good."""
    healthy = {"sync_latency_seconds": 2, "sync_ok": True, "disk_used_ratio": 0.40,
               "memory_used_ratio": 0.50, "cpu_percent": 30, "cost_hourly_usd": 0.50, "up": True}
    return {
        "tick": "1s",
        "loop": False,
        "machines": {"gpu-1": {"type": "gpu", "provider": "vast", "mounts": ["/", "/data"]},
                     "cpu-1": {"type": "cpu", "provider": "gcp"}},
        "components": ["sync", "api"],
        "phases": [
            {"name": "healthy", "duration": "10s", "machines": {"*": healthy},
             "components": {"sync": 1.0, "api": 1.0},
             "savings": {"spot": 3.6, "standby": 1.2, "transfer": 0.4}},
            {"name": "gpu-1 disk fills", "duration": "50s", "machines": {"gpu-1": {"disk_used_ratio": 0.95}}},
            {"name": "disk cleaned up", "machines": {"gpu-1": {"disk_used_ratio": 0.40}}},
        ],
    }
