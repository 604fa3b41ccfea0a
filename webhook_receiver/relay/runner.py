"""The relay's threads: one delivery thread per channel, one for pruning, housekeeping in the caller's, one that
wakes the channels when a webhook commits new work (relay/waker.py), the outbound heartbeat's (relay/ping.py) and
reconciliation's (webhook_receiver/reconcile) when configured.

Why threads: a channel that hangs (a Slack that answers nothing until its timeout) or keeps failing must
delay only itself, never email, the dead man's switch or pruning (Alertmanager's notify package fans out
the same way). Each thread has its own store connection (SQLiteStore keeps one per thread), and writes
still go one at a time through the store's writer lock. The claim/mark protocol is unchanged: a channel's
rows are claimed and finished only by that channel's thread, in the one relay of the database.
"""
from __future__ import annotations

import logging
import threading
import time

from webhook_receiver.reconcile.runner import Reconciler
from webhook_receiver.relay.ping import Pinger
from webhook_receiver.relay.waker import Waker
from webhook_receiver.relay.worker import RelayWorker
from webhook_receiver.store.base import StorageError

log = logging.getLogger(__name__)
JOIN_TIMEOUT = 15.0  # seconds the threads get to finish the send under way when the relay stops


def _loop(name: str, stop: threading.Event, wake: threading.Event | None, interval: float, step) -> None:
    """Run `step()` every `interval` (sooner when woken) until `stop`; a failure waits for the next turn."""
    while not stop.is_set():
        try:
            step()
        except Exception as exc:  # logged, never fatal: the next turn retries, an interval later
            log.error("relay.pass_failed part=%s error=%r", name, f"{type(exc).__name__}: {exc}",
                      exc_info=not isinstance(exc, StorageError))
        if wake is None:
            stop.wait(interval)
        else:
            wake.wait(interval)
            wake.clear()


def run_threads(worker: RelayWorker, stop: threading.Event) -> None:
    """Start the channels', pruning and heartbeat ping threads, do housekeeping here until `stop`, then join."""
    config = worker.config
    log.info("relay.started channels=%s", ",".join(sorted(worker.channels.channels)))
    wakes = {name: threading.Event() for name in worker.deliverable}
    threads = [threading.Thread(target=_loop, name=f"relay-{name}", daemon=True,
                                args=(name, stop, wakes[name], config.relay_interval,
                                      lambda name=name: worker.deliver(name, worker.clock())))
               for name in sorted(worker.deliverable)]
    threads.append(threading.Thread(target=_loop, name="relay-prune", daemon=True,
                                    args=("prune", stop, None, config.prune_interval,
                                          lambda: worker.prune(worker.clock()))))
    reconciler = None
    if config.alertmanager_urls:
        reconciler = Reconciler(worker.store, config.alertmanager_urls,
                                sorted(set(worker.deliverable) - worker.channels.quiet_on_reconcile),
                                timeout=config.reconcile_timeout, grace=config.reconcile_grace,
                                warmup=config.reconcile_warmup, clock=worker.clock)
        threads.append(threading.Thread(target=_loop, name="relay-reconcile", daemon=True,
                                        args=("reconcile", stop, None, config.reconcile_interval,
                                              reconciler.run_once)))
    waker = Waker(worker.store.wakeup(), wakes.values(), worker.store.apply_intake,
                  coalesce=config.relay_coalesce, interval=config.relay_interval)
    threads.append(threading.Thread(target=waker.run, name="relay-waker", daemon=True, args=(stop,)))
    for thread in threads:
        thread.start()
    pinger = Pinger.from_config(config, worker.store)
    if pinger is not None:
        pinger.start()

    def housekeeping() -> None:
        now = worker.clock()
        if worker.housekeeping(now):
            for wake in wakes.values():  # what the intake brought is due now: no need to wait for the interval
                wake.set()
        worker.beat(now)
        if pinger is not None:  # this pass completed: the outside check hears of it if the threads keep up
            pinger.offer(now, worker.pass_at, threads)

    _loop("housekeeping", stop, None, config.relay_interval, housekeeping)
    if pinger is not None:
        pinger.close()
    for wake in wakes.values():
        wake.set()
    # A send under way ends within its channel's timeout; `serve` kills the relay 20 s after SIGTERM anyway,
    # and a send cut short is sent again by the next relay (its rows stay claimed).
    deadline = time.monotonic() + JOIN_TIMEOUT
    for thread in threads:
        thread.join(timeout=max(deadline - time.monotonic(), 0.0))
        if thread.is_alive():
            log.warning("relay.thread_still_running thread=%s", thread.name)
    if reconciler is not None:
        reconciler.close()
    log.info("relay.stopped")
