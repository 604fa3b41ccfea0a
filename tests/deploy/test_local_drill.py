"""`make drill` (python -m deploy.local.drill) finds the stack in the run folder, or says to start one."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_make_drill_without_a_stack_says_to_start_one(tmp_path):
    done = subprocess.run([sys.executable, "-m", "deploy.local.drill", "--run-dir", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert f"no stack is running from {tmp_path}/ (`make up` starts one" in done.stderr
