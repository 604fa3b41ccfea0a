"""What to replay: each alert's rendered rules, for the spec as it is and for each `--set` change of it.

The rules are the ones `dumont-rules generate` renders (render.alert_rules), so the backtest replays exactly what
Prometheus runs; only the clause by which a lower tier yields to a firing severe one (`unless on (...) ALERTS{...}`)
is taken out of the PromQL and applied by the replay, which knows what fired.
"""
from __future__ import annotations

import dataclasses
import difflib
import re
from dataclasses import dataclass

from exporter import catalog

from .. import units
from ..model import Alert, Spec
from ..render import alert_rules
from .fetch import BacktestError

# The clause render._firing_above writes into every tier below the most severe one.
_ABOVE = re.compile(r' unless on \(([^)]*)\) ALERTS\{alertname="[^"]*",alertstate="firing",severity=~"([^"]*)"\}')
SETTABLE = ("threshold", "for", "keep_firing_for")


@dataclass(frozen=True)
class Rule:
    """One alerting rule to replay: its PromQL, timings, labels, and which firing tiers it yields to."""

    alert: str
    severity: str
    expr: str
    for_: float
    keep_firing_for: float
    labels: tuple[tuple[str, str], ...]
    yields_on: tuple[str, ...] = ()        # labels matching a severe tier's firing series to this rule's
    yields_to: frozenset[str] = frozenset()  # the severities it yields to


@dataclass(frozen=True)
class Variant:
    """An alert as the spec has it (`current`) or with one `--set` change."""

    alert: Alert
    name: str
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class Setting:
    """One `--set ALERT[.SEVERITY].FIELD=VALUE`."""

    text: str
    alert: str
    severity: str | None
    field: str
    value: str
    override: str | None = None  # the threshold of this override (`ALERT[.SEVERITY].override.NAME.threshold`)


FORMS = "ALERT[.SEVERITY].FIELD=VALUE or ALERT[.SEVERITY].override.NAME.threshold=VALUE"


def parse_setting(text: str, spec: Spec) -> Setting:
    """A `--set` argument checked against the spec; BacktestError names what is unknown."""
    target, sep, value = text.partition("=")
    parts = target.split(".")
    override = None
    if "override" in parts[1:3]:
        at = parts.index("override", 1)
        if len(parts) != at + 3:
            raise BacktestError(f"--set {text}: expected {FORMS}")
        override = parts[at + 1]
        parts = parts[:at] + parts[at + 2:]
    if not sep or not value or len(parts) not in (2, 3):
        raise BacktestError(f"--set {text}: expected {FORMS} (fields: {', '.join(SETTABLE)})")
    alerts = {a.name: a for a in spec.alerts}
    if parts[0] not in alerts:
        near = difflib.get_close_matches(parts[0], alerts, n=1)
        raise BacktestError(f"--set {text}: no alert {parts[0]!r} in {spec.env}" +
                            (f" (did you mean {near[0]}?)" if near else ""))
    alert = alerts[parts[0]]
    severity = parts[1] if len(parts) == 3 else None
    if parts[-1] not in SETTABLE:
        raise BacktestError(f"--set {text}: unknown field {parts[-1]!r} (fields: {', '.join(SETTABLE)})")
    if severity is not None and severity not in alert.severities:
        raise BacktestError(f"--set {text}: {alert.name} has no tier {severity!r} (its tiers: "
                            f"{', '.join(alert.severities)})")
    if parts[-1] == "threshold":
        if not alert.tiers:
            raise BacktestError(f"--set {text}: {alert.name} has no threshold (a {alert.shape} alert)")
        if severity is None and len(alert.tiers) > 1:
            raise BacktestError(f"--set {text}: {alert.name} has tiers {', '.join(alert.severities)}: write"
                                f" {alert.name}.<severity>.threshold")
    if override is not None:
        names = [o.name for o in alert.overrides]
        if parts[-1] != "threshold":
            raise BacktestError(f"--set {text}: an override sets only a threshold")
        if override not in names:
            raise BacktestError(f"--set {text}: {alert.name} has no override {override!r} (its overrides: "
                                f"{', '.join(names) or 'none'})")
    return Setting(text, alert.name, severity, parts[-1], value, override)


def changed(alert: Alert, setting: Setting) -> Alert:
    """`alert` with `setting` applied, or BacktestError when the value does not fit the field."""
    if setting.field == "threshold":
        raw: object = setting.value
        if alert.unit != "seconds":
            try:
                raw = float(setting.value)
            except ValueError:
                raw = None
        value = units.threshold_value(alert.unit, raw) if raw is not None else None
        if value is None:
            raise BacktestError(f"--set {setting.text}: {units.UNIT_RULE[alert.unit]}")
        if setting.override is not None:
            overrides = tuple(dataclasses.replace(o, thresholds=tuple(
                value if setting.severity in (None, tier.severity) else threshold
                for tier, threshold in zip(alert.tiers, o.thresholds))) if o.name == setting.override else o
                for o in alert.overrides)
            return dataclasses.replace(alert, overrides=overrides)
        tiers = tuple(dataclasses.replace(t, threshold=value) if setting.severity in (None, t.severity) else t
                      for t in alert.tiers)
        return dataclasses.replace(alert, tiers=tiers)
    seconds = units.parse_duration(setting.value)
    if seconds is None:
        raise BacktestError(f"--set {setting.text}: expected a duration such as 30s, 5m or 1h")
    if setting.field == "keep_firing_for":
        return dataclasses.replace(alert, keep_firing_for=seconds)
    tiers = tuple(dataclasses.replace(t, for_=seconds) if setting.severity in (None, t.severity) else t
                  for t in alert.tiers)
    return dataclasses.replace(alert, tiers=tiers, for_=seconds if setting.severity is None else alert.for_)


def rules_of(alert: Alert) -> tuple[Rule, ...]:
    """The alert's rendered rules, each with its yield clause taken out of the PromQL."""
    out = []
    for rule in alert_rules(alert):
        expr = rule["expr"]
        yields_on, yields_to = (), frozenset()
        clause = _ABOVE.search(expr)
        if clause:
            expr = expr[:clause.start()] + expr[clause.end():]
            yields_on = tuple(label.strip() for label in clause.group(1).split(","))
            yields_to = frozenset(clause.group(2).split("|"))
        out.append(Rule(alert.name, rule["labels"]["severity"], expr, units.parse_duration(rule.get("for", "0s")),
                        units.parse_duration(rule.get("keep_firing_for", "0s")),
                        tuple(sorted(rule["labels"].items())), yields_on, yields_to))
    return tuple(out)


def variants(spec: Spec, names: list[str], settings: list[Setting]) -> list[list[Variant]]:
    """Per alert to backtest: the current variant, then one per `--set` naming it."""
    alerts = {a.name: a for a in spec.alerts}
    for name in names:
        if name not in alerts:
            near = difflib.get_close_matches(name, alerts, n=1)
            raise BacktestError(f"--alert {name}: no alert {name!r} in {spec.env}" +
                                (f" (did you mean {near[0]}?)" if near else ""))
    chosen = [alerts[n] for n in names] if names else list(spec.alerts)
    out = []
    for alert in chosen:
        group = [Variant(alert, "current", rules_of(alert))]
        for setting in settings:
            if setting.alert == alert.name:
                other = changed(alert, setting)
                group.append(Variant(other, setting.text.partition(".")[2], rules_of(other)))
        out.append(group)
    return out


# A metric or recording-rule name used as a selector (not a function, keyword or label).
_SELECTOR = re.compile(r'(?<![\w:"])([a-zA-Z_:][\w:]*)(\{[^}]*\})?(?![\w:]*\s*\()')


def inline(expr: str, records: dict[str, str], step: float) -> str:
    """`expr` with each named recording rule replaced by its own PromQL, the rule's selector pushed into it; a
    range over the rule (`rule[6h]`) becomes a subquery of its PromQL at the evaluation interval."""
    def replace(match: re.Match) -> str:
        name, selector, window = match.group(1), match.group(2) or "", match.group(3)
        if name not in records:
            return match.group(0)
        inner = inline(_with_selector(records[name], selector), {k: v for k, v in records.items() if k != name}, step)
        return f"({inner})[{window}:{units.format_duration(step)}]" if window else f"({inner})"
    return _RULE_READ.sub(replace, expr)


_RULE_READ = re.compile(r'(?<![\w:"])([a-zA-Z_][\w]*:[\w:]*)(\{[^}]*\})?(?:\[([^\]:]+)\])?')


def _with_selector(expr: str, selector: str) -> str:
    """`expr` with `selector`'s matchers added to every metric selector in it (the labels pass through)."""
    matchers = selector.strip("{}").strip()
    if not matchers:
        return expr
    names = catalog.exposed_names()

    def add(match: re.Match) -> str:
        name, own = match.group(1), match.group(2)
        if name not in names and ":" not in name:
            return match.group(0)
        inner = own.strip("{}").strip() if own else ""
        return f"{name}{{{inner + ',' if inner else ''}{matchers}}}"
    return _SELECTOR.sub(add, expr)
