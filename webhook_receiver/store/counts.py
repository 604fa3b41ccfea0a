"""Counters for /metrics kept in each process's memory and added to the database within a second, by both stores.

A transaction per rejected request would turn a flood of bad requests into write load, and a 503 for a locked
database would wait for it again.
"""
from __future__ import annotations

import os
import threading
from collections import Counter

from webhook_receiver.store.base import StorageError

COUNTS_FLUSH_INTERVAL = 1.0  # seconds a count() may wait in memory before it is written


class BufferedCounts:
    """Mixin: count() in memory, one flusher thread per process; the store adds `_add_counts(deltas)`, `_lock`
    and `_closing` (set on close, which calls flush_counts last)."""

    def _init_counts(self) -> None:
        self._unflushed: Counter[tuple[str, str]] = Counter()  # count()s not yet written, this process
        self._counts_lock = threading.Lock()
        self._flusher: threading.Thread | None = None
        self._flusher_pid: int | None = None

    def count(self, name: str, label: str, amount: int = 1) -> None:
        with self._counts_lock:
            self._unflushed[name, label] += amount
        if self._flusher_pid != os.getpid():  # one flusher per process (gunicorn forks workers)
            with self._lock:
                if self._flusher_pid != os.getpid():
                    self._flusher_pid = os.getpid()
                    self._flusher = threading.Thread(target=self._flush_counts_forever, args=(self._closing,),
                                                     name="counts-flusher", daemon=True)
                    self._flusher.start()

    def _flush_counts_forever(self, closing: threading.Event) -> None:
        while not closing.wait(COUNTS_FLUSH_INTERVAL):
            self.flush_counts()

    def flush_counts(self) -> None:
        """Add the counts this process holds in memory to the stored ones; on a failure they wait for the next flush."""
        with self._counts_lock:
            deltas, self._unflushed = self._unflushed, Counter()
        if not deltas:
            return
        try:
            self._add_counts(deltas)
        except StorageError:
            with self._counts_lock:
                self._unflushed.update(deltas)
