"""Semantic checks of a merged spec and the Spec model built from it; every problem is collected."""
from __future__ import annotations

import re

from exporter import catalog

from . import gotemplate, promql, units
from .loader import Marks, SpecError
from .model import Alert, Driver, Override, Spec
from .routing import check_channels, routing_model
from .schema import SEVERITIES

RESERVED = {"threshold", "for", "keep_firing_for", "selector", "alert", "env"}
_RECORD_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*:[a-zA-Z0-9_]+:[a-zA-Z0-9_]+$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class Checker:
    """Collects errors while it reads one merged spec."""

    def __init__(self, data: dict, marks: Marks):
        self.data, self.marks, self.errors = data, marks, []

    def fail(self, path: tuple, message: str) -> None:
        """Record one error at `path`."""
        self.errors.append(self.marks.error(path, message))

    def duration(self, path: tuple, text, default: float | None = None) -> float:
        """Seconds of the duration at `path`; `default` when absent."""
        if text is None and default is not None:
            return default
        seconds = units.parse_duration(text)
        if seconds is None:
            self.fail(path, f"bad duration {text!r} (use Prometheus notation such as 30s, 5m, 1h)")
            return 0.0
        return seconds

    def promql(self, path: tuple, text: str, values: dict[str, str], records: set[str]) -> str:
        """`text` with its parameters filled in, after checking every name it reads exists."""
        out, missing = promql.substitute(text, values)
        for name in missing:
            self.fail(path, f"unknown parameter ${{{name}}}")
        dumont, recorded = promql.names_read(out)
        for name in sorted(dumont - catalog.exposed_names()):
            self.fail(path, f"unknown metric {name} (not in exporter.catalog)")
        for name in sorted(recorded - records):
            self.fail(path, f"reads {name}, which no recording rule defines")
        return out


def build(env: str, data: dict, marks: Marks, sources: tuple[str, ...], digest: str) -> tuple[Spec | None, list[SpecError]]:
    """The Spec of environment `env` from its merged data, or None and every error found."""
    c = Checker(data, marks)
    params = {str(k): units.number(v) if isinstance(v, (int, float)) else str(v)
              for k, v in (data.get("params") or {}).items()}
    for name in sorted(RESERVED & set(params)):
        c.fail(("params", name), "reserved name: alerts define it themselves")
    prom = data.get("prometheus") or {}
    scrape = c.duration(("prometheus", "scrape_interval"), prom.get("scrape_interval"))
    evaluation = c.duration(("prometheus", "evaluation_interval"), prom.get("evaluation_interval"))
    for name, endpoint in (data.get("endpoints") or {}).items():
        if not re.fullmatch(r"[^\s:/]+:\d+", str(endpoint)):
            c.fail(("endpoints", name), "must be host:port")
    recording, records = _recording(c, params)
    alerts = _alerts(c, env, params, records)
    check_channels(c)
    routing = routing_model(c, alerts)
    if c.errors:
        return None, sorted(set(c.errors))
    spec = Spec(env=env, sources=sources, source_hash=digest, scrape_interval=scrape, evaluation_interval=evaluation,
                external_labels=tuple(sorted((prom.get("external_labels") or {}).items())),
                endpoints=dict(data["endpoints"]), receiver_token_file=data["receiver_token_file"],
                recording=recording, alerts=alerts, channels=data["channels"], deadman=data["deadman"], **routing)
    return spec, []


def _recording(c: Checker, params: dict) -> tuple[tuple, set[str]]:
    groups = c.data.get("recording") or {}
    records = {name for rules in groups.values() if isinstance(rules, dict) for name in rules}
    out = []
    for group, rules in groups.items():
        rendered = []
        for name, expr in (rules or {}).items():
            if not _RECORD_NAME.match(name):
                c.fail(("recording", group, name), "recording rule names are level:metric:operations")
            rendered.append((name, c.promql(("recording", group, name), str(expr), params, records)))
        out.append((group, tuple(rendered)))
    return tuple(out), records


def _alerts(c: Checker, env: str, params: dict, records: set[str]) -> tuple[Alert, ...]:
    contract = (c.data.get("contract") or {}).get("alerts") or {}
    alerts = []
    for section in ("alerts", "meta"):
        for name, spec in (c.data.get(section) or {}).items():
            if section == "meta" and name in (c.data.get("alerts") or {}):
                c.fail(("meta", name), "duplicate alert (also defined under alerts)")
            elif isinstance(spec, dict):
                alert = _alert(c, env, section, name, spec, contract.get(name) or {}, params, records)
                alerts.append(alert) if alert else None
    defined = {name for section in ("alerts", "meta") for name in (c.data.get(section) or {})}
    for name in sorted(set(contract) - defined):
        c.fail(("contract", "alerts", name), "the contract names an alert the spec does not define")
    return tuple(alerts)


def _alert(c, env, section, name, spec, contract, params, records) -> Alert | None:
    at = (section, name)
    for key in ("group", "severity", "summary", "description", "runbook"):
        if key not in spec:
            c.fail(at, f"missing required field '{key}'")
    allowed = SEVERITIES + (("none",) if section == "meta" else ())
    severity = spec.get("severity")
    if severity is not None and severity not in allowed:
        c.fail(at + ("severity",), "must be one of " + ", ".join(allowed))
    if not contract:
        c.fail(at, "not in the contract (rules_src/contract.yaml contract.alerts)")
    for_ = c.duration(at + ("for",), spec.get("for"), 0.0)
    keep = c.duration(at + ("keep_firing_for",), spec.get("keep_firing_for"), 0.0)
    local = {**params, "alert": name, "env": env, "for": units.format_duration(for_),
             "keep_firing_for": units.format_duration(keep)}
    common = dict(name=name, group=str(spec.get("group", "")), severity=str(severity), for_=for_, keep_firing_for=keep,
                  labels=tuple(sorted((spec.get("labels") or {}).items())),
                  expected_severity=str(contract.get("severity", "")),
                  meaning=(spec.get("runbook") or {}).get("meaning", ""),
                  steps=tuple((spec.get("runbook") or {}).get("steps", ())))
    if "expr" in spec:
        for key in ("value", "op", "threshold", "unit", "test", "carries", "overrides"):
            if key in spec:
                c.fail(at + (key,), "an alert with a fixed `expr` has no threshold fields")
        expr = c.promql(at + ("expr",), spec["expr"], local, records)
        return Alert(expr=expr, **common, **_texts(c, at, spec, local, c.data.get("runbook_url", "")))
    threshold_alert = _threshold(c, at, spec, contract, local, records)
    if threshold_alert is None:
        return None
    local["threshold"] = "${threshold}"  # filled per rule: an override has its own
    return Alert(**common, **threshold_alert, **_texts(c, at, spec, local, c.data.get("runbook_url", "")))


def _threshold(c, at, spec, contract, local, records) -> dict | None:
    for key in ("value", "op", "unit", "threshold", "carries", "test"):
        if key not in spec:
            c.fail(at, f"missing required field '{key}' (or a fixed `expr`)")
            return None
    unit = spec["unit"]
    threshold = units.threshold_value(unit, spec["threshold"])
    if threshold is None:
        c.fail(at + ("threshold",), units.UNIT_RULE[unit])
    expected = units.threshold_value(unit, contract.get("threshold"))
    if contract and expected is None:
        c.fail(("contract", "alerts", at[1], "threshold"), units.UNIT_RULE[unit])
    value = c.promql(at + ("value",), spec["value"], {**local, "selector": "${selector}"}, records)
    overrides = []
    for oname, ospec in (spec.get("overrides") or {}).items():
        where = at + ("overrides", oname)
        othreshold = units.threshold_value(unit, ospec.get("threshold"))
        oexpected = units.threshold_value(unit, (contract.get("overrides") or {}).get(oname))
        if othreshold is None:
            c.fail(where + ("threshold",), units.UNIT_RULE[unit])
        if oexpected is None:
            c.fail(where, "the contract gives this override no valid threshold (contract.alerts.<alert>.overrides)")
        for label in ospec.get("match", {}):
            if label not in spec["carries"]:
                c.fail(where + ("match", label), f"label {label} is not among the alert's carries")
        overrides.append(Override(oname, tuple(sorted(ospec.get("match", {}).items())), othreshold or 0.0, oexpected or 0.0))
    for oname in sorted(set(contract.get("overrides") or {}) - set(spec.get("overrides") or {})):
        c.fail(at + ("overrides",), f"the contract has an override {oname} the alert does not define")
    if overrides and "${selector}" not in value:
        c.fail(at + ("value",), "must contain ${selector} where the overrides' matchers go")
    for i, label in enumerate(spec["carries"]):
        if not _LABEL.match(label):
            c.fail(at + ("carries", i), "not a label name")
    driver = _driver(c, at + ("test",), spec["test"], unit, spec["carries"], local)
    if driver is None:
        return None
    return dict(value=value, op=spec["op"], unit=unit, threshold=threshold or 0.0, expected=expected or 0.0,
                carries=tuple(spec["carries"]), overrides=tuple(overrides), driver=driver)


def _driver(c, at, spec, unit, carries, local) -> Driver | None:
    kinds = [k for k in ("gauge", "ratio", "age", "histogram") if k in spec]
    if len(kinds) != 1:
        c.fail(at, "give exactly one of gauge, ratio, age, histogram")
        return None
    kind = kinds[0]
    metrics = tuple(spec[kind]) if kind == "ratio" else (spec[kind],)
    normal = units.threshold_value("number" if unit == "ratio" else unit, spec["normal"])
    if normal is None:
        c.fail(at + ("normal",), units.UNIT_RULE[unit])
    families = []
    for metric in metrics:
        family = catalog.BY_NAME.get(metric)
        if metric.startswith("dumont_") and family is None:
            c.fail(at + (kind,), f"unknown metric {metric} (not in exporter.catalog)")
        families.append(family)
    if kind == "histogram" and families[0] is not None and families[0].type != catalog.HISTOGRAM:
        c.fail(at + (kind,), f"{metrics[0]} is not a histogram")
    window = 0.0
    if kind == "histogram":
        if not 0 < spec.get("quantile", 0) < 1:
            c.fail(at + ("quantile",), "must be a number between 0 and 1, exclusive")
        text, missing = promql.substitute(str(spec.get("window", "")), local)
        window = c.duration(at + ("window",), text) if not missing else 0.0
        for name in missing:
            c.fail(at + ("window",), f"unknown parameter ${{{name}}}")
    if normal is None or any(f is None and m.startswith("dumont_") for f, m in zip(families, metrics)):
        return None
    labels = families[0].labels if families[0] is not None else tuple(carries)
    return Driver(kind, metrics, labels, normal, float(spec.get("quantile", 0.0)),
                  families[0].buckets if families[0] is not None else (), window)


def _texts(c, at, spec, local, pattern) -> dict:
    out = {}
    for key in ("summary", "description"):
        text = str(spec.get(key, ""))
        for action in gotemplate.unsupported(text):
            c.fail(at + (key,), f"unsupported template action {action} (the generated tests could not predict it)")
        out[key], missing = promql.substitute(text, local)
        for name in missing:
            c.fail(at + (key,), f"unknown parameter ${{{name}}}")
    url, missing = promql.substitute(spec.get("runbook_url", pattern), local)
    for name in missing:
        c.fail(at + ("runbook_url",) if "runbook_url" in spec else ("runbook_url",), f"unknown parameter ${{{name}}}")
    out["runbook_url"] = url
    return out
