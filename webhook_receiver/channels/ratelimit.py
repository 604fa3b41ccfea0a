"""A thread-safe limiter that spaces requests to one key (a webhook URL) at least `interval` apart."""
from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable


class RateLimiter:
    """Hand out send slots per key; remember a server's Retry-After so nobody posts into it."""

    def __init__(
        self,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        max_back_off: float = 86400.0,
    ) -> None:
        self.interval = interval
        self.max_back_off = max_back_off  # no back-off outlasts this, whatever a caller passes (inf included)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_slot: dict[str, float] = {}
        self._blocked_until: dict[str, float] = {}

    def acquire(self, key: str) -> float | None:
        """Wait for the key's next slot and return None, or return the seconds a back-off still lasts."""
        key = _digest(key)
        with self._lock:
            now = self._clock()
            blocked = self._blocked_until.get(key, 0.0) - now
            if blocked > 0:
                # Waiting out a Retry-After (possibly minutes) would make send() unbounded
                return blocked
            slot = max(now, self._next_slot.get(key, now))
            # Reserve the slot under the lock so concurrent senders queue up one interval apart
            self._next_slot[key] = slot + self.interval
        if slot > now:
            self._sleep(slot - now)
        return None

    def back_off(self, key: str, seconds: float) -> None:
        """Refuse slots for `key` for the next `seconds` (the server's Retry-After); nan or negative is ignored."""
        if not isinstance(seconds, (int, float)) or math.isnan(seconds) or seconds <= 0:
            return  # a back-off that cannot be compared would block the key for ever (nan) or never
        seconds = min(seconds, self.max_back_off)
        key = _digest(key)
        with self._lock:
            until = self._clock() + seconds
            self._blocked_until[key] = max(self._blocked_until.get(key, 0.0), until)


def _digest(key: str) -> str:
    # Webhook URLs are secrets: keep only their hash in memory that outlives a send
    return hashlib.sha256(key.encode()).hexdigest()


# One limiter per process: Slack's limit is per webhook URL, whichever channel or thread posts to it
SLACK_LIMITER = RateLimiter(interval=1.0)
