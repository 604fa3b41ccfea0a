"""Start, watch and stop the stack's processes, each with a log file and a pid file in the run folder."""
from __future__ import annotations

import json
import os
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


def _start_time(pid: int) -> str | None:
    """The kernel's start time of pid, so a pid file never names a recycled pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime) counts from after the command name, which may contain spaces.
    return stat.rsplit(")", 1)[1].split()[19]


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
        record = {"pid": self.popen.pid, "start_time": _start_time(self.popen.pid),
                  "argv": self.spec.argv, "url": self.spec.url, "port": self.spec.port,
                  "ready_url": self.spec.url + self.spec.ready_path}
        self.pid_path.write_text(json.dumps(record, indent=2))

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


def _terminate_group(pid: int, timeout: float, popen: subprocess.Popen | None = None) -> None:
    """SIGTERM the process group led by pid, SIGKILL it if it outlives timeout."""
    try:
        os.killpg(pid, signal.SIGTERM)
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
            _terminate_group(record["pid"], timeout)
            stopped.append(name)
        (run_dir / "pids" / f"{name}.json").unlink(missing_ok=True)
    return stopped
