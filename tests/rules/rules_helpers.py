"""Helpers shared by the rule generator's tests."""
from __future__ import annotations

from pathlib import Path

from rules_src.spec import load

TESTDATA = Path(__file__).parent / "testdata"
REPO = Path(__file__).resolve().parents[2]


def edit(path: Path, old: str, new: str) -> None:
    """Replace the one occurrence of `old` in `path`."""
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {path}"
    path.write_text(text.replace(old, new))


def messages(spec: Path, env: str = "test", overlay: Path | None = None) -> list[str]:
    """Every error of `env`, as the CLI prints them."""
    _, errors = load(env, spec, overlay)
    return [str(e) for e in errors]
