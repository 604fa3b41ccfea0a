"""Helpers shared by the rule generator's tests."""
from __future__ import annotations

from pathlib import Path

TESTDATA = Path(__file__).parent / "testdata"
REPO = Path(__file__).resolve().parents[2]


def edit(path: Path, old: str, new: str) -> None:
    """Replace the one occurrence of `old` in `path`."""
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {path}"
    path.write_text(text.replace(old, new))
