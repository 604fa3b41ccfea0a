"""Checks of channels, routes and inhibitions, and their part of the Spec model."""
from __future__ import annotations

import re

from . import promql, units
from .model import Alert, Inhibition, Route
from .schema import INLINE_SECRETS
from .slack_modes import check_slack

_ENV_VAR = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_REQUIRED = {"slack": (),  # webhook_url or bot_token: check_slack
             "email": ("to", "from", "smarthost"), "heartbeat": (),
             "webhook": ("url",), "pagerduty": ("routing_key",),
             "alertmanager_slack": ("api_url",), "alertmanager_email": ("to", "from", "smarthost")}
_SECRETS = ("webhook_url", "password", "api_url", "url", "secret", "routing_key", "bot_token")
# Alertmanager's own integrations read their secrets from files (api_url_file, auth_password_file), never
# from the environment; and the fields each type may have.
DIRECT = ("alertmanager_slack", "alertmanager_email")
_FIELDS = {"slack": {"webhook_url_file", "webhook_url_env", "channel", "relay_reconciled",
                     "bot_token_file", "bot_token_env", "api_url", "update_parent"},
           "email": {"to", "from", "smarthost", "require_tls", "username", "password_file", "password_env",
                     "relay_reconciled"},
           "heartbeat": set(),
           "webhook": {"url_file", "url_env", "secret_file", "secret_env", "headers", "timeout", "relay_reconciled"},
           "pagerduty": {"routing_key_file", "routing_key_env", "api_url", "timeout", "relay_reconciled"},
           "alertmanager_slack": {"api_url_file", "channel"},
           "alertmanager_email": {"to", "from", "smarthost", "require_tls", "username", "password_file"}}
# Fields that name or address something and are rendered into receiver/channels.yml as they are: a URL
# or credential in one is a secret written inline (a Slack webhook URL pasted as `channel`, a
# smtp://user:password@host smarthost). `_SECRET_OF` says where the channel type's secret belongs.
_PLAIN = ("channel", "to", "from", "smarthost", "username")
_SECRET_OF = {"slack": "webhook_url", "email": "password", "webhook": "url", "pagerduty": "routing_key",
              "alertmanager_slack": "api_url", "alertmanager_email": "password"}
# A webhook header whose name says it carries a credential takes its value from a file or variable only
_CREDENTIAL_HEADER = re.compile(r"auth|cookie|token|secret|passw|credential|api[-_]?key|session", re.IGNORECASE)
# The receiver sets these itself (webhook_receiver/channels/webhook_headers.py, which refuses them too)
_RESERVED_HEADERS = {"content-type", "content-length", "host", "transfer-encoding", "connection",
                     "x-dumont-signature", "x-dumont-timestamp"}
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_REFERENCE_HINT = {"_file": "give the path of a file that holds it",
                   "_env": "give the name of an environment variable that holds it"}


def looks_secret(value) -> bool:
    """Whether `value` looks like a URL or a credential: what the spec may only reference, never hold."""
    return isinstance(value, str) and ("://" in value or "hooks.slack.com" in value)


def check_reference(c, at: tuple) -> None:
    """The `*_file` or `*_env` field at `at` names where a secret is (an absolute path, a variable name)."""
    value = c.get(at)
    if value is None:
        return
    suffix = "_file" if at[-1].endswith("_file") else "_env"
    if looks_secret(value):
        c.fail(at, f"secret written inline ({_REFERENCE_HINT[suffix]})")
    elif suffix == "_env" and not _ENV_VAR.match(str(value)):
        c.fail(at, "must be an environment variable name")
    elif suffix == "_file" and not str(value).startswith("/"):
        c.fail(at, "must be an absolute file path")


def check_channels(c) -> None:
    """Each channel has its type's fields, and secrets only as `*_file` paths or `*_env` names."""
    for name, spec in c.get(("channels",), {}).items():
        at = ("channels", name)
        if c.broken(at):
            continue
        if "type" not in spec:
            c.fail(at, "missing required field 'type'")
        elif c.clean(at + ("type",)):
            _channel_fields(c, at, spec)
    deadman = c.get(("deadman",), {})
    if deadman:
        channel = c.get(("deadman", "channel"))
        _channel_refs(c, ("deadman", "channel"), [channel])
        if c.get(("channels", channel, "type")) not in (None, "heartbeat"):
            c.fail(("deadman", "channel"), "must be a heartbeat channel")
        _channel_refs(c, ("deadman", "notify"), c.get(("deadman", "notify"), []), indexed=True)
        c.duration(("deadman", "timeout"), deadman.get("timeout"))


def _channel_fields(c, at, spec) -> None:
    kind = spec["type"]
    for field in _REQUIRED[kind]:
        present = [k for k in (field, field + "_file", field + "_env") if k in spec]
        if not present:
            wanted = (f"'{field}_file'" if kind in DIRECT else f"'{field}_file' or '{field}_env'") \
                if field in _SECRETS else f"'{field}'"
            c.fail(at, f"missing required field {wanted}")
    # Others are unknown to every type (the shape check says so); api_url_env is named to say why it cannot be.
    known = set().union(*_FIELDS.values()) | {"api_url_env"}
    for key in sorted((set(spec) & known) - _FIELDS[kind]):
        if kind in DIRECT and key.endswith("_env"):
            reason = "Alertmanager reads secrets from files only"
        elif _SECRET_OF.get(kind) == key:  # api_url: a secret of alertmanager_slack, pagerduty's endpoint
            reason = f"secret written inline (use {INLINE_SECRETS[key]})"
        else:
            reason = f"not a field of a {kind} channel"
        c.fail(at + (key,), reason)
    for stem in _SECRETS:
        if stem + "_file" in spec and stem + "_env" in spec:
            c.fail(at + (stem + "_env",), f"give {stem}_file or {stem}_env, not both")
    for key in spec:
        if key.endswith(("_file", "_env")):
            check_reference(c, at + (key,))
        elif key in _PLAIN:
            _plain(c, at + (key,), spec["type"])
    if kind == "webhook" and isinstance(spec.get("headers"), dict) and not c.broken(at + ("headers",)):
        _headers(c, at + ("headers",), spec["headers"])
    if kind == "slack":
        check_slack(c, at, spec)
    if kind == "pagerduty" and "api_url" in spec and c.clean(at + ("api_url",)):
        _api_url(c, at + ("api_url",), spec["api_url"])
    if "timeout" in spec and kind in ("webhook", "pagerduty") and c.clean(at + ("timeout",)):
        if units.parse_duration(spec["timeout"]) == 0:  # the receiver would wait for nothing
            c.fail(at + ("timeout",), "must be longer than 0s")
        else:
            c.duration(at + ("timeout",), spec["timeout"])


def _headers(c, at: tuple, headers: dict) -> None:
    """A webhook's headers: a credential only by reference; a plain value holding no URL or credential."""
    for name, value in headers.items():
        if not c.clean(at + (name,)):
            continue
        if not _HEADER_NAME.match(str(name)):
            c.fail(at + (name,), "not a valid header name")
        elif str(name).lower() in _RESERVED_HEADERS:
            c.fail(at + (name,), "set by the channel itself")
        if isinstance(value, dict):
            given = [key for key in ("value_file", "value_env") if key in value]
            if len(given) != 1:
                c.fail(at + (name,), "give value_file or value_env, not both" if given else
                       "missing required field 'value_file' or 'value_env'")
            for key in given:
                check_reference(c, at + (name, key))
        elif _CREDENTIAL_HEADER.search(str(name)) or looks_secret(value):
            c.fail(at + (name,), "secret written inline (use {value_file: PATH} or {value_env: VAR})")


def _api_url(c, at: tuple, url: str) -> None:
    """PagerDuty's Events API base URL: public, so inline, but never with credentials in it."""
    parts = re.match(r"^(https?)://([^/?#]*)([^?#]*)$", url)
    if parts is None or not parts.group(2):
        c.fail(at, "must be an http(s) base URL such as https://events.pagerduty.com")
    elif "@" in parts.group(2):
        c.fail(at, "must not hold credentials (the routing key goes in routing_key_file or routing_key_env)")



def _plain(c, at: tuple, kind: str) -> None:
    """A field that is no secret must not hold one; a list (`to`) is checked item by item."""
    value = c.get(at)
    items = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
    where = INLINE_SECRETS[_SECRET_OF[kind]] if kind in _SECRET_OF else "a *_file or *_env field"
    for i, item in items:
        if looks_secret(item):
            c.fail(at if i is None else at + (i,), f"must not hold a URL or credential (a secret goes in {where})")


def _channel_refs(c, at, names, indexed=False) -> None:
    if c.broken(at):
        return
    for i, name in enumerate(names):
        if indexed and c.broken(at + (i,)):
            continue
        if name not in c.get(("channels",), {}):
            c.fail(at + (i,) if indexed else at, f"undefined channel {name!r}")


def _matchers(c, at, texts) -> tuple[str, ...]:
    out = []
    for i, text in enumerate(texts):
        if c.broken(at + (i,)):
            continue
        if promql.parse_matcher(str(text)) is None:
            c.fail(at + (i,), f"bad matcher {text!r} (write name=\"value\", name!=\"value\", name=~\"re\" or name!~\"re\")")
        else:
            out.append(promql.render_matcher(text))
    return tuple(out)


def routing_model(c, alerts: tuple[Alert, ...]) -> dict:
    """Routes and inhibitions, checked against the alerts they will see."""
    spec = c.get(("routing",), {})
    timing = {}
    for key in ("group_wait", "group_interval", "repeat_interval", "resolve_timeout"):
        c.duration(("routing", key), spec.get(key))
        timing[key] = spec.get(key)
    default = tuple(c.get(("routing", "default"), ()))
    _channel_refs(c, ("routing", "default"), default, indexed=True)
    routes, complete = _routes(c)
    if complete and c.clean(("routing", "default")):  # with a route left out, where alerts go is unknown
        _reach(c, routes, default, alerts)
    inhibitions = tuple(_inhibition(c, name, alerts) for name in c.get(("routing", "inhibit"), {})
                        if c.clean(("routing", "inhibit", name)))
    _deadman_timing(c, routes, spec)
    contract = _contract_routes(c)
    _contract_covers(c, contract, alerts)
    _direct_only(c, routes, default, alerts)
    limits = {key: spec[key] for key in ("max_alerts", "max_body_bytes") if key in spec}  # the schema checked them
    return dict(routing=timing | limits | {"group_by": list(c.get(("routing", "group_by"), []))},
                default_channels=default, routes=routes, inhibitions=inhibitions, contract_routes=contract)


def _routes(c) -> tuple[tuple[Route, ...], bool]:
    """The routes in order, and whether none had to be left out for a shape error."""
    routes, complete = [], True
    for name, route in c.get(("routing", "routes"), {}).items():
        at = ("routing", "routes", name)
        if not c.clean(at + ("matchers",), at + ("channels",)):
            complete = False
            continue
        _channel_refs(c, at + ("channels",), route["channels"], indexed=True)
        own = tuple((k, route[k]) for k in ("group_wait", "group_interval", "repeat_interval") if k in route)
        for key, value in own:
            c.duration(at + (key,), value)
        routes.append(Route(name, _matchers(c, at + ("matchers",), route["matchers"]), tuple(route["channels"]), own))
    return tuple(routes), complete and not c.broken(("routing", "routes"))


def _direct_only(c, routes, default, alerts) -> None:
    """Alertmanager's own integrations carry only the alerts about the alerting path (meta.yaml): were others
    routed there too, people would be told twice, once by the receiver and once around it."""
    kinds = {name: ch.get("type") for name, ch in c.get(("channels",), {}).items()
             if isinstance(ch, dict) and isinstance(ch.get("type"), str)}
    meta = set(c.get(("meta",), {}))

    def direct(name) -> bool:
        return isinstance(name, str) and kinds.get(name) in DIRECT
    for i, name in enumerate(default):
        if direct(name):
            c.fail(("routing", "default", i), f"{name} is Alertmanager's own integration: only a route for "
                                              "meta alerts may use it")
    for name in c.get(("deadman", "notify"), []) or []:
        if direct(name):
            c.fail(("deadman", "notify"), f"{name} is Alertmanager's own integration: the receiver cannot use it")
    for route in routes:
        around = [ch for ch in route.channels if direct(ch)]
        if not around:
            continue
        at = ("routing", "routes", route.name, "channels")
        if len(around) != len(route.channels):
            c.fail(at, "a route is either to Alertmanager's own integrations or to the receiver's channels")
        for alert in alerts:
            for severity in alert.severities:
                taken = next((r for r in routes if promql.selects(r.matchers, _static(alert, severity),
                                                                   set(alert.carries))), None)
                if taken is route and alert.name not in meta:
                    c.fail(at, f"alert {alert.name} would reach Alertmanager's own integrations: only meta "
                               "alerts may (route it to the receiver's channels)")


def _reach(c, routes, default, alerts) -> None:
    for alert in alerts:
        for severity in alert.severities:
            reached = next((r for r in routes if promql.selects(r.matchers, _static(alert, severity), set(alert.carries))),
                           None)
            channels = reached.channels if reached else default
            if not channels:
                where = ("routing", "routes", reached.name, "channels") if reached else ("routing", "default")
                c.fail(where, f"alert {alert.name} ({severity}) reaches no channel")


def _inhibition(c, name, alerts) -> Inhibition:
    at = ("routing", "inhibit", name)
    rule = c.get(at, {})
    source = _matchers(c, at + ("source",), rule["source"])
    target = _matchers(c, at + ("target",), rule["target"])
    for side, matchers in (("source", source), ("target", target)):
        chosen = [(a, s) for a in alerts for s in a.severities if promql.selects(matchers, _static(a, s), set(a.carries))]
        if not chosen and not c.errors:  # after other errors, alerts may be missing from the model
            c.fail(at + (side,), "matches no alert")
        for label in rule["equal"]:
            gaps = list(dict.fromkeys(a.name for a, s in chosen if label not in _static(a, s) and label not in a.carries))
            if gaps:
                c.fail(at + ("equal",), f"label {label} is not carried by {', '.join(gaps)} ({side} side)")
    return Inhibition(source, target, tuple(rule["equal"]))


def _contract_routes(c) -> tuple:
    """contract.routes as ((label, value) pairs, channels), each entry's channels checked."""
    out = []
    for i, entry in enumerate(c.get(("contract", "routes"), [])):
        at = ("contract", "routes", i)
        if c.clean(at):
            _channel_refs(c, at + ("channels",), entry["channels"], indexed=True)
            out.append((tuple(sorted(entry["labels"].items())), tuple(entry["channels"])))
    return tuple(out)


def _contract_covers(c, contract, alerts) -> None:
    """Every alert's channels are promised: `dumont-rules check` verifies the routing against that promise."""
    if not c.clean(("contract", "routes")):
        return
    for alert in alerts:
        for _, severity in contract_severities(alert):
            if severity and promised_channels(contract, alert, severity) is None:
                c.fail(("contract", "routes"), f"no entry gives the channels of {alert.name} "
                                               f"(labels alertname: {alert.name}, or severity: {severity})")


def contract_severities(alert: Alert) -> tuple[tuple[str, str], ...]:
    """(severity the rule sets, severity the contract promises) for each tier of `alert`."""
    if alert.tiers:
        return tuple((t.severity, t.expected_severity) for t in alert.tiers)
    return ((alert.severity, alert.expected_severity),)


def promised_channels(contract_routes, alert: Alert, severity: str) -> tuple[str, ...] | None:
    """The channels contract.routes promises `alert` at the contract's `severity`, or None when no entry covers it."""
    # An entry naming the alert wins; else the first entry whose labels the alert has (with the
    # contract's severity, not the rule's: what is promised must not come from what is rendered).
    labels = {"alertname": alert.name, **dict(alert.labels), "severity": severity}
    fitting = [(entry, channels) for entry, channels in contract_routes
               if all(labels.get(k) == v for k, v in entry)]
    named = [channels for entry, channels in fitting if "alertname" in dict(entry)]
    return (named or [channels for _, channels in fitting] or [None])[0]


def _static(alert: Alert, severity: str) -> dict[str, str]:
    """The labels an alert of one severity (tier) has whatever its series: its name, severity and fixed labels."""
    return {"alertname": alert.name, "severity": severity, **dict(alert.labels)}


def _deadman_timing(c, routes, spec) -> None:
    """The heartbeat must arrive well inside the dead man's timeout, or the switch fires on a healthy pipeline."""
    timeout = units.parse_duration(c.get(("deadman", "timeout")))
    for route in routes:
        if c.get(("deadman", "channel")) in route.channels and timeout:
            own = dict(route.timing)
            every = max(units.parse_duration(own.get(k, spec.get(k))) or 0 for k in ("group_interval", "repeat_interval"))
            if timeout <= 2 * every:
                c.fail(("deadman", "timeout"), f"must exceed twice the heartbeat interval of route {route.name} "
                                               f"({units.format_duration(every)})")


def channels_for(spec, alert: Alert, severity: str) -> tuple[str, tuple[str, ...]]:
    """The route an alert of one severity takes (as Alertmanager would pick it) and the channels it reaches."""
    for route in spec.routes:
        if promql.selects(route.matchers, _static(alert, severity), set(alert.carries)):
            return route.name, route.channels
    return "default", spec.default_channels
