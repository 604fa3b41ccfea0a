"""Small helpers over PromQL and Alertmanager matcher text: parameters, names read, matchers."""
from __future__ import annotations

import json
import re

PARAM = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_NAME = re.compile(r"(?<![A-Za-z0-9_:.])([A-Za-z_:][A-Za-z0-9_:]*)(?![A-Za-z0-9_:])")
_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")
_SERIES = re.compile(r"\s*([A-Za-z_:][A-Za-z0-9_:]*)?\s*(?:\{(.*)\})?\s*", re.S)
_PAIR = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def substitute(text: str, values: dict[str, str]) -> tuple[str, list[str]]:
    """`text` with every `${name}` replaced from `values`, and the names `values` lacks."""
    missing = [m.group(1) for m in PARAM.finditer(text) if m.group(1) not in values]
    return PARAM.sub(lambda m: values.get(m.group(1), m.group(0)), text), missing


def names_read(expr: str) -> tuple[set[str], set[str]]:
    """(`dumont_*` sample names, recording-rule names with a colon) that `expr` reads."""
    bare = _QUOTED.sub('""', expr)
    bare = re.sub(r"\{[^}]*\}", "{}", bare)  # label names inside selectors are not metric names
    bare = re.sub(r"\[[^\]]*\]", "[]", bare)  # nor are range and subquery durations
    names = set(_NAME.findall(bare))
    return ({n for n in names if n.startswith("dumont_")}, {n for n in names if ":" in n})


def parse_matcher(text: str) -> tuple[str, str, str] | None:
    """`severity="critical"` -> ('severity', '=', 'critical'); None when it is not a matcher."""
    match = _MATCHER.match(text)
    if match is None:
        return None
    name, op, value = match.groups()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = json.loads(value)
    if op in ("=~", "!~"):
        try:
            re.compile(value)
        except re.error:
            return None
    return name, op, value


def parse_series(text: str) -> tuple[str, dict[str, str]] | None:
    """`name{a="1"}` -> ('name', {'a': '1'}); the name or the braces may be left out; None when it is no series."""
    match = _SERIES.fullmatch(text)
    if match is None or (match.group(1) is None and match.group(2) is None):
        return None
    body, labels, pos = (match.group(2) or "").strip(), {}, 0
    while pos < len(body):
        pair = _PAIR.match(body, pos)
        if pair is None or pair.group(1) in labels:
            return None
        try:
            labels[pair.group(1)] = json.loads(f'"{pair.group(2)}"')
        except ValueError:
            return None
        pos = pair.end()
    return match.group(1) or "", labels


def render_series(name: str, labels: dict[str, str]) -> str:
    """A series in the one form the generated tests use: labels sorted, values quoted."""
    pairs = ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items()))
    return f"{name}{{{pairs}}}" if pairs else name


def render_matcher(text: str) -> str:
    """A matcher in the one form the rendered files use: `name="value"`."""
    name, op, value = parse_matcher(text)
    return f"{name}{op}{json.dumps(value)}"


def selects(matchers: tuple[str, ...], static: dict[str, str], carried: set[str]) -> bool:
    """Whether an alert with `static` label values and the `carried` labels (values unknown) may match.

    A carried label is assumed non-empty with any value, so `machine_id=~".+"` selects exactly the
    alerts that carry machine_id; an absent label reads as "" as Alertmanager reads it.
    """
    for text in matchers:
        name, op, value = parse_matcher(text)
        if name not in static and name in carried:
            if op in ("=", "=~"):
                possible = value != ""
            else:
                possible = not (op == "!~" and value in (".+", ".*"))
            if not possible:
                return False
            continue
        actual = static.get(name, "")
        hit = actual == value if op in ("=", "!=") else re.fullmatch(value, actual) is not None
        if hit != (op in ("=", "=~")):
            return False
    return True


_SELECTOR = re.compile(r"^[A-Za-z_:][A-Za-z0-9_:]*(\{[^}]*\})?$")


def operand(expr: str) -> str:
    """`expr` ready to be one side of a binary operator: in parentheses unless it is a plain series selector."""
    return expr if _SELECTOR.match(expr) else f"({expr})"
