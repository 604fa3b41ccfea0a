"""Load spec YAML keeping where each value was written, and merge the base files and overlays.

Values become plain dicts, lists and scalars; `Marks` maps each value's path (a tuple of keys and
list indexes) to the file and line it came from, so every error can name `file:line: path`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

VERSION = "dumont/v1"

Path_ = tuple  # a path into the spec: keys and list indexes


@dataclass(frozen=True, order=True)
class SpecError:
    """One problem in the spec, at a file and line, under a dotted path."""

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


@dataclass
class Marks:
    """Where each path of a merged spec was written: path -> (file, 1-based line)."""

    at: dict = field(default_factory=dict)

    def locate(self, path: Path_) -> tuple[str, int]:
        """The file and line of `path`, or of its nearest written ancestor."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.at:
                return self.at[path[:end]]
        return ("<spec>", 0)

    def error(self, path: Path_, message: str) -> SpecError:
        """A SpecError located at `path`."""
        file, line = self.locate(path)
        return SpecError(file, line, dotted(path), message)


def dotted(path: Path_) -> str:
    """`('alerts', 'X', 'labels', 0)` -> `alerts.X.labels[0]`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_file(path: Path, shown: str, errors: list[SpecError], *, require_version: bool = True):
    """Parse one YAML file into (data, marks); problems go to `errors`, an unreadable file gives (None, None)."""
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, yaml.YAMLError) as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", -1) + 1
        errors.append(SpecError(shown, line, "", f"cannot read YAML: {str(exc).splitlines()[0]}"))
        return None, None
    marks = Marks()
    if node is None:
        node = yaml.MappingNode("tag:yaml.org,2002:map", [])
    data = _convert(node, (), shown, marks, errors)
    if not isinstance(data, dict):
        errors.append(SpecError(shown, node.start_mark.line + 1, "", "must be a mapping"))
        return None, None
    # A wrong version is reported, and the file is still read as this version: most often the version
    # line is a typo, and the file's other errors are worth seeing in the same run.
    version = data.pop("version", None)
    if version != VERSION and (require_version or version is not None):
        file, line = marks.at.get(("version",), (shown, 1))
        errors.append(SpecError(file, line, "version", f"must be {VERSION}"))
    marks.at.pop(("version",), None)
    return data, marks


def _convert(node, path, shown, marks, errors):
    marks.at[path] = (shown, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict = {}
        first: dict = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                errors.append(SpecError(shown, key_node.start_mark.line + 1, dotted(path), "keys must be plain names"))
                continue
            key = key_node.value
            if key in first:
                errors.append(SpecError(shown, key_node.start_mark.line + 1, dotted(path + (key,)),
                                        f"{_kind(path)} (first defined at {shown}:{first[key]})"))
                continue
            first[key] = key_node.start_mark.line + 1
            out[key] = _convert(value_node, path + (key,), shown, marks, errors)
            marks.at[path + (key,)] = (shown, key_node.start_mark.line + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, path + (i,), shown, marks, errors) for i, item in enumerate(node.value)]
    try:
        return _SCALARS.construct_object(node)
    except yaml.YAMLError as exc:  # e.g. an unknown tag such as !!python/object
        errors.append(SpecError(shown, node.start_mark.line + 1, dotted(path), f"cannot read value: {exc.problem}"))
        return None


_SCALARS = yaml.SafeLoader("")


def _kind(path: Path_) -> str:
    """What a duplicated key is called in a message."""
    return "duplicate alert" if path in (("alerts",), ("meta",)) else "duplicate key"


def merge(base: dict, bmarks: Marks, over: dict, omarks: Marks, errors: list[SpecError] | None,
          path: Path_ = ()) -> None:
    """Merge `over` into `base` in place; with `errors`, a key set twice is an error (base files),
    without, `over` wins (overlays). Setting `x_file` in an overlay drops the base's `x_env` and vice versa."""
    for key, value in over.items():
        here = path + (key,)
        if errors is None:
            for a, b in (("_file", "_env"), ("_env", "_file")):
                if isinstance(key, str) and key.endswith(a):
                    base.pop(key[: -len(a)] + b, None)
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], bmarks, value, omarks, errors, here)
            continue
        if key in base and errors is not None:
            file, line = bmarks.locate(here)
            errors.append(omarks.error(here, f"{_kind(path)} (first defined at {file}:{line})"))
            continue
        base[key] = value
        for mark_path in [p for p in bmarks.at if p[: len(here)] == here]:
            del bmarks.at[mark_path]
        bmarks.at.update({p: m for p, m in omarks.at.items() if p[: len(here)] == here})
