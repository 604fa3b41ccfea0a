"""`make up`'s environment (dev) pages critical alerts through every channel type: a drill reaches each stand-in
(Slack's incoming webhook and Web API, email, the signed webhook, PagerDuty), and the stand-ins' page lists them."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from deploy.local.processes import free_port
from deploy.local.sinks import PagerDutySink, SlackWebApi, WebhookSink
from deploy.local.stack import Ports, Stack

pytestmark = pytest.mark.e2e
DRILL = [str(Path(sys.executable).with_name("dumont-receiver")), "drill"]
CRITICAL = ("slack-oncall", "email-oncall", "slack-incidents", "platform-webhook", "pagerduty-oncall")


@pytest.fixture
def dev_stack(tmp_path, slack, smtp):
    """The dev environment as `make up` renders it, its stand-ins in this process (Slack's port serves them all)."""
    ports = Ports(prometheus=free_port(), alertmanager=free_port(), exporter=free_port(), receiver=free_port(),
                  sink_http=slack.port, sink_smtp=smtp.port)
    stack = Stack(tmp_path / "run", env="dev", ports=ports, ready_timeout=60)
    try:
        stack.prepare()
        secrets = stack.run_dir / "secrets"
        slack.web_api = SlackWebApi((secrets / "slack_bot_token").read_text().strip())
        slack.webhook = WebhookSink(secret=(secrets / "webhook_secret").read_text().strip())
        slack.pagerduty = PagerDutySink()
        slack.mail = smtp
        yield stack
    finally:
        stack.stop()


def test_a_critical_drill_reaches_every_channel_type_and_the_page_lists_them(dev_stack, slack):
    dev_stack.start_service("receiver")
    dev_stack.start_service("alertmanager")
    done = subprocess.run([*DRILL, "--config", str(dev_stack.run_dir / "receiver.yml"), "--severity", "critical"],
                          capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    for channel in CRITICAL:
        assert re.search(rf"^\s+\S+\s+delivered\s.*{channel} delivered it", output, re.M), (channel, output)

    (document,) = [d for d in slack.webhook.received if d["body"]["status"] == "firing"]  # signature checked
    assert slack.webhook.rejected == [] and document["path"] == "/hooks/platform-webhook"
    assert document["body"]["alerts"][0]["labels"]["alertname"] == "DumontDrill"
    (incident,) = slack.pagerduty.incidents
    assert incident["status"] == "resolved"  # the drill's resolution resolved it
    thread = [p for p in slack.received if p["path"] == "/api/chat.postMessage"]
    assert len(thread) == 2 and thread[1]["body"]["thread_ts"] == thread[0]["ts"]  # the resolution replies

    page = requests.get(slack.url_for("/"), timeout=10).text
    assert "<td>Webhook</td>" in page and "<td>PagerDuty</td>" in page and "(thread reply)" in page
