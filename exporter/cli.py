"""`dumont-exporter`: serve the dumont_* families on /metrics, for this host and optionally a simulated fleet."""
from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
import threading

import psutil
from prometheus_client.registry import CollectorRegistry

from exporter import checks
from exporter.durations import format_duration, parse_duration
from exporter.host_collector import HostCollector
from exporter.retired import DEFAULT_RETIRED_TTL_SECONDS
from exporter.server import MetricsServer
from exporter.simulation import Simulation, one_line
from exporter.telemetry import Telemetry

DEFAULT_LISTEN = "127.0.0.1:9877"  # not 9090: that port belongs to Prometheus
log = logging.getLogger("dumont-exporter")


def parse_listen(value: str) -> tuple[str, int]:
    """`host:port` (or `[v6]:port`) as a (host, port) pair; port 0 picks a free port."""
    host, separator, port = value.rpartition(":")
    if not separator or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def parse_positive_duration(value: str) -> float:
    """Seconds in a positive Prometheus duration such as `2h` or `90m`."""
    seconds = parse_duration(value)
    if seconds is None or seconds <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive duration such as 2h, got {value!r}")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    """The command line of dumont-exporter."""
    parser = argparse.ArgumentParser(prog="dumont-exporter", description=__doc__)
    parser.add_argument("--listen", type=parse_listen, default=DEFAULT_LISTEN, metavar="HOST:PORT",
                        help=f"address to serve /metrics on (default {DEFAULT_LISTEN})")
    parser.add_argument("--machine-id", default=socket.gethostname(), type=_label("machine_id"),
                        help="machine_id label of this host's readings (default: the hostname)")
    parser.add_argument("--machine-type", default="host", type=_label("machine_type"), help="machine_type label of this host's readings")
    parser.add_argument("--simulate", metavar="SCENARIO", help="play the fleet in this scenario file")
    parser.add_argument("--retired-ttl", type=parse_positive_duration, default=DEFAULT_RETIRED_TTL_SECONDS,
                        metavar="DURATION",
                        help="how long a retired machine's mark stays; must outlast the rules' vanish window "
                             f"(default {format_duration(DEFAULT_RETIRED_TTL_SECONDS)})")
    parser.add_argument("--no-host-metrics", action="store_true",
                        help="do not read this host's CPU, memory and disks")
    return parser


def _label(name: str):
    """An argparse type: a label value as the API takes it (exporter.checks.text)."""
    def parse(text: str) -> str:
        try:
            return checks.text(name, text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    return parse


def main(argv: list[str] | None = None) -> int:
    """Run the exporter until SIGINT or SIGTERM; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda received, frame: stop.set())
    registry = CollectorRegistry()
    host = None if args.no_host_metrics else HostCollector(psutil, args.machine_id, args.machine_type)
    telemetry = Telemetry(registry=registry, host=host, retired_ttl=args.retired_ttl)
    try:
        simulation = Simulation(args.simulate, telemetry) if args.simulate else None
    except ValueError as error:
        log.error("scenario rejected: %s", one_line(error))
        return 2
    host_name, port = args.listen
    try:
        server = MetricsServer(registry, port, host_name)
    except OSError as error:
        log.error("cannot listen on %s:%d: %s", host_name, port, error.strerror or error)
        return 1
    bound_host, bound_port = server.address
    log.info("listening on http://%s:%d/metrics", f"[{bound_host}]" if ":" in bound_host else bound_host,
             bound_port)
    try:
        if simulation is not None:
            simulation.run(stop)
        else:
            stop.wait()
    finally:
        server.close()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
