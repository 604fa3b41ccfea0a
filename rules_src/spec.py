"""Read one environment's spec: the base files, its overlay and an optional extra overlay, then validate."""
from __future__ import annotations

import hashlib
from pathlib import Path

from .loader import Marks, SpecError, load_file, merge
from .model import Spec
from .schema import check_shape
from .validate import build

SPEC_DIR = Path(__file__).resolve().parent


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
    errors: list[SpecError] = []
    env_file = spec_dir / "env" / f"{env}.yaml"
    if not env_file.is_file():
        return None, [SpecError(_shown(env_file, spec_dir), 0, "", f"no environment {env!r}")]
    files = sorted(spec_dir.glob("*.yaml"))
    data: dict = {}
    marks = Marks()
    for path in files:  # base files complete each other; setting a key twice is an error
        part, part_marks = load_file(path, _shown(path, spec_dir), errors)
        if part is not None:
            merge(data, marks, part, part_marks, errors)
    layers = [(env_file, True)] + ([(overlay, False)] if overlay else [])
    for path, require_version in layers:  # overlays win
        part, part_marks = load_file(path, _shown(path, spec_dir), errors, require_version=require_version)
        if part is not None:
            merge(data, marks, part, part_marks, None)
    if errors:
        return None, sorted(set(errors))
    shape = check_shape(data, marks)
    read = files + [p for p, _ in layers]
    digest = hashlib.sha256(b"".join(_shown(p, spec_dir).encode() + b"\0" + p.read_bytes() for p in read)).hexdigest()
    spec, semantic = build(env, data, marks, tuple(_shown(p, spec_dir) for p in read), digest)
    errors = sorted(set(shape + semantic))
    return (None if errors else spec), errors
