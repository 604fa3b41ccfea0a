"""The alerting path watched from outside it: with every receiver down, Alertmanager itself tells on-call
(its own slack_configs and email_configs, route `direct`), and nothing else goes that way."""
from __future__ import annotations

import pytest

from tests.e2e.conftest import mentions, scenario, wait_for

FLEET = {"gpu-1": {"type": "gpu", "provider": "vast"}}


@pytest.mark.e2e
def test_with_every_receiver_down_alertmanager_pages_on_call_itself(make_stack):
    client = make_stack(scenario(FLEET))
    wait_for(lambda: [a for a in client.prometheus_alerts() if a["labels"]["alertname"] == "Watchdog"], 30,
             "Prometheus to evaluate the rules")
    # Until Prometheus has scraped a receiver once, none counts as up (pending at most: `for` covers it).
    wait_for(lambda: not [a for a in client.prometheus_alerts() if a["labels"]["alertname"] == "ReceiversDown"],
             30, "ReceiversDown to be quiet while the receiver answers")

    client.stack.stop_service("receiver")
    firing = wait_for(lambda: [a for a in client.prometheus_alerts()
                               if a["labels"]["alertname"] == "ReceiversDown" and a["state"] == "firing"],
                      60, "ReceiversDown to fire once the receiver stops answering")
    assert firing[0]["labels"]["delivery"] == "direct"

    # Alertmanager's own Slack integration posts to the on-call stand-in, its own email goes to on-call.
    posts = wait_for(lambda: [p for p in client.slack_posts()
                              if p["path"] == "/services/oncall-direct-slack" and mentions(p, "ReceiversDown")],
                     60, "Alertmanager's own Slack post about ReceiversDown")
    assert "FIRING" in str(posts[0]["body"])
    on_call = set(client.channels()["channels"]["email-oncall"]["to"])
    mails = wait_for(lambda: [m for m in client.mails() if "ReceiversDown" in (m.get("subject") or "")
                              or mentions(m, "ReceiversDown")], 60, "Alertmanager's own mail about ReceiversDown")
    assert set(mails[0]["to"]) == on_call
    # Only the alerts about the receivers go around them: the receiver's channels got nothing of it.
    assert not [p for p in client.slack_posts() if p["path"] != "/services/oncall-direct-slack"
                and mentions(p, "ReceiversDown")]

    client.stack.start_service("receiver")
    wait_for(lambda: [p for p in client.slack_posts() if p["path"] == "/services/oncall-direct-slack"
                      and "RESOLVED" in str(p["body"]) and mentions(p, "ReceiversDown")],
             90, "Alertmanager's own RESOLVED post once the receiver is back")
