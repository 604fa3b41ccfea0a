"""The HA shape and the road around the receivers, as rendered from the project's own spec: two Alertmanagers
and two receivers in prod, and Alertmanager's own integrations for the meta alerts about the receivers only."""
from __future__ import annotations

import pytest
import yaml

from rules_src.render import render
from rules_src.spec import SPEC_DIR, load


def _rendered(env: str, overlay=None) -> dict[str, dict]:
    spec, errors = load(env, SPEC_DIR, overlay)
    assert not errors, [str(e) for e in errors]
    return {path: yaml.safe_load(text) for path, text in render(spec).items() if path.endswith(".yml")}


def _errors(tmp_path, text: str, env: str = "prod") -> list[str]:
    overlay = tmp_path / "overlay.yml"
    overlay.write_text(text)
    _, errors = load(env, SPEC_DIR, overlay)
    return [str(e).replace(f"{tmp_path}/", "") for e in errors]


def test_prod_sends_every_alert_to_both_alertmanagers_and_posts_to_both_receivers():
    files = _rendered("prod")
    prometheus = files["prometheus/prometheus.yml"]
    (alerting,) = prometheus["alerting"]["alertmanagers"]
    assert alerting["static_configs"] == [{"targets": ["alertmanager-1:9093", "alertmanager-2:9093"]}]
    scraped = {job["job_name"]: job["static_configs"][0]["targets"] for job in prometheus["scrape_configs"]}
    assert scraped["dumont-receiver"] == ["receiver-1:9878", "receiver-2:9878"]
    am = files["alertmanager/alertmanager.yml"]
    for receiver in am["receivers"]:
        urls = [w["url"] for w in receiver.get("webhook_configs", [])]
        channels = {url.rsplit("/", 1)[-1] for url in urls}
        # Each channel is posted to every receiver: the shared database keeps one copy.
        assert sorted(urls) == sorted(f"http://{host}/webhook/{ch}" for ch in channels
                                      for host in ("receiver-1:9878", "receiver-2:9878")), receiver["name"]


def test_a_single_host_environment_keeps_one_of_each():
    prometheus = _rendered("dev")["prometheus/prometheus.yml"]
    assert prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:9093"]


def test_the_direct_route_uses_alertmanagers_own_integrations_with_secrets_in_files():
    files = _rendered("prod")
    am = files["alertmanager/alertmanager.yml"]
    direct = next(r for r in am["receivers"] if r["name"] == "direct")
    assert "webhook_configs" not in direct
    assert direct["slack_configs"] == [{"api_url_file": "/etc/dumont/secrets/slack_oncall_url", "channel": "#oncall",
                                        "send_resolved": True}]
    (email,) = direct["email_configs"]
    assert email["auth_password_file"] == "/etc/dumont/secrets/smtp_password" and "auth_password" not in email
    route = next(r for r in am["route"]["routes"] if r["receiver"] == "direct")
    assert route["matchers"] == ['delivery="direct"'] and am["route"]["routes"][0] is route
    # The receiver never sees those channels: it could not deliver them, and must not try.
    assert not {"oncall-direct-slack", "oncall-direct-email"} & set(files["receiver/channels.yml"]["channels"])
    # Only the meta alerts about the receivers carry the label that takes that road.
    rules = [rule for path, doc in files.items() if path.startswith("prometheus/rules/")
             for group in doc["groups"] for rule in group["rules"] if "alert" in rule]
    assert {r["alert"] for r in rules if r["labels"].get("delivery") == "direct"} == {"ReceiversDown",
                                                                                       "ReceiverRelayStalled"}


@pytest.mark.parametrize("overlay, message", [
    ("alerts: {DiskAlmostFull: {labels: {delivery: direct}}}\n",
     "rules_src/routing.yaml:21: routing.routes.direct.channels: alert DiskAlmostFull would reach Alertmanager's own "
     "integrations: only meta alerts may (route it to the receiver's channels)"),
    ("routing: {default: [oncall-direct-slack]}\n",
     "overlay.yml:1: routing.default[0]: oncall-direct-slack is Alertmanager's own integration: only a route for "
     "meta alerts may use it"),
    ("channels: {oncall-direct-slack: {api_url_env: SLACK_URL}}\n",
     "overlay.yml:1: channels.oncall-direct-slack.api_url_env: Alertmanager reads secrets from files only"),
    ("routing: {routes: {direct: {channels: [oncall-direct-slack, slack-oncall]}}}\n",
     "overlay.yml:1: routing.routes.direct.channels: a route is either to Alertmanager's own integrations or to "
     "the receiver's channels"),
    ("endpoints: {receiver: [receiver-1:9878, receiver-1:9878]}\n",
     "overlay.yml:1: endpoints.receiver: lists an endpoint twice"),
    ("endpoints: {alertmanager: [alertmanager-1:9093, alertmanager-2]}\n",
     "overlay.yml:1: endpoints.alertmanager[1]: must be host:port"),
])
def test_what_may_go_around_the_receivers_is_checked(tmp_path, overlay, message):
    assert message in _errors(tmp_path, overlay)
