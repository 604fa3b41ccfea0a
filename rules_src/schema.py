"""The shape of the spec (merged base files plus overlays), checked with JSON Schema.

Only shape lives here: which fields exist, their types and enums. What a value means (a duration,
a threshold in range, a metric the catalog defines) is checked in validate.py.
"""
from __future__ import annotations

import jsonschema

from .loader import Marks, SpecError, dotted

SEVERITIES = ("critical", "warning", "info")
OPS = (">", ">=", "<", "<=", "==")
# Secrets must be references; these keys would hold them inline.
INLINE_SECRETS = {"webhook_url": "webhook_url_file or webhook_url_env", "api_url": "api_url_file",
                  "password": "password_file or password_env", "url": "url_file or url_env",
                  "secret": "secret_file or secret_env", "routing_key": "routing_key_file or routing_key_env",
                  "credentials": "credentials_file", "token": "a *_file reference",
                  "bot_token": "bot_token_file or bot_token_env"}

_STR = {"type": "string"}
_STRS = {"type": "array", "items": _STR}
_SCALAR = {"type": ["string", "number"]}
_LABELS = {"type": "object", "additionalProperties": _STR}


def _obj(props: dict, required: tuple = ()) -> dict:
    return {"type": "object", "properties": props, "required": list(required), "additionalProperties": False}


_TEST = _obj({"gauge": _STR, "age": _STR, "ratio": {**_STRS, "minItems": 2, "maxItems": 2},
              "histogram": _STR, "increase": _STR, "rate": _STR, "quantile": {"type": "number"}, "window": _STR,
              "normal": _SCALAR, "vanishes": {"type": "boolean"}}, ("normal",))
_RUNBOOK = _obj({"meaning": _STR, "steps": _STRS}, ("meaning", "steps"))
# Severity -> threshold; an alert's tiers may also set their own `for`.
_TIER_THRESHOLDS = {"type": "object", "additionalProperties": _SCALAR, "minProperties": 1}
_TIERS = {"type": "object", "additionalProperties": _obj({"threshold": _SCALAR, "for": _STR}, ("threshold",)),
          "minProperties": 1}
_ALERT_PROPS = {
    "group": _STR, "severity": _STR, "expr": _STR, "value": _STR, "predict": _STR, "vanished": _STR,
    "op": {"enum": list(OPS)}, "unit": {"enum": ["ratio", "seconds", "usd_per_hour", "number"]},
    "threshold": _SCALAR, "tiers": _TIERS, "for": _STR, "keep_firing_for": _STR, "carries": _STRS,
    "window": _STR, "horizon": _STR, "guard": _SCALAR, "retired": _STR,
    "overrides": {"type": "object", "additionalProperties": _obj({"match": _LABELS, "threshold": _SCALAR,
                                                                  "tiers": _TIER_THRESHOLDS}, ("match",))},
    "test": _TEST, "labels": _LABELS, "annotations": {"type": "object", "additionalProperties": _STR},
    "summary": _STR, "description": _STR, "runbook": _RUNBOOK, "runbook_url": _STR,
}
_ALERT = _obj(_ALERT_PROPS)
ALERT_FIELDS = frozenset(_ALERT_PROPS)
# The rendered files need all of these; an overlay may change them but the merged spec must have them.
_ENDPOINTS = ("prometheus", "alertmanager", "exporter", "receiver")
_MANY = ("alertmanager", "receiver")
_TIMINGS = ("group_by", "group_wait", "group_interval", "repeat_interval", "resolve_timeout")
# A route without channels would render an Alertmanager receiver that tells nobody.
_ROUTE = _obj({"matchers": _STRS, "channels": {**_STRS, "minItems": 1}, "group_wait": _STR, "group_interval": _STR,
               "repeat_interval": _STR}, ("matchers", "channels"))
# A recording rule is its PromQL, or {expr, test} when it has a test; `interval` is the group's own and
# `tiles` says its rules record one amount per interval (record names always hold two colons, so none can be
# called `interval` or `tiles`).
_RECORD_TEST = _obj({"interval": _STR, "input": {"type": "object", "additionalProperties": _SCALAR, "minProperties": 1},
                     "at": _STR, "expect": {"type": "object", "additionalProperties": {"type": "number"},
                                            "minProperties": 1}}, ("interval", "input", "at", "expect"))
_RECORD = {"type": ["string", "object"], "properties": {"expr": _STR, "test": _RECORD_TEST}, "required": ["expr"],
           "additionalProperties": False}
_RECORDING_GROUP = {"type": "object", "properties": {"interval": _STR, "tiles": {"type": "boolean"}},
                    "additionalProperties": _RECORD}
# alertmanager_slack / alertmanager_email are Alertmanager's own integrations (routing around the receiver).
CHANNEL_TYPES = ("slack", "email", "heartbeat", "webhook", "pagerduty", "alertmanager_slack", "alertmanager_email")
# A webhook's extra header: its value, or where a secret value is kept
_HEADER = {"type": ["object", "string"], "properties": {"value_file": _STR, "value_env": _STR},
           "additionalProperties": False}
_CHANNEL = _obj({"type": {"enum": list(CHANNEL_TYPES)}, "webhook_url_file": _STR, "api_url_file": _STR,
                 "api_url_env": _STR,
                 "webhook_url_env": _STR, "channel": _STR, "to": _STRS, "from": _STR, "smarthost": _STR,
                 "require_tls": {"type": "boolean"}, "username": _STR, "password_file": _STR,
                 "password_env": _STR, "relay_reconciled": {"type": "boolean"},
                 "url_file": _STR, "url_env": _STR, "secret_file": _STR, "secret_env": _STR,
                 "headers": {"type": "object", "additionalProperties": _HEADER, "minProperties": 1},
                 "routing_key_file": _STR, "routing_key_env": _STR, "api_url": _STR, "timeout": _STR,
                 "bot_token_file": _STR, "bot_token_env": _STR, "update_parent": {"type": "boolean"}})

SCHEMA = _obj({
    "params": {"type": "object", "additionalProperties": _SCALAR},
    "prometheus": _obj({"scrape_interval": _STR, "evaluation_interval": _STR, "external_labels": _LABELS},
                       ("scrape_interval", "evaluation_interval")),
    # Several Alertmanagers (an HA pair) and receivers (active-active on PostgreSQL) may be listed.
    "endpoints": _obj({name: {"type": ["string", "array"], "items": _STR, "minItems": 1} if name in _MANY else _STR
                       for name in _ENDPOINTS}, _ENDPOINTS),
    "receiver_token_file": _STR,
    "receiver_external_url": _STR,
    "runbook_url": _STR,
    "dashboard_url": _STR,
    "contract": _obj({
        "alerts": {"type": "object", "additionalProperties": _obj(
            {"severity": _STR, "op": {"enum": list(OPS)}, "threshold": _SCALAR, "tiers": _TIER_THRESHOLDS,
             "horizon": _STR, "guard": _SCALAR, "window": _STR,
             "overrides": {"type": "object", "additionalProperties": {"type": ["string", "number", "object"],
                                                                      "additionalProperties": _SCALAR}}})},
        "routes": {"type": "array", "items": _obj({"labels": _LABELS, "channels": _STRS}, ("labels", "channels"))},
    }),
    "recording": {"type": "object", "additionalProperties": _RECORDING_GROUP},
    "alerts": {"type": "object", "additionalProperties": _ALERT},
    "meta": {"type": "object", "additionalProperties": _ALERT},
    "routing": _obj({"group_by": _STRS, "group_wait": _STR, "group_interval": _STR, "repeat_interval": _STR,
                     "resolve_timeout": _STR, "max_alerts": {"type": "integer", "minimum": 1},
                     "max_body_bytes": {"type": "integer", "minimum": 1}, "default": _STRS,
                     "routes": {"type": "object", "additionalProperties": _ROUTE},
                     "inhibit": {"type": "object", "additionalProperties": _obj(
                         {"source": _STRS, "target": _STRS, "equal": _STRS}, ("source", "target", "equal"))}},
                    _TIMINGS),
    "channels": {"type": "object", "additionalProperties": _CHANNEL},
    "deadman": _obj({"channel": _STR, "timeout": _STR, "notify": _STRS}, ("channel", "timeout", "notify")),
}, ("params", "prometheus", "endpoints", "receiver_token_file", "contract", "recording",
    "alerts", "meta", "routing", "channels", "deadman"))


# The base file that holds each top-level field (docs/rules.md): a missing one is reported there.
HOME = {"params": "config.yaml", "prometheus": "config.yaml", "endpoints": "config.yaml",
        "receiver_token_file": "config.yaml", "runbook_url": "config.yaml", "dashboard_url": "config.yaml", "contract": "contract.yaml",
        "receiver_external_url": "config.yaml",
        "recording": "recording.yaml", "alerts": "alerts.yaml", "meta": "meta.yaml", "routing": "routing.yaml",
        "channels": "channels.yaml", "deadman": "channels.yaml"}


def check_shape(data: dict, marks: Marks) -> tuple[list[SpecError], frozenset[tuple]]:
    """Every shape error of `data`, each at its own field, and the paths whose values have the wrong shape."""
    # validate.py skips its checks on those paths: a value of the wrong shape would only give
    # follow-up errors, or crash a check that relies on the shape.
    errors, broken = [], set()
    for err in jsonschema.Draft202012Validator(SCHEMA).iter_errors(data):
        path = tuple(err.absolute_path)
        if err.validator == "required":
            broken.update(path + (key,) for key in err.validator_value if key not in err.instance)
        elif err.validator != "additionalProperties":  # an unknown field is never read, so nothing is broken
            broken.add(path)
        if err.validator == "additionalProperties":
            allowed = err.schema.get("properties", {})
            for key in sorted(k for k in err.instance if k not in allowed):
                hint = INLINE_SECRETS.get(key)
                message = f"secret written inline (use {hint})" if hint else "unknown field"
                errors.append(marks.error(path + (key,), message))
        elif err.validator == "required":
            key = err.message.split()[0]
            file, line = marks.locate(path or (key.strip("'"),))  # a top-level field: where it belongs (HOME)
            errors.append(SpecError(file, line, dotted(path), f"missing required field {key}"))
        elif err.validator == "enum":
            errors.append(marks.error(path, "must be one of " + ", ".join(map(str, err.validator_value))))
        elif err.validator == "type":
            errors.append(marks.error(path, f"must be {_TYPES.get(str(err.validator_value), err.validator_value)}"))
        else:
            errors.append(marks.error(path, err.message))
    return errors, frozenset(broken)


_TYPES = {"string": "a string", "object": "a mapping", "array": "a list", "boolean": "true or false",
          "number": "a number", "['string', 'number']": "a string or a number",
          "['string', 'number', 'object']": "a threshold, or a mapping of severity to threshold",
          "['string', 'array']": "host:port, or a list of them",
          "['string', 'object']": "PromQL, or a mapping with expr and test",
          "['object', 'string']": "a string, or a mapping with value_file or value_env"}

