"""rules_src/sizing.py: the largest post the catalogue's alerts make fits the receiver's limit, measured on a real
Alertmanager 0.25 posting alerts with every label at the exporter's longest."""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest

from rules_src import sizing
from rules_src.spec import environments, load
from tests.e2e.alertmanager import Alertmanager
from webhook_receiver.config import Config as ReceiverConfig


@pytest.fixture(scope="module")
def specs():
    out = {}
    for env in environments():
        spec, errors = load(env)
        assert not errors, errors
        out[env] = spec
    return out


def test_the_spec_sizes_posts_for_the_receivers_limit(specs):
    # routing.max_body_bytes is what the generator measures against: it must be what the receiver enforces.
    for spec in specs.values():
        assert spec.routing["max_body_bytes"] == ReceiverConfig.max_body_bytes
        assert sizing.worst_post(spec, spec.routing["max_alerts"]) <= spec.routing["max_body_bytes"]


def test_a_max_alerts_too_large_for_the_limit_is_refused(tmp_path):
    overlay = tmp_path / "overlay.yml"
    overlay.write_text("routing: {max_body_bytes: 300000}\n")
    spec, errors = load("prod", overlay=overlay)
    assert spec is None
    (error,) = [str(e) for e in errors]
    assert error.startswith("rules_src/routing.yaml:")
    assert "routing.max_alerts: 250 alerts at their largest make a post of " in error
    assert error.endswith("bytes in prod, over max_body_bytes (300000): at most 83 fit")


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_a_real_alertmanager_post_of_the_largest_alerts_stays_within_the_bound(specs, sink, tmp_path):
    spec = specs["prod"]
    count = spec.routing["max_alerts"]
    largest = max((sizing.worst_alert(spec, a) for a in spec.alerts), key=sizing.go_json)
    varied = next(name for name, value in largest["labels"].items() if value == sizing.LONGEST)
    url, bodies = sink
    am = Alertmanager({
        "route": {"receiver": "sink", "group_by": ["alertname"], "group_wait": "1s", "group_interval": "1h",
                  "repeat_interval": "4h"},
        "receivers": [{"name": "sink", "webhook_configs": [{
            "url": url, "max_alerts": count}]}],
    }, tmp_path / "alertmanager")
    now = datetime.now(timezone.utc)
    # Ten more than max_alerts: Alertmanager cuts those, as it would from a larger group.
    alerts = [{"labels": {**largest["labels"], varied: f"{i:0>{len(sizing.LONGEST)}}"},
               "annotations": largest["annotations"], "generatorURL": largest["generatorURL"],
               "startsAt": _rfc3339(now), "endsAt": _rfc3339(now + timedelta(hours=1))} for i in range(count + 10)]
    try:
        am.start()
        am.post_alerts(alerts)
        deadline = time.monotonic() + 30
        while not bodies and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        am.stop()
    assert bodies, f"Alertmanager posted nothing:\n{am.log()}"
    post = json.loads(bodies[0])
    assert len(post["alerts"]) == count and post["truncatedAlerts"] == 10
    bound = sizing.worst_post(spec, count)
    assert len(bodies[0]) <= bound <= spec.routing["max_body_bytes"]
    # The model measures what Alertmanager writes, not something far larger: its own URLs and group labels
    # are shorter than the bound allows for, and little else.
    assert len(bodies[0]) > 0.9 * bound, (len(bodies[0]), bound)
