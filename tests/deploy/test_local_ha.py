"""The HA shape on loopback behind `make up-ha`: PostgreSQL, two receivers sharing it, two clustered Alertmanagers."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from deploy.local.__main__ import ReceiverLogs, late_copy
from deploy.local.ha import HAPorts, HAStack
from deploy.local.postgres import PostgresUnavailable
from deploy.local.processes import ServiceSpec, StackError, free_port, recorded_processes, stop_recorded, write_record
from tests.deploy.test_local_stack import run_cli

HEALTHY = {"sync_latency_seconds": 2, "sync_ok": True, "disk_used_ratio": 0.40, "memory_used_ratio": 0.50,
           "cpu_percent": 30, "cost_hourly_usd": 0.50, "up": True}
PEER_TIMEOUT = 15  # Alertmanager's --cluster.peer-timeout: how long the second of a pair waits for the first
SERVICES = ["postgres", "sinks", "receiver-1", "receiver-2", "exporter", "alertmanager-1", "alertmanager-2",
            "prometheus"]


def scenario(gpu_disk: float) -> dict:
    """Two healthy machines but for gpu-1's disk usage."""
    return {"tick": "1s", "machines": {"gpu-1": {"type": "gpu", "provider": "vast", "mounts": ["/", "/data"]},
                                       "cpu-1": {"type": "cpu", "provider": "gcp"}},
            "components": ["sync"],
            "phases": [{"name": "now", "machines": {"*": HEALTHY, "gpu-1": {"disk_used_ratio": gpu_disk}},
                        "components": {"sync": 1.0}}]}


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def wait_for(check, timeout: float, what: str):
    """Poll check() until it returns something truthy; fail naming `what` and the last value."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            last = check()
        except OSError as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last seen: {last!r}"[:3000])


def processes() -> dict[int, tuple[int, str, str]]:
    """pid -> (parent pid, start time, state) of every process."""
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        table[int(stat.parent.name)] = (int(fields[1]), fields[19], fields[0])
    return table


def tree(roots: list[int]) -> set[tuple[int, str]]:
    """(pid, start time) of the roots and all their descendants: PostgreSQL's backends are in their own process
    groups, so a group tells nothing about them; their parent does."""
    table = processes()
    found, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid in table:
            found.add((pid, table[pid][1]))
            todo += [child for child, (parent, _, _) in table.items() if parent == pid]
    return found


def alive(members: set[tuple[int, str]]) -> set[tuple[int, str]]:
    """The members still running (same pid, same start time, not a zombie)."""
    table = processes()
    return {(pid, start) for pid, start in members
            if pid in table and table[pid][1] == start and table[pid][2] != "Z"}


def stored_lines(log: Path, channel: str) -> list[dict]:
    """The receiver's `ingest.stored` lines for channel, as {queued, duplicates}."""
    pattern = re.compile(rf"event=ingest\.stored channel={re.escape(channel)} .* queued=(\d+) duplicates=(\d+)")
    return [{"queued": int(m[1]), "duplicates": int(m[2])}
            for m in map(pattern.search, log.read_text().splitlines()) if m]


def test_the_overlay_lists_both_receivers_and_alertmanagers_and_the_pair_peers(tmp_path):
    ports = HAPorts.free()
    stack = HAStack(tmp_path, env="fast", ports=ports)
    stack.prepare()
    overlay = yaml.safe_load((tmp_path / "overlay.yml").read_text())["endpoints"]
    assert overlay["alertmanager"] == [f"127.0.0.1:{ports.alertmanager}", f"127.0.0.1:{ports.alertmanager_2}"]
    assert overlay["receiver"] == [f"127.0.0.1:{ports.receiver}", f"127.0.0.1:{ports.receiver_2}"]

    prometheus = yaml.safe_load((stack.config_dir / "prometheus" / "prometheus.yml").read_text())
    assert prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == overlay["alertmanager"]
    urls = re.findall(r"url: (http://\S+/webhook/slack-oncall)",
                      (stack.config_dir / "alertmanager" / "alertmanager.yml").read_text())
    assert urls == [f"http://{endpoint}/webhook/slack-oncall" for endpoint in overlay["receiver"]]

    configs = [yaml.safe_load((tmp_path / f"{name}.yml").read_text()) for name in ("receiver-1", "receiver-2")]
    assert [c["listen"] for c in configs] == overlay["receiver"]
    assert configs[0]["database"] == configs[1]["database"] == \
        f"postgresql://dumont@127.0.0.1:{ports.postgres}/dumont"

    services = {spec.name: spec for spec in stack.services()}
    assert list(services) == SERVICES
    am1, am2 = services["alertmanager-1"].argv, services["alertmanager-2"].argv
    assert f"--cluster.listen-address=127.0.0.1:{ports.alertmanager_cluster}" in am1
    assert f"--cluster.peer=127.0.0.1:{ports.alertmanager_2_cluster}" in am1
    assert f"--cluster.listen-address=127.0.0.1:{ports.alertmanager_2_cluster}" in am2
    assert f"--cluster.peer=127.0.0.1:{ports.alertmanager_cluster}" in am2
    assert {a for a in am1 if a.startswith("--storage.path=")} != {a for a in am2 if a.startswith("--storage.path=")}


def test_ha_ports_keep_make_ups_variables_and_add_their_own():
    ports = HAPorts.from_env({"RECEIVER_PORT": "19878", "RECEIVER_2_PORT": "19879", "POSTGRES_PORT": "15433"})
    assert (ports.receiver, ports.receiver_2, ports.postgres, ports.alertmanager_2) == (19878, 19879, 15433, 9095)
    assert len({port for _, port in HAPorts().items()}) == len(HAPorts().items()), "two defaults share a port"
    with pytest.raises(StackError, match="ALERTMANAGER_2_CLUSTER_PORT='-1' is not a TCP port number"):
        HAPorts.from_env({"ALERTMANAGER_2_CLUSTER_PORT": "-1"})


def test_missing_postgresql_binaries_stop_up_ha_before_anything_starts(tmp_path, monkeypatch):
    def missing():
        raise PostgresUnavailable("PostgreSQL's server binaries (initdb, pg_ctl, postgres) were not found: "
                                  "install Debian's postgresql: make setup")

    monkeypatch.setattr("deploy.local.ha.find_bindir", missing)
    with pytest.raises(StackError, match="install Debian's postgresql: make setup"):
        HAStack(tmp_path, env="fast", ports=HAPorts.free()).start()
    assert recorded_processes(tmp_path) == []


def test_down_stops_a_recorded_server_with_its_own_signal_and_removes_its_directory(tmp_path):
    # A stand-in for PostgreSQL: stops cleanly on SIGINT only, as `down` must tell the postmaster.
    scratch = tmp_path / "outside"
    scratch.mkdir()
    code = ("import signal, sys, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "signal.signal(signal.SIGINT, lambda *_: (open(sys.argv[1], 'w').write('clean'), sys.exit(0)))\n"
            "while True: time.sleep(0.1)\n")
    marker = tmp_path / "stopped"
    process = subprocess.Popen([sys.executable, "-c", code, str(marker)], start_new_session=True)
    try:
        time.sleep(0.5)  # let it install its handlers
        spec = ServiceSpec("server", process.args, free_port(), "", "postgresql://x@127.0.0.1:1/x")
        write_record(tmp_path / "pids" / "server.json", process.pid, spec, stop_signal="SIGINT", stop_timeout=10,
                     remove_dirs=[str(scratch)])
        assert stop_recorded(tmp_path) == ["server"]
        assert process.wait(timeout=5) == 0 and marker.read_text() == "clean"
        assert not scratch.exists() and recorded_processes(tmp_path) == []
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_the_follower_says_which_receiver_stored_a_post_and_whose_relay_sent_it(tmp_path):
    logs = {name: tmp_path / f"{name}.log" for name in ("receiver-1", "receiver-2")}
    logs["receiver-1"].write_text("ts=2026-01-01T06:00:00.000Z level=info event=serve.start\n")
    follower = ReceiverLogs(logs)  # what was logged before it started is not news
    stored = ("ts=2026-01-01T06:54:08.{ms}Z level=info logger=webhook_receiver.ingest event=ingest.stored "
              "channel=slack-oncall group_key='{{}}:{{a=\"b\"}}' alerts=2 new={new} queued={queued} duplicates={dup}\n")
    with open(logs["receiver-1"], "a") as log:
        log.write(stored.format(ms="010", new=2, queued=2, dup=0))
        log.write("ts=2026-01-01T06:54:08.300Z level=info logger=webhook_receiver.relay.worker event=relay.send "
                  "channel=slack-oncall events=2 digest=False ok=True detail='HTTP 200'\nts=2026-01-01T06:54:09")
    logs["receiver-2"].write_text(stored.format(ms="020", new=0, queued=0, dup=2))
    assert sorted(follower.new_events()) == [
        ("2026-01-01T06:54:08.010Z", "06:54:08 receiver-1 stored the post for slack-oncall: 2 to send"),
        ("2026-01-01T06:54:08.020Z", "06:54:08 receiver-2 got the same post for slack-oncall: already stored,"
                                     " kept once"),
        ("2026-01-01T06:54:08.300Z", "06:54:08 receiver-1's relay sent slack-oncall (2 events)")]
    assert follower.new_events() == []  # the half-written last line waits for its end


def test_a_firing_told_after_the_resolution_is_named_a_late_copy():
    told = ["06:54:08 slack /services/slack-oncall: FIRING DiskAlmostFull: Disk / of gpu-1 is almost full",
            "06:54:38 email to oncall@example.com: [RESOLVED] DiskAlmostFull (critical)",
            "06:54:38 receiver-1 stored the post for slack-oncall: 1 to send"]
    assert not late_copy(told)
    assert late_copy(told + ["06:54:53 slack /services/slack-oncall: FIRING DiskAlmostFull: Disk / of gpu-1"])


@pytest.mark.e2e
def test_up_ha_sends_an_alert_once_through_two_receivers_and_down_stops_everything(tmp_path):
    ports = HAPorts.free()
    env = {f"{name.upper()}_PORT": str(port) for name, port in ports.items()}
    run_dir = tmp_path / "run"
    stack = HAStack(run_dir, env="fast", ports=ports)  # for its URLs and scenario file; the CLI runs it
    started: set[tuple[int, str]] = set()
    records: list = []
    try:
        up = run_cli("up", "--ha", "--env", "fast", "--run-dir", str(run_dir), "--no-follow", env=env,
                     timeout=240)
        records = recorded_processes(run_dir)
        started = tree([record["pid"] for _, record in records])
        assert up.returncode == 0, up.stderr
        assert [name for name, _ in records] == SERVICES

        status = run_cli("status", "--run-dir", str(run_dir))
        assert status.returncode == 0, status.stdout
        assert status.stdout.count(" ready ") == len(SERVICES)
        assert f"postgresql://dumont@127.0.0.1:{ports.postgres}/dumont" in status.stdout
        peers = get_json(stack.url("alertmanager-1") + "/api/v2/status")["cluster"]["peers"]
        assert sorted(p["address"] for p in peers) == \
            sorted(f"127.0.0.1:{port}" for port in (ports.alertmanager_cluster, ports.alertmanager_2_cluster))

        def disk_posts(state: str) -> list[str]:
            """One line per alert of each Slack post (one attachment each) about DiskAlmostFull in `state`."""
            return [a["fallback"] for m in get_json(stack.url("sink_http") + "/api/messages")
                    if m["path"] == "/services/slack-oncall" for a in m["body"].get("attachments", [])
                    if a.get("fallback", "").startswith(f"{state} DiskAlmostFull")]

        stack.write_scenario(scenario(gpu_disk=0.95))
        wait_for(lambda: len(disk_posts("FIRING")) >= 2, 90, "DiskAlmostFull of both mounts at the Slack stand-in")
        fired = time.monotonic()
        histories = []
        for receiver in ("receiver-1", "receiver-2"):  # one database: both show the same two alerts, once each
            firing = [a for a in get_json(stack.url(receiver) + "/api/v1/alerts")["alerts"]
                      if a["labels"]["alertname"] == "DiskAlmostFull"]
            histories.append(sorted((a["fingerprint"], a["labels"]["mount"]) for a in firing))
        assert histories[0] == histories[1] and sorted(mount for _, mount in histories[0]) == ["/", "/data"]

        # alertmanager-2 holds its copy for its peer timeout (15 s), then sends it only if alertmanager-1's
        # notification log does not show the same firing alerts sent: past it, a copy that got through shows.
        time.sleep(max(0.0, fired + PEER_TIMEOUT + 5 - time.monotonic()))
        assert sorted(disk_posts("FIRING")) == ["FIRING DiskAlmostFull: Disk / of gpu-1 is almost full",
                                                "FIRING DiskAlmostFull: Disk /data of gpu-1 is almost full"]
        # A mail holds one block per alert, each opening with its state (the fast environment's 10 s dead man's
        # switch may have paged at start-up, before the Alertmanagers' gossip settled: another block).
        blocks = [b for m in get_json(stack.url("sink_http") + "/api/mail") for b in re.split(r"\n(?=FIRING|RESOLVED)",
                  m.get("text", "")) if b.startswith("FIRING") and "DiskAlmostFull" in b]
        assert len(blocks) == 2, blocks
        # Both receivers got each post; the one that came second found it stored and queued nothing.
        lines = {name: stored_lines(run_dir / "logs" / f"{name}.log", "slack-oncall")
                 for name in ("receiver-1", "receiver-2")}
        assert all(lines.values()), lines
        assert sum(line["queued"] for entries in lines.values() for line in entries) == 2, lines
        assert any(line["duplicates"] for entries in lines.values() for line in entries), lines

        # After a resolution alertmanager-2 may still send the firing it held during its peer timeout
        # (Alertmanager 0.25's HA dedup; deploy/README.md): only the first resolution is asserted on.
        stack.write_scenario(scenario(gpu_disk=0.40))
        resolved = wait_for(lambda: disk_posts("RESOLVED"), 60, "the resolved DiskAlmostFull at the Slack stand-in")
        assert sorted(resolved) == ["RESOLVED DiskAlmostFull: Disk / of gpu-1 is almost full",
                                    "RESOLVED DiskAlmostFull: Disk /data of gpu-1 is almost full"]
        for receiver in ("receiver-1", "receiver-2"):
            history = get_json(stack.url(receiver) + "/api/v1/history?" +
                               urllib.parse.urlencode({"alertname": "DiskAlmostFull"}))["entries"]
            assert {(e["labels"]["mount"], e["status"]) for e in history} == \
                {(mount, status) for mount in ("/", "/data") for status in ("firing", "resolved")}
    finally:
        down = run_cli("down", "--run-dir", str(run_dir))
        left = wait_for_gone(started)
        for pid, _ in left:  # stop them whatever happened, then report
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert down.returncode == 0, down.stderr
    assert "stopped: " + ", ".join(reversed(SERVICES)) in down.stdout
    assert started and not left, f"still running after down: {left}"
    postgres = dict(records)["postgres"]
    assert all(not Path(directory).exists() for directory in postgres["remove_dirs"])
    after = run_cli("status", "--run-dir", str(run_dir))
    assert after.returncode == 0 and f"nothing running from {run_dir}/" in after.stdout


def wait_for_gone(members: set[tuple[int, str]], timeout: float = 15) -> set[tuple[int, str]]:
    """The members still alive after up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while alive(members) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive(members)
