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
from .slack import SlackChannel

Field = tuple[str, ...]

# Per channel type: field -> check. `type` is common to all.
SPECS: dict[str, dict[str, Callable[[Any], Any]]] = {
    "slack": {
        "webhook_url_file": fields.string,
        "webhook_url_env": fields.string,
        "channel": fields.string,
        "timeout": fields.duration,
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
}
REQUIRED = {"email": ("to", "from", "smarthost")}
# (file field, env field, one of them required)
SECRETS = {"slack": ("webhook_url_file", "webhook_url_env", True), "email": ("password_file", "password_env", False)}
INLINE_SECRETS = {"webhook_url": "webhook_url", "url": "webhook_url", "password": "password"}
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
    for name, config in raw.items():
        if not isinstance(name, str) or not NAME.match(name):
            errors.append(ConfigError(("channels", str(name)), "names may use letters, digits, '_', '.', '-'"))
            continue
        channel, more = _check_channel(name, config)
        errors += more
        if channel is not None:
            channels[name] = channel
    deadman = None
    if "deadman" in data:
        deadman, more = _check_deadman(data["deadman"], raw)
        errors += more
    return (None, errors) if errors else (ChannelSet(channels=channels, deadman=deadman), [])


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
                errors.append(ConfigError(at + (key,), str(exc)))
        elif key in INLINE_SECRETS:
            secret = INLINE_SECRETS[key]
            errors.append(ConfigError(at + (key,), f"secrets are never inline; use {secret}_file or {secret}_env"))
        else:
            errors.append(ConfigError(at + (str(key),), f"unknown field (known: {', '.join(['type', *spec])})"))
    errors += [ConfigError(at + (key,), "is required") for key in REQUIRED.get(kind, ()) if key not in config]
    errors += _check_secrets(kind, config, at)
    if errors:
        return None, errors
    if kind == "slack":
        return SlackChannel(name, **values), []
    if kind == "email":
        values["sender"] = values.pop("from")
        return EmailChannel(name, **values), []
    return HeartbeatChannel(name), []


def _check_secrets(kind: str, config: Mapping, at: Field) -> list[ConfigError]:
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
