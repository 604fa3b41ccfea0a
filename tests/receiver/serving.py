"""Run the real `dumont-receiver serve` as a subprocess on a free loopback port (tests and the benchmark)."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
import yaml

BIN = Path(sys.executable).with_name("dumont-receiver")


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Served:
    """`dumont-receiver serve --config` in a subprocess; stop() always ends it and its relay."""

    def __init__(self, config: dict, workdir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = workdir / "receiver.yml"
        self.config_path.write_text(yaml.safe_dump({**config, "listen": f"127.0.0.1:{self.port}"}))
        self.log_path = workdir / "serve.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> Served:
        """Start and wait until /-/ready answers 200."""
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([str(BIN), "serve", "--config", str(self.config_path)],
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited {self.process.returncode}:\n{self.log()}")
            try:
                if requests.get(self.url + "/-/ready", timeout=1).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"serve not ready within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def relay_pid(self) -> int | None:
        """The pid of the newest relay `serve` started."""
        started = re.findall(r"serve\.relay_started pid=(\d+)", self.log())
        return int(started[-1]) if started else None

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait; SIGKILL the whole session if it hangs. The exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode
