"""Plain SQL on a store's database, SQLite or PostgreSQL, for tests that look at (or break) its rows directly.

Statements are written with SQLite's `?` placeholders and portable SQL; on PostgreSQL the placeholders become
psycopg's `%s`. Each call is its own connection and transaction, as another process's would be.
"""
from __future__ import annotations

import sqlite3

from webhook_receiver.config import is_postgres


def _target(store_or_database) -> str:
    return getattr(store_or_database, "url", None) or getattr(store_or_database, "path", None) or store_or_database


def is_pg(store_or_database) -> bool:
    """Whether the store (or database string) is PostgreSQL."""
    return is_postgres(_target(store_or_database))


def query(store_or_database, sql: str, args=()) -> list[tuple]:
    """Every row `sql` returns, as tuples."""
    target = _target(store_or_database)
    if is_postgres(target):
        import psycopg

        with psycopg.connect(target, autocommit=True) as conn:
            return [tuple(row) for row in conn.execute(sql.replace("?", "%s"), args).fetchall()]
    conn = sqlite3.connect(target)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def one(store_or_database, sql: str, args=()):
    """The first column of the first row (None when there is none)."""
    rows = query(store_or_database, sql, args)
    return rows[0][0] if rows else None


def execute(store_or_database, sql: str, args=()) -> int:
    """Run one statement and commit it; the rows it changed."""
    target = _target(store_or_database)
    if is_postgres(target):
        import psycopg

        with psycopg.connect(target, autocommit=True) as conn:
            return conn.execute(sql.replace("?", "%s"), args).rowcount
    conn = sqlite3.connect(target)
    try:
        with conn:
            return conn.execute(sql, args).rowcount
    finally:
        conn.close()
