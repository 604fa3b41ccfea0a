"""Parse and validate channels.yml into channels; every error names the file, line and field."""
from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Any

import yaml

from . import fields
from .email import EmailChannel
from .heartbeat import HeartbeatChannel
from .model import Channel, ChannelSet, DeadmanConfig
from .pagerduty import PagerDutyChannel, check_api_url
from .slack import SlackChannel
from .slack_api import SlackApiChannel, api_url, channel_id
from .webhook import WebhookChannel
from .webhook_headers import check_headers

Field = tuple[str, ...]

# Per channel type: field -> check. `type` is common to all.
SPECS: dict[str, dict[str, Callable[[Any], Any]]] = {
    "slack": {
        "webhook_url_file": fields.string,
        "webhook_url_env": fields.string,
        "channel": fields.string,
        "timeout": fields.duration,
        # The Web API instead of an incoming webhook: replies in threads (see _check_slack_mode)
        "bot_token_file": fields.string,
        "bot_token_env": fields.string,
        "api_url": api_url,
        "update_parent": fields.boolean,
    },
    "email": {
        "to": fields.addresses,
        "from": fields.address,
        "smarthost": fields.hostport,
        "require_tls": fields.boolean,
        "username": fields.string,
        "password_file": fields.string,
        "password_env": fields.string,
        "ca_file": fields.string,
        "timeout": fields.duration,
    },
    "heartbeat": {},
    "webhook": {
        "url_file": fields.string,
        "url_env": fields.string,
        "secret_file": fields.string,
        "secret_env": fields.string,
        "headers": check_headers,
        "timeout": fields.duration,
    },
    "pagerduty": {
        "routing_key_file": fields.string,
        "routing_key_env": fields.string,
        "api_url": check_api_url,
        "timeout": fields.duration,
    },
}
REQUIRED = {"email": ("to", "from", "smarthost")}
# Fields of every channel that relays: whether a resolution that reconciliation stored (Alertmanager never sent
# it: the alert ended while silenced or inhibited) is relayed where its firing was (default true).
COMMON = {"relay_reconciled": fields.boolean}
# (file field, env field, one of them required)
SECRETS = {"slack": ("webhook_url_file", "webhook_url_env", True), "email": ("password_file", "password_env", False),
           "webhook": ("url_file", "url_env", True), "pagerduty": ("routing_key_file", "routing_key_env", True)}
# Further optional secrets of a type, at most one of each pair: the webhook's signing secret
MORE_SECRETS = {"webhook": (("secret_file", "secret_env"),)}
INLINE_SECRETS = {"webhook_url": "webhook_url", "url": "webhook_url", "password": "password",
                  "bot_token": "bot_token"}
# A Slack channel posts to an incoming webhook (SECRETS) or, with a bot token, through the Web API (with these).
BOT_TOKEN = ("bot_token_file", "bot_token_env")
WEB_API_ONLY = ("api_url", "update_parent")
# Where a type keeps what INLINE_SECRETS would otherwise point elsewhere
INLINE_SECRETS_OF = {"webhook": {"url": "url", "secret": "secret"}, "pagerduty": {"routing_key": "routing_key"}}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # names appear in /webhook/<channel> URLs


class ConfigError(ValueError):
    """One problem with one field."""

    def __init__(self, field: Field, problem: str) -> None:
        self.field = field
        super().__init__(f"{'.'.join(field)}: {problem}")


def build_channel(name: str, config: Mapping) -> Channel:
    """Build one channel from its mapping in channels.yml; ValueError lists every problem."""
    channel, errors = _check_channel(name, config)
    if errors:
        raise ValueError("\n".join(str(e) for e in errors))
    assert channel is not None
    return channel


def load_channels(path: str | os.PathLike) -> ChannelSet:
    """Parse and validate channels.yml; ValueError lists every problem as `file:line: field: problem`."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror}") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else path
        raise ValueError(f"{where}: invalid YAML: {getattr(exc, 'problem', None) or exc}") from None
    finally:
        loader.dispose()
    lines: dict[Field, int] = {}
    errors: list[ConfigError] = []
    if node is not None:
        _index(node, (), lines, errors)
    channel_set, more = _check_file(data)
    errors += more
    if errors:
        raise ValueError("\n".join(f"{path}:{_line(lines, e.field)}: {e}" for e in errors))
    assert channel_set is not None
    return channel_set


def _index(node: yaml.Node, at: Field, lines: dict[Field, int], errors: list[ConfigError]) -> None:
    """Record the line of every mapping key, and flag duplicate keys (PyYAML keeps the last silently)."""
    if not isinstance(node, yaml.MappingNode):
        return
    for key_node, value_node in node.value:
        field = at + (str(key_node.value),)
        if field in lines:
            errors.append(ConfigError(field, "duplicate key"))
            # PyYAML keeps the last value: forget the first one's lines and index this one
            for stale in [k for k in lines if k[: len(field)] == field]:
                del lines[stale]
        lines[field] = key_node.start_mark.line + 1
        _index(value_node, field, lines, errors)


def _line(lines: dict[Field, int], field: Field) -> int:
    # A missing field is reported at its nearest existing parent
    while field and field not in lines:
        field = field[:-1]
    return lines.get(field, 1)


def _check_file(data: Any) -> tuple[ChannelSet | None, list[ConfigError]]:
    if not isinstance(data, dict):
        return None, [ConfigError(("channels",), "the file must be a mapping with a channels: key")]
    errors = [
        ConfigError((str(key),), "unknown field (known: channels, deadman)")
        for key in data
        if key not in ("channels", "deadman")
    ]
    raw = data.get("channels")
    if not isinstance(raw, dict) or not raw:
        return None, errors + [ConfigError(("channels",), "must be a non-empty mapping of channel name to channel")]
    channels: dict[str, Channel] = {}
    quiet: set[str] = set()
    for name, config in raw.items():
        if not isinstance(name, str) or not NAME.match(name):
            errors.append(ConfigError(("channels", str(name)), "names may use letters, digits, '_', '.', '-'"))
            continue
        if isinstance(config, Mapping) and "relay_reconciled" in config and config.get("type") != "heartbeat":
            config = dict(config)
            try:
                if not COMMON["relay_reconciled"](config.pop("relay_reconciled")):
                    quiet.add(name)
            except fields.Invalid as exc:
                errors.append(ConfigError(("channels", name, "relay_reconciled"), str(exc)))
        channel, more = _check_channel(name, config)
        errors += more
        if channel is not None:
            channels[name] = channel
    deadman = None
    if "deadman" in data:
        deadman, more = _check_deadman(data["deadman"], raw)
        errors += more
    return (None, errors) if errors else (ChannelSet(channels=channels, deadman=deadman,
                                                     quiet_on_reconcile=frozenset(quiet)), [])


def _check_channel(name: str, config: Any) -> tuple[Channel | None, list[ConfigError]]:
    at: Field = ("channels", name)
    if not isinstance(config, Mapping):
        return None, [ConfigError(at, "must be a mapping")]
    kind = config.get("type")
    if kind not in SPECS:
        return None, [ConfigError(at + ("type",), f"must be one of {', '.join(SPECS)}")]
    spec = SPECS[kind]
    values: dict[str, Any] = {}
    errors = []
    for key, raw in config.items():
        if key == "type":
            continue
        if key in spec:
            try:
                values[key] = spec[key](raw)
            except fields.Invalid as exc:
                # A nested value (one of a webhook's headers) is named down to its own line
                errors.append(ConfigError(at + (key,) + getattr(exc, "at", ()), str(exc)))
        elif key in INLINE_SECRETS or key in INLINE_SECRETS_OF.get(kind, {}):
            secret = INLINE_SECRETS_OF.get(kind, {}).get(key) or INLINE_SECRETS[key]
            errors.append(ConfigError(at + (key,), f"secrets are never inline; use {secret}_file or {secret}_env"))
        else:
            errors.append(ConfigError(at + (str(key),), f"unknown field (known: {', '.join(['type', *spec])})"))
    errors += [ConfigError(at + (key,), "is required") for key in REQUIRED.get(kind, ()) if key not in config]
    errors += _check_secrets(kind, config, at)
    if errors:
        return None, errors
    if kind == "slack":
        return (SlackApiChannel if any(key in values for key in BOT_TOKEN) else SlackChannel)(name, **values), []
    if kind == "email":
        values["sender"] = values.pop("from")
        return EmailChannel(name, **values), []
    if kind == "webhook":
        return WebhookChannel(name, **values), []
    if kind == "pagerduty":
        return PagerDutyChannel(name, **values), []
    return HeartbeatChannel(name), []


def _check_secrets(kind: str, config: Mapping, at: Field) -> list[ConfigError]:
    if kind == "slack":
        return _check_slack_mode(config, at)
    if kind not in SECRETS:
        return []
    file_key, env_key, required = SECRETS[kind]
    if file_key in config and env_key in config:
        return [ConfigError(at + (env_key,), f"set only one of {file_key} and {env_key}")]
    has_secret = file_key in config or env_key in config
    if required and not has_secret:
        return [ConfigError(at, f"needs {file_key} or {env_key}")]
    if kind == "email" and has_secret != ("username" in config):
        return [ConfigError(at + ("username",), "username and password_file/password_env go together")]
    return [ConfigError(at + (env_key,), f"set only one of {file_key} and {env_key}")
            for file_key, env_key in MORE_SECRETS.get(kind, ()) if file_key in config and env_key in config]


def _check_slack_mode(config: Mapping, at: Field) -> list[ConfigError]:
    """Exactly one of an incoming webhook's URL and a bot token; the Web API's own fields only with the token."""
    webhook = [key for key in SECRETS["slack"][:2] if key in config]
    bot = [key for key in BOT_TOKEN if key in config]
    if not webhook and not bot:
        return [ConfigError(at, "needs webhook_url_file or webhook_url_env (an incoming webhook), or bot_token_file"
                                " or bot_token_env (the Web API)")]
    if webhook and bot:
        return [ConfigError(at + (bot[0],), f"{webhook[0]} posts to an incoming webhook, {bot[0]} through the Web"
                                            " API: set one of them")]
    if len(webhook) > 1 or len(bot) > 1:
        first, second = webhook or bot
        return [ConfigError(at + (second,), f"set only one of {first} and {second}")]
    if webhook:
        return [ConfigError(at + (key,), "only with bot_token_file or bot_token_env (the Web API)")
                for key in WEB_API_ONLY if key in config]
    if "channel" not in config:
        return [ConfigError(at + ("channel",), "is required with a bot token (a channel ID like C0123456789)")]
    try:
        channel_id(config["channel"])
    except fields.Invalid as exc:
        return [ConfigError(at + ("channel",), str(exc))]
    return []


def _check_deadman(raw: Any, channels: Mapping[str, Any]) -> tuple[DeadmanConfig | None, list[ConfigError]]:
    at: Field = ("deadman",)
    if not isinstance(raw, dict):
        return None, [ConfigError(at, "must be a mapping with channel, timeout and notify")]
    known = ("channel", "timeout", "notify")
    errors = [ConfigError(at + (str(k),), f"unknown field (known: {', '.join(known)})") for k in raw if k not in known]
    errors += [ConfigError(at + (k,), "is required") for k in known if k not in raw]
    if errors:
        return None, errors
    channel = raw["channel"]
    kinds = {name: c.get("type") if isinstance(c, Mapping) else None for name, c in channels.items()}
    if kinds.get(channel) != "heartbeat":
        errors.append(ConfigError(at + ("channel",), f"must name a heartbeat channel, got {channel!r}"))
    try:
        timeout = fields.duration(raw["timeout"])
    except fields.Invalid as exc:
        errors.append(ConfigError(at + ("timeout",), str(exc)))
    try:
        notify = fields.names(raw["notify"])
    except fields.Invalid as exc:
        errors.append(ConfigError(at + ("notify",), str(exc)))
    else:
        for name in notify:
            if name not in kinds:
                errors.append(ConfigError(at + ("notify",), f"no channel named {name!r}"))
            elif kinds[name] == "heartbeat":
                errors.append(ConfigError(at + ("notify",), f"{name!r} is a heartbeat channel, which relays nothing"))
    if errors:
        return None, errors
    return DeadmanConfig(channel=channel, timeout_seconds=timeout, notify=notify), []
