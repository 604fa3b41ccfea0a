"""Test helpers for the exporter: a fake psutil, atomic scenario writes and an exporter subprocess."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import namedtuple
from pathlib import Path


Memory = namedtuple("Memory", "total available used")
Partition = namedtuple("Partition", "device mountpoint fstype opts")
Usage = namedtuple("Usage", "total used free percent")


class FakePsutil:
    """A psutil stand-in: fixed readings, and any read named in `failing` raises the given error."""

    def __init__(self, cpu=12.5, memory=Memory(16e9, 12e9, 4e9), mounts=None, failing=None):
        self.cpu = cpu
        self.memory = memory
        self.mounts = mounts if mounts is not None else {"/": Usage(100e9, 40e9, 60e9, 40.0),
                                                         "/data": Usage(500e9, 450e9, 50e9, 90.0)}
        self.failing = failing or {}

    def _maybe_fail(self, what: str) -> None:
        if what in self.failing:
            raise self.failing[what]

    def cpu_percent(self, interval=None):
        self._maybe_fail("cpu_percent")
        return self.cpu

    def virtual_memory(self):
        self._maybe_fail("virtual_memory")
        return self.memory

    def disk_partitions(self, all=False):  # noqa: A002 (psutil's signature)
        self._maybe_fail("disk_partitions")
        return [Partition(f"/dev/fake{index}", mount, "ext4", "rw") for index, mount in enumerate(self.mounts)]

    def disk_usage(self, path):
        self._maybe_fail(f"disk_usage:{path}")
        return self.mounts[path]


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` the way the contract asks: write a temp file, then rename it over."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


class ExporterProcess:
    """A dumont-exporter subprocess; `url` is set once it logged the address it listens on."""

    def __init__(self, args: list[str], log_path: Path):
        self.log_path = log_path
        self._log = open(log_path, "wb")
        # The console script pyproject declares, as people run it.
        command = [str(Path(sys.executable).with_name("dumont-exporter")), *args]
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)
        self.url = None

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_listening(self, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log().splitlines():
                if "listening on " in line:
                    self.url = line.split("listening on ", 1)[1].strip()
                    return self.url
            if self.process.poll() is not None:
                raise AssertionError(f"exporter exited with {self.process.returncode}:\n{self.log()}")
            time.sleep(0.05)
        raise AssertionError(f"exporter did not start listening within {timeout}s:\n{self.log()}")

    def scrape(self) -> str:
        with urllib.request.urlopen(self.url, timeout=10) as response:
            return response.read().decode("utf-8")

    def stop(self, signum: int = signal.SIGINT, timeout: float = 15.0) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log.close()


class FixedClock:
    """A clock that says what the test tells it to."""

    def __init__(self, now: float = 1_700_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def sample_value(exposition: str, name: str, labels: dict[str, str]) -> float | None:
    """The value of one sample in a text exposition, or None if it is absent."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


def promtool_check_metrics(promtool: str, exposition: str) -> list[str]:
    """What `promtool check metrics` says about an exposition fed on stdin, one problem a line."""
    result = subprocess.run([promtool, "check", "metrics"], input=exposition, capture_output=True, text=True,
                            timeout=60)
    problems = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    if result.returncode != 0:
        assert problems, f"promtool failed with {result.returncode} and said nothing"
    return problems
