"""Run one read beside another, on threads of a pool of the process's own: the stats' two halves on two cores."""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Callable, TypeVar

Beside = TypeVar("Beside")
Here = TypeVar("Here")
WORKERS = 4  # stats requests that can each have their second half running at once; more wait for a thread


class Sidecar:
    """A few threads per process (made again after a fork: a pool's threads are not the child's)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._pid: int | None = None

    def run(self, beside: Callable[[], Beside], here: Callable[[], Here]) -> tuple[Beside, Here]:
        """Both results, `beside` computed on a sidecar thread while `here` runs on this one.

        Whichever raises, both have finished when this returns or raises: a read half-running on a store that the
        caller goes on to close would use a closed connection.
        """
        future = self._executor().submit(beside)
        try:
            result = here()
        except BaseException:
            wait([future])
            raise
        return future.result(), result

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pid != os.getpid():
                self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="stats")
                self._pid = os.getpid()
            return self._pool
