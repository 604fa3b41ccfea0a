"""Start, watch and stop the stack's processes, each with a log file and a pid file in the run folder."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


class StackError(RuntimeError):
    """A service could not be started; the message says which and why."""


@dataclass
class ServiceSpec:
    """One process of the stack: how to run it and how to tell it is ready."""

    name: str
    argv: list[str]
    port: int
    ready_path: str
    url: str
    env: dict[str, str] = field(default_factory=dict)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on host:port and we may bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """True when GET url answers 2xx."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= response.status < 300
    except (OSError, urllib.error.URLError, ValueError):
        return False


def service_ready(url: str, timeout: float = 1.0) -> bool:
    """True when the service answers: GET 2xx for an http URL, a query for a postgresql:// one."""
    if url.startswith("postgresql://"):
        import psycopg  # a project dependency; only the HA stack's PostgreSQL is probed this way

        try:
            with psycopg.connect(url, connect_timeout=max(1, round(timeout))) as conn:
                conn.execute("SELECT 1")
            return True
        except (psycopg.Error, OSError):
            return False
    return http_ok(url, timeout)


def _start_time(pid: int) -> str | None:
    """The kernel's start time of pid, so a pid file never names a recycled pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime) counts from after the command name, which may contain spaces.
    return stat.rsplit(")", 1)[1].split()[19]


def write_record(pid_path: Path, pid: int, spec: ServiceSpec, **extra) -> None:
    """Write the pid file `down` and `status` read: the pid, its start time, where it serves and how it is ready.

    `extra` may say how to stop it (`stop_signal`, `stop_timeout`) and which directories to remove afterwards
    (`remove_dirs`), for a process that does not stop on SIGTERM to its group the way we want (PostgreSQL).
    """
    record = {"pid": pid, "start_time": _start_time(pid), "argv": spec.argv, "url": spec.url, "port": spec.port,
              "ready_url": spec.url + spec.ready_path, **extra}
    pid_path.parent.mkdir(parents=True, exist_ok=True)
    pid_path.write_text(json.dumps(record, indent=2))


class ManagedProcess:
    """A service started in its own session, logging to <run>/logs/<name>.log."""

    def __init__(self, spec: ServiceSpec, run_dir: Path):
        self.spec = spec
        self.log_path = run_dir / "logs" / f"{spec.name}.log"
        self.pid_path = run_dir / "pids" / f"{spec.name}.json"
        self.popen: subprocess.Popen | None = None

    def start(self) -> None:
        """Launch the process and write its pid file."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.pid_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.spec.env}
        with open(self.log_path, "ab") as log:
            try:
                self.popen = subprocess.Popen(
                    self.spec.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    env=env, start_new_session=True)
            except OSError as exc:
                raise StackError(f"{self.spec.name}: cannot run {self.spec.argv[0]}: {exc}") from exc
        write_record(self.pid_path, self.popen.pid, self.spec)

    def wait_ready(self, timeout: float) -> None:
        """Block until the ready URL answers 2xx; raise StackError if the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        ready_url = self.spec.url + self.spec.ready_path
        while time.monotonic() < deadline:
            if self.popen is not None and self.popen.poll() is not None:
                raise StackError(f"{self.spec.name} exited with code {self.popen.returncode} before it was ready.\n"
                                 f"Last lines of {self.log_path}:\n{self.log_tail()}")
            if http_ok(ready_url):
                return
            time.sleep(0.1)
        raise StackError(f"{self.spec.name} was not ready at {ready_url} after {timeout:.0f} s.\n"
                         f"Last lines of {self.log_path}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of the service's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process group: SIGTERM, then SIGKILL after timeout; remove the pid file."""
        if self.popen is not None:
            _terminate_group(self.popen.pid, timeout, self.popen)
        self.pid_path.unlink(missing_ok=True)


def _terminate_group(pid: int, timeout: float, popen: subprocess.Popen | None = None,
                     leader_signal: signal.Signals | None = None) -> None:
    """SIGTERM the process group led by pid (or send leader_signal to the leader alone), SIGKILL the group if
    the leader outlives timeout."""
    try:
        if leader_signal is None:
            os.killpg(pid, signal.SIGTERM)
        else:  # a server that stops its own children in order (PostgreSQL) is told, not its children
            os.kill(pid, leader_signal)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen is not None:
            if popen.poll() is not None:
                break
        elif not _alive(pid):
            break
        time.sleep(0.05)
    else:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if popen is not None:
            popen.wait(timeout=5)
    # Children of the group (gunicorn workers) may outlive their leader by a moment.
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); it is gone for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def recorded_processes(run_dir: Path) -> list[tuple[str, dict]]:
    """(name, pid record) for every pid file in the run folder, in start order."""
    pid_dir = run_dir / "pids"
    if not pid_dir.is_dir():
        return []
    records = []
    for path in pid_dir.glob("*.json"):
        try:
            records.append((path.stem, json.loads(path.read_text()), path.stat().st_mtime))
        except (OSError, ValueError):
            continue
    return [(name, record) for name, record, _ in sorted(records, key=lambda item: item[2])]


def is_ours(record: dict) -> bool:
    """True when the recorded pid still runs and is the very process we started."""
    pid = record.get("pid")
    return isinstance(pid, int) and _alive(pid) and _start_time(pid) == record.get("start_time")


def stop_recorded(run_dir: Path, timeout: float = 10.0) -> list[str]:
    """Stop every process recorded in the run folder, newest first; return what was stopped."""
    stopped = []
    for name, record in reversed(recorded_processes(run_dir)):
        if is_ours(record):
            leader_signal = getattr(signal, record["stop_signal"]) if record.get("stop_signal") else None
            _terminate_group(record["pid"], record.get("stop_timeout", timeout), leader_signal=leader_signal)
            stopped.append(name)
        for directory in record.get("remove_dirs", []):  # made outside the run folder for this process alone
            shutil.rmtree(directory, ignore_errors=True)
        (run_dir / "pids" / f"{name}.json").unlink(missing_ok=True)
    return stopped
