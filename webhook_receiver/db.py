"""The database for the app: one Store per app, its connections owned by the store (per thread, or a pool)."""
from __future__ import annotations

from flask import Flask, current_app

from webhook_receiver.config import Config, database_password, is_postgres
from webhook_receiver.store.base import Store

_KEY = "dumont.store"


def open_store(config: Config) -> Store:
    """The store `config` names: a postgresql:// URL is a PostgreSQL database, anything else a SQLite file."""
    if is_postgres(config.database):
        from webhook_receiver.store.postgres import PostgresStore  # psycopg only for sites that use it

        return PostgresStore(config.database, password=database_password(config), busy_timeout=config.busy_timeout,
                             claim_timeout=config.claim_timeout)
    from webhook_receiver.store.sqlite import SQLiteStore

    # With a relay, it checkpoints every pass; the cap (~40 MB of WAL) only matters if it is down.
    return SQLiteStore(config.database, busy_timeout=config.busy_timeout,
                       autocheckpoint_pages=10_000 if config.relay else 1000, synchronous=config.synchronous)


def init_app(app: Flask, config: Config) -> Store:
    """Give `app` its store (returned); views reach it through get_store()."""
    store = app.extensions[_KEY] = open_store(config)
    return store


def close_store(app: Flask) -> None:
    """Close `app`'s store, writing what it still holds in memory."""
    store = app.extensions.get(_KEY)
    if store is not None:
        store.close()


def get_store() -> Store:
    """The current app's store."""
    return current_app.extensions[_KEY]
