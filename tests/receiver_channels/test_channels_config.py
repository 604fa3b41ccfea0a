"""load_channels and build_channel: one good file, then one broken field per case with its exact message."""
from __future__ import annotations

import textwrap

import pytest

from webhook_receiver.channels import DeadmanConfig, EmailChannel, HeartbeatChannel, SlackChannel, build_channel, load_channels

GOOD = """\
channels:
  slack-oncall:
    type: slack
    webhook_url_file: /etc/dumont/secrets/slack_oncall_url
    channel: "#oncall"
  email-oncall:
    type: email
    to: [oncall@example.com]
    from: alerts@dumont.cloud
    smarthost: smtp.example.com:587
    require_tls: true
    username: alerts
    password_file: /etc/dumont/secrets/smtp_password
    timeout: 30s
  watchdog:
    type: heartbeat
deadman:
  channel: watchdog
  timeout: 5m
  notify: [slack-oncall, email-oncall]
"""


def write(tmp_path, text: str):
    path = tmp_path / "channels.yml"
    path.write_text(textwrap.dedent(text))
    return path


def test_the_documented_example_loads(tmp_path):
    loaded = load_channels(write(tmp_path, GOOD))
    slack, mail, watchdog = (loaded.channels[n] for n in ("slack-oncall", "email-oncall", "watchdog"))
    assert isinstance(slack, SlackChannel) and (slack.name, slack.type, slack.channel) == ("slack-oncall", "slack", "#oncall")
    assert slack.webhook_url_file == "/etc/dumont/secrets/slack_oncall_url" and slack.timeout == 10.0
    assert isinstance(mail, EmailChannel)
    assert (mail.host, mail.port, mail.sender, mail.to, mail.timeout) == (
        "smtp.example.com", 587, "alerts@dumont.cloud", ["oncall@example.com"], 30.0
    )
    assert isinstance(watchdog, HeartbeatChannel) and watchdog.type == "heartbeat"
    assert loaded.deadman == DeadmanConfig(channel="watchdog", timeout_seconds=300.0, notify=("slack-oncall", "email-oncall"))


def test_deadman_is_optional(tmp_path):
    assert load_channels(write(tmp_path, GOOD.split("deadman:")[0])).deadman is None


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("smarthost: smtp.example.com:587", "smarthost: smtp.example.com", "10: channels.email-oncall.smarthost: must be host:port, got 'smtp.example.com'"),
        ("    timeout: 30s\n", "    timeout: 30\n", "14: channels.email-oncall.timeout: must be a duration like 30s, 5m or 1h, got 30"),
        ("require_tls: true", "require_tls: yes please", "11: channels.email-oncall.require_tls: must be true or false"),
        ("to: [oncall@example.com]", "to: [oncall]", "8: channels.email-oncall.to: item 0: must be an email address, got 'oncall'"),
        ("    type: slack\n", "    type: teams\n", "3: channels.slack-oncall.type: must be one of slack, email, heartbeat, webhook, pagerduty"),
        ("    webhook_url_file: /etc/dumont/secrets/slack_oncall_url\n", "", "2: channels.slack-oncall: needs webhook_url_file or webhook_url_env (an incoming webhook), or bot_token_file or bot_token_env (the Web API)"),
        ("    channel: \"#oncall\"\n", "    channel: \"#oncall\"\n    webhook_url_env: URL\n", "6: channels.slack-oncall.webhook_url_env: set only one of webhook_url_file and webhook_url_env"),
        ("    channel: \"#oncall\"\n", "    webhook_url: https://hooks.slack.com/services/T/B/SECRET\n", "5: channels.slack-oncall.webhook_url: secrets are never inline; use webhook_url_file or webhook_url_env"),
        ("    username: alerts\n", "", "6: channels.email-oncall.username: username and password_file/password_env go together"),
        ("    from: alerts@dumont.cloud\n", "", "6: channels.email-oncall.from: is required"),
        ("    channel: \"#oncall\"\n", "    colour: red\n", "5: channels.slack-oncall.colour: unknown field (known: type, webhook_url_file, webhook_url_env, channel, timeout, bot_token_file, bot_token_env, api_url, update_parent)"),
        ("  channel: watchdog", "  channel: slack-oncall", "18: deadman.channel: must name a heartbeat channel, got 'slack-oncall'"),
        ("  timeout: 5m", "  timeout: 0s", "19: deadman.timeout: must be longer than 0s"),
        ("notify: [slack-oncall, email-oncall]", "notify: [slack-oncall, pager]", "20: deadman.notify: no channel named 'pager'"),
        ("notify: [slack-oncall, email-oncall]", "notify: [watchdog]", "20: deadman.notify: 'watchdog' is a heartbeat channel, which relays nothing"),
        ("  notify: [slack-oncall, email-oncall]\n", "", "17: deadman.notify: is required"),
        ("  watchdog:\n    type: heartbeat\n", "  watchdog:\n    type: heartbeat\n  watchdog:\n    type: heartbeat\n", "17: channels.watchdog: duplicate key"),
    ],
)
def test_one_bad_field_is_named_with_file_and_line(tmp_path, old, new, expected):
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(ValueError) as raised:
        load_channels(path)
    assert str(raised.value) == f"{path}:{expected}"
    assert "SECRET" not in str(raised.value)


def test_every_problem_is_reported_at_once(tmp_path):
    text = GOOD.replace("smtp.example.com:587", "nope").replace("type: slack", "type: teams")
    path = write(tmp_path, text)
    with pytest.raises(ValueError) as raised:
        load_channels(path)
    assert str(raised.value).splitlines() == [
        f"{path}:3: channels.slack-oncall.type: must be one of slack, email, heartbeat, webhook, pagerduty",
        f"{path}:10: channels.email-oncall.smarthost: must be host:port, got 'nope'",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ":1: channels: the file must be a mapping with a channels: key"),
        ("channels: {}\n", ":1: channels: must be a non-empty mapping of channel name to channel"),
        ("channels:\n  a: {type: heartbeat}\nextra: 1\n", ":3: extra: unknown field (known: channels, deadman)"),
        ("channels:\n  a b: {type: heartbeat}\n", ":2: channels.a b: names may use letters, digits, '_', '.', '-'"),
        ("channels: [\n", ":2: invalid YAML: expected the node content, but found '<stream end>'"),
    ],
)
def test_bad_files(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(ValueError) as raised:
        load_channels(path)
    assert str(raised.value) == f"{path}{expected}"


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ValueError) as raised:
        load_channels(tmp_path / "absent.yml")
    assert str(raised.value) == f"{tmp_path / 'absent.yml'}: cannot read: No such file or directory"


def test_build_channel_names_the_field_without_a_file():
    assert build_channel("hb", {"type": "heartbeat"}).name == "hb"
    with pytest.raises(ValueError) as raised:
        build_channel("mail", {"type": "email", "to": [], "from": "a@b.c", "smarthost": "h:25"})
    assert str(raised.value) == "channels.mail.to: must be a non-empty list of email addresses"
