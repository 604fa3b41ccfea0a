"""The two ways a receiver's Slack channel posts: to an incoming webhook (webhook_url_*), or through the Web API
with a bot token (bot_token_*), which replies in threads. The receiver checks the same (channels/config.py)."""
from __future__ import annotations

import re

# With the inline forms: written inline, the secret is reported as such (schema.py), not as missing too
_WEBHOOK = ("webhook_url_file", "webhook_url_env", "webhook_url")
_BOT_TOKEN = ("bot_token_file", "bot_token_env", "bot_token")
_WEB_API_ONLY = ("api_url", "update_parent")
_CHANNEL_ID = re.compile(r"^[CDG][A-Z0-9]{8,}$")  # as webhook_receiver/channels/slack_api.py wants it
_URL = re.compile(r"^https?://([^/?#]+)[^?#]*$")


def check_slack(c, at: tuple, spec: dict) -> None:
    """Exactly one of webhook_url_* and bot_token_*; a bot token's channel is an ID; api_url and update_parent
    only with a bot token."""
    webhook = [key for key in _WEBHOOK if key in spec]
    bot = [key for key in _BOT_TOKEN if key in spec]
    if not webhook and not bot:
        c.fail(at, "missing required field 'webhook_url_file' or 'webhook_url_env' (an incoming webhook),"
                   " or 'bot_token_file' or 'bot_token_env' (the Web API)")
    elif webhook and bot:
        c.fail(at + (bot[0],), f"give {webhook[0]} (an incoming webhook) or {bot[0]} (the Web API), not both")
    elif webhook:
        for key in _WEB_API_ONLY:
            if key in spec:
                c.fail(at + (key,), "only with bot_token_file or bot_token_env (the Web API)")
    else:
        _channel_id(c, at, spec)
        if "api_url" in spec and c.clean(at + ("api_url",)):
            _api_url(c, at + ("api_url",), str(spec["api_url"]))


def _channel_id(c, at: tuple, spec: dict) -> None:
    channel = spec.get("channel")
    if channel is None:
        c.fail(at, "missing required field 'channel' (with a bot token, a channel ID like C0123456789)")
    elif c.clean(at + ("channel",)) and "/" not in channel and not _CHANNEL_ID.match(channel):
        # (a URL in it is reported as a secret written inline)
        c.fail(at + ("channel",), "with a bot token, must be a channel ID like C0123456789, not a name")


def _api_url(c, at: tuple, url: str) -> None:
    """The Web API's base URL: public, so inline, but never with credentials, and never a webhook's (a secret)."""
    match = _URL.match(url)
    if match is None:
        c.fail(at, "must be an http(s) base URL such as https://slack.com/api")
    elif "@" in match.group(1):
        c.fail(at, "must not hold credentials (the bot token goes in bot_token_file or bot_token_env)")
    elif match.group(1).lower() == "hooks.slack.com":
        c.fail(at, "secret written inline (an incoming webhook's URL goes in webhook_url_file or webhook_url_env)")
