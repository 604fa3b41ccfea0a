"""The loopback stack runner behind `make up`, `make status` and `make down`."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from deploy.local.processes import (ManagedProcess, ServiceSpec, StackError, free_port, is_ours, port_is_free,
                                    recorded_processes)
from deploy.local.stack import REPO_ROOT, Ports, Stack
from rules_src.spec import load as load_spec


def run_cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `python -m deploy.local ...` from the repository root."""
    return subprocess.run([sys.executable, "-m", "deploy.local", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=timeout)


def group_members(pgid: int) -> list[int]:
    """Pids of live processes in process group pgid (gunicorn workers, for example)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def runbook_urls(rules_dir: Path) -> set[str]:
    """Every alert's runbook_url in the rule files of a rendered environment."""
    return {rule["annotations"]["runbook_url"] for path in sorted(rules_dir.glob("*.yml"))
            for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"] if "alert" in rule}


def sleeper_spec(name: str, port: int, code: str = "import time; time.sleep(60)") -> ServiceSpec:
    return ServiceSpec(name, [sys.executable, "-c", code], port, "/ready", f"http://127.0.0.1:{port}")


def test_a_busy_port_stops_up_before_anything_starts(tmp_path):
    ports = Ports.free()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", ports.alertmanager))
        squatter.listen()
        with pytest.raises(StackError, match=f"alertmanager port {ports.alertmanager}"):
            Stack(tmp_path, env="fast", ports=ports).start()
    assert recorded_processes(tmp_path) == []


def test_a_missing_binary_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(StackError, match=r"prometheus is not installed \(run `make setup`"):
        Stack(tmp_path, env="fast", ports=Ports.free()).start()
    assert recorded_processes(tmp_path) == []


def test_a_service_that_never_gets_ready_is_named_and_stopped(tmp_path):
    process = ManagedProcess(sleeper_spec("stuck", free_port()), tmp_path)
    process.start()
    try:
        with pytest.raises(StackError, match=r"stuck was not ready at http://127.0.0.1:\d+/ready after 1 s"):
            process.wait_ready(timeout=1)
    finally:
        process.stop()
    assert process.popen.poll() is not None
    assert recorded_processes(tmp_path) == []


class StackWithAStuckService(Stack):
    """A web server that gets ready, then a service that never does."""

    def services(self):
        web = ServiceSpec("web", [sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                                  str(self.ports.exporter)], self.ports.exporter, "/", self.url("exporter"))
        return [web, sleeper_spec("stuck", self.ports.receiver)]


def test_a_later_service_that_never_gets_ready_stops_the_earlier_ones(tmp_path):
    ports = Ports.free()
    stack = StackWithAStuckService(tmp_path, env="fast", ports=ports, ready_timeout=2)
    launched = []
    stack._launch = lambda spec, launch=stack._launch: (launched.append(spec.name), launch(spec))
    with pytest.raises(StackError, match=r"stuck was not ready at http://127.0.0.1:\d+/ready after 2 s"):
        stack.start()
    assert launched == ["web", "stuck"]
    assert port_is_free(ports.exporter)  # the web server that was ready is gone again
    assert recorded_processes(tmp_path) == []


def test_a_service_that_dies_shows_its_log(tmp_path):
    process = ManagedProcess(sleeper_spec("crashy", free_port(), "import sys; print('bad config'); sys.exit(3)"),
                             tmp_path)
    process.start()
    try:
        with pytest.raises(StackError, match=r"(?s)crashy exited with code 3 before it was ready.*bad config"):
            process.wait_ready(timeout=30)
    finally:
        process.stop()


def test_ports_come_from_the_environment():
    assert Ports.from_env({"PROMETHEUS_PORT": "19090"}).prometheus == 19090
    assert Ports.from_env({}).receiver == 9878
    with pytest.raises(StackError, match="RECEIVER_PORT='x' is not a TCP port number"):
        Ports.from_env({"RECEIVER_PORT": "x"})


@pytest.mark.e2e
def test_up_status_down_leave_nothing_behind(tmp_path):
    env = {f"{name.upper()}_PORT": str(port) for name, port in Ports.free().items()}
    run_dir = tmp_path / "run"
    try:
        up = run_cli("up", "--env", "fast", "--run-dir", str(run_dir), "--no-follow", env=env)
        assert up.returncode == 0, up.stderr
        records = recorded_processes(run_dir)
        assert [name for name, _ in records] == ["sinks", "receiver", "exporter", "alertmanager", "prometheus"]
        assert all(is_ours(record) for _, record in records)

        status = run_cli("status", "--run-dir", str(run_dir))
        assert status.returncode == 0, status.stdout
        assert status.stdout.count(" ready ") == 5
        assert f"http://127.0.0.1:{env['PROMETHEUS_PORT']}" in status.stdout

        # Every runbook link of the rules this stack's Prometheus loaded opens its page on the stack's receiver;
        # the committed generated/fast links are the same, once their configured receiver is this one.
        receiver = f"http://127.0.0.1:{env['RECEIVER_PORT']}"
        links = runbook_urls(run_dir / "config" / "fast" / "prometheus" / "rules")
        configured = f"http://{load_spec('fast')[0].endpoints['receiver'][0]}"
        committed = runbook_urls(REPO_ROOT / "generated" / "fast" / "prometheus" / "rules")
        assert links and {url.replace(configured, receiver, 1) for url in committed} == links
        for url in sorted(links):
            with urllib.request.urlopen(url, timeout=5) as answer:
                assert answer.status == 200, url
                assert f"<h1>{url.rpartition('/')[2]}</h1>" in answer.read().decode(), url

        again = run_cli("up", "--env", "fast", "--run-dir", str(run_dir), "--no-follow", env=env)
        assert again.returncode == 1 and "already running" in again.stderr
    finally:
        down = run_cli("down", "--run-dir", str(run_dir))
    assert down.returncode == 0
    assert "stopped: prometheus, alertmanager, exporter, receiver, sinks" in down.stdout
    deadline = time.monotonic() + 10
    while any(group_members(record["pid"]) for _, record in records) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert {name: group_members(record["pid"]) for name, record in records} == {name: [] for name, _ in records}
    after = run_cli("status", "--run-dir", str(run_dir))
    assert after.returncode == 0 and f"nothing running from {run_dir}/" in after.stdout


def test_a_second_up_in_the_same_run_folder_follows_the_new_ports(tmp_path):
    first, second = Ports.free(), Ports.free()
    Stack(tmp_path, env="fast", ports=first).prepare()
    token = (tmp_path / "secrets" / "receiver_token").read_text()
    Stack(tmp_path, env="fast", ports=second).prepare()
    assert (tmp_path / "secrets" / "receiver_token").read_text() == token
    slack_url = (tmp_path / "secrets" / "slack_slack-oncall_url").read_text().strip()
    assert slack_url == f"http://127.0.0.1:{second.sink_http}/services/slack-oncall"
    assert oct((tmp_path / "secrets" / "slack_slack-oncall_url").stat().st_mode & 0o777) == "0o600"
    receiver = yaml.safe_load((tmp_path / "receiver.yml").read_text())
    assert receiver["listen"] == f"127.0.0.1:{second.receiver}"
