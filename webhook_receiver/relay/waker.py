"""Wake the channels' delivery threads when a webhook commits new work, instead of at their next poll.

A page then waits milliseconds in the receiver, not up to relay_interval. Waking is coalesced so that grouping
keeps its meaning: a pass starts `relay_coalesce` after the first ring (the webhooks of one Alertmanager flush
arrive together and share it). When more rang during a window, a storm is on: the next window is twice as long,
up to relay_interval, so a long storm is still a few digests rather than one per webhook; a window in which
nothing more rang, or a quiet spell longer than the window, brings it back to relay_coalesce, so alerts spaced
apart each go at once. The channels' own poll every relay_interval stays, for rings that were lost.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Iterable

from webhook_receiver.store.base import StorageError
from webhook_receiver.store.wakeup import Wakeup

log = logging.getLogger(__name__)
STOP_CHECK = 0.5  # seconds: how often an idle waker looks at the stop flag
MIN_GROWTH = 0.01  # seconds: the second window of a burst at least (relay_coalesce may be 0)


class Waker:
    """Waits on the store's wake-up; after each coalescing window, applies the intake and wakes the channels."""

    def __init__(self, wakeup: Wakeup, wakes: Iterable[threading.Event], apply: Callable[[], object],
                 coalesce: float, interval: float):
        self.wakeup, self.wakes, self.apply = wakeup, tuple(wakes), apply
        self.coalesce, self.interval = coalesce, interval

    def run(self, stop: threading.Event) -> None:
        """Until `stop`: wait for a ring, hold the window, then one pass for everything rung meanwhile."""
        window, passed = self.coalesce, time.monotonic()
        while not stop.is_set():
            if not self.wakeup.wait(STOP_CHECK):
                continue
            if time.monotonic() - passed >= window:  # quiet for longer than the window: the storm is over
                window = self.coalesce
            if stop.wait(window):
                break
            more = self.wakeup.drain()  # what rang during the window is in this pass
            try:
                self.apply()  # SQLite: move the intake into the outbox, where the channels claim
            except StorageError as exc:  # the channels' poll retries
                log.error("relay.wake_failed error=%r", str(exc))
            for wake in self.wakes:
                wake.set()
            passed = time.monotonic()
            window = min(max(window * 2, MIN_GROWTH), self.interval) if more else self.coalesce
        self.wakeup.close()
