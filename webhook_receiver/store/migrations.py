"""Numbered SQL migrations from webhook_receiver/migrations/, applied once each under a schema_version table."""
from __future__ import annotations

import re
import sqlite3
import time
from importlib import resources

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def available(folder: str = "migrations") -> list[tuple[int, str]]:
    """(version, SQL text) of every migration file in `folder` of the package (SQLite's by default), in order."""
    found = []
    for entry in (resources.files("webhook_receiver") / folder).iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.read_text(encoding="utf-8")))
    return sorted(found)


def latest(folder: str = "migrations") -> int:
    """The version the code expects."""
    return available(folder)[-1][0]


def _statements(sql: str):
    buffer = ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            yield buffer
            buffer = ""


def apply(conn: sqlite3.Connection) -> int:
    """Apply what is missing in one transaction; safe to call from several processes at once."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version "
                 "(version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
    # IMMEDIATE takes the write lock first, so two processes cannot both apply the same file.
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
        for version, sql in available():
            if version > current:
                for statement in _statements(sql):
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version VALUES (?, ?)", (version, time.time()))
                current = version
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return current
