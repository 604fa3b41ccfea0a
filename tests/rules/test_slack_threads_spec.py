"""A Slack channel with a bot token in channels.yaml: accepted, rendered as the receiver loads it, and each
mistake named at its line."""
from __future__ import annotations

import pytest

from rules_src.render import render
from rules_src.spec import load
from webhook_receiver.channels import load_channels
from webhook_receiver.channels.slack_api import SlackApiChannel

from tests.rules.rules_helpers import edit, messages

WEBHOOK = "    type: slack\n    webhook_url_file: /etc/dumont/secrets/slack_oncall_url\n"
BOT = ("    type: slack\n    bot_token_file: /etc/dumont/secrets/slack_bot_token\n    channel: C0123456789\n"
       "    api_url: https://slack.com/api\n    update_parent: true\n")


def test_a_bot_token_channel_renders_into_the_receivers_channels(good, tmp_path):
    edit(good / "channels.yaml", WEBHOOK, BOT)
    spec, errors = load("test", good)
    assert errors == []
    path = tmp_path / "channels.yml"
    path.write_text(render(spec)["receiver/channels.yml"])
    channel = load_channels(path).channels["slack-oncall"]
    assert isinstance(channel, SlackApiChannel)
    assert (channel.bot_token_file, channel.channel, channel.update_parent) == (
        "/etc/dumont/secrets/slack_bot_token", "C0123456789", True)


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("    update_parent: true\n", "    update_parent: true\n    webhook_url_env: SLACK_URL\n",
     "5: channels.slack-oncall.bot_token_file: give webhook_url_env (an incoming webhook) or bot_token_file"
     " (the Web API), not both"),
    ("    update_parent: true\n", "    bot_token: xoxb-s3cr3t\n",
     "8: channels.slack-oncall.bot_token: secret written inline (use bot_token_file or bot_token_env)"),
    ("    bot_token_file: /etc/dumont/secrets/slack_bot_token\n", "    bot_token_file: xoxb-s3cr3t\n",
     "5: channels.slack-oncall.bot_token_file: must be an absolute file path"),
    ("    update_parent: true\n", "    update_parent: true\n    bot_token_env: SLACK_BOT\n",
     "9: channels.slack-oncall.bot_token_env: give bot_token_file or bot_token_env, not both"),
    ("    channel: C0123456789\n", "    channel: '#oncall'\n",
     "6: channels.slack-oncall.channel: with a bot token, must be a channel ID like C0123456789, not a name"),
    ("    channel: C0123456789\n", "",
     "3: channels.slack-oncall: missing required field 'channel' (with a bot token, a channel ID like C0123456789)"),
    ("    api_url: https://slack.com/api\n", "    api_url: https://x:s3cr3t@slack.com/api\n",
     "7: channels.slack-oncall.api_url: must not hold credentials (the bot token goes in bot_token_file or"
     " bot_token_env)"),
    ("    api_url: https://slack.com/api\n", "    api_url: https://hooks.slack.com/services/T0/B0/s3cr3t\n",
     "7: channels.slack-oncall.api_url: secret written inline (an incoming webhook's URL goes in webhook_url_file"
     " or webhook_url_env)"),
    ("    update_parent: true\n", "    update_parent: 'yes'\n",
     "8: channels.slack-oncall.update_parent: must be true or false"),
])
def test_each_mistake_is_named_at_its_line(good, old, new, expected):
    edit(good / "channels.yaml", WEBHOOK, BOT.replace(old, new))
    assert messages(good) == [f"rules_src/channels.yaml:{expected}"]


def test_the_web_apis_fields_need_a_bot_token(good):
    edit(good / "channels.yaml", WEBHOOK, WEBHOOK + "    update_parent: true\n")
    assert messages(good) == ["rules_src/channels.yaml:6: channels.slack-oncall.update_parent: "
                              "only with bot_token_file or bot_token_env (the Web API)"]
    edit(good / "channels.yaml", WEBHOOK + "    update_parent: true\n", "    type: slack\n")
    assert messages(good) == ["rules_src/channels.yaml:3: channels.slack-oncall: missing required field"
                              " 'webhook_url_file' or 'webhook_url_env' (an incoming webhook), or 'bot_token_file'"
                              " or 'bot_token_env' (the Web API)"]
