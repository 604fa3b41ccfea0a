"""`dumont-receiver drill`: its flags, where each input comes from, the report and the exit code."""
from __future__ import annotations

import argparse
import secrets
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rules_src.amroute import Routing, RoutingError, alertmanager_urls, generated_dir_of, load_routing
from webhook_receiver.config import Config, ConfigError, load_config, parse_duration, read_secret
from webhook_receiver.drill import ALERTNAME, DRILL_LABEL
from webhook_receiver.drill.apis import Alertmanager, History
from webhook_receiver.drill.follow import Broken, SeverityDrill, Timing

# Past group_wait + group_interval, what a hop may still need: Alertmanager's webhook retry, a relay pass and
# a channel's send (the receiver's channels time out after 10 s by default).
HOP_MARGIN = 15.0
EXIT_PASSED, EXIT_BROKEN, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DESCRIPTION = ("Post a synthetic alert labelled dumont_drill=<run id> to each Alertmanager, for each severity, and "
               "follow it: accepted, routed, stored by the receiver, delivered by each channel the routing promises; "
               "then resolve it and follow the resolution. Exit 0: every hop passed; 1: a hop broke (the last line "
               "names it); 2: bad input; 130: interrupted (the drill alerts are resolved first).")


class DrillInputError(ValueError):
    """An input the drill cannot work without; the message says which flag or key gives it."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The drill's flags."""
    parser.add_argument("--config", metavar="FILE",
                        help="receiver.yml: gives the defaults of --generated (from channels_file), --receiver "
                             "(external_url), --history-token-file and, when it has them, alertmanager_urls")
    parser.add_argument("--alertmanager", action="append", metavar="URL",
                        help="an Alertmanager to post to; repeat for each (default: receiver.yml's alertmanager_urls,"
                             " else the targets of the rendered prometheus/prometheus.yml)")
    parser.add_argument("--receiver", metavar="URL",
                        help="the receiver whose history to read (default: receiver.yml's external_url, else the "
                             "receiver Alertmanager's webhooks post to)")
    parser.add_argument("--history-token-file", metavar="FILE",
                        help="file holding the history token (default: receiver.yml's history_token_file)")
    parser.add_argument("--generated", metavar="DIR",
                        help="the rendered environment Alertmanager and the receiver run (generated/<env>/): "
                             "alertmanager/alertmanager.yml, receiver/channels.yml, prometheus/prometheus.yml "
                             "(default: the one receiver.yml's channels_file is in)")
    parser.add_argument("--severity", action="append", metavar="NAME",
                        help="drill this severity only; repeatable (default: every severity the routing names)")
    parser.add_argument("--hop-timeout", metavar="DURATION",
                        help="how long one hop may take (default: the route's group_wait + group_interval + 15s)")
    parser.add_argument("--timeout", metavar="DURATION",
                        help="how long the whole drill may take (default: no limit but each hop's)")


def run(args: argparse.Namespace, out=sys.stdout) -> int:
    """Run the drill the flags describe; the exit code."""
    try:
        inputs = _inputs(args)
    except (DrillInputError, ConfigError, RoutingError) as exc:
        print(f"dumont-receiver drill: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return Drill(*inputs, out=out).run()


def _inputs(args) -> tuple:
    config: Config | None = load_config(args.config) if args.config else None
    if args.generated:
        generated = Path(args.generated)
        channels_file = generated / "receiver" / "channels.yml"
    elif config is not None:
        channels_file = Path(config.channels_file)
        generated = generated_dir_of(channels_file)
    else:
        raise DrillInputError("no routing to drill: give --config receiver.yml or --generated generated/<env>")
    routing = load_routing(generated / "alertmanager" / "alertmanager.yml", channels_file)
    urls = list(args.alertmanager or getattr(config, "alertmanager_urls", None) or [])
    prometheus_file = generated / "prometheus" / "prometheus.yml"
    if not urls and prometheus_file.is_file():
        urls = alertmanager_urls(prometheus_file)
    if not urls:
        raise DrillInputError("no Alertmanager to post to: give --alertmanager URL (once per Alertmanager)")
    receiver = args.receiver or (config.external_url if config else None) or next(iter(routing.receiver_urls), None)
    if not receiver:
        raise DrillInputError("no receiver to read the history from: give --receiver URL")
    token_file = args.history_token_file or (config.history_token_file if config else None)
    token = read_secret(token_file, "history token file") if token_file else None
    severities = args.severity or routing.severities()
    if not severities:
        raise DrillInputError(f"{routing.alertmanager_file}: no route names a severity: give --severity NAME")
    try:
        hop = parse_duration(args.hop_timeout) if args.hop_timeout else None
        overall = parse_duration(args.timeout) if args.timeout else None
    except ValueError as exc:
        raise DrillInputError(f"--hop-timeout/--timeout: {exc}") from None
    for name, value in (("--hop-timeout", hop), ("--timeout", overall)):
        if value is not None and value <= 0:
            raise DrillInputError(f"{name}: must be greater than 0")
    alertmanagers = [Alertmanager(url) for url in dict.fromkeys(urls)]
    return routing, alertmanagers, History(receiver, token), severities, hop, overall


class Drill:
    """Every chosen severity drilled at once (each its own Alertmanager group), reported line by line."""

    def __init__(self, routing: Routing, alertmanagers: list[Alertmanager], history: History, severities: list[str],
                 hop_timeout: float | None, timeout: float | None, out=sys.stdout, run_id: str | None = None):
        self.routing = routing
        self.alertmanagers = alertmanagers
        self.history = history
        self.severities = list(dict.fromkeys(severities))
        self.hop_timeout = hop_timeout
        self.timeout = timeout
        self.out = out
        self.run_id = run_id or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)
        self._lock = threading.Lock()
        self.stop = threading.Event()

    def run(self) -> int:
        """Drill, print each hop, and return the exit code."""
        deadline = time.monotonic() + self.timeout if self.timeout else None
        drills = []
        self._print(f"Fire drill {self.run_id}: alert {ALERTNAME} with label {DRILL_LABEL}=\"{self.run_id}\"")
        self._print(f"  Alertmanager: {', '.join(am.url for am in self.alertmanagers)}")
        self._print(f"  receiver history: {self.history.url}")
        self._print(f"  routing: {self.routing.alertmanager_file}, channels: {self.routing.channels_file}")
        self._print("  (each hop's time counts from the post it follows: the alert's, then its resolution's)")
        for severity in self.severities:
            promise = self.routing.promise({"alertname": ALERTNAME, "severity": severity, DRILL_LABEL: self.run_id})
            hop = self.hop_timeout or promise.group_wait + promise.group_interval + HOP_MARGIN
            channels = ", ".join(c.name for c in promise.channels) or "no channel of the receiver"
            self._print(f"  {severity}: receiver(s) {', '.join(promise.receivers)} -> {channels}"
                        + (f"; and around the receiver: {', '.join(promise.around)}" if promise.around else "")
                        + f" (each hop within {hop:g} s)")
            drills.append(SeverityDrill(severity, promise, self.alertmanagers, self.history, self.run_id,
                                        Timing(hop, deadline), self._hop, self.stop))
        for route, kinds in self.routing.around_routes():
            self._print(f"  not drilled: route {route.describe()} (receiver {route.receiver}) goes to "
                        f"Alertmanager's own {', '.join(kinds)} integration(s), around the receiver: a drill "
                        "cannot follow it there (its failures are in Alertmanager's log and "
                        "alertmanager_notifications_failed_total)")
        results = self._run_all(drills)
        if results is None:
            self._print(f"Drill {self.run_id} interrupted; every drill alert was resolved in Alertmanager.")
            return EXIT_INTERRUPTED
        broken = [(d.severity, b) for d, b in zip(drills, results) if b is not None]
        if not broken:
            self._print(f"Drill {self.run_id} passed: {', '.join(self.severities)} went through every hop.")
            return EXIT_PASSED
        if len(broken) > 1:
            for severity, b in broken:
                self._print(f"  {severity}: {b}")
        severity, first = min(broken, key=lambda item: item[1].at)
        self._print(f"Drill {self.run_id} FAILED at {severity}: {first.kind}: {first.detail}")
        return EXIT_BROKEN

    def _run_all(self, drills: list[SeverityDrill]) -> list[Broken | None] | None:
        """Each drill's result in order; None when Ctrl-C stopped them (each resolves its alert first)."""
        with ThreadPoolExecutor(max_workers=max(len(drills), 1), thread_name_prefix="drill") as pool:
            futures = [pool.submit(d.run) for d in drills]
            try:
                return [f.result() for f in futures]
            except KeyboardInterrupt:
                self.stop.set()
                for f in futures:
                    f.result()
                return None

    def _hop(self, severity: str, hop: str, seconds: float, text: str) -> None:
        self._print(f"  {severity:<9} {hop:<24} {seconds:>7.2f}s  {text}")

    def _print(self, line: str) -> None:
        with self._lock:
            print(line, file=self.out, flush=True)
