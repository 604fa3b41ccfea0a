"""webhook and pagerduty channels in rules_src: accepted, routed like any receiver channel, rendered into a
channels.yml the receiver loads; their secrets only ever referenced."""
from __future__ import annotations

import pytest
import yaml

from rules_src.render import render
from rules_src.spec import load
from rules_src.tools import check_env
from rules_src.writer import stage
from tests.rules.rules_helpers import edit, messages
from webhook_receiver.channels import load_channels
from webhook_receiver.channels.pagerduty import PagerDutyChannel
from webhook_receiver.channels.webhook import WebhookChannel

CHANNELS = """\
  ops-webhook:
    type: webhook
    url_file: /etc/dumont/secrets/ops_webhook_url
    secret_file: /etc/dumont/secrets/ops_webhook_secret
    headers:
      X-Team: sre
      Authorization: {value_file: /etc/dumont/secrets/ops_webhook_auth}
    timeout: 5s
  pagerduty-oncall:
    type: pagerduty
    routing_key_env: PAGERDUTY_ROUTING_KEY
    api_url: https://events.eu.pagerduty.com
"""
# The channels are added before `watchdog` (line 9 of testdata/good/channels.yaml): ops-webhook is line 9,
# pagerduty-oncall line 17.


@pytest.fixture
def with_new_channels(good):
    """The known-good spec, its critical alerts also routed (and promised) to a webhook and PagerDuty."""
    edit(good / "channels.yaml", "  watchdog:\n", CHANNELS + "  watchdog:\n")
    edit(good / "routing.yaml", "channels: [slack-oncall]", "channels: [slack-oncall, ops-webhook, pagerduty-oncall]")
    edit(good / "contract.yaml", "channels: [slack-oncall]", "channels: [slack-oncall, ops-webhook, pagerduty-oncall]")
    return good


def test_they_render_into_files_alertmanager_and_the_receiver_accept(with_new_channels, tmp_path, tools):
    spec, errors = load("test", with_new_channels)
    assert errors == []
    files = render(spec)
    channels = yaml.safe_load(files["receiver/channels.yml"])["channels"]
    assert channels["pagerduty-oncall"] == {"type": "pagerduty", "routing_key_env": "PAGERDUTY_ROUTING_KEY",
                                            "api_url": "https://events.eu.pagerduty.com"}
    assert channels["ops-webhook"]["headers"]["Authorization"] == {"value_file": "/etc/dumont/secrets/ops_webhook_auth"}
    am = yaml.safe_load(files["alertmanager/alertmanager.yml"])
    urls = [w["url"] for r in am["receivers"] for w in r.get("webhook_configs", [])]
    assert any(u.endswith("/webhook/ops-webhook") for u in urls)
    assert any(u.endswith("/webhook/pagerduty-oncall") for u in urls)
    # The receiver loads what the generator wrote
    out = stage(tmp_path / "out", {"test": files}) / "test"
    loaded = load_channels(out / "receiver" / "channels.yml")
    assert isinstance(loaded.channels["ops-webhook"], WebhookChannel)
    assert isinstance(loaded.channels["pagerduty-oncall"], PagerDutyChannel)
    # amtool checks the config and routes a critical alert to all three, as the contract promises
    assert [s for s in check_env(out, spec) if not s.ok] == []


BAD = {
    "missing url": ("    url_file: /etc/dumont/secrets/ops_webhook_url\n", "",
                    ["rules_src/channels.yaml:9: channels.ops-webhook: missing required field 'url_file' or 'url_env'"]),
    "inline url": ("    url_file: /etc/dumont/secrets/ops_webhook_url\n", "    url: https://hooks.example/x\n",
                   ["rules_src/channels.yaml:11: channels.ops-webhook.url: secret written inline (use url_file or"
                    " url_env)"]),
    "url in the file field": ("url_file: /etc/dumont/secrets/ops_webhook_url", "url_file: https://hooks.example/x",
                              ["rules_src/channels.yaml:11: channels.ops-webhook.url_file: secret written inline"
                               " (give the path of a file that holds it)"]),
    "inline signing secret": ("    secret_file: /etc/dumont/secrets/ops_webhook_secret\n", "    secret: hunter2\n",
                              ["rules_src/channels.yaml:12: channels.ops-webhook.secret: secret written inline"
                               " (use secret_file or secret_env)"]),
    "relative secret file": ("secret_file: /etc/dumont/secrets/ops_webhook_secret", "secret_file: secret.txt",
                             ["rules_src/channels.yaml:12: channels.ops-webhook.secret_file: must be an absolute"
                              " file path"]),
    "inline credential header": ("      Authorization: {value_file: /etc/dumont/secrets/ops_webhook_auth}\n",
                                 "      Authorization: Bearer hunter2\n",
                                 ["rules_src/channels.yaml:15: channels.ops-webhook.headers.Authorization: secret"
                                  " written inline (use {value_file: PATH} or {value_env: VAR})"]),
    "header env that is no variable": ("{value_file: /etc/dumont/secrets/ops_webhook_auth}", "{value_env: bearer}",
                                       ["rules_src/channels.yaml:15: channels.ops-webhook.headers.Authorization"
                                        ".value_env: must be an environment variable name"]),
    "reserved header": ("      X-Team: sre\n", "      X-Dumont-Signature: sre\n",
                        ["rules_src/channels.yaml:14: channels.ops-webhook.headers.X-Dumont-Signature: set by the"
                         " channel itself"]),
    "header of a wrong shape": ("      X-Team: sre\n", "      X-Team: [sre]\n",
                                ["rules_src/channels.yaml:14: channels.ops-webhook.headers.X-Team: must be a string,"
                                 " or a mapping with value_file or value_env"]),
    "zero timeout": ("    timeout: 5s\n", "    timeout: 0s\n",
                     ["rules_src/channels.yaml:16: channels.ops-webhook.timeout: must be longer than 0s"]),
    "missing routing key": ("    routing_key_env: PAGERDUTY_ROUTING_KEY\n", "",
                            ["rules_src/channels.yaml:17: channels.pagerduty-oncall: missing required field"
                             " 'routing_key_file' or 'routing_key_env'"]),
    "inline routing key": ("    routing_key_env: PAGERDUTY_ROUTING_KEY\n", "    routing_key: 0123abcd\n",
                           ["rules_src/channels.yaml:19: channels.pagerduty-oncall.routing_key: secret written inline"
                            " (use routing_key_file or routing_key_env)"]),
    "both routing keys": ("    routing_key_env: PAGERDUTY_ROUTING_KEY\n",
                          "    routing_key_env: PAGERDUTY_ROUTING_KEY\n    routing_key_file: /etc/dumont/pd\n",
                          ["rules_src/channels.yaml:19: channels.pagerduty-oncall.routing_key_env: give"
                           " routing_key_file or routing_key_env, not both"]),
    "api_url with credentials": ("api_url: https://events.eu.pagerduty.com", "api_url: https://u:p@events.pagerduty.com",
                                 ["rules_src/channels.yaml:20: channels.pagerduty-oncall.api_url: must not hold"
                                  " credentials (the routing key goes in routing_key_file or routing_key_env)"]),
    "a field of another type": ("    api_url: https://events.eu.pagerduty.com\n",
                                "    api_url: https://events.eu.pagerduty.com\n    channel: '#oncall'\n",
                                ["rules_src/channels.yaml:21: channels.pagerduty-oncall.channel: not a field of a"
                                 " pagerduty channel"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_channel_exact_message(good, case):
    old, new, expected = BAD[case]
    edit(good / "channels.yaml", "  watchdog:\n", CHANNELS.replace(old, new) + "  watchdog:\n")
    assert messages(good) == expected


def test_an_overlay_points_them_elsewhere(good, tmp_path):
    edit(good / "channels.yaml", "  watchdog:\n", CHANNELS + "  watchdog:\n")
    overlay = tmp_path / "run.yml"
    overlay.write_text("channels:\n  ops-webhook: {url_env: HOOK_URL}\n"
                       "  pagerduty-oncall: {api_url: 'http://127.0.0.1:9882', routing_key_file: /run/pd}\n")
    spec, errors = load("test", good, overlay)
    assert errors == []
    # Setting one reference of a secret drops the base's other one
    assert "url_file" not in spec.channels["ops-webhook"] and spec.channels["ops-webhook"]["url_env"] == "HOOK_URL"
    assert spec.channels["pagerduty-oncall"] == {"type": "pagerduty", "routing_key_file": "/run/pd",
                                                 "api_url": "http://127.0.0.1:9882"}
