"""Checks of channels, routes and inhibitions, and their part of the Spec model."""
from __future__ import annotations

import re

from . import promql, units
from .model import Alert, Inhibition, Route

_ENV_VAR = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_REQUIRED = {"slack": ("webhook_url",), "email": ("to", "from", "smarthost"), "heartbeat": ()}
_SECRETS = ("webhook_url", "password")


def check_channels(c) -> None:
    """Each channel has its type's fields, and secrets only as `*_file` paths or `*_env` names."""
    channels = c.data.get("channels") or {}
    for name, spec in channels.items():
        at = ("channels", name)
        if not isinstance(spec, dict) or "type" not in spec:
            c.fail(at, "missing required field 'type'")
            continue
        for field in _REQUIRED.get(spec["type"], ()):
            present = [k for k in (field, field + "_file", field + "_env") if k in spec]
            if not present:
                wanted = f"'{field}_file' or '{field}_env'" if field in _SECRETS else f"'{field}'"
                c.fail(at, f"missing required field {wanted}")
        for stem in _SECRETS:
            if stem + "_file" in spec and stem + "_env" in spec:
                c.fail(at + (stem + "_env",), f"give {stem}_file or {stem}_env, not both")
        for key, value in spec.items():
            looks_secret = isinstance(value, str) and re.match(r"^[a-z]+://", value)
            if key.endswith(("_file", "_env")) and looks_secret:
                c.fail(at + (key,), "secret written inline (give a file path or an environment variable name)")
            elif key.endswith("_env") and not _ENV_VAR.match(str(value)):
                c.fail(at + (key,), "must be an environment variable name")
            elif key.endswith("_file") and not str(value).startswith("/"):
                c.fail(at + (key,), "must be an absolute file path")
        if spec["type"] == "heartbeat" and set(spec) - {"type"}:
            c.fail(at, "a heartbeat channel has no other field")
    deadman = c.data.get("deadman") or {}
    if deadman:
        _channel_refs(c, ("deadman", "channel"), [deadman.get("channel")])
        if (channels.get(deadman.get("channel")) or {}).get("type") not in (None, "heartbeat"):
            c.fail(("deadman", "channel"), "must be a heartbeat channel")
        _channel_refs(c, ("deadman", "notify"), deadman.get("notify", []), indexed=True)
        c.duration(("deadman", "timeout"), deadman.get("timeout"))


def _channel_refs(c, at, names, indexed=False) -> None:
    for i, name in enumerate(names):
        if name not in (c.data.get("channels") or {}):
            c.fail(at + (i,) if indexed else at, f"undefined channel {name!r}")


def _matchers(c, at, texts) -> tuple[str, ...]:
    out = []
    for i, text in enumerate(texts):
        if promql.parse_matcher(str(text)) is None:
            c.fail(at + (i,), f"bad matcher {text!r} (write name=\"value\", name!=\"value\", name=~\"re\" or name!~\"re\")")
        else:
            out.append(promql.render_matcher(text))
    return tuple(out)


def routing_model(c, alerts: tuple[Alert, ...]) -> dict:
    """Routes and inhibitions, checked against the alerts they will see."""
    spec = c.data.get("routing") or {}
    timing = {}
    for key in ("group_wait", "group_interval", "repeat_interval", "resolve_timeout"):
        c.duration(("routing", key), spec.get(key))
        timing[key] = spec.get(key)
    _channel_refs(c, ("routing", "default"), spec.get("default", []), indexed=True)
    routes = []
    for name, route in (spec.get("routes") or {}).items():
        at = ("routing", "routes", name)
        _channel_refs(c, at + ("channels",), route.get("channels", []), indexed=True)
        own = tuple((k, route[k]) for k in ("group_wait", "group_interval", "repeat_interval") if k in route)
        for key, value in own:
            c.duration(at + (key,), value)
        routes.append(Route(name, _matchers(c, at + ("matchers",), route.get("matchers", [])),
                            tuple(route.get("channels", [])), own))
    for alert in alerts:
        reached = next((r for r in routes if promql.selects(r.matchers, _static(alert), set(alert.carries))), None)
        channels = reached.channels if reached else tuple(spec.get("default", []))
        if not channels:
            where = ("routing", "routes", reached.name, "channels") if reached else ("routing", "default")
            c.fail(where, f"alert {alert.name} reaches no channel")
    inhibitions = []
    for name, rule in (spec.get("inhibit") or {}).items():
        at = ("routing", "inhibit", name)
        source = _matchers(c, at + ("source",), rule.get("source", []))
        target = _matchers(c, at + ("target",), rule.get("target", []))
        for side, matchers in (("source", source), ("target", target)):
            chosen = [a for a in alerts if promql.selects(matchers, _static(a), set(a.carries))]
            if not chosen and not c.errors:  # after other errors, alerts may be missing from the model
                c.fail(at + (side,), "matches no alert")
            for label in rule.get("equal", []):
                gaps = [a.name for a in chosen if label not in _static(a) and label not in a.carries]
                if gaps:
                    c.fail(at + ("equal",), f"label {label} is not carried by {', '.join(gaps)} ({side} side)")
        inhibitions.append(Inhibition(source, target, tuple(rule.get("equal", []))))
    _deadman_timing(c, routes, spec)
    contract = ((c.data.get("contract") or {}).get("routes") or [])
    for i, entry in enumerate(contract):
        _channel_refs(c, ("contract", "routes", i, "channels"), entry.get("channels", []), indexed=True)
    return dict(routing=timing | {"group_by": list(spec.get("group_by", []))},
                default_channels=tuple(spec.get("default", [])), routes=tuple(routes),
                inhibitions=tuple(inhibitions),
                contract_routes=tuple((tuple(sorted(e["labels"].items())), tuple(e["channels"])) for e in contract))


def _static(alert: Alert) -> dict[str, str]:
    """The labels an alert has whatever its series: its name, severity and fixed labels."""
    return {"alertname": alert.name, "severity": alert.severity, **dict(alert.labels)}


def _deadman_timing(c, routes, spec) -> None:
    """The heartbeat must arrive well inside the dead man's timeout, or the switch fires on a healthy pipeline."""
    deadman = c.data.get("deadman") or {}
    timeout = units.parse_duration(deadman.get("timeout"))
    for route in routes:
        if deadman.get("channel") in route.channels and timeout:
            own = dict(route.timing)
            every = max(units.parse_duration(own.get(k, spec.get(k))) or 0 for k in ("group_interval", "repeat_interval"))
            if timeout <= 2 * every:
                c.fail(("deadman", "timeout"), f"must exceed twice the heartbeat interval of route {route.name} "
                                               f"({units.format_duration(every)})")


def channels_for(spec, alert: Alert) -> tuple[str, tuple[str, ...]]:
    """The route an alert takes (as Alertmanager would pick it) and the channels it reaches."""
    for route in spec.routes:
        if promql.selects(route.matchers, _static(alert), set(alert.carries)):
            return route.name, route.channels
    return "default", spec.default_channels
