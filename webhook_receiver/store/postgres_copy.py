"""`dumont-receiver migrate-db`: copy a SQLite history into an empty PostgreSQL database, in one transaction.

Every table that carries history or state is copied with its ids (outbox rows and attempts refer to events,
notifications and deliveries by id), then each identity sequence is moved past the largest id. The source is
brought to the current schema and its intake applied first, as `serve` would; rows a stopped SQLite relay had
claimed (`sending`) arrive pending, as a new relay would have made them.
"""
from __future__ import annotations

import sqlite3
from typing import Callable

from webhook_receiver.store import migrations as sqlite_migrations
from webhook_receiver.store.base import StorageError
from webhook_receiver.store.postgres import PostgresStore, describe
from webhook_receiver.store.postgres_relay import text
from webhook_receiver.store.sqlite import SQLiteStore

# (table, columns, identity column or None), parents first. Columns are the SQLite store's at version 10, but
# 0009's generated columns of events (starts_at_ms, ends_at_ms, machine_id, drill): computed on both, never copied.
TABLES = (
    ("notifications", ("id", "channel", "receiver", "status", "group_key", "group_labels", "truncated_alerts",
                       "external_url", "received_at", "cut_alerts", "cut_body_bytes", "cut_max_body_bytes"), "id"),
    ("events", ("id", "fingerprint", "status", "starts_at", "ends_at", "alertname", "severity", "labels",
                "annotations", "generator_url", "received_at", "episode", "origin", "suppressed"), "id"),
    ("alerts", ("fingerprint", "event_id", "status", "starts_at", "severity", "episode"), None),
    ("outbox", ("id", "channel", "event_id", "notification_id", "state", "attempts", "due_at", "finished_at",
                "detail", "created_at", "reference"), "id"),
    ("deliveries", ("id", "channel", "attempted_at", "ok", "digest", "event_count", "detail"), "id"),
    ("delivery_items", ("delivery_id", "outbox_id"), None),
    ("heartbeats", ("channel", "last_at"), None),
    ("state", ("key", "value"), None),
    ("counters", ("name", "label", "value"), None),
    ("sightings", ("fingerprint", "event_id", "state", "detail", "last_seen"), None),
    ("suppression_changes", ("id", "fingerprint", "event_id", "state", "detail", "at"), "id"),
)
_BOOLEANS = {("deliveries", "ok"), ("deliveries", "digest"), ("events", "suppressed")}  # 0/1 in SQLite


class MigrationRefused(Exception):
    """The copy cannot start (a target that is not empty, a source at another schema version); nothing was written."""


def _row_converter(table: str, columns: tuple[str, ...]) -> Callable[[tuple], tuple]:
    flags = [(table, column) in _BOOLEANS for column in columns]
    state_at = columns.index("state") if table == "outbox" else None

    def convert(row: tuple) -> tuple:
        values = [bool(value) if flag and value is not None else text(value) for value, flag in zip(row, flags)]
        if state_at is not None and values[state_at] == "sending":
            values[state_at] = "pending"  # the SQLite relay is stopped: its claims are due again
        return tuple(values)
    return convert


def copy_sqlite_to_postgres(source: str, target: PostgresStore, progress: Callable[[str], None] = print) -> dict:
    """Copy every history and state table of the SQLite file `source` into `target` (migrated, empty); rows per table."""
    sqlite_store = SQLiteStore(source)
    try:
        version = sqlite_store.migrate()  # what `serve` would do to it first
        sqlite_store.apply_intake()       # queued messages into the outbox, the alerts' newest state
    finally:
        sqlite_store.close()
    if version != sqlite_migrations.latest():
        raise MigrationRefused(f"{source}: schema version {version}, expected {sqlite_migrations.latest()}")
    target_version = target.migrate()
    if target_version != version:
        raise MigrationRefused(f"the PostgreSQL database is at schema version {target_version}, the SQLite file"
                               f" at {version}: upgrade the older one first")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, isolation_level=None)
    src.text_factory = lambda raw: raw.decode("utf-8", "replace")  # text another tool wrote: kept readable
    copied: dict[str, int] = {}
    try:
        src.execute("BEGIN")  # one snapshot of the source for every table
        conn = target.connect()
        try:
            with conn.transaction():
                names = ", ".join(table for table, _, _ in TABLES)
                # No receiver may write in between the check and the copy.
                conn.execute(f"LOCK TABLE {names} IN SHARE ROW EXCLUSIVE MODE")
                busy = [table for table, _, _ in TABLES
                        if conn.execute(f"SELECT EXISTS (SELECT 1 FROM {table})").fetchone()[0]]
                if busy:
                    raise MigrationRefused(f"the PostgreSQL database is not empty ({', '.join(busy)} hold rows):"
                                           " migrate-db only copies into an empty one")
                for table, columns, identity in TABLES:
                    convert = _row_converter(table, columns)
                    listed = ", ".join(columns)
                    count = 0
                    with conn.cursor().copy(f"COPY {table} ({listed}) FROM STDIN") as copy:
                        for row in src.execute(f"SELECT {listed} FROM {table} ORDER BY rowid"
                                               if table not in ("delivery_items", "counters") else
                                               f"SELECT {listed} FROM {table}"):
                            copy.write_row(convert(row))
                            count += 1
                    if identity:  # the next row a receiver stores gets the next id, not one copied here
                        conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', '{identity}'),"
                                     f" coalesce((SELECT max({identity}) FROM {table}), 0) + 1, false)")
                    copied[table] = count
                    progress(f"{table}: {count} rows")
        except MigrationRefused:
            raise
        except Exception as exc:
            if isinstance(exc, sqlite3.Error) or type(exc).__module__.startswith("psycopg"):
                raise StorageError(f"the copy failed, nothing was written: {describe(exc)}") from exc
            raise
        finally:
            conn.close()
    finally:
        src.close()
    return copied
