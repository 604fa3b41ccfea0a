"""`python -m deploy.local.drill [--run-dir run] [drill flags]`: `make drill`, the fire drill against the stack
`make up` (or `make up-ha`) started, its Alertmanagers and receiver found in the pid records of the run folder."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deploy.local.processes import is_ours, recorded_processes
from webhook_receiver import cli


def drill_argv(run_dir: Path) -> list[str]:
    """`dumont-receiver drill` flags for the stack running from `run_dir`; SystemExit naming what is missing."""
    running = [(name, record) for name, record in recorded_processes(run_dir) if is_ours(record)]
    receivers = [name for name, _ in running if name.startswith("receiver")]
    # Every Alertmanager recorded, running or not: one that is down is what a drill is for.
    alertmanagers = [record["url"] for name, record in recorded_processes(run_dir) if name.startswith("alertmanager")]
    if not receivers or not alertmanagers:
        raise SystemExit(f"error: no stack is running from {run_dir}/ (`make up` starts one, `make status` shows it)")
    argv = ["drill", "--config", str(run_dir / f"{receivers[0]}.yml")]
    for url in alertmanagers:
        argv += ["--alertmanager", url]
    return argv


def main(argv: list[str] | None = None) -> int:
    """Entry point: the drill's own flags (--severity, --hop-timeout, --timeout...) pass through."""
    parser = argparse.ArgumentParser(prog="python -m deploy.local.drill", description=__doc__)
    parser.add_argument("--run-dir", type=Path, default=Path("run"))
    args, rest = parser.parse_known_args(argv)
    return cli.main(drill_argv(args.run_dir) + rest)


if __name__ == "__main__":
    sys.exit(main())
