"""The per-URL limiter, driven by a fake clock: no test waits or measures time."""
from __future__ import annotations

import threading

from webhook_receiver.channels import RateLimiter


class FakeClock:
    """A clock that only moves when the limiter sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)


def test_posts_to_one_url_are_spaced_one_interval_apart():
    clock = FakeClock()
    limiter = RateLimiter(interval=1.0, clock=clock, sleep=clock.sleep)
    assert [limiter.acquire("https://hooks/a") for _ in range(3)] == [None, None, None]
    # First goes at once; the others wait for the slots 1 s and 2 s ahead
    assert clock.sleeps == [1.0, 2.0]


def test_urls_are_limited_independently():
    clock = FakeClock()
    limiter = RateLimiter(interval=1.0, clock=clock, sleep=clock.sleep)
    limiter.acquire("https://hooks/a")
    limiter.acquire("https://hooks/b")
    assert clock.sleeps == []


def test_a_slot_frees_up_once_the_interval_has_passed():
    clock = FakeClock()
    limiter = RateLimiter(interval=1.0, clock=clock, sleep=clock.sleep)
    limiter.acquire("https://hooks/a")
    clock.now += 0.25
    limiter.acquire("https://hooks/a")
    clock.now += 5
    limiter.acquire("https://hooks/a")
    assert clock.sleeps == [0.75]


def test_concurrent_senders_each_get_their_own_slot():
    clock = FakeClock()
    limiter = RateLimiter(interval=1.0, clock=clock, sleep=clock.sleep)
    threads = [threading.Thread(target=limiter.acquire, args=("https://hooks/a",)) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(clock.sleeps) == [1.0, 2.0, 3.0, 4.0]


def test_back_off_refuses_slots_until_retry_after_has_passed():
    clock = FakeClock()
    limiter = RateLimiter(interval=1.0, clock=clock, sleep=clock.sleep)
    limiter.back_off("https://hooks/a", 30)
    clock.now += 10
    assert limiter.acquire("https://hooks/a") == 20.0
    assert limiter.acquire("https://hooks/b") is None
    clock.now += 20
    assert limiter.acquire("https://hooks/a") is None
    assert clock.sleeps == []
