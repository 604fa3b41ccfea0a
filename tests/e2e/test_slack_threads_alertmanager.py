"""Slack threads through real Alertmanager 0.25 and the real `dumont-receiver serve`: the firing is a new message in
the channel, its resolution a reply in that message's thread, and the alert's next firing a new thread."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import yaml

from deploy.local.sinks import SlackSink
from tests.e2e.alertmanager import Alertmanager
from tests.e2e.conftest import wait_for
from tests.receiver.serving import Served

pytestmark = pytest.mark.e2e
TOKEN = "e2e-threads-token"
BOT_TOKEN = "xoxb-e2e-threads"
CHANNEL = "C0E2ETHREAD"
LABELS = {"alertname": "DiskAlmostFull", "machine_id": "gpu-1", "severity": "critical"}


def _at(offset: float = 0.0) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=offset)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture
def slack_api():
    with SlackSink(bot_token=BOT_TOKEN) as sink:
        yield sink


@pytest.fixture
def stack(tmp_path, slack_api):
    """One real Alertmanager posting to the real receiver, whose Slack channel has a bot token."""
    (tmp_path / "token").write_text(TOKEN + "\n")
    (tmp_path / "bot_token").write_text(BOT_TOKEN + "\n")
    (tmp_path / "receiver").mkdir()
    served = Served({}, tmp_path / "receiver")
    am = Alertmanager({
        "route": {"receiver": "oncall", "group_by": ["alertname", "machine_id"], "group_wait": "1s",
                  "group_interval": "1s", "repeat_interval": "4h"},
        "receivers": [{"name": "oncall", "webhook_configs": [{
            "url": f"{served.url}/webhook/slack-threads", "send_resolved": True,
            "http_config": {"authorization": {"credentials_file": str(tmp_path / "token")}}}]}],
    }, tmp_path / "alertmanager")
    (tmp_path / "channels.yml").write_text(yaml.safe_dump({"channels": {"slack-threads": {
        "type": "slack", "bot_token_file": str(tmp_path / "bot_token"), "channel": CHANNEL,
        "api_url": slack_api.url_for("/api"), "update_parent": True, "timeout": "10s"}}}))
    served.config_path.write_text(yaml.safe_dump({
        "listen": f"127.0.0.1:{served.port}", "database": str(tmp_path / "history.db"),
        "channels_file": str(tmp_path / "channels.yml"), "token_file": str(tmp_path / "token"),
        "relay_interval": "200ms"}))
    try:
        am.start()
        served.start()
        yield am, served
    finally:
        served.stop()
        am.stop()


def _posts(slack_api, count: int, what: str) -> list[dict]:
    return wait_for(lambda: (lambda p: p if len(p) >= count else None)(slack_api.api_calls()), 30, what)


def test_a_resolution_replies_in_its_firings_thread_and_a_refire_starts_another(stack, slack_api):
    am, served = stack
    starts = _at(-1)
    am.post_alerts([{"labels": LABELS, "startsAt": starts, "endsAt": _at(3600)}])
    (firing,) = _posts(slack_api, 1, "the firing posted")
    assert "thread_ts" not in firing["body"] and firing["body"]["channel"] == CHANNEL
    am.post_alerts([{"labels": LABELS, "startsAt": starts, "endsAt": _at()}])  # it ended
    resolution = _posts(slack_api, 2, "the resolution posted")[1]
    assert resolution["body"]["thread_ts"] == firing["ts"] and "RESOLVED" in resolution["body"]["text"]
    # update_parent: the first message now shows the alert resolved
    (update,) = wait_for(lambda: slack_api.api_calls("chat.update"), 30, "the first message updated")
    assert update["body"]["ts"] == firing["ts"] and "RESOLVED" in update["body"]["attachments"][0]["fallback"]

    refire_starts = _at()
    am.post_alerts([{"labels": LABELS, "startsAt": refire_starts, "endsAt": _at(3600)}])
    refire = _posts(slack_api, 3, "the next firing posted")[2]
    assert "thread_ts" not in refire["body"] and "FIRING" in refire["body"]["text"]
    am.post_alerts([{"labels": LABELS, "startsAt": refire_starts, "endsAt": _at()}])
    assert _posts(slack_api, 4, "its resolution posted")[3]["body"]["thread_ts"] == refire["ts"]
    assert len(slack_api.api_calls()) == 4 and BOT_TOKEN not in served.log()
