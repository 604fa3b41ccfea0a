"""A real Alertmanager on 127.0.0.1, alone, in a temp dir on a free port, for tests that need its own behaviour."""
from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from deploy.local.processes import _terminate_group, free_port, http_ok

BINARY = "prometheus-alertmanager"


class Alertmanager:
    """`prometheus-alertmanager` with `config`; stop() always ends it."""

    def __init__(self, config: dict, workdir: Path):
        binary = shutil.which(BINARY)
        if binary is None:  # a missing binary fails the test: it must never pass by not running
            pytest.fail(f"{BINARY} is not installed (run `make setup`, which installs Debian's prometheus-alertmanager)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        config_path = workdir / "alertmanager.yml"
        config_path.write_text(yaml.safe_dump(config))
        self.log_path = workdir / "alertmanager.log"
        self.argv = [binary, f"--config.file={config_path}", f"--storage.path={workdir / 'data'}",
                     f"--web.listen-address=127.0.0.1:{self.port}", f"--web.external-url={self.url}/",
                     "--cluster.listen-address="]  # no gossip: a lone instance on loopback
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> Alertmanager:
        """Start it and wait until /-/ready answers."""
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"alertmanager exited {self.process.returncode}:\n{self.log()}")
            if http_ok(self.url + "/-/ready"):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"alertmanager not ready within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        """What it wrote to stdout and stderr."""
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM its process group, SIGKILL if it lingers."""
        if self.process is not None:
            _terminate_group(self.process.pid, 10.0, self.process)

    def post_alerts(self, alerts: list[dict]) -> None:
        """POST /api/v2/alerts, as Prometheus does."""
        request = urllib.request.Request(self.url + "/api/v2/alerts", data=json.dumps(alerts).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200, response.read()

    def alerts(self) -> list[dict]:
        """GET /api/v2/alerts: every alert it holds, with its fingerprint."""
        with urllib.request.urlopen(self.url + "/api/v2/alerts", timeout=30) as response:
            return json.load(response)
