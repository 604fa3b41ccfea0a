"""Checks of recording rules and their part of the Spec model: rule groups, a group's own evaluation
interval, and the tests that hold a rule to the samples it must record.

Alerts' generated tests drive the rules they read; a rule no alert reads feeds only dashboards, and
only a test of its own (input series and expected samples, written in recording.yaml) catches a
broken one.
"""
from __future__ import annotations

import re

from exporter import catalog

from . import promql, units
from .model import NAME, Record, RecordingGroup, RecordTest

_RECORD_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*:[a-zA-Z0-9_]+:[a-zA-Z0-9_]+$")
# Prometheus' default lookback delta. A series recorded this rarely or rarer vanishes from instant
# queries while the next evaluation runs, or whenever one is late or skipped.
LOOKBACK = 300.0
# Labels a scrape adds to every series: test input may carry them besides the catalog's own.
_SCRAPE_LABELS = ("job", "instance")
# A group's own keys beside its rules (a rule's name always holds two colons).
GROUP_KEYS = ("interval", "tiles")
_RANGE = re.compile(r"\[([^\]:]+)\]")  # a range selector's duration (not a subquery's range:step)


def recording_model(c, params: dict, evaluation: float) -> tuple[tuple[RecordingGroup, ...], set[str]]:
    """The recording groups, every rule's PromQL checked, and the names of all recording rules."""
    groups = c.get(("recording",), {})
    records = {name for rules in groups.values() if isinstance(rules, dict) for name in rules if name not in GROUP_KEYS}
    out = []
    for group in groups:
        at = ("recording", group)
        if not NAME.match(group):
            c.fail(at, f"group name must match {NAME.pattern} (it names a rule file)")
        rules = [_record(c, at + (name,), params, records) for name in c.get(at, {}) if name not in GROUP_KEYS]
        tiles = c.get(at + ("tiles",)) is True
        interval = _group_interval(c, at, evaluation, tiles)
        if tiles and interval:
            _check_tiles(c, at, [r for r in rules if r], interval)
        out.append(RecordingGroup(group, tuple(r for r in rules if r), interval, tiles))
    return tuple(out), records


def check_recording(c, groups: tuple[RecordingGroup, ...]) -> None:
    """What needs the alerts too: no empty group, no alert in a slow group, no dashboard rule untested."""
    alert_groups = {}
    for section in ("alerts", "meta"):
        for name in c.get((section,), {}):
            alert_groups.setdefault(c.get((section, name, "group")), []).append(name)
    for group in groups:
        at = ("recording", group.name)
        if not group.records and group.name not in alert_groups and c.clean(at):
            c.fail(at, f"rule group {group.name} would be empty: no recording rule, and no alert uses it")
        if group.interval and group.name in alert_groups:
            c.fail(at + ("interval",), f"alerts {', '.join(alert_groups[group.name])} use this group and would be "
                                       "evaluated this rarely too: give the slow recording rules a group of their own")
    _tiles_unread(c, groups)
    _untested(c)


def _group_interval(c, at: tuple, evaluation: float, tiles: bool) -> float:
    """The group's own evaluation interval; 0 when it has none (it runs at prometheus.evaluation_interval)."""
    where = at + ("interval",)
    text = c.get(where)
    if text is None:
        if tiles:
            c.fail(at + ("tiles",), "a group of tiles needs its own `interval`: the span each sample covers")
        return 0.0
    seconds = c.duration(where, text)
    if units.parse_duration(text) is None:
        return 0.0
    if seconds < evaluation or not seconds:
        c.fail(where, f"must be at least prometheus.evaluation_interval ({units.format_duration(evaluation)})")
    elif seconds >= LOOKBACK and not tiles:
        c.fail(where, "must be shorter than 5m, Prometheus' lookback delta: a series recorded less often "
                      "vanishes from queries between evaluations")
    return seconds


def _check_tiles(c, at: tuple, records: list[Record], interval: float) -> None:
    """Every range a tile reads spans exactly the interval: shorter leaves gaps between samples, longer overlaps."""
    for record in records:
        for text in _RANGE.findall(record.expr):
            if units.parse_duration(text.strip()) != interval:
                c.fail(at + (record.name,), f"reads a range of {text.strip()}: a tile must read exactly its group's"
                                            f" interval ({units.format_duration(interval)}), or its samples would"
                                            " overlap or leave gaps")


def _record(c, at: tuple, params: dict, records: set[str]) -> Record | None:
    if not _RECORD_NAME.match(at[-1]):
        c.fail(at, "recording rule names are level:metric:operations")
    rule = c.get(at)
    where = at + ("expr",) if isinstance(rule, dict) else at
    if rule is None or c.broken(where):
        return None
    expr = c.promql(where, c.get(where, ""), params, records)
    tested = isinstance(rule, dict) and "test" in rule and c.clean(at + ("test",))
    return Record(at[-1], expr, _test(c, at + ("test",), records) if tested else None)


def _readers(c) -> list[tuple[tuple, set[str]]]:
    """Where each alert and recording rule is written, and the recording-rule names its PromQL reads."""
    out = []
    for section in ("alerts", "meta"):
        for name, alert in c.get((section,), {}).items():
            texts = [alert.get(key) for key in ("value", "expr")] if isinstance(alert, dict) else []
            out.append(((section, name), {n for text in texts if isinstance(text, str) for n in promql.names_read(text)[1]}))
    for (group, name), rule in _rules(c).items():
        expr = rule.get("expr") if isinstance(rule, dict) else rule
        if isinstance(expr, str):
            out.append((("recording", group, name), promql.names_read(expr)[1] - {name}))
    return out


def _rules(c) -> dict[tuple[str, str], object]:
    return {(group, name): rule for group, named in c.get(("recording",), {}).items() if isinstance(named, dict)
            for name, rule in named.items() if name not in GROUP_KEYS}


def _tiles_unread(c, groups: tuple[RecordingGroup, ...]) -> None:
    """No alert or rule reads a tile: an instant read finds it only minutes an hour, and alerts need every minute."""
    tiles = {record.name for group in groups if group.tiles for record in group.records}
    for at, names in _readers(c):
        for name in sorted(names & tiles):
            c.fail(at, f"reads {name}, a tile recorded once per group interval: it is for dashboards' sums over"
                       " ranges; read the series it is built from instead")


def _untested(c) -> None:
    """A rule that no alert and no other recording rule reads must have a test."""
    read = set().union(*(names for _, names in _readers(c)))
    rules = _rules(c)
    if read - {name for _, name in rules}:  # a misspelt name (reported already): what is read is unknown
        return
    for (group, name), rule in rules.items():
        if name not in read and not (isinstance(rule, dict) and "test" in rule):
            c.fail(("recording", group, name), "no alert reads this rule, so only a test can hold it to its values: "
                                               "give it `expr` and `test` (input series, `at`, expected samples)")


def _test(c, at: tuple, records: set[str]) -> RecordTest:
    """A rule's test as written: its input, when it reads the rule, and the samples it expects."""
    spec = c.get(at)
    interval = _positive(c, at + ("interval",), spec["interval"])
    when = c.duration(at + ("at",), spec["at"])
    if interval and round(when * 1000) % round(interval * 1000):
        c.fail(at + ("at",), f"must be a multiple of test.interval ({units.format_duration(interval)}): "
                             "the test evaluates the rules only that often")
    inputs = []
    for text, values in spec["input"].items():
        series = _input(c, at + ("input", text), text, records)
        if series:
            inputs.append((series, values if isinstance(values, str) else units.number(values)))
    expected = []
    for text, value in spec["expect"].items():
        parsed = promql.parse_series(text)
        if parsed is None or parsed[0]:
            c.fail(at + ("expect", text), 'not a label set (write {label="value", ...}, quoted in YAML)')
        else:
            expected.append((tuple(sorted(parsed[1].items())), float(value)))
    return RecordTest(interval, when, tuple(inputs), tuple(expected))


def _positive(c, at: tuple, text) -> float:
    seconds = c.duration(at, text)
    if units.parse_duration(text) == 0:
        c.fail(at, "must be longer than 0s")
    return seconds


def _input(c, at: tuple, text: str, records: set[str]) -> str | None:
    """One input series in the generated tests' notation, after checking it is a series Prometheus scrapes."""
    parsed = promql.parse_series(text)
    if parsed is None or not parsed[0]:
        c.fail(at, 'not a series (write name{label="value", ...})')
        return None
    name, labels = parsed
    family = catalog.family_of(name)
    if name in records:
        c.fail(at, f"{name} is a recording rule: give the series it reads (the test records it itself)")
    elif name.startswith("dumont_") and family is None:
        c.fail(at, f"unknown metric {name} (not in exporter.catalog)")
    elif family is not None:
        # A histogram's buckets carry `le` besides the family's labels (a quantile rule's test needs them).
        own = set(family.labels) | ({"le"} if family.type == catalog.HISTOGRAM and name.endswith("_bucket") else set())
        for label in sorted(own - set(labels)):
            c.fail(at, f"lacks label {label}, which every {name} series has (exporter.catalog)")
        for label in sorted(set(labels) - own - set(_SCRAPE_LABELS)):
            c.fail(at, f"label {label} is not a label of {name} (exporter.catalog) nor one a scrape adds")
    return promql.render_series(name, labels)
