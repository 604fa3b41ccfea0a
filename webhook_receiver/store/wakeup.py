"""How the relay learns of new work the moment a webhook commits it, rather than at its next poll.

Each store rings its own way (SQLite: a datagram on a local socket, store/sqlite_wakeup.py; PostgreSQL:
NOTIFY, store/postgres_wakeup.py) and the relay waits on a Wakeup. A ring can be lost (no relay listening yet,
a full socket buffer, a dropped connection): the relay's poll every relay_interval stays the fallback.
"""
from __future__ import annotations

import abc


class Wakeup(abc.ABC):
    """What the relay waits on: rung after every commit that queued messages."""

    @abc.abstractmethod
    def wait(self, timeout: float) -> bool:
        """Block until rung (True, that ring taken) or `timeout` seconds passed (False)."""

    @abc.abstractmethod
    def drain(self) -> int:
        """Take every ring received since: the pass about to start covers them; how many there were."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop listening."""
