"""The outbox worker: delivers queued state changes through the channels, retries, folds storms into digests."""
from __future__ import annotations

import logging
import random
import threading
import time
from typing import Callable, Sequence
from urllib.parse import quote, urlencode

from webhook_receiver.channels import formatting as fmt
from webhook_receiver.channels.model import Channel, ChannelSet, Message, SendResult, StormSummary
from webhook_receiver.config import Config
from webhook_receiver.deadman import Deadman
from webhook_receiver.payload import format_epoch
from webhook_receiver.store.base import DELIVERED, FAILED, PENDING, OutboxItem, RowUpdate, StorageError, Store

log = logging.getLogger(__name__)
# State changes one digest speaks for at most: a storm larger than this becomes one digest per pass, and
# the relay never holds an unbounded backlog in memory.
DIGEST_MAX = 5000


class RelayWorker:
    """Runs one relay pass at a time; exactly one worker may run per database."""

    def __init__(self, store: Store, channels: ChannelSet, config: Config,
                 clock: Callable[[], float] = time.time, rng: random.Random | None = None):
        self.store = store
        self.channels = channels
        self.config = config
        self.clock = clock
        self.rng = rng or random.Random()
        self.deadman = Deadman(store, channels.deadman, clock()) if channels.deadman else None
        self._next_prune = 0.0
        # Outcomes of sends whose recording failed; written before anything else is claimed.
        self._unrecorded: list[tuple] = []
        store.become_relay()
        # Rows a previous relay claimed but never finished (it crashed mid-send) are due again.
        released = store.release_claims()
        if released:
            log.warning("relay.released_claims rows=%d", released)

    def run_once(self, now: float) -> int:
        """One pass at time `now`: dead man's switch, every due delivery, pruning; messages sent."""
        self._record_unrecorded()
        if self.deadman:
            self.deadman.check(now)
        self.store.apply_intake()
        sent = 0
        for name, due in sorted(self.store.due_counts(now).items()):
            sent += self._deliver_channel(name, due, now)
        self.store.checkpoint()
        if now >= self._next_prune:
            removed = self.store.prune(now - self.config.retention)
            if removed:
                log.info("relay.pruned rows=%d", removed)
            self._next_prune = now + self.config.prune_interval
        return sent

    def run_forever(self, stop: threading.Event) -> None:
        """Pass after pass until `stop` is set; a storage hiccup waits for the next pass."""
        log.info("relay.started channels=%s", ",".join(sorted(self.channels.channels)))
        while not stop.is_set():
            try:
                self.run_once(self.clock())
            except StorageError as exc:
                log.error("relay.pass_failed error=%r", str(exc))
            stop.wait(self.config.relay_interval)
        log.info("relay.stopped")

    def _deliver_channel(self, name: str, due: int, now: float) -> int:
        channel = self.channels.channels.get(name)
        if channel is None or channel.type == "heartbeat":
            # Queued before the channels file changed: nothing can deliver it, say so in the history.
            items = self.store.claim(name, now, None)
            self._finish(name, items, SendResult(False, permanent=True, detail=f"channel {name!r} is not"
                                                 " configured for delivery"), now, digest=False)
            return 0
        if due > self.config.storm_threshold:
            # Counted in the database: decoding thousands of rows' labels for a 20-line summary cost the
            # relay ~80 us an alert, on the cores the webhooks of the same storm need.
            items, groups, examples = self.store.claim_digest(name, now, DIGEST_MAX, fmt.EXAMPLES, fmt.SEVERITIES)
            if not items:
                return 0
            return int(self._send(channel, items, now, digest=True, summary=fmt.summarize_groups(groups, examples)))
        sent = 0
        while sent * self.config.batch_size < due:
            items = self.store.claim(name, now, self.config.batch_size)
            if not items:
                break
            ok = self._send(channel, items, now, digest=False)
            sent += 1
            if not ok:
                break  # the rest waits for this channel's backoff
        return sent

    def _send(self, channel: Channel, items: Sequence[OutboxItem], now: float, digest: bool,
              summary: StormSummary | None = None) -> bool:
        # Per group, the newest post's cut (items are oldest first): a later post of a group, or a retry,
        # counts the same left-out alerts again.
        newest = {item.group_key: item for item in items}.values()
        limits = [item.cut_max_body_bytes for item in newest if item.cut_max_body_bytes]
        events = summary.examples if summary is not None else tuple(item.event for item in items)
        message = Message(channel.name, events, self._history_url(channel.name, items, digest), digest,
                          left_out=sum(item.truncated_alerts for item in newest), summary=summary,
                          cut_by_receiver=sum(item.cut_alerts for item in newest),
                          max_body_bytes=min(limits) if limits else None)
        try:
            result = channel.send(message)
        except Exception as exc:  # the contract says send() never raises; the relay must outlive a bug
            log.exception("relay.channel_raised channel=%s", channel.name)
            result = SendResult(False, detail=f"channel raised {type(exc).__name__}")
        self._finish(channel.name, items, result, now, digest)
        log.info("relay.send channel=%s events=%d digest=%s ok=%s detail=%r", channel.name, len(items),
                 digest, result.ok, result.detail)
        return result.ok

    def _finish(self, name: str, items: Sequence[OutboxItem], result: SendResult, now: float,
                digest: bool) -> None:
        if items:
            # One jitter per send: rows that failed together in one message are retried together in one.
            jitter = 0.5 + self.rng.random() / 2
            self._unrecorded.append((name, now, result.ok, digest, result.detail,
                                     [self._verdict(item, result, now, jitter) for item in items]))
            self._record_unrecorded()

    def _record_unrecorded(self) -> None:
        """Write the outcomes not yet stored; until they are, their rows stay claimed and are not sent again."""
        while self._unrecorded:
            self.store.finish(*self._unrecorded[0])  # StorageError: kept for the next pass
            self._unrecorded.pop(0)

    def _verdict(self, item: OutboxItem, result: SendResult, now: float, jitter: float) -> RowUpdate:
        if result.ok:
            return RowUpdate(item.id, DELIVERED, now)
        if (result.retry_after is not None and not result.permanent
                and now - item.received_at < self.config.defer_limit):
            # The channel said when to come back (Slack's 429 Retry-After): rate limiting in a storm must
            # not use up the attempts meant for failures. Past defer_limit it counts, so it cannot go on forever.
            return RowUpdate(item.id, PENDING, now + result.retry_after, counted=False)
        attempts = item.attempts + 1
        if result.permanent or attempts >= self.config.max_attempts:
            return RowUpdate(item.id, FAILED, now)
        delay = min(self.config.backoff_max, self.config.backoff_initial * 2 ** (attempts - 1))
        delay *= jitter  # so that messages failed at once do not all retry at once
        if result.retry_after:
            delay = max(delay, result.retry_after)
        return RowUpdate(item.id, PENDING, now + delay)

    def _history_url(self, channel: str, items: Sequence[OutboxItem], digest: bool) -> str:
        base = self.config.external_url.rstrip("/")
        if len(items) == 1 and not digest:
            return f"{base}/alerts/{quote(items[0].event.fingerprint, safe='')}"
        params = {"channel": channel, "since": format_epoch(min(i.received_at for i in items))}
        if digest:
            params["until"] = format_epoch(max(i.received_at for i in items) + 1e-6)
        return f"{base}/?{urlencode(params)}"
