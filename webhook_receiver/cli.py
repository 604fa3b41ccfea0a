"""`dumont-receiver`: serve (HTTP + relay), relay (the outbox worker alone), init-db (migrations)."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from webhook_receiver import logs
from webhook_receiver.channels import ChannelSet, load_channels
from webhook_receiver.config import Config, load_config
from webhook_receiver.db import open_store
from webhook_receiver.relay.worker import RelayWorker
from webhook_receiver.store.base import StorageError

log = logging.getLogger(__name__)


def _init_db(config: Config, channels, args) -> int:
    store = open_store(config)
    try:
        version = store.migrate()
    finally:
        store.close()
    print(f"database {config.database}: schema version {version}")
    return 0


def _relay(config: Config, channels: ChannelSet, args) -> int:
    store = open_store(config)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if args.parent_pid:
        # Started by `serve`: leave with the master even if it dies without stopping us.
        def watch_parent() -> None:
            while not stop.wait(1.0):
                if os.getppid() != args.parent_pid:
                    log.warning("relay.parent_gone parent_pid=%d", args.parent_pid)
                    stop.set()
        threading.Thread(target=watch_parent, name="parent-watch", daemon=True).start()
    try:
        store.migrate()
        worker = RelayWorker(store, channels, config)
    except StorageError as exc:
        print(f"dumont-receiver relay: error: {exc}", file=sys.stderr)
        return 1
    else:
        worker.run_forever(stop)
    finally:
        store.close()
    return 0


def _serve(config: Config, channels: ChannelSet, args) -> int:
    from webhook_receiver.server import ReceiverServer, RelayProcess  # gunicorn only when serving

    store = open_store(config)
    try:
        store.migrate()
    finally:
        store.close()
    relay = RelayProcess(os.path.abspath(args.config)) if config.relay else None
    log.info("serve.start listen=%s workers=%d threads=%d relay=%s", config.listen, config.workers,
             config.threads, config.relay)
    ReceiverServer(config, relay).run()
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(prog="dumont-receiver", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, handler, text in (("serve", _serve, "serve HTTP under gunicorn and run the relay worker"),
                                ("relay", _relay, "run only the relay worker (outbox, dead man's switch, pruning)"),
                                ("init-db", _init_db, "create or migrate the database")):
        command = commands.add_parser(name, help=text)
        command.add_argument("--config", required=True, help="receiver.yml")
        command.set_defaults(handler=handler)
        if name == "relay":
            command.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `dumont-receiver`."""
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config)
        # Loaded here for every command, so a bad channels file fails once with a clear message.
        channels = load_channels(config.channels_file)
    except ValueError as exc:  # ConfigError and the channels loader's errors name file and field
        print(f"dumont-receiver: error: {exc}", file=sys.stderr)
        return 2
    logs.configure(config.log_level)
    return args.handler(config, channels, args)
