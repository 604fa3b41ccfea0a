"""The dead man's switch: when Prometheus dies, Watchdog stops arriving and the receiver says so itself."""
from __future__ import annotations

import pytest

from tests.e2e.conftest import mentions, scenario, wait_for

PIPELINE_DOWN = "AlertingPipelineDown"


@pytest.mark.e2e
def test_receiver_announces_pipeline_down_and_recovery(make_stack):
    client = make_stack(scenario({"gpu-1": {"type": "gpu", "provider": "vast"}}))
    notify = client.channels()["deadman"]["notify"]
    slack_paths = {f"/services/{name}" for name in notify
                   if client.channels()["channels"][name]["type"] == "slack"}
    wait_for(lambda: any(a["labels"]["alertname"] == "Watchdog" for a in client.alertmanager_alerts()),
             30, "Watchdog to reach Alertmanager")
    assert not [p for p in client.slack_posts() if mentions(p, PIPELINE_DOWN)], "announced while healthy"

    client.stack.stop_service("prometheus")
    down = wait_for(lambda: [p for p in client.slack_posts() if mentions(p, PIPELINE_DOWN)], 90,
                    "the receiver to announce that the pipeline is down")
    assert {p["path"] for p in down} == slack_paths
    assert wait_for(lambda: [m for m in client.mails() if mentions(m, PIPELINE_DOWN)], 30, "the email")

    client.stack.start_service("prometheus")
    recovered = wait_for(lambda: [p for p in client.slack_posts()
                                  if mentions(p, PIPELINE_DOWN, "RESOLVED")],
                         90, "the receiver to announce that the pipeline recovered")
    assert {p["path"] for p in recovered} == slack_paths
