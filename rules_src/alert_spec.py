"""Checks of the alerts (`alerts:` and `meta:`) and the Alert models built from them.

An alert has one of four shapes, told by the field that holds its PromQL: `value` (a threshold alert),
`predict` (a prediction), `vanished` (a series that stopped being reported) or `expr` (a fixed alert).
Each shape has its own fields; a field of another shape is an error.
"""
from __future__ import annotations

import re

from exporter import catalog

from . import gotemplate, promql, tiers, units
from .driver_spec import driver, reachable
from .links import DEFAULT_RUNBOOK_URL, check_runbook_url
from .model import NAME, Alert
from .schema import ALERT_FIELDS, SEVERITIES

# Labels the generator sets on every rule itself; an alert's own `labels` must not replace them, or a
# `severity` there would silently take the alert off its route (and `override` mislabel its rules).
GENERATED_LABELS = {"alertname": "the alert's name", "severity": "the alert's `severity` field",
                    "override": "the name of the override a rule implements"}
# Annotations the generator writes itself from their own fields.
OWN_ANNOTATIONS = ("summary", "description", "runbook_url")
LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_REQUIRED = ("group", "summary", "description", "runbook")
_COMMON = {"group", "severity", "tiers", "for", "keep_firing_for", "labels", "annotations", "summary",
           "description", "runbook", "runbook_url"}
SHAPES = {  # the field that holds the PromQL -> the fields of that shape
    "value": {"value", "op", "unit", "threshold", "carries", "test", "overrides", "retired"},
    "predict": {"predict", "window", "horizon", "guard", "op", "unit", "threshold", "carries", "test", "retired"},
    "vanished": {"vanished", "window", "carries", "retired"},
    "expr": {"expr"},
}
_SHAPE_NAME = {"value": "threshold", "predict": "prediction", "vanished": "vanished", "expr": "fixed"}
_REQUIRED_OF = {"value": ("op", "unit", "carries", "test"), "predict": ("window", "horizon", "op", "unit",
                                                                      "threshold", "carries", "test"),
                "vanished": ("window", "carries"), "expr": ()}


def alerts(c, env: str, params: dict, records: set[str], receiver_url: str) -> tuple[Alert, ...]:
    """Every alert of `alerts:` and `meta:` (`receiver_url` fills `${receiver_external_url}`); each problem is
    reported where it was written."""
    out, defined = [], set()
    for section in ("alerts", "meta"):
        for name in c.get((section,), {}):
            if section == "meta" and name in c.get(("alerts",), {}):
                c.fail(("meta", name), "duplicate alert (also defined under alerts)")
                continue
            defined.add(name)
            if not NAME.match(name):
                c.fail((section, name), f"alert name must match {NAME.pattern} (it names the alert's files)")
            elif name == "index":
                c.fail((section, name), "reserved name: runbooks/index.md and index.html list the runbooks")
            if not c.broken((section, name)):
                alert = _alert(c, env, section, name, {**params, "receiver_external_url": receiver_url}, records)
                out.append(alert) if alert else None
    for name in sorted(set(c.get(("contract", "alerts"), {})) - defined):
        c.fail(("contract", "alerts", name), "the contract names an alert the spec does not define")
    return tuple(out)


def _contract(c, at: tuple) -> dict:
    """The contract's entry for the alert at `at`; empty when it has none (reported) or a broken one."""
    where = ("contract", "alerts", at[1])
    if not c.broken(("contract", "alerts")) and at[1] not in c.get(("contract", "alerts"), {}):
        c.fail(at, "not in the contract (rules_src/contract.yaml contract.alerts)")
    return c.get(where, {}) if c.clean(where) else {}


def _shape(c, at: tuple, spec: dict) -> str | None:
    """Which shape the alert has; its fields are checked against that shape's."""
    given = [key for key in SHAPES if key in spec]
    if len(given) != 1:
        c.fail(at, "give exactly one of value (a threshold), predict (a prediction), vanished (a series that "
                   "stops being reported) or expr (a fixed alert)")
        return None
    shape = given[0]
    for key in sorted((set(spec) & ALERT_FIELDS) - _COMMON - SHAPES[shape]):  # unknown ones: the shape check
        c.fail(at + (key,), f"a {_SHAPE_NAME[shape]} alert has no `{key}`")
    for key in _REQUIRED_OF[shape]:
        if key not in spec:
            c.fail(at, f"missing required field '{key}' (a {_SHAPE_NAME[shape]} alert)")
            return None
    return shape


def _alert(c, env, section, name, params, records) -> Alert | None:
    at = (section, name)
    spec = c.get(at, {})
    for key in _REQUIRED + (() if "tiers" in spec else ("severity",)):
        if key not in spec:
            c.fail(at, f"missing required field '{key}'")
    contract = _contract(c, at)
    shape = _shape(c, at, spec)
    for_ = c.duration(at + ("for",), spec.get("for"), 0.0)
    keep = c.duration(at + ("keep_firing_for",), spec.get("keep_firing_for"), 0.0)
    local = {**params, "alert": name, "env": env, "for": units.format_duration(for_),
             "keep_firing_for": units.format_duration(keep)}
    common = dict(name=name, group=_group(c, at), severity=_severity(c, at), for_=for_, keep_firing_for=keep,
                  labels=_labels(c, at), expected_severity=str(contract.get("severity", "")),
                  meaning=_param_text(c, at + ("runbook", "meaning"), local),
                  steps=tuple(_param_text(c, at + ("runbook", "steps", i), local)
                              for i in range(len(c.get(at + ("runbook", "steps"), ())))))
    # `${threshold}` stays in the texts, filled per rule (an override and a tier have their own); only in texts.
    texts = _texts(c, at, spec, local if shape == "expr" else {**local, "threshold": "${threshold}"})
    if shape is None:
        return None
    if shape == "expr":
        expr = c.promql(at + ("expr",), spec["expr"], local, records) if c.clean(at + ("expr",)) else ""
        return Alert(shape="fixed", expr=expr, **common, **texts)
    carries = _carries(c, at)
    if carries is None:  # routing checks read an alert's carries: without them the alert is left out
        return None
    retired = _retired(c, at, carries)
    if shape == "vanished":
        return Alert(shape="vanished", **_vanished(c, at, contract, local, records, carries), carries=carries,
                     **retired, **common, **texts)
    unit = spec["unit"] if c.clean(at + ("unit",)) else None  # an unknown unit: no threshold can be read
    tier_list = tiers.tiers(c, at, spec, contract, unit, for_)
    if tier_list:
        common.update(severity=tier_list[0].severity, expected_severity=tier_list[0].expected_severity)
    if len(tier_list) > 1 and keep:
        c.fail(at + ("keep_firing_for",), "a tiered alert cannot keep firing: its milder tier would fire "
                                          "beside the severe one after that takes over")
    if len(tier_list) > 1 and not carries:
        c.fail(at + ("carries",), "a tiered alert needs labels that tell its series apart (each series fires one tier)")
    drv = driver(c, at, unit, carries, local) if unit and c.clean(at + ("test",)) else None
    for tier in tier_list:
        where = ("contract", "alerts", at[1]) + (("tiers", tier.severity) if "tiers" in spec else ("threshold",))
        reachable(c, where, drv, unit, tier.expected)
    op = _op(c, at, contract)
    if shape == "predict":
        return Alert(shape="prediction", **_prediction(c, at, spec, contract, unit, local, records), op=op,
                     unit=unit or "number", tiers=tier_list, carries=carries, driver=drv, **retired, **common, **texts)
    overrides = tiers.overrides(c, at, unit, carries, contract, tier_list, spec.get("op")) if tier_list else ()
    for override in overrides:
        for expected in override.expected:
            reachable(c, ("contract", "alerts", at[1], "overrides", override.name), drv, unit, expected)
    value = c.promql(at + ("value",), spec["value"], {**local, "selector": "${selector}"}, records) \
        if c.clean(at + ("value",)) else "${selector}"
    if overrides and "${selector}" not in value:
        c.fail(at + ("value",), "must contain ${selector} where the overrides' matchers go")
    return Alert(value=value, op=op, unit=unit or "number", tiers=tier_list, carries=carries, overrides=overrides,
                 driver=drv, **retired, **common, **texts)


def _selector_value(c, at: tuple, key: str, local: dict, records: set[str]) -> str:
    """The series (PromQL selector, `${selector}` kept) at `key`: predictions and vanished alerts read it over a range."""
    if not c.clean(at + (key,)):
        return "${selector}"
    value = c.promql(at + (key,), c.get(at + (key,)), {**local, "selector": "${selector}"}, records)
    if promql.operand(value.replace("${selector}", "")) != value.replace("${selector}", ""):
        c.fail(at + (key,), "must be a series selector (a metric or recording rule name, optionally with "
                            "${selector}): it is read over a range")
    return value


def _window(c, at: tuple, key: str, local: dict) -> float:
    text, missing = promql.substitute(str(c.get(at + (key,), "")), local)
    for name in missing:
        c.fail(at + (key,), f"unknown parameter ${{{name}}}")
    seconds = c.duration(at + (key,), text) if not missing else 0.0
    if not missing and units.parse_duration(text) is not None and seconds <= 0:
        c.fail(at + (key,), "must be longer than 0s")
    return seconds


def _vanished(c, at, contract, local, records, carries) -> dict:
    value = _selector_value(c, at, "vanished", local, records)
    name = value.split("$", 1)[0].split("{", 1)[0]
    family = catalog.BY_NAME.get(name)
    if family is None and c.clean(at + ("vanished",)):
        c.fail(at + ("vanished",), f"{name} is not a gauge of exporter.catalog (the generated tests drive it)")
    elif family is not None:
        for i, label in enumerate(carries):
            if label not in family.labels:
                c.fail(at + ("carries", i), f"label {label} is not a label of {name} (exporter.catalog)")
    where = ("contract", "alerts", at[1])
    expected = 0.0
    if contract and "window" not in contract:
        c.fail(where, "missing required field 'window' (how long a stopped series is looked for, as promised)")
    elif contract:
        expected = c.duration(where + ("window",), contract["window"])
    return dict(value=value, window=_window(c, at, "window", local), expected_window=expected)


def _prediction(c, at, spec, contract, unit, local, records) -> dict:
    value = _selector_value(c, at, "predict", local, records)
    window = _window(c, at, "window", local)
    horizon = _window(c, at, "horizon", local)
    where = ("contract", "alerts", at[1])
    expected_horizon = guard = expected_guard = None
    if contract:
        if "horizon" not in contract:
            c.fail(where, "missing required field 'horizon' (how far ahead the prediction looks, as promised)")
        else:
            expected_horizon = c.duration(where + ("horizon",), contract["horizon"])
    if "guard" in spec:
        guard = units.threshold_value(unit, spec["guard"]) if unit else None
        if unit and guard is None:
            c.fail(at + ("guard",), units.UNIT_RULE[unit])
        if contract and "guard" not in contract:
            c.fail(where, "missing required field 'guard' (the alert has one)")
        elif contract and unit:
            expected_guard = units.threshold_value(unit, contract["guard"])
            if expected_guard is None:
                c.fail(where + ("guard",), units.UNIT_RULE[unit])
    elif contract.get("guard") is not None:
        c.fail(where + ("guard",), "the alert has no guard")
    if spec.get("op") == "==":
        c.fail(at + ("op",), "a prediction crosses its threshold: use >, >=, < or <=")
    return dict(value=value, window=window, horizon=horizon, expected_horizon=expected_horizon or 0.0,
                guard=guard, expected_guard=expected_guard)


def _retired(c, at: tuple, carries: tuple[str, ...]) -> dict:
    """`retired`: a catalog metric whose series mark a deliberate stop, matched on the labels it shares with carries."""
    name = c.get(at + ("retired",))
    if name is None:
        return {}
    family = catalog.BY_NAME.get(name)
    if family is None or family.type != catalog.GAUGE:
        c.fail(at + ("retired",), f"{name} is not a gauge of exporter.catalog")
        return {}
    shared = tuple(label for label in carries if label in family.labels)
    if not shared:
        c.fail(at + ("retired",), f"{name} shares no label with the alert's carries: it could not tell which series retired")
    return dict(retired=name, retired_on=shared)


def _group(c, at: tuple) -> str:
    group = c.get(at + ("group",), "")
    if group and not NAME.match(group):
        c.fail(at + ("group",), f"must match {NAME.pattern} (the group names its rule file)")
    return str(group)


def _severity(c, at: tuple) -> str:
    allowed = SEVERITIES + (("none",) if at[0] == "meta" else ())
    severity = c.get(at + ("severity",))
    if severity is not None and severity not in allowed:
        c.fail(at + ("severity",), "must be one of " + ", ".join(allowed))
    return str(severity)


def _labels(c, at: tuple) -> tuple[tuple[str, str], ...]:
    """The alert's fixed labels: any but those the generator sets itself, and never templated."""
    labels = c.get(at + ("labels",), {})
    external = c.get(("prometheus", "external_labels"), {})  # Prometheus adds them, except where an alert has its own
    for name, value in labels.items():
        if name in GENERATED_LABELS:
            c.fail(at + ("labels", name), f"reserved label: the generator sets it from {GENERATED_LABELS[name]}")
        elif name in external:
            c.fail(at + ("labels", name), "reserved label: prometheus.external_labels sets it for the environment")
        elif not LABEL.match(name) or name.startswith("__"):
            c.fail(at + ("labels", name), "not a label name")
        elif gotemplate.ACTION.search(str(value)):
            # Routes, inhibitions and the amtool checks read label values as written: a per-series
            # value would route differently from what they checked.
            c.fail(at + ("labels", name), "a label value cannot be templated (routing and inhibitions are "
                                          "checked with the value as written); put per-series text in an annotation")
    return tuple(sorted(labels.items()))


def _carries(c, at: tuple) -> tuple[str, ...] | None:
    if not c.clean(at + ("carries",)):
        return None
    carries = tuple(c.get(at + ("carries",), ()))
    for i, label in enumerate(carries):
        if not LABEL.match(label):
            c.fail(at + ("carries", i), "not a label name")
    return carries


def _op(c, at: tuple, contract: dict) -> str:
    """The alert's comparison, which must be the one the contract promises."""
    op = c.get(at + ("op",), "")
    if not contract or not op:
        return op
    if "op" not in contract:
        c.fail(("contract", "alerts", at[1]), "missing required field 'op' (the comparison the alert promises)")
    elif contract["op"] != op:
        c.fail(at + ("op",), f"{op} is not the comparison the contract promises "
                             f"(contract.alerts.{at[1]}.op: {contract['op']}): change both or neither")
    return op


def _param_text(c, where: tuple, local: dict) -> str:
    """Runbook text with its `${params}` filled in (the page shows this environment's values)."""
    out, missing = promql.substitute(str(c.get(where, "")), local)
    for name in missing:
        c.fail(where, f"unknown parameter ${{{name}}}")
    return out


def _template(c, where: tuple, text: str, local: dict) -> str:
    """`text` with parameters filled in, its template actions checked (the generated tests predict them)."""
    for action in gotemplate.unsupported(text):
        c.fail(where, f"unsupported template action {action} (the generated tests could not predict it)")
    out, missing = promql.substitute(text, local)
    for name in missing:
        c.fail(where, f"unknown parameter ${{{name}}}")
    return out


def _texts(c, at: tuple, spec: dict, local: dict) -> dict:
    out = {key: _template(c, at + (key,), str(c.get(at + (key,), "")), local) for key in ("summary", "description")}
    own = "runbook_url" in spec
    where = at + ("runbook_url",) if own else ("runbook_url",)
    text = str(c.get(where, "") if own else c.get(where, DEFAULT_RUNBOOK_URL))
    url, missing = promql.substitute(text, local)
    for name in missing:
        c.fail(where, f"unknown parameter ${{{name}}}")
    if not missing and not c.broken(where):
        check_runbook_url(c, where, text, url)
    out["runbook_url"] = url
    extra = {}
    for key, text in c.get(at + ("annotations",), {}).items():
        if key in OWN_ANNOTATIONS:
            c.fail(at + ("annotations", key), f"{key} has a field of its own (`{key}:` beside `annotations`)")
        elif not LABEL.match(key):
            c.fail(at + ("annotations", key), "not an annotation name ([a-zA-Z_][a-zA-Z0-9_]*)")
        else:
            extra[key] = _template(c, at + ("annotations", key), str(text), local)
    dashboard = c.get(("dashboard_url",))
    if dashboard and "dashboard_url" not in extra and _reads_only(dashboard, c.get(at + ("carries",), ())):
        extra["dashboard_url"] = _template(c, ("dashboard_url",), str(dashboard), local)
    out["annotations"] = tuple(sorted(extra.items()))
    return out


def _reads_only(text: str, carries) -> bool:
    """Whether every `$labels.X` the template reads is a label the alert carries (so the link is never broken)."""
    read = re.findall(r"\$labels\.([A-Za-z_][A-Za-z0-9_]*)", text)
    return all(label in carries for label in read)
