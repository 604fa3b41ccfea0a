"""`dumont-receiver drill` against real parts: Alertmanager 0.25 on the rendered `fast` config, the real
`dumont-receiver serve`, and the Slack and SMTP stand-ins. It passes when every hop works, and names the hop that
broke when a channel answers 500, when Alertmanager's routing drops a severity, when the receiver is down, when an
Alertmanager of the pair is down and when a silence holds the drill."""
from __future__ import annotations

import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
import yaml

from deploy.local.processes import free_port
from deploy.local.stack import Ports, Stack
from tests.e2e.alertmanager import Alertmanager

DRILL = [str(Path(sys.executable).with_name("dumont-receiver")), "drill"]

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(tmp_path, slack, smtp):
    """The `fast` environment rendered as `make up` renders it, pointing at the in-process stand-ins; the tests
    start the parts they need (Prometheus and the exporter are not: the drill posts to Alertmanager itself)."""
    ports = Ports(prometheus=free_port(), alertmanager=free_port(), exporter=free_port(), receiver=free_port(),
                  sink_http=slack.port, sink_smtp=smtp.port)
    stack = Stack(tmp_path / "run", env="fast", ports=ports, ready_timeout=60)
    try:
        stack.prepare()
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def alertmanager(tmp_path):
    """A factory of lone Alertmanagers on a given config; each is stopped, even when the test fails."""
    started: list[Alertmanager] = []

    def start(config: dict) -> Alertmanager:
        started.append(Alertmanager(config, tmp_path / f"alertmanager-{len(started)}"))
        return started[-1].start()
    yield start
    for am in started:
        am.stop()


def drill(stack: Stack, *flags: str) -> tuple[int, str]:
    """Run `dumont-receiver drill --config <the stack's receiver.yml> FLAGS`: its exit code and output."""
    done = subprocess.run([*DRILL, "--config", str(stack.run_dir / "receiver.yml"), *flags],
                          capture_output=True, text=True, timeout=240)
    return done.returncode, done.stdout + done.stderr


def last_line(output: str) -> str:
    return output.strip().splitlines()[-1]


def run_id(output: str) -> str:
    return re.search(r"^Fire drill (\S+):", output, re.M).group(1)


def rendered_alertmanager(stack: Stack) -> dict:
    return yaml.safe_load((stack.config_dir / "alertmanager" / "alertmanager.yml").read_text())


def test_the_drill_follows_every_severity_to_every_channel_and_back(stack, slack, smtp):
    stack.start_service("receiver")
    stack.start_service("alertmanager")

    # Everything from receiver.yml: the rendered config beside its channels file, the Alertmanager
    # Prometheus sends to, the receiver's external_url.
    code, output = drill(stack)

    assert code == 0, output
    drill_id = run_id(output)
    for severity in ("critical", "warning", "info"):
        hops = [line.split()[1:2] and " ".join(line.split()[1:3]) for line in output.splitlines()
                if line.split()[:1] == [severity]]
        for hop in ("accepted", "routed", "stored", "delivered", "resolution accepted", "resolution stored",
                    "resolution delivered"):
            assert any(h.startswith(hop) for h in hops), (severity, hop, output)
    for channel in ("slack-oncall", "email-oncall", "slack-alerts", "email-team"):
        assert re.search(rf"^\s+\S+\s+delivered\s.*{channel} delivered it", output, re.M), (channel, output)
    # Alertmanager's own integrations (the `direct` route) cannot be followed: the drill says so.
    assert 'not drilled: route delivery="direct"' in output
    assert last_line(output).startswith(f"Drill {drill_id} passed")

    # What people got says DRILL, first thing.
    drill_posts = [p for p in slack.received if drill_id in str(p["body"])]
    assert {p["path"] for p in drill_posts} == {"/services/slack-oncall", "/services/slack-alerts"}
    assert all("DRILL" in str(p["body"]) for p in drill_posts)
    drill_mails = [m for m in smtp.messages if drill_id in m["message"].get_body(("plain",)).get_content()]
    assert {r for m in drill_mails for r in m["rcpt_tos"]} == {"oncall@example.com", "team@example.com"}
    assert all("DRILL" in m["message"]["Subject"] for m in drill_mails)
    # The history badges it.
    page = requests.get(stack.url("receiver") + "/", params={"label": f"dumont_drill={drill_id}"}, timeout=10)
    assert page.status_code == 200 and 'class="drill"' in page.text


def test_a_channel_answering_500_fails_the_drill_naming_it(stack, slack):
    slack.script([(500, {})] * 500)  # Slack's stand-in answers 500 from now on; the SMTP one works
    stack.start_service("receiver")
    stack.start_service("alertmanager")

    code, output = drill(stack, "--severity", "critical", "--hop-timeout", "8s")

    assert code == 1, output
    assert "email-oncall delivered it" in output
    assert "FAILED at critical: channel slack-oncall failed: outbox pending after" in last_line(output)
    assert "HTTP 500" in last_line(output)
    # A broken drill still resolves its alert: nothing is left firing in Alertmanager.
    assert re.search(r"^\s+critical\s+clean-up .* resolved it in Alertmanager", output, re.M), output


def test_routing_that_drops_a_severity_fails_the_drill_at_routed(stack, alertmanager):
    stack.start_service("receiver")
    # Alertmanager runs a config whose critical route is gone: critical alerts fall to the default route.
    config = rendered_alertmanager(stack)
    config["route"]["routes"] = [r for r in config["route"]["routes"] if r.get("matchers") != ['severity="critical"']]
    am = alertmanager(config)

    code, output = drill(stack, "--alertmanager", am.url, "--severity", "critical")

    assert code == 1, output
    assert (f"FAILED at critical: not routed: Alertmanager {am.url} routes it to receiver(s) default; "
            "the routing promises critical") in last_line(output)


def test_a_stopped_receiver_fails_the_drill_at_stored(stack):
    stack.start_service("receiver")
    stack.start_service("alertmanager")
    stack.stop_service("receiver")

    code, output = drill(stack, "--severity", "warning", "--hop-timeout", "8s")

    assert code == 1, output
    assert re.search(r"^\s+warning\s+routed ", output, re.M), output  # Alertmanager did its part
    assert f"FAILED at warning: not stored: receiver {stack.url('receiver')}: connection refused" in last_line(output)


def test_an_alertmanager_that_is_down_fails_the_drill_at_accepted(stack, alertmanager):
    up = alertmanager(rendered_alertmanager(stack))
    down = f"http://127.0.0.1:{free_port()}"  # the HA pair's second, not running

    code, output = drill(stack, "--alertmanager", up.url, "--alertmanager", down, "--severity", "info")

    assert code == 1, output
    assert f"FAILED at info: Alertmanager refused: {down}: connection refused" in last_line(output)
    # The one that took it is told the drill is over.
    assert f"resolved it in Alertmanager {up.url}" in output
    assert not [a for a in up.alerts() if a["labels"].get("dumont_drill") == run_id(output)]


def test_a_forgotten_silence_fails_the_drill_at_routed_naming_it(stack):
    stack.start_service("receiver")
    stack.start_service("alertmanager")
    now = datetime.now(timezone.utc)
    silence = requests.post(stack.url("alertmanager") + "/api/v2/silences", timeout=10, json={
        "matchers": [{"name": "alertname", "value": "DumontDrill", "isRegex": False, "isEqual": True}],
        "startsAt": now.isoformat(), "endsAt": (now + timedelta(hours=1)).isoformat(),
        "createdBy": "test", "comment": "a silence someone forgot"}).json()["silenceID"]

    code, output = drill(stack, "--severity", "critical", "--hop-timeout", "6s")

    # Alertmanager's API applies silences as it answers: the drill stops at routed, naming the silence.
    assert code == 1, output
    assert (f"FAILED at critical: not routed: Alertmanager {stack.url('alertmanager')} routes it to critical but "
            f"holds it suppressed (silenced by {silence})") in last_line(output)
