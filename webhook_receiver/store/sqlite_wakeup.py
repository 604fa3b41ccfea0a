"""The SQLite store's wake-up: a datagram to a socket in Linux's abstract namespace, named after the database.

One relay per database binds it; every process that commits a webhook sends it one byte, without waiting and
ignoring every error (nobody bound, buffer full): a lost ring costs at most a poll interval. The abstract
namespace needs no file (nothing to clean up after a crash) and has no path length limit; it is per host,
like the SQLite database itself.
"""
from __future__ import annotations

import hashlib
import logging
import os
import select
import socket

from webhook_receiver.store.wakeup import Wakeup

log = logging.getLogger(__name__)


def address(database: str) -> bytes:
    """The socket name of `database` (an abstract address: a NUL, then the name)."""
    digest = hashlib.sha256(os.path.realpath(database).encode()).hexdigest()[:32]
    return b"\0dumont-relay-" + digest.encode()


class Ringer:
    """The webhook side: one non-blocking datagram socket per process."""

    def __init__(self, database: str):
        self.address = address(database)
        self._sock: socket.socket | None = None
        self._pid: int | None = None

    def ring(self) -> None:
        """Tell the relay there is new work; never blocks, never raises."""
        try:
            if self._pid != os.getpid():  # a socket inherited across gunicorn's fork is the parent's
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
                self._pid = os.getpid()
            self._sock.sendto(b"!", self.address)
        except OSError:  # no relay bound (ECONNREFUSED), its buffer full (EAGAIN): it polls anyway
            pass

    def close(self) -> None:
        """Close this process's socket."""
        if self._sock is not None and self._pid == os.getpid():
            self._sock.close()
        self._sock = self._pid = None


class SocketWakeup(Wakeup):
    """The relay side: the bound socket; without it (bind failed) wait() only sleeps, and the poll does the work."""

    def __init__(self, database: str):
        self._sock: socket.socket | None = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
        try:
            self._sock.bind(address(database))
        except OSError as exc:
            log.warning("relay.wakeup_unavailable database=%s error=%r polling only", database, str(exc))
            self._sock.close()
            self._sock = None

    def wait(self, timeout: float) -> bool:
        if self._sock is None:
            select.select([], [], [], timeout)
            return False
        readable, _, _ = select.select([self._sock], [], [], timeout)
        return bool(readable) and self._take()

    def drain(self) -> int:
        taken = 0
        while self._sock is not None and self._take():
            taken += 1
        return taken

    def _take(self) -> bool:
        """Receive one ring, if one is waiting."""
        try:
            self._sock.recv(64)
            return True
        except OSError:  # BlockingIOError: none waiting
            return False

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
