"""The PostgreSQL store's wake-up: LISTEN on a connection of the relay's own; webhooks NOTIFY in their transaction.

PostgreSQL delivers a notification when its transaction commits (never for one rolled back) and folds the
identical ones of one transaction into one, so a ring always means committed work. Every relay listens, on
whichever receiver it runs: any of them may claim the new rows.
"""
from __future__ import annotations

import logging
import time

import psycopg

from webhook_receiver.store.wakeup import Wakeup

log = logging.getLogger(__name__)
CHANNEL = "dumont_relay"
NOTIFY = f"NOTIFY {CHANNEL}"


class ListenWakeup(Wakeup):
    """LISTEN on its own autocommit connection, reconnecting after a failure (meanwhile wait() only sleeps)."""

    RETRY_AFTER = 5.0  # seconds between attempts to listen again while the database is away

    def __init__(self, connect):
        self._connect = connect  # () -> an autocommit psycopg connection (PostgresStore.connect)
        self._conn: psycopg.Connection | None = None
        self._retry_at = 0.0
        self._listen()

    def _listen(self) -> None:
        if time.monotonic() < self._retry_at:
            return
        try:
            self._conn = self._connect()
            self._conn.execute(f"LISTEN {CHANNEL}")
        except Exception as exc:  # StorageError or psycopg's: the poll goes on meanwhile
            log.warning("relay.wakeup_unavailable error=%r polling only", str(exc))
            self._drop()
            self._retry_at = time.monotonic() + self.RETRY_AFTER

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass
            self._conn = None

    def wait(self, timeout: float) -> bool:
        if self._conn is None:
            self._listen()
        if self._conn is None:
            time.sleep(timeout)
            return False
        try:
            for _ in self._conn.notifies(timeout=timeout, stop_after=1):
                return True
            return False
        except psycopg.Error as exc:
            log.warning("relay.wakeup_lost error=%r", str(exc).strip().splitlines()[0] if str(exc) else "")
            self._drop()
            return False

    def drain(self) -> int:
        if self._conn is None:
            return 0
        taken = 0
        try:
            for _ in self._conn.notifies(timeout=0):
                taken += 1
        except psycopg.Error:
            self._drop()
        return taken

    def close(self) -> None:
        self._drop()
