"""`dumont-receiver`: serve (HTTP + relay), relay (the outbox worker alone), init-db (migrations), migrate-db
(a SQLite history into PostgreSQL), drill (a synthetic alert followed through the whole path)."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from webhook_receiver import logs
from webhook_receiver.channels import ChannelSet, load_channels
from webhook_receiver.config import (Config, ConfigError, check_database, database_password, is_postgres, load_config,
                                     read_secret)
from webhook_receiver.db import open_store
from webhook_receiver.drill import command as drill
from webhook_receiver.relay.worker import RelayWorker
from webhook_receiver.runbooks import check_config as check_runbooks
from webhook_receiver.store.base import StorageError

log = logging.getLogger(__name__)


def _init_db(config: Config, channels, args) -> int:
    store = open_store(config)
    try:
        version = store.migrate()
    except StorageError as exc:  # unreachable, refused: one line naming the database (its URL holds no password)
        print(f"dumont-receiver init-db: error: {config.database}: {exc}", file=sys.stderr)
        return 1
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
    except StorageError as exc:
        print(f"dumont-receiver serve: error: {config.database}: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    relay = RelayProcess(os.path.abspath(args.config)) if config.relay else None
    log.info("serve.start listen=%s workers=%d threads=%d relay=%s", config.listen, config.workers,
             config.threads, config.relay)
    ReceiverServer(config, relay).run()
    return 0


def _migrate_db(args) -> int:
    """Copy the SQLite history `--from` into the empty PostgreSQL database `--to`."""
    from webhook_receiver.store.postgres import PostgresStore
    from webhook_receiver.store.postgres_copy import MigrationRefused, copy_sqlite_to_postgres

    try:
        if not is_postgres(args.to):
            raise ConfigError("--to: expected postgresql://user@host:port/name")
        check_database({"database": args.to}, "--to")  # checked as receiver.yml's `database` is: no password
        if not os.path.isfile(args.source):
            raise ConfigError(f"--from: {args.source}: no such SQLite file")
        password = None
        if args.password_file:
            password = read_secret(args.password_file, "--password-file")
        elif args.password_env:
            password = os.environ.get(args.password_env) or None
            if password is None:
                raise ConfigError(f"--password-env: the environment variable {args.password_env} is not set or empty")
    except ConfigError as exc:
        print(f"dumont-receiver migrate-db: error: {exc}", file=sys.stderr)
        return 2
    target = PostgresStore(args.to, password=password)
    try:
        copied = copy_sqlite_to_postgres(args.source, target, progress=lambda line: print(f"  {line}"))
    except (MigrationRefused, StorageError) as exc:
        print(f"dumont-receiver migrate-db: error: {exc}", file=sys.stderr)
        return 1
    finally:
        target.close()
    print(f"copied {sum(copied.values())} rows from {args.source} into {args.to}")
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
    migrate = commands.add_parser("migrate-db", help="copy a SQLite history into an empty PostgreSQL database",
                                  description=_migrate_db.__doc__ + " Stop the receivers on the SQLite file first.")
    migrate.add_argument("--from", dest="source", required=True, metavar="SQLITE_PATH", help="the SQLite file")
    migrate.add_argument("--to", required=True, metavar="URL", help="postgresql://user@host:port/name (no password)")
    secret = migrate.add_mutually_exclusive_group()
    secret.add_argument("--password-file", help="file holding the PostgreSQL password")
    secret.add_argument("--password-env", help="environment variable holding the PostgreSQL password")
    drill.add_arguments(commands.add_parser(
        "drill", help="fire a tagged synthetic alert through each Alertmanager and follow it to every channel",
        description=drill.DESCRIPTION))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `dumont-receiver`."""
    args = build_parser().parse_args(argv)
    if args.command == "migrate-db":  # needs no receiver.yml: both databases are named on the command line
        logs.configure("info")
        return _migrate_db(args)
    if args.command == "drill":  # reads receiver.yml only for defaults, and talks HTTP only
        return drill.run(args)
    try:
        config = load_config(args.config)
        # Loaded here for every command, so a bad channels file fails once with a clear message.
        channels = load_channels(config.channels_file)
        database_password(config)  # a missing password file or variable is a configuration error, said now
        if args.command == "serve":  # said here: gunicorn's workers would only log it
            check_runbooks(config)
    except ValueError as exc:  # ConfigError and the channels loader's errors name file and field
        print(f"dumont-receiver: error: {exc}", file=sys.stderr)
        return 2
    logs.configure(config.log_level)
    return args.handler(config, channels, args)
