"""Fixtures for the end-to-end tests: the whole stack, rendered from the `fast` environment, on free ports."""
from __future__ import annotations

import json
import re
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from deploy.local.stack import Ports, Stack

HEALTHY = {"sync_latency_seconds": 2, "sync_ok": True, "disk_used_ratio": 0.40, "memory_used_ratio": 0.50,
           "cpu_percent": 30, "cost_hourly_usd": 0.50, "up": True}


def scenario(machines: dict, troubles: dict | None = None, components: dict | None = None) -> dict:
    """A one-phase scenario: every machine healthy except the fields `troubles` sets per machine."""
    return {
        "tick": "1s",
        "machines": machines,
        "components": sorted((components or {"sync": 1.0}).keys()),
        "phases": [{"name": "now", "machines": {"*": HEALTHY, **(troubles or {})},
                    "components": components or {"sync": 1.0}}],
    }


def alert_parts(item: dict) -> list[str]:
    """The text of each alert in a Slack post (one attachment each) or a mail (one block each)."""
    body = item.get("body")
    if body is not None:
        return [json.dumps(part) for part in body.get("attachments") or [body]]
    # A mail's text part gives each alert a block that opens with its state.
    return re.split(r"\n(?=(?:FIRING|RESOLVED) · )", item.get("text", ""))


def mentions(item: dict, *words: str) -> bool:
    """True when one alert of a Slack post or mail mentions every word (case-sensitive).

    The receiver batches alerts into one message, so words never match across two alerts.
    """
    return any(all(word in part for word in words) for part in alert_parts(item))


def get_json(url: str, token: str | None = None):
    """GET url and decode its JSON body."""
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def wait_for(check, timeout: float, what: str, interval: float = 0.25):
    """Poll `check()` until it returns something truthy; fail naming `what` and the last value seen."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except OSError as exc:  # a service restarting between polls
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last seen: {last!r}"[:4000])


class StackClient:
    """Read access to every service of a running stack, for assertions."""

    def __init__(self, stack: Stack):
        self.stack = stack

    def prometheus_alerts(self) -> list[dict]:
        """Alerts Prometheus evaluates as firing or pending."""
        return get_json(self.stack.url("prometheus") + "/api/v1/alerts")["data"]["alerts"]

    def alertmanager_alerts(self, **filters: str) -> list[dict]:
        """Alerts Alertmanager holds (active, silenced and inhibited alike)."""
        query = urllib.parse.urlencode(
            [("filter", f'{key}="{value}"') for key, value in filters.items()] + [("inhibited", "true")])
        return get_json(self.stack.url("alertmanager") + "/api/v2/alerts?" + query)

    def slack_posts(self) -> list[dict]:
        """Everything the Slack stand-in received."""
        return get_json(self.stack.url("sink_http") + "/api/messages")

    def mails(self) -> list[dict]:
        """Everything the SMTP stand-in received."""
        return get_json(self.stack.url("sink_http") + "/api/mail")

    def receiver(self, path: str, **params: str):
        """GET a receiver API path."""
        query = ("?" + urllib.parse.urlencode(params)) if params else ""
        return get_json(self.stack.url("receiver") + path + query)

    def channels(self) -> dict:
        """The rendered channel file the receiver runs with."""
        return yaml.safe_load((self.stack.config_dir / "receiver" / "channels.yml").read_text())


@pytest.fixture(scope="module")
def make_stack(tmp_path_factory):
    """Build and start stacks for one module; every one is stopped at the end, even after a failure."""
    stacks: list[Stack] = []

    def start(initial_scenario: dict) -> StackClient:
        run_dir: Path = tmp_path_factory.mktemp("stack")
        stack = Stack(run_dir, env="fast", ports=Ports.free(), scenario=initial_scenario, ready_timeout=60)
        stacks.append(stack)
        stack.start()
        return StackClient(stack)

    yield start
    for stack in stacks:
        stack.stop()
