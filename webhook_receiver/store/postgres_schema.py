"""Numbered SQL migrations of the PostgreSQL store (webhook_receiver/migrations_postgres/), each applied once.

Several receivers starting together each call apply(): a transaction-scoped advisory lock makes them take turns,
and each one after the first finds nothing left to do.
"""
from __future__ import annotations

import time

from webhook_receiver.store import migrations

MIGRATE_LOCK = (0x64756D6F, 1)  # ("dumo", 1): pg_advisory_xact_lock's two-key form, apart from the other locks
FOLDER = "migrations_postgres"  # numbered like SQLite's: the same version means the same schema


def available() -> list[tuple[int, str]]:
    """(version, SQL text) of every PostgreSQL migration, in order."""
    return migrations.available(FOLDER)


def latest() -> int:
    """The version the code expects."""
    return migrations.latest(FOLDER)


def apply(conn) -> int:
    """Apply what is missing in one transaction on `conn` (a psycopg connection); the version afterwards."""
    with conn.transaction():
        # Taken before anything else, CREATE TABLE IF NOT EXISTS included: two of those at once can still collide.
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", MIGRATE_LOCK)
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version"
                     " (version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)")
        current = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
        for version, sql in available():
            if version > current:
                conn.execute(sql)  # no parameters: psycopg sends the file as one multi-statement query
                conn.execute("INSERT INTO schema_version VALUES (%s, %s)", (version, time.time()))
                current = version
    return current


def version(conn) -> int:
    """The applied version on `conn`, 0 when none."""
    if conn.execute("SELECT to_regclass('schema_version') IS NULL").fetchone()[0]:
        return 0
    return conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
