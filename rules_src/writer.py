"""Write generated/ atomically: render into a sibling temp dir, check it there, then swap directories."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable


class WriteError(Exception):
    """The rendered files failed their checks; nothing under the output directory changed."""

    def __init__(self, failures: list[str]):
        super().__init__("\n".join(failures))
        self.failures = failures


class UnsafePath(Exception):
    """A rendered path would land outside the output directory; nothing was written."""


def check_paths(rendered: dict[str, dict[str, str]]) -> None:
    """Raise UnsafePath for any env or file path that would leave <out>/<env>/."""
    # Validation keeps names plain; this holds whatever the renderer produces. The text alone decides:
    # the staging directory is new, so no symlink inside it can redirect a write.
    for env, files in rendered.items():
        if env in ("", ".", "..") or Path(env).name != env:
            raise UnsafePath(f"environment {env!r} is not a plain directory name")
        for rel in files:
            path = Path(rel)
            if path.is_absolute() or not path.parts or any(part in (".", "..") for part in path.parts):
                raise UnsafePath(f"{env}/{rel} would be written outside {env}/")


def stage(out: Path, rendered: dict[str, dict[str, str]]) -> Path:
    """A temp dir beside `out` (same filesystem, so renames are atomic) holding `rendered` by env."""
    check_paths(rendered)
    out.parent.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.new-"))
    # mkdtemp makes 0700 directories; the swapped-in generated/ must be as readable as any other
    # directory (Prometheus and Alertmanager often run as other users).
    root.chmod(0o777 & ~_umask())
    for env, files in rendered.items():
        for rel, text in files.items():
            path = root / env / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    return root


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write(out: Path, rendered: dict[str, dict[str, str]], check: Callable[[Path], list[str]], whole: bool) -> None:
    """Replace `out` (whole) or only its env subdirs with `rendered`, once `check` on the staged copy passes."""
    root = stage(out, rendered)
    try:
        failures = check(root)
        if failures:
            raise WriteError(failures)
        old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
        if whole:
            if out.exists():
                out.rename(old / "previous")
            root.rename(out)
        else:
            out.mkdir(exist_ok=True)
            for env in rendered:
                if (out / env).exists():
                    (out / env).rename(old / env)
                (root / env).rename(out / env)
        shutil.rmtree(old)
    finally:
        if root.exists():
            shutil.rmtree(root)
