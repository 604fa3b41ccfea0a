"""channels.yml for a Slack channel with a bot token: the Web API or an incoming webhook, never both; exact errors."""
from __future__ import annotations

import textwrap

import pytest

from webhook_receiver.channels import SlackChannel, load_channels
from webhook_receiver.channels.slack_api import SlackApiChannel

GOOD = """\
channels:
  slack-oncall:
    type: slack
    bot_token_file: /etc/dumont/secrets/slack_bot_token
    channel: C0123456789
    update_parent: true
  slack-alerts:
    type: slack
    webhook_url_file: /etc/dumont/secrets/slack_alerts_url
"""


def write(tmp_path, text: str):
    path = tmp_path / "channels.yml"
    path.write_text(textwrap.dedent(text))
    return path


def test_a_bot_token_makes_a_web_api_channel_and_a_webhook_url_the_incoming_webhook_one(tmp_path):
    channels = load_channels(write(tmp_path, GOOD)).channels
    api, hook = channels["slack-oncall"], channels["slack-alerts"]
    assert isinstance(api, SlackApiChannel) and api.type == "slack" and api.threads and api.digests
    assert (api.bot_token_file, api.bot_token_env, api.channel, api.api_url, api.update_parent, api.timeout) == (
        "/etc/dumont/secrets/slack_bot_token", None, "C0123456789", "https://slack.com/api", True, 10.0)
    assert isinstance(hook, SlackChannel) and not getattr(hook, "threads", False)


def test_api_url_points_elsewhere(tmp_path):
    text = GOOD.replace("    update_parent: true\n", "    api_url: https://slack-gov.com/api/\n    timeout: 5s\n")
    api = load_channels(write(tmp_path, text)).channels["slack-oncall"]
    assert (api.api_url, api.update_parent, api.timeout) == ("https://slack-gov.com/api", False, 5.0)


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("    bot_token_file: /etc/dumont/secrets/slack_bot_token\n",
     "    bot_token_file: /etc/dumont/secrets/slack_bot_token\n    webhook_url_env: SLACK_URL\n",
     "4: channels.slack-oncall.bot_token_file: webhook_url_env posts to an incoming webhook, bot_token_file"
     " through the Web API: set one of them"),
    ("    bot_token_file: /etc/dumont/secrets/slack_bot_token\n",
     "    bot_token_file: /etc/dumont/secrets/slack_bot_token\n    bot_token_env: SLACK_BOT\n",
     "5: channels.slack-oncall.bot_token_env: set only one of bot_token_file and bot_token_env"),
    ("    update_parent: true\n", "    bot_token: xoxb-s3cr3t\n",
     "6: channels.slack-oncall.bot_token: secrets are never inline; use bot_token_file or bot_token_env"),
    ("    channel: C0123456789\n", "",
     "2: channels.slack-oncall.channel: is required with a bot token (a channel ID like C0123456789)"),
    ("    channel: C0123456789\n", "    channel: '#oncall'\n",
     "5: channels.slack-oncall.channel: with a bot token, must be a channel ID like C0123456789 (shown in the"
     " channel's details in Slack), not a name"),
    ("    update_parent: true\n", "    update_parent: yes please\n",
     "6: channels.slack-oncall.update_parent: must be true or false"),
    ("    update_parent: true\n", "    api_url: slack.com/api\n",
     "6: channels.slack-oncall.api_url: must be an http(s) URL like https://slack.com/api, without credentials,"
     " query or fragment"),
    ("    update_parent: true\n", "    api_url: https://user:s3cr3t@slack.com/api\n",
     "6: channels.slack-oncall.api_url: must be an http(s) URL like https://slack.com/api, without credentials,"
     " query or fragment"),
    ("    update_parent: true\n", "    api_url: https://hooks.slack.com/services/T0/B0/s3cr3t\n",
     "6: channels.slack-oncall.api_url: is an incoming webhook's URL, a secret: give it in webhook_url_file or"
     " webhook_url_env"),
    ("    webhook_url_file: /etc/dumont/secrets/slack_alerts_url\n",
     "    webhook_url_file: /etc/dumont/secrets/slack_alerts_url\n    update_parent: true\n",
     "10: channels.slack-alerts.update_parent: only with bot_token_file or bot_token_env (the Web API)"),
])
def test_one_bad_field_is_named_with_file_and_line(tmp_path, old, new, expected):
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(ValueError) as raised:
        load_channels(path)
    assert str(raised.value) == f"{path}:{expected}"
    assert "s3cr3t" not in str(raised.value)
