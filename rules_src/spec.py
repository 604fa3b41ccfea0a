"""Read one environment's spec: the base files, its overlay and an optional extra overlay, then validate."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

from .loader import Marks, SpecError, load_file, merge
from .model import Spec
from .schema import HOME, check_shape
from .validate import build

SPEC_DIR = Path(__file__).resolve().parent
_ENV_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def environments(spec_dir: Path = SPEC_DIR) -> list[str]:
    """The environments rules_src defines: one overlay file each under env/."""
    return sorted(p.stem for p in (spec_dir / "env").glob("*.yaml"))


def _shown(path: Path, spec_dir: Path) -> str:
    try:
        return str(path.resolve().relative_to(spec_dir.resolve().parent))
    except ValueError:
        return str(path)


def load(env: str, spec_dir: Path = SPEC_DIR, overlay: Path | None = None) -> tuple[Spec | None, list[SpecError]]:
    """The validated Spec of `env`, or None and every error found in the files it reads."""
    env_file = spec_dir / "env" / f"{env}.yaml"
    if not _ENV_NAME.match(env) or not env_file.is_file():  # the name becomes generated/<env>/: no `..`
        return None, [SpecError(_shown(spec_dir / "env", spec_dir), 0, "", f"no environment {env!r}")]
    errors: list[SpecError] = []
    files = sorted(spec_dir.glob("*.yaml"))
    layers = [(env_file, True)] + ([(overlay, False)] if overlay else [])
    data, marks, complete = _merged(files, layers, spec_dir, errors)
    if not complete:  # checking a spec that lacks a whole file would report that file's content as missing
        return None, sorted(set(errors))
    shape, broken = check_shape(data, marks)
    read = files + [p for p, _ in layers]
    digest = hashlib.sha256(b"".join(_shown(p, spec_dir).encode() + b"\0" + p.read_bytes() for p in read)).hexdigest()
    spec, errors = build(env, data, marks, tuple(_shown(p, spec_dir) for p in read), digest, errors + shape, broken)
    return spec, errors


def _merged(files: list[Path], layers: list[tuple[Path, bool]], spec_dir: Path,
            errors: list[SpecError]) -> tuple[dict, Marks, bool]:
    """The base files merged, then the overlays; and whether every file could be read.

    A duplicate key or a wrong version is recorded in `errors` and reading goes on (the first
    definition is kept), so that one run reports every problem; a file that does not parse is skipped.
    """
    data: dict = {}
    marks = Marks()
    complete = True
    for path in files:  # base files complete each other; setting a key twice is an error
        part, part_marks = load_file(path, _shown(path, spec_dir), errors)
        if part is None:
            complete = False
        else:
            merge(data, marks, part, part_marks, errors)
    for path, require_version in layers:  # overlays win
        part, part_marks = load_file(path, _shown(path, spec_dir), errors, require_version=require_version)
        if part is None:
            complete = False
        else:
            merge(data, marks, part, part_marks, None)
    for key, name in HOME.items():  # where a missing top-level field is reported
        marks.at.setdefault((key,), (_shown(spec_dir / name, spec_dir), 1))
    return data, marks, complete

