"""Checks of an alert's thresholds: its severity tiers, its overrides' thresholds, and the contract's for each.

A single-threshold alert (`severity` + `threshold`) is one tier. A tiered alert (`tiers: {warning: ...,
critical: ...}`) fires each series at one severity at a time, the most severe whose threshold it passes;
the contract states every tier (`contract.alerts.<alert>.tiers`), and an override gives a threshold per
tier (`overrides.<name>.tiers`), so a series never matches two thresholds of one tier either.
"""
from __future__ import annotations

from . import units
from .model import Override, Tier
from .schema import SEVERITIES

# Tiers compare with the alert's op: a more severe tier lies further beyond ("==" has no "further").
_RISING = (">", ">=")
_FALLING = ("<", "<=")


def tiers(c, at: tuple, spec: dict, contract: dict, unit: str | None, for_: float) -> tuple[Tier, ...]:
    """The alert's tiers, most severe first; a single-threshold alert gives one. Problems are reported."""
    if "tiers" not in spec:
        return _single(c, at, spec, contract, unit, for_)
    for key in ("severity", "threshold"):
        if key in spec:
            c.fail(at + (key,), "give `severity` and `threshold`, or `tiers`, not both")
    if not c.clean(at + ("tiers",)):
        return ()
    promised = contract.get("tiers")
    if contract and not isinstance(promised, dict):
        c.fail(("contract", "alerts", at[1]), "the alert has tiers: the contract must state them (tiers: {severity: threshold})")
        promised = None
    out, read = [], []
    for severity, tier in c.get(at + ("tiers",), {}).items():
        where = at + ("tiers", severity)
        if severity not in SEVERITIES:
            c.fail(where, "a tier is named by its severity: one of " + ", ".join(SEVERITIES))
            continue
        threshold = _value(c, where + ("threshold",), unit, tier.get("threshold"))
        expected = None
        if promised is not None:
            if severity not in promised:
                c.fail(("contract", "alerts", at[1], "tiers"), f"missing tier {severity} (the alert defines it)")
            else:
                expected = _value(c, ("contract", "alerts", at[1], "tiers", severity), unit, promised[severity])
        tier_for = c.duration(where + ("for",), tier.get("for"), for_)
        out.append(Tier(severity, threshold or 0.0, expected or 0.0, severity, tier_for))
        read.append((severity, threshold, expected))
    for severity in sorted(set(promised or {}) - set(c.get(at + ("tiers",), {}))):
        c.fail(("contract", "alerts", at[1], "tiers", severity), "the contract has a tier the alert does not define")
    out.sort(key=lambda t: SEVERITIES.index(t.severity))
    read.sort(key=lambda r: SEVERITIES.index(r[0]))
    if None not in [r[1] for r in read]:
        _ordered(c, at + ("tiers",), spec.get("op"), [r[1] for r in read], "the alert's")
    if promised is not None and None not in [r[2] for r in read]:
        _ordered(c, ("contract", "alerts", at[1], "tiers"), spec.get("op"), [r[2] for r in read], "the contract's")
    return tuple(out)


def _single(c, at, spec, contract, unit, for_) -> tuple[Tier, ...]:
    if "threshold" not in spec:
        c.fail(at, "missing required field 'threshold' (or `tiers`)")
        return ()
    threshold = _value(c, at + ("threshold",), unit, c.get(at + ("threshold",))) if c.clean(at + ("threshold",)) else None
    expected = None
    if contract:
        if "tiers" in contract:
            c.fail(("contract", "alerts", at[1], "tiers"), "the alert has one threshold, not tiers")
        expected = _value(c, ("contract", "alerts", at[1], "threshold"), unit, contract.get("threshold"))
    severity = str(c.get(at + ("severity",), ""))
    return (Tier(severity, threshold or 0.0, expected or 0.0, str(contract.get("severity", "")), for_),)


def _value(c, where: tuple, unit: str | None, raw) -> float | None:
    """A threshold in `unit`; None (reported, unless the shape check did) when it is not one."""
    if unit is None or c.broken(where):
        return None
    value = units.threshold_value(unit, raw)
    if value is None:
        c.fail(where, units.UNIT_RULE[unit])
    return value


def _ordered(c, where: tuple, op, thresholds: list[float], whose: str) -> None:
    """A more severe tier must lie further beyond: else a series would fire the milder tier past the severe one."""
    if len(thresholds) < 2:
        return
    if op not in _RISING + _FALLING:
        c.fail(where, f"tiers need an ordering comparison (>, >=, <, <=), not {op}")
        return
    pairs = zip(thresholds, thresholds[1:])
    if not all((hi > lo) if op in _RISING else (hi < lo) for hi, lo in pairs):
        word = "higher" if op in _RISING else "lower"
        c.fail(where, f"{whose} thresholds must be {word} for more severe tiers (op {op})")


def overrides(c, at: tuple, unit: str | None, carries: tuple[str, ...], contract: dict,
              tier_list: tuple[Tier, ...], op: str = "") -> tuple[Override, ...]:
    """The alert's overrides, each with a threshold per tier, checked against the contract's."""
    here = at + ("overrides",)
    promised = contract.get("overrides") or {}
    severities = [t.severity for t in tier_list]
    out = []
    for name in c.get(here, {}):
        where = here + (name,)
        if c.broken(where):
            continue
        override = c.get(where, {})
        thresholds = _override_thresholds(c, where, override, unit, severities)
        expected = _contract_thresholds(c, ("contract", "alerts", at[1], "overrides", name), promised.get(name),
                                        unit, severities) if contract else None
        # `==` is reported once, at the alert's tiers; an override is ordered like them.
        if op in _RISING + _FALLING and "tiers" in override and None not in thresholds:
            _ordered(c, where + ("tiers",), op, thresholds, "the override's")
        if op in _RISING + _FALLING and isinstance(promised.get(name), dict) and expected is not None \
                and None not in expected:
            _ordered(c, ("contract", "alerts", at[1], "overrides", name), op, expected, "the contract's")
        if contract and expected is None and name not in promised:
            c.fail(where, "the contract gives this override no valid threshold (contract.alerts.<alert>.overrides)")
        match = c.get(where + ("match",), {})
        for label in match:
            if label not in carries:
                c.fail(where + ("match", label), f"label {label} is not among the alert's carries")
        out.append(Override(name, tuple(sorted(match.items())),
                            tuple(v or 0.0 for v in thresholds), tuple(v or 0.0 for v in expected or thresholds)))
    if contract and not c.broken(here):
        for name in sorted(set(promised) - set(c.get(here, {}))):
            c.fail(here, f"the contract has an override {name} the alert does not define")
    return tuple(out)


def _override_thresholds(c, where, override, unit, severities) -> list[float | None]:
    if ("threshold" in override) == ("tiers" in override):
        c.fail(where, "give `threshold` (an alert with one threshold) or `tiers` (one threshold per tier)")
        return [None] * len(severities)
    if "threshold" in override:
        if len(severities) > 1:
            c.fail(where + ("threshold",), "the alert has tiers: give `tiers` with a threshold for each")
            return [None] * len(severities)
        return [_value(c, where + ("threshold",), unit, override["threshold"])]
    if not c.clean(where + ("tiers",)):
        return [None] * len(severities)
    given = override["tiers"]
    if set(given) != set(severities):
        c.fail(where + ("tiers",), f"must give exactly the alert's tiers: {', '.join(severities)}")
        return [None] * len(severities)
    return [_value(c, where + ("tiers", s), unit, given[s]) for s in severities]


def _contract_thresholds(c, where, raw, unit, severities) -> list[float | None] | None:
    """The contract's thresholds of one override, per tier; None when it states none."""
    if raw is None:
        return None
    if isinstance(raw, dict):
        if set(raw) != set(severities):
            c.fail(where, f"must give exactly the alert's tiers: {', '.join(severities)}")
            return None
        return [_value(c, where + (s,), unit, raw[s]) for s in severities]
    if len(severities) > 1:
        c.fail(where, "the alert has tiers: give a threshold for each ({severity: threshold})")
        return None
    return [_value(c, where, unit, raw)]
