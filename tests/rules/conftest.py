"""Fixtures of the rule generator's tests: a copy of the known-good spec, and the real tools."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.rules.rules_helpers import REPO, TESTDATA
from rules_src.tools import binary


@pytest.fixture
def good(tmp_path: Path) -> Path:
    """A writable copy of testdata/good as <tmp>/rules_src, so messages read `rules_src/<file>:<line>`."""
    spec = tmp_path / "rules_src"
    shutil.copytree(TESTDATA / "good", spec)
    return spec


@pytest.fixture
def rules_copy(tmp_path: Path) -> Path:
    """A writable copy of the project's own rules_src (YAML only) as <tmp>/rules_src."""
    spec = tmp_path / "rules_src"
    shutil.copytree(REPO / "rules_src", spec, ignore=shutil.ignore_patterns("*.py", "__pycache__", "templates"))
    return spec


@pytest.fixture(scope="session")
def tools() -> None:
    """promtool and amtool must be installed: a test that needs them fails, never skips, without them."""
    for name in ("promtool", "amtool"):
        assert binary(name), f"{name} is not installed (run `make setup`)"
