"""Semantic checks of a merged spec and the Spec model built from it; every problem is collected."""
from __future__ import annotations

import re

from exporter import catalog

from . import drivers, gotemplate, promql, units
from .loader import Marks, SpecError
from .model import NAME, Alert, Driver, Override, Spec
from .recording import check_recording, recording_model
from .routing import check_channels, check_reference, routing_model
from .schema import SEVERITIES

RESERVED = {"threshold", "for", "keep_firing_for", "selector", "alert", "env"}
# Labels the generator sets on every rule itself; an alert's own `labels` must not replace them, or a
# `severity` there would silently take the alert off its route (and `override` mislabel its rules).
GENERATED_LABELS = {"alertname": "the alert's name", "severity": "the alert's `severity` field",
                    "override": "the name of the override a rule implements"}
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_REQUIRED = ("group", "severity", "summary", "description", "runbook")
_THRESHOLD_FIELDS = ("value", "op", "unit", "threshold", "carries", "test")


class Checker:
    """Collects errors while it reads one merged spec, skipping values the shape check found broken."""

    def __init__(self, data: dict, marks: Marks, errors=(), broken: frozenset = frozenset()):
        self.data, self.marks, self.errors, self.broken_paths = data, marks, list(errors), broken

    def fail(self, path: tuple, message: str) -> None:
        """Record one error at `path`."""
        self.errors.append(self.marks.error(path, message))

    def broken(self, path: tuple) -> bool:
        """Whether the value at `path`, or a value holding it, does not have the shape the schema wants."""
        return any(path[:len(b)] == b for b in self.broken_paths)

    def clean(self, *paths: tuple) -> bool:
        """Whether no shape error lies at, above or under any of `paths`: a check may read them whole."""
        return not any(p[:len(b)] == b or b[:len(p)] == p for p in paths for b in self.broken_paths)

    def get(self, path: tuple, default=None):
        """The value at `path`; `default` when it is absent, null, or broken (its shape error is reported)."""
        if self.broken(path):
            return default
        node = self.data
        for part in path:
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                return default
        return default if node is None else node

    def duration(self, path: tuple, text, default: float | None = None) -> float:
        """Seconds of the duration at `path`; `default` when absent."""
        if self.broken(path):
            return default or 0.0
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


def build(env: str, data: dict, marks: Marks, sources: tuple[str, ...], digest: str,
          errors=(), broken: frozenset = frozenset()) -> tuple[Spec | None, list[SpecError]]:
    """The Spec of environment `env` from its merged data, or None and every error found."""
    # `errors`: what loading and the shape check found already; `broken`: the paths of wrong shape,
    # which no check here reads.
    c = Checker(data, marks, errors, broken)
    params = _params(c)
    scrape = _interval(c, "scrape_interval")
    evaluation = _interval(c, "evaluation_interval")
    for name, endpoint in c.get(("endpoints",), {}).items():
        if not c.broken(("endpoints", name)) and not re.fullmatch(r"[^\s:/]+:\d+", str(endpoint)):
            c.fail(("endpoints", name), "must be host:port")
    recording, records = recording_model(c, params, evaluation)
    alerts = _alerts(c, env, params, records)
    check_recording(c, recording)
    check_channels(c)
    check_reference(c, ("receiver_token_file",))
    routing = routing_model(c, alerts)
    if c.errors:
        return None, sorted(set(c.errors))
    spec = Spec(env=env, sources=sources, source_hash=digest, scrape_interval=scrape, evaluation_interval=evaluation,
                external_labels=tuple(sorted(c.get(("prometheus", "external_labels"), {}).items())),
                endpoints=dict(data["endpoints"]), receiver_token_file=data["receiver_token_file"],
                recording=recording, alerts=alerts, channels=data["channels"], deadman=data["deadman"], **routing)
    return spec, []


def _params(c: Checker) -> dict[str, str]:
    params = {str(k): units.number(v) if isinstance(v, (int, float)) else str(v)
              for k, v in c.get(("params",), {}).items()}
    for name in sorted(RESERVED & set(params)):
        c.fail(("params", name), "reserved name: alerts define it themselves")
    return params


def _interval(c: Checker, key: str) -> float:
    """A scrape or evaluation interval; the generated tests step by it, so it must not be 0."""
    at = ("prometheus", key)
    if units.parse_duration(c.get(at)) == 0:
        c.fail(at, "must be longer than 0s")
    return c.duration(at, c.get(at))


def _alerts(c: Checker, env: str, params: dict, records: set[str]) -> tuple[Alert, ...]:
    alerts, defined = [], set()
    for section in ("alerts", "meta"):
        for name in c.get((section,), {}):
            if section == "meta" and name in c.get(("alerts",), {}):
                c.fail(("meta", name), "duplicate alert (also defined under alerts)")
                continue
            defined.add(name)
            if not NAME.match(name):
                c.fail((section, name), f"alert name must match {NAME.pattern} (it names the alert's files)")
            if not c.broken((section, name)):
                alert = _alert(c, env, section, name, params, records)
                alerts.append(alert) if alert else None
    for name in sorted(set(c.get(("contract", "alerts"), {})) - defined):
        c.fail(("contract", "alerts", name), "the contract names an alert the spec does not define")
    return tuple(alerts)


def _contract(c: Checker, at: tuple) -> dict:
    """The contract's entry for the alert at `at`; empty when it has none (reported) or a broken one."""
    where = ("contract", "alerts", at[1])
    if not c.broken(("contract", "alerts")) and at[1] not in c.get(("contract", "alerts"), {}):
        c.fail(at, "not in the contract (rules_src/contract.yaml contract.alerts)")
    return c.get(where, {}) if c.clean(where) else {}


def _alert(c, env, section, name, params, records) -> Alert | None:
    at = (section, name)
    spec = c.get(at, {})
    for key in _REQUIRED:
        if key not in spec:
            c.fail(at, f"missing required field '{key}'")
    contract = _contract(c, at)
    for_ = c.duration(at + ("for",), spec.get("for"), 0.0)
    keep = c.duration(at + ("keep_firing_for",), spec.get("keep_firing_for"), 0.0)
    local = {**params, "alert": name, "env": env, "for": units.format_duration(for_),
             "keep_firing_for": units.format_duration(keep)}
    common = dict(name=name, group=_group(c, at), severity=_severity(c, at), for_=for_, keep_firing_for=keep,
                  labels=_labels(c, at), expected_severity=str(contract.get("severity", "")),
                  meaning=str(c.get(at + ("runbook", "meaning"), "")),
                  steps=tuple(c.get(at + ("runbook", "steps"), ())))
    # `${threshold}` stays in the texts, filled per rule (an override has its own); only in texts.
    texts = _texts(c, at, spec, local if "expr" in spec else {**local, "threshold": "${threshold}"})
    if "expr" in spec:
        for key in ("value", "op", "threshold", "unit", "test", "carries", "overrides"):
            if key in spec:
                c.fail(at + (key,), "an alert with a fixed `expr` has no threshold fields")
        expr = c.promql(at + ("expr",), spec["expr"], local, records) if c.clean(at + ("expr",)) else ""
        return Alert(expr=expr, **common, **texts)
    threshold_alert = _threshold(c, at, spec, contract, local, records)
    if threshold_alert is None:
        return None
    return Alert(**common, **threshold_alert, **texts)


def _group(c: Checker, at: tuple) -> str:
    group = c.get(at + ("group",), "")
    if group and not NAME.match(group):
        c.fail(at + ("group",), f"must match {NAME.pattern} (the group names its rule file)")
    return str(group)


def _severity(c: Checker, at: tuple) -> str:
    allowed = SEVERITIES + (("none",) if at[0] == "meta" else ())
    severity = c.get(at + ("severity",))
    if severity is not None and severity not in allowed:
        c.fail(at + ("severity",), "must be one of " + ", ".join(allowed))
    return str(severity)


def _labels(c: Checker, at: tuple) -> tuple[tuple[str, str], ...]:
    """The alert's fixed labels: any but those the generator sets itself."""
    labels = c.get(at + ("labels",), {})
    external = c.get(("prometheus", "external_labels"), {})  # Prometheus adds them, except where an alert has its own
    for name in labels:
        if name in GENERATED_LABELS:
            c.fail(at + ("labels", name), f"reserved label: the generator sets it from {GENERATED_LABELS[name]}")
        elif name in external:
            c.fail(at + ("labels", name), "reserved label: prometheus.external_labels sets it for the environment")
        elif not _LABEL.match(name) or name.startswith("__"):
            c.fail(at + ("labels", name), "not a label name")
    return tuple(sorted(labels.items()))


def _threshold(c, at, spec, contract, local, records) -> dict | None:
    for key in _THRESHOLD_FIELDS:
        if key not in spec:
            c.fail(at, f"missing required field '{key}' (or a fixed `expr`)")
            return None
    carries = _carries(c, at)
    if carries is None:  # routing checks read an alert's carries: without them the alert is left out
        return None
    unit = spec["unit"] if c.clean(at + ("unit",)) else None  # an unknown unit: no threshold can be read
    threshold, expected = _thresholds(c, at, unit, contract)
    value = c.promql(at + ("value",), spec["value"], {**local, "selector": "${selector}"}, records) \
        if c.clean(at + ("value",)) else "${selector}"
    driver = _driver(c, at, unit, carries, local) if unit and c.clean(at + ("test",)) else None
    _reachable(c, ("contract", "alerts", at[1], "threshold"), driver, unit, expected)
    overrides = _overrides(c, at, unit, carries, contract, driver)
    if overrides and "${selector}" not in value:
        c.fail(at + ("value",), "must contain ${selector} where the overrides' matchers go")
    return dict(value=value, op=_op(c, at, contract), unit=unit or "number", threshold=threshold or 0.0,
                expected=expected or 0.0, carries=carries, overrides=overrides, driver=driver)


def _carries(c: Checker, at: tuple) -> tuple[str, ...] | None:
    if not c.clean(at + ("carries",)):
        return None
    carries = tuple(c.get(at + ("carries",), ()))
    for i, label in enumerate(carries):
        if not _LABEL.match(label):
            c.fail(at + ("carries", i), "not a label name")
    return carries


def _thresholds(c: Checker, at: tuple, unit: str | None, contract: dict) -> tuple[float | None, float | None]:
    """The alert's threshold and the contract's; None where it is invalid (reported) or cannot be read."""
    if unit is None:
        return None, None
    threshold = expected = None
    if c.clean(at + ("threshold",)):
        threshold = units.threshold_value(unit, c.get(at + ("threshold",)))
        if threshold is None:
            c.fail(at + ("threshold",), units.UNIT_RULE[unit])
    where = ("contract", "alerts", at[1], "threshold")
    if contract:
        expected = units.threshold_value(unit, contract.get("threshold"))
        if expected is None:
            c.fail(where, units.UNIT_RULE[unit])
    return threshold, expected


def _op(c: Checker, at: tuple, contract: dict) -> str:
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


def _overrides(c, at, unit, carries, contract, driver) -> tuple[Override, ...]:
    here = at + ("overrides",)
    promised = contract.get("overrides") or {}
    out = []
    for name in c.get(here, {}):
        where = here + (name,)
        if c.broken(where):
            continue
        threshold = None
        if unit and c.clean(where + ("threshold",)):
            threshold = units.threshold_value(unit, c.get(where + ("threshold",)))
            if threshold is None:
                c.fail(where + ("threshold",), units.UNIT_RULE[unit])
        expected = units.threshold_value(unit, promised.get(name)) if unit and contract else None
        if unit and contract and expected is None:
            c.fail(where, "the contract gives this override no valid threshold (contract.alerts.<alert>.overrides)")
        _reachable(c, ("contract", "alerts", at[1], "overrides", name), driver, unit, expected)
        match = c.get(where + ("match",), {})
        for label in match:
            if label not in carries:
                c.fail(where + ("match", label), f"label {label} is not among the alert's carries")
        out.append(Override(name, tuple(sorted(match.items())), threshold or 0.0, expected or 0.0))
    if contract and not c.broken(here):
        for name in sorted(set(promised) - set(c.get(here, {}))):
            c.fail(here, f"the contract has an override {name} the alert does not define")
    return tuple(out)


def _driver(c, at, unit, carries, local) -> Driver | None:
    here = at + ("test",)
    spec = c.get(here, {})
    kinds = [k for k in ("gauge", "ratio", "age", "histogram") if k in spec]
    if len(kinds) != 1:
        c.fail(here, "give exactly one of gauge, ratio, age, histogram")
        return None
    kind = kinds[0]
    metrics = tuple(spec[kind]) if kind == "ratio" else (spec[kind],)
    normal = units.threshold_value("number" if unit == "ratio" else unit, spec["normal"])
    if normal is None:
        c.fail(here + ("normal",), units.UNIT_RULE[unit])
    families = [catalog.BY_NAME.get(metric) for metric in metrics]
    # Only a catalog histogram has known buckets; other series outside the catalog (`up`) may be driven.
    unknown = [m for m, f in zip(metrics, families) if f is None and (m.startswith("dumont_") or kind == "histogram")]
    for metric in unknown:
        c.fail(here + (kind,), f"unknown metric {metric} (not in exporter.catalog)")
    histogram = families[0] if kind == "histogram" and families[0] is not None else None
    if histogram is not None and histogram.type != catalog.HISTOGRAM:
        c.fail(here + (kind,), f"{metrics[0]} is not a histogram")
        histogram = None
    window = _histogram_window(c, here, spec, local) if kind == "histogram" else 0.0
    _carried_by(c, at, carries, kind, [f for f in families if f is not None])
    if normal is None or unknown:
        return None
    driver = Driver(kind, metrics, families[0].labels if families[0] is not None else tuple(carries), normal,
                    float(spec.get("quantile", 0.0)), histogram.buckets if histogram is not None else (), window)
    _reachable(c, here + ("normal",), driver, unit, normal, around=False)
    return driver


def _histogram_window(c: Checker, here: tuple, spec: dict, local: dict) -> float:
    if not 0 < spec.get("quantile", 0) < 1:
        c.fail(here + ("quantile",), "must be a number between 0 and 1, exclusive")
    text, missing = promql.substitute(str(spec.get("window", "")), local)
    for name in missing:
        c.fail(here + ("window",), f"unknown parameter ${{{name}}}")
    return c.duration(here + ("window",), text) if not missing else 0.0


def _carried_by(c: Checker, at: tuple, carries: tuple[str, ...], kind: str, families: list) -> None:
    """The generated tests give each carried label the value of a label of the series `test` drives."""
    for i, label in enumerate(carries):
        lacking = [f.name for f in families if label not in f.labels]
        if lacking:
            c.fail(at + ("carries", i), f"label {label} is not a label of {lacking[0]} (exporter.catalog), "
                                        f"which test.{kind} drives")


def _reachable(c: Checker, where: tuple, driver: Driver | None, unit: str, value: float | None,
               around: bool = True) -> None:
    """Report `value` (`around`: one step either side of it) if the histogram driver cannot produce it."""
    # The generated tests put the firing and the silent value one step either side of a threshold.
    if driver is None or not driver.buckets or value is None:
        return
    step = units.step(value) if around else 0.0
    needed = sorted({value - step, value + step})
    if not all(drivers.reachable(driver.buckets, v) for v in needed):
        lo, hi = (units.humane(unit, b) for b in (driver.buckets[0], driver.buckets[-1]))
        shown = " and ".join(units.humane(unit, v) for v in needed)
        c.fail(where, f"the generated tests need {driver.metrics[0]} to give {shown}, but its buckets "
                      f"only give values above {lo} and up to {hi}")


def _texts(c: Checker, at: tuple, spec: dict, local: dict) -> dict:
    out = {}
    for key in ("summary", "description"):
        text = str(c.get(at + (key,), ""))
        for action in gotemplate.unsupported(text):
            c.fail(at + (key,), f"unsupported template action {action} (the generated tests could not predict it)")
        out[key], missing = promql.substitute(text, local)
        for name in missing:
            c.fail(at + (key,), f"unknown parameter ${{{name}}}")
    own = "runbook_url" in spec
    text = c.get(at + ("runbook_url",), "") if own else c.get(("runbook_url",), "")
    url, missing = promql.substitute(str(text), local)
    for name in missing:
        c.fail(at + ("runbook_url",) if own else ("runbook_url",), f"unknown parameter ${{{name}}}")
    out["runbook_url"] = url
    return out
