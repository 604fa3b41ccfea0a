"""`python -m deploy.local up|down|status`: the loopback stack behind `make up`, `make down`, `make status`."""
from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from pathlib import Path

from deploy.local.processes import StackError, http_ok, is_ours, recorded_processes, stop_recorded
from deploy.local.stack import Ports, Stack

FOLLOW_SECONDS = 180


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m deploy.local", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the stack and follow the demo alert")
    up.add_argument("--env", default="dev", help="environment of rules_src to render (default: dev)")
    up.add_argument("--run-dir", type=Path, default=Path("run"))
    up.add_argument("--no-follow", action="store_true", help="return once every service is ready")
    for name in ("down", "status"):
        sub.add_parser(name).add_argument("--run-dir", type=Path, default=Path("run"))
    args = parser.parse_args(argv)
    try:
        return {"up": cmd_up, "down": cmd_down, "status": cmd_status}[args.command](args)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def cmd_up(args) -> int:
    """Start everything, print where it is, then follow the demo alert until it fired and resolved."""
    running = [name for name, record in recorded_processes(args.run_dir) if is_ours(record)]
    if running:
        raise StackError(f"the stack in {args.run_dir}/ is already running ({', '.join(running)}); "
                         "`make status` shows it, `make down` stops it")
    stack = Stack(args.run_dir, env=args.env, ports=Ports.from_env())
    print(f"Starting the {args.env} stack on 127.0.0.1 (state, logs and pids in {stack.run_dir}/)")
    stack.start()
    print_status(stack.run_dir)
    print(f"\nThe exporter plays {stack.scenario_path}: gpu-1's disk fills past 80 % after 10 s and is cleaned\n"
          f"up 50 s later. Watch it on {stack.url('receiver')}/ and {stack.url('sink_http')}/.")
    if args.no_follow:
        return 0
    print("Following what the Slack and SMTP stand-ins receive (Ctrl-C stops following; the stack keeps running):")
    try:
        follow(stack.url("sink_http"), FOLLOW_SECONDS)
    except KeyboardInterrupt:
        pass
    print("The stack is still running: `make status` shows it, `make down` stops it.")
    return 0


def follow(sink_url: str, seconds: float) -> None:
    """Print each Slack post and mail as the stand-ins get it, until a resolved one arrived or time ran out."""
    seen: set[str] = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for line in new_deliveries(sink_url, seen):
            print("  " + line, flush=True)
            if "RESOLVED" in line.upper():
                deadline = min(deadline, time.monotonic() + 5)  # let the other channel's copy arrive too
        time.sleep(1)


def new_deliveries(sink_url: str, seen: set[str]) -> list[str]:
    """One line per Slack post or mail not yet in `seen`."""
    lines = []
    for kind in ("messages", "mail"):
        try:
            with urllib.request.urlopen(f"{sink_url}/api/{kind}", timeout=2) as response:
                items = json.load(response)
        except (OSError, ValueError):
            continue
        for item in items:
            key = kind + json.dumps(item, sort_keys=True)
            if key not in seen:
                seen.add(key)
                lines.append(describe(kind, item))
    return lines


def describe(kind: str, item: dict) -> str:
    """A one-line summary of a Slack post or a mail."""
    stamp = str(item.get("received_at", ""))[11:19]
    if kind == "mail":
        return f"{stamp} email to {', '.join(item.get('to') or [])}: {item.get('subject', '')}"
    body = item.get("body") or {}
    # Each attachment's fallback is one alert's plain-text line; a digest has only the text.
    lines = [a["fallback"] for a in body.get("attachments", []) if a.get("fallback")]
    text = "; ".join(lines) or (body.get("text") or "").partition("\n")[0]
    return f"{stamp} slack {item.get('path', '')}: {text[:160]}"


def cmd_down(args) -> int:
    """Stop exactly the processes `up` recorded in the run folder."""
    stopped = stop_recorded(args.run_dir)
    print("stopped: " + ", ".join(stopped) if stopped else f"nothing running from {args.run_dir}/")
    return 0


def cmd_status(args) -> int:
    """Print each service, its URL and whether it is ready; exit 1 if one that `up` started is not."""
    if not recorded_processes(args.run_dir):
        print(f"nothing running from {args.run_dir}/")
        return 0  # a stack that is down is an answer, not a failure
    return 0 if print_status(args.run_dir) else 1


def print_status(run_dir: Path) -> bool:
    """Print the table of services; True when every recorded one runs and is ready."""
    records = recorded_processes(run_dir)
    if not records:
        print(f"nothing running from {run_dir}/")
        return False
    all_ready = True
    print(f"{'service':<13}{'pid':>8}  {'state':<9}url")
    for name, record in records:
        running = is_ours(record)
        ready = running and http_ok(record.get("ready_url", ""))
        all_ready &= ready
        state = "ready" if ready else ("starting" if running else "stopped")
        print(f"{name:<13}{record.get('pid', '?'):>8}  {state:<9}{record.get('url', '')}")
    return all_ready


if __name__ == "__main__":
    sys.exit(main())
