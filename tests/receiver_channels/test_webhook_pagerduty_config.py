"""channels.yml with webhook and pagerduty channels: the documented example, then one broken field per case."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from webhook_receiver.channels import load_channels
from webhook_receiver.channels.pagerduty import PagerDutyChannel
from webhook_receiver.channels.webhook import WebhookChannel
from webhook_receiver.channels.webhook_headers import SecretValue

GOOD = """\
channels:
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
    routing_key_file: /etc/dumont/secrets/pagerduty_routing_key
    api_url: https://events.eu.pagerduty.com
    relay_reconciled: false
"""


def write(tmp_path, text: str):
    path = tmp_path / "channels.yml"
    path.write_text(textwrap.dedent(text))
    return path


def test_the_documented_example_loads(tmp_path):
    loaded = load_channels(write(tmp_path, GOOD))
    hook, pager = loaded.channels["ops-webhook"], loaded.channels["pagerduty-oncall"]
    assert isinstance(hook, WebhookChannel) and (hook.type, hook.digests, hook.timeout) == ("webhook", False, 5.0)
    assert hook.headers == {"X-Team": "sre", "Authorization": SecretValue(file="/etc/dumont/secrets/ops_webhook_auth")}
    assert (hook.url_file, hook.secret_file) == ("/etc/dumont/secrets/ops_webhook_url",
                                                 "/etc/dumont/secrets/ops_webhook_secret")
    assert isinstance(pager, PagerDutyChannel) and (pager.type, pager.digests) == ("pagerduty", False)
    assert (pager.api_url, pager.timeout) == ("https://events.eu.pagerduty.com", 10.0)
    assert loaded.quiet_on_reconcile == frozenset({"pagerduty-oncall"})


def test_pagerduty_defaults_to_the_us_endpoint(tmp_path):
    text = GOOD.replace("    api_url: https://events.eu.pagerduty.com\n", "")
    assert load_channels(write(tmp_path, text)).channels["pagerduty-oncall"].api_url == "https://events.pagerduty.com"


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("    url_file: /etc/dumont/secrets/ops_webhook_url\n", "",
     "2: channels.ops-webhook: needs url_file or url_env"),
    ("    url_file: /etc/dumont/secrets/ops_webhook_url\n", "    url: https://hooks.example/SECRET\n",
     ["4: channels.ops-webhook.url: secrets are never inline; use url_file or url_env",
      "2: channels.ops-webhook: needs url_file or url_env"]),
    ("    timeout: 5s\n", "    timeout: 5s\n    url_env: HOOK_URL\n",
     "10: channels.ops-webhook.url_env: set only one of url_file and url_env"),
    ("    secret_file: /etc/dumont/secrets/ops_webhook_secret\n", "    secret: SECRET\n",
     "5: channels.ops-webhook.secret: secrets are never inline; use secret_file or secret_env"),
    ("    timeout: 5s\n", "    timeout: 5s\n    secret_env: HOOK_SECRET\n",
     "10: channels.ops-webhook.secret_env: set only one of secret_file and secret_env"),
    ("      Authorization: {value_file: /etc/dumont/secrets/ops_webhook_auth}\n",
     "      Authorization: Bearer SECRET\n",
     "8: channels.ops-webhook.headers.Authorization: looks like a credential, which is never inline; use "
     "{value_file: PATH} or {value_env: VAR}"),
    ("      X-Team: sre\n", "      Content-Type: text/plain\n",
     "7: channels.ops-webhook.headers.Content-Type: is set by the channel itself"),
    ("      X-Team: sre\n", "      X-Dumont-Signature: forged\n",
     "7: channels.ops-webhook.headers.X-Dumont-Signature: is set by the channel itself"),
    ("      X-Team: sre\n", "      Bad Name: x\n", "7: channels.ops-webhook.headers.Bad Name: is not a valid header name"),
    ("      X-Team: sre\n", "      X-Team: 3\n",
     "7: channels.ops-webhook.headers.X-Team: must be a non-empty string, or a mapping with value_file or value_env"),
    ("      X-Team: sre\n", "      X-Team: {value_file: /a, value_env: B}\n",
     "7: channels.ops-webhook.headers.X-Team: needs exactly one of value_file and value_env"),
    ("      X-Team: sre\n", "      X-Team: \"a\\nb\"\n",
     "7: channels.ops-webhook.headers.X-Team: must not hold a line break, a control character or a character beyond"
     " Latin-1"),
    ("      X-Team: sre\n", "      X-Team: {path: /a}\n",
     "7: channels.ops-webhook.headers.X-Team.path: unknown field (known: value_file, value_env)"),
    ("      X-Team: sre\n", "      X-Team: sre\n      x-team: ops\n",
     "8: channels.ops-webhook.headers.x-team: is given twice (header names ignore case)"),
    ("    headers:\n      X-Team: sre\n      Authorization: {value_file: /etc/dumont/secrets/ops_webhook_auth}\n",
     "    headers: []\n", "6: channels.ops-webhook.headers: must be a non-empty mapping of header name to value"),
    ("    timeout: 5s\n", "    timeout: 0s\n", "9: channels.ops-webhook.timeout: must be longer than 0s"),
    ("    timeout: 5s\n", "    timeout: 5s\n    routing_key_file: /x\n",
     "10: channels.ops-webhook.routing_key_file: unknown field (known: type, url_file, url_env, secret_file, "
     "secret_env, headers, timeout)"),
    ("    routing_key_file: /etc/dumont/secrets/pagerduty_routing_key\n", "",
     "10: channels.pagerduty-oncall: needs routing_key_file or routing_key_env"),
    ("    routing_key_file: /etc/dumont/secrets/pagerduty_routing_key\n", "    routing_key: SECRET\n",
     ["12: channels.pagerduty-oncall.routing_key: secrets are never inline; use routing_key_file or routing_key_env",
      "10: channels.pagerduty-oncall: needs routing_key_file or routing_key_env"]),
    ("    relay_reconciled: false\n", "    relay_reconciled: false\n    routing_key_env: PD_KEY\n",
     "15: channels.pagerduty-oncall.routing_key_env: set only one of routing_key_file and routing_key_env"),
    ("api_url: https://events.eu.pagerduty.com", "api_url: events.eu.pagerduty.com",
     "13: channels.pagerduty-oncall.api_url: must be an http(s) URL such as https://events.pagerduty.com"),
    ("api_url: https://events.eu.pagerduty.com", "api_url: https://me:SECRET@events.pagerduty.com",
     "13: channels.pagerduty-oncall.api_url: must not hold credentials (the routing key goes in routing_key_file"
     " or routing_key_env)"),
    ("api_url: https://events.eu.pagerduty.com", "api_url: https://events.pagerduty.com/?token=SECRET",
     "13: channels.pagerduty-oncall.api_url: must be a base URL such as https://events.pagerduty.com, without a"
     " query or fragment"),
])
def test_one_bad_field_is_named_with_file_and_line(tmp_path, old, new, expected):
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(ValueError) as raised:
        load_channels(path)
    lines = [expected] if isinstance(expected, str) else expected
    assert str(raised.value).splitlines() == [f"{path}:{line}" for line in lines]
    assert "SECRET" not in str(raised.value)


def test_the_architecture_docs_example_loads(tmp_path):
    docs = (Path(__file__).resolve().parents[2] / "docs" / "architecture.md").read_text()
    example = docs.split("## 3. ", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    loaded = load_channels(write(tmp_path, example))
    assert isinstance(loaded.channels["ops-webhook"], WebhookChannel)
    assert isinstance(loaded.channels["pagerduty-oncall"], PagerDutyChannel)
