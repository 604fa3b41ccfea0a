"""`python -m deploy.local up [--ha]|down|status`: the loopback stack behind `make up`, `make up-ha`, `make down`,
`make status`."""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
import urllib.request
from pathlib import Path

from deploy.local.processes import StackError, is_ours, recorded_processes, service_ready, stop_recorded
from deploy.local.stack import Ports, Stack

FOLLOW_SECONDS = 180
DEMO_ALERT = "DiskAlmostFull"  # what the demo scenario fires; others (a dead man's switch at start) may come first


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m deploy.local", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the stack and follow the demo alert")
    up.add_argument("--env", default="dev", help="environment of rules_src to render (default: dev)")
    up.add_argument("--run-dir", type=Path, default=Path("run"))
    up.add_argument("--no-follow", action="store_true", help="return once every service is ready")
    up.add_argument("--ha", action="store_true",
                    help="the HA shape: PostgreSQL, two receivers sharing it, two clustered Alertmanagers")
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
    if args.ha:
        from deploy.local.ha import HAPorts, HAStack  # PostgreSQL only for the HA shape

        stack = HAStack(args.run_dir, env=args.env, ports=HAPorts.from_env())
        receivers = ["receiver-1", "receiver-2"]
        shape = " HA stack (PostgreSQL, two receivers, two clustered Alertmanagers)"
    else:
        stack, receivers, shape = Stack(args.run_dir, env=args.env, ports=Ports.from_env()), [], " stack"
    print(f"Starting the {args.env}{shape} on 127.0.0.1 (state, logs and pids in {stack.run_dir}/)")
    stack.start()
    print_status(stack.run_dir)
    pages = " and ".join(f"{stack.url(name)}/" for name in (receivers or ["receiver"]) + ["sink_http"])
    print(f"\nThe exporter plays {stack.scenario_path}: gpu-1's disk fills past 80 % after 10 s and is cleaned\n"
          f"up 50 s later. Watch it on {pages}.")
    print(f"The fleet dashboard (machines, savings, alert status): {stack.url((receivers or ['receiver'])[0])}/dashboard")
    if receivers:
        print("Alertmanager posts every notification to both receivers; they share one database, which keeps one\n"
              "copy, and one relay sends it.")
    if args.no_follow:
        return 0
    print("Following what the Slack and SMTP stand-ins receive (Ctrl-C stops following; the stack keeps running):")
    logs = {name: stack.run_dir / "logs" / f"{name}.log" for name in receivers}
    lines: list[str] = []
    try:
        # In the HA stack, wait past alertmanager-2's peer timeout (15 s): a late copy of hers shows too.
        lines = follow(stack.url("sink_http"), FOLLOW_SECONDS, ReceiverLogs(logs), settle=20 if receivers else 5)
    except KeyboardInterrupt:
        pass
    if late_copy(lines):
        print(f"{DEMO_ALERT} was told again after its resolution: alertmanager-2 sent the firing notification it\n"
              "held during its peer timeout (Alertmanager's HA pair does that when an alert resolves meanwhile;\n"
              "deploy/README.md, \"The HA shape\").")
    print("The stack is still running: `make status` shows it, `make down` stops it.")
    return 0


def follow(sink_url: str, seconds: float, receiver_logs: "ReceiverLogs | None" = None,
           until: str = DEMO_ALERT, settle: float = 5) -> list[str]:
    """Print each Slack post and mail as the stand-ins get it (and, in the HA stack, which receiver stored and
    which relay sent it), until `settle` seconds after the `until` alert resolved or time ran out; return the lines."""
    seen: set[str] = set()
    printed: list[str] = []
    receiver_logs = receiver_logs or ReceiverLogs({})
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        events = receiver_logs.new_events() + new_deliveries(sink_url, seen)
        for _, line in sorted(events, key=lambda event: event[0]):
            print("  " + line, flush=True)
            printed.append(line)
            if "RESOLVED" in line.upper() and until in line:
                deadline = min(deadline, time.monotonic() + settle)  # let the other channel's copy arrive too
        time.sleep(1)
    return printed


def late_copy(lines: list[str], alert: str = DEMO_ALERT) -> bool:
    """Whether `alert` was told firing again after it was told resolved."""
    told = [line for line in lines if alert in line and (" slack " in line or " email " in line)]
    resolved = next((i for i, line in enumerate(told) if "RESOLVED" in line), None)
    return resolved is not None and any("FIRING" in line for line in told[resolved:])


class ReceiverLogs:
    """Reads what each receiver logged since the last call: posts it stored or found stored, messages it sent."""

    STORED = re.compile(r"^ts=(\S+) .*event=ingest\.stored channel=(\S+) .* queued=(\d+) duplicates=(\d+)")
    SENT = re.compile(r"^ts=(\S+) .*event=relay\.send channel=(\S+) events=(\d+) .*ok=True")

    def __init__(self, logs: dict[str, Path]):
        self.logs = logs
        self.offsets = {name: (path.stat().st_size if path.exists() else 0) for name, path in logs.items()}

    def new_events(self) -> list[tuple[str, str]]:
        """(timestamp, line) for each intake or delivery logged since the last call."""
        events = []
        for name, path in self.logs.items():
            try:
                with open(path, "rb") as log:
                    log.seek(self.offsets[name])
                    chunk = log.read()
            except OSError:
                continue
            complete = chunk[:chunk.rfind(b"\n") + 1]  # a line still being written is read next time
            self.offsets[name] += len(complete)
            for raw in complete.decode(errors="replace").splitlines():
                events += self._describe(name, raw)
        return events

    def _describe(self, name: str, line: str) -> list[tuple[str, str]]:
        stored = self.STORED.match(line)
        if stored:
            ts, channel, queued, duplicates = stored.groups()
            if int(queued):
                return [(ts, f"{ts[11:19]} {name} stored the post for {channel}: {queued} to send")]
            if int(duplicates):  # the other receiver's copy of the same post, or the other Alertmanager's
                return [(ts, f"{ts[11:19]} {name} got the same post for {channel}: already stored, kept once")]
            return []
        sent = self.SENT.match(line)
        if sent:
            ts, channel, count = sent.groups()
            return [(ts, f"{ts[11:19]} {name}'s relay sent {channel} ({count} event{'s' * (int(count) > 1)})")]
        return []


def new_deliveries(sink_url: str, seen: set[str]) -> list[tuple[str, str]]:
    """(received_at, line) per Slack post or mail not yet in `seen`."""
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
                lines.append((str(item.get("received_at", "")), describe(kind, item)))
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
    print(f"{'service':<16}{'pid':>8}  {'state':<9}url")
    for name, record in records:
        running = is_ours(record)
        ready = running and service_ready(record.get("ready_url", ""))
        all_ready &= ready
        state = "ready" if ready else ("starting" if running else "stopped")
        print(f"{name:<16}{record.get('pid', '?'):>8}  {state:<9}{record.get('url', '')}")
    return all_ready


if __name__ == "__main__":
    sys.exit(main())
