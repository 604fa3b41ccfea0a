"""The outbox worker: delivers queued state changes through the channels, retries, folds storms into digests.

Each channel is delivered on its own (RelayWorker.deliver): in `run_forever` by a thread of its own (see
relay/runner.py), so a hanging or failing channel holds back nothing but itself. Everything a channel answers
is validated before it is stored, and a message whose handling raises is marked with the error and skipped.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
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
from webhook_receiver.relay import threads
from webhook_receiver.relay.health import CHANNEL_PREFIX, HEARTBEAT_KEY, ChannelHealth
from webhook_receiver.relay.verdict import safe_text, verdict
from webhook_receiver.store.base import PENDING, OutboxItem, RowUpdate, StorageError, Store

log = logging.getLogger(__name__)
# State changes one digest speaks for at most: a storm larger than this becomes one digest per pass, and
# the relay never holds an unbounded backlog in memory.
DIGEST_MAX = 5000
_UNRECORDABLE = "the relay could not record this attempt's outcome"


class RelayWorker:
    """Delivers the outbox; exactly one worker may run per database."""

    def __init__(self, store: Store, channels: ChannelSet, config: Config,
                 clock: Callable[[], float] = time.time, rng: random.Random | None = None,
                 monotonic: Callable[[], float] = time.monotonic):
        self.store = store
        self.channels = channels
        self.config = config
        self.clock = clock
        self.monotonic = monotonic
        self.rng = rng or random.Random()
        self._rng_lock = threading.Lock()  # channel threads share it
        self.started_at = clock()
        self.deadman = Deadman(store, channels.deadman, self.started_at, monotonic()) if channels.deadman else None
        # The channels this worker delivers; rows queued for any other name are failed (see housekeeping).
        self.deliverable = {name: channel for name, channel in channels.channels.items()
                            if channel.type != "heartbeat"}
        for channel in self.deliverable.values():
            if hasattr(channel, "max_retry_after"):  # a Retry-After is never believed past defer_limit
                channel.max_retry_after = min(channel.max_retry_after, config.defer_limit)
        self._next_prune = 0.0
        # Outcomes of sends whose recording failed, per channel; written before that channel claims anything.
        self._unrecorded: dict[str, list[tuple]] = {name: [] for name in self.deliverable}
        # Wall time each channel's last delivery pass ended; every key is there from the start, so the
        # heartbeat's copy never races a channel thread adding one.
        self.pass_at: dict[str, float] = dict.fromkeys(self.deliverable, self.started_at)
        store.become_relay()
        saved = store.state_items(CHANNEL_PREFIX)
        self.health = {name: ChannelHealth.from_json(saved.get(CHANNEL_PREFIX + name)) for name in self.deliverable}
        # Rows a previous relay claimed but never finished (it crashed mid-send) are due again.
        released = store.release_claims()
        if released:
            log.warning("relay.released_claims rows=%d", released)

    # -- passes
    def run_once(self, now: float) -> int:
        """One whole pass at time `now`, each part on its own: housekeeping, every channel, pruning; messages sent.

        A part that fails is logged and the others still run; a StorageError is raised at the end.
        """
        failed: list[BaseException] = []
        self._guarded("housekeeping", failed, self.housekeeping, now, pending=False)
        sent = 0
        due = self._guarded("due counts", failed, self.store.due_counts, now) or {}
        self._guarded("undeliverable", failed, self.fail_undeliverable, now, due)
        for name in sorted(self.deliverable):
            sent += self._guarded(f"channel {name}", failed, self.deliver, name, now, due.get(name, 0)) or 0
        if now >= self._next_prune:
            self._guarded("prune", failed, self.prune, now)
            self._next_prune = now + self.config.prune_interval
        self._guarded("heartbeat", failed, self.beat, now)
        storage = [exc for exc in failed if isinstance(exc, StorageError)]
        if storage:
            raise storage[0]
        return sent

    def run_forever(self, stop: threading.Event) -> None:
        """Deliver until `stop` is set: a thread per channel, one for pruning, housekeeping in this one."""
        from webhook_receiver.relay.runner import run_threads  # the threads' loops live apart
        run_threads(self, stop)

    def housekeeping(self, now: float, pending: bool = True) -> bool:
        """Apply the intake, run the dead man's switch, fail rows no channel delivers, checkpoint.

        Whether anything new was queued (the channels have work sooner than their next turn).
        """
        moved = self.store.apply_intake()
        flipped = self.deadman.check(now, self.monotonic()) if self.deadman else None
        if flipped:
            moved += self.store.apply_intake()
        if pending:  # run_once counts the due rows itself; rows of unknown channels need the count
            self.fail_undeliverable(now)
        self.store.checkpoint()
        return bool(moved)

    def fail_undeliverable(self, now: float, due: dict[str, int] | None = None) -> None:
        """Rows queued for a channel that is not (or no longer) configured for delivery: failed, saying so."""
        for name in sorted(set(self.store.due_counts(now) if due is None else due) - set(self.deliverable)):
            items = self.store.claim(name, now, None)
            result = SendResult(False, permanent=True, detail=f"channel {name!r} is not configured for delivery")
            self._finish(name, items, result, now, digest=False, count_health=False)

    def beat(self, now: float) -> None:
        """Store the relay's heartbeat: this pass, and when each channel's last delivery pass ended."""
        self.store.set_state({HEARTBEAT_KEY: _json({"pid": os.getpid(), "started_at": self.started_at, "at": now,
                                                    "channels": dict(self.pass_at)})})

    def prune(self, now: float) -> None:
        """Delete finished history older than `retention`."""
        removed = self.store.prune(now - self.config.retention)
        if removed:
            log.info("relay.pruned rows=%d", removed)

    def deliver(self, name: str, now: float, due: int | None = None) -> int:
        """One delivery pass of one channel: its unrecorded outcomes, then what is due; messages sent."""
        self._record_unrecorded(name)
        if due is None:
            due = self.store.due_counts(now).get(name, 0)
        sent = self._deliver_channel(name, due, now) if due else 0
        self.pass_at[name] = now
        return sent

    def _guarded(self, part: str, failed: list, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # one part's failure must not stop the others
            failed.append(exc)
            if isinstance(exc, StorageError):
                log.error("relay.part_failed part=%s error=%r", part, str(exc))
            else:
                log.exception("relay.part_raised part=%s", part)
            return None

    # -- one channel
    def _deliver_channel(self, name: str, due: int, now: float) -> int:
        channel = self.deliverable[name]
        if due > self.config.storm_threshold and channel.digests:
            # Counted in the database: decoding thousands of rows' labels for a 20-line summary cost the
            # relay ~80 us an alert, on the cores the webhooks of the same storm need.
            items, groups, examples = self.store.claim_digest(name, now, DIGEST_MAX, fmt.EXAMPLES, fmt.SEVERITIES)
            if not items:
                return 0
            return int(self._send_digest(channel, items, groups, examples, now))
        sent = 0
        while sent * self.config.batch_size < due:
            items = self.store.claim(name, now, self.config.batch_size)
            if not items:
                break
            unreadable = [item for item in items if item.error is not None]
            for item in unreadable:  # failed alone, with the error: nothing can send them
                self._finish(name, [item], SendResult(False, permanent=True, detail=item.error), now,
                             digest=False, count_health=False)
            items = [item for item in items if item.error is None]
            ok = self._send_batch(channel, items, now) if items else True
            sent += 1
            if not ok:
                break  # the rest waits for this channel's backoff
        return sent

    def _send_batch(self, channel: Channel, items: Sequence[OutboxItem], now: float) -> bool:
        threaded = getattr(channel, "threads", False)
        groups = threads.by_thread(items) if threaded else [items]
        if len(groups) > 1:  # a message is one thread's reply, or a new top-level message: one per group
            return all([self._send_batch(channel, group, now) for group in groups])
        result, raised = self._attempt(channel, (lambda: self._reply(channel, items)) if threaded else
                                       (lambda: self._message(channel.name, items, None, False)))
        if raised and len(items) > 1:
            # One message that cannot be built or sent must not hold back the others: each alone, now.
            return all([self._send_batch(channel, [item], now) for item in items])
        self._finish(channel.name, items, result, now, digest=False)
        return result.ok

    def _send_digest(self, channel: Channel, items: Sequence[OutboxItem], groups, examples, now: float) -> bool:
        summary = None

        def build() -> Message:
            nonlocal summary
            summary = fmt.summarize_groups(groups, examples)
            return self._message(channel.name, items, summary, True)

        result, raised = self._attempt(channel, build)
        if raised and summary is not None and summary.examples:
            # An example the channel cannot render: the digest's counts still go out, without examples.
            bare = dataclasses.replace(summary, examples=())
            result, _ = self._attempt(channel, lambda: self._message(channel.name, items, bare, True))
        self._finish(channel.name, items, result, now, digest=True)
        return result.ok

    def _attempt(self, channel: Channel, build: Callable[[], Message]) -> tuple[SendResult, bool]:
        """Build and send one message; the result, and whether building or sending raised."""
        try:
            message = build()
            result = channel.send(message)
            if not isinstance(result, SendResult):
                raise TypeError(f"send() returned {type(result).__name__}, not a SendResult")
            return result, False
        except Exception as exc:  # the contract says send() never raises; the relay must outlive a bug
            log.exception("relay.channel_raised channel=%s", channel.name)
            # Only the type: an exception's text may quote a secret (a webhook URL); the log has the rest.
            return SendResult(False, detail=f"the relay could not send it: {type(exc).__name__} (see its log)"), True

    def _reply(self, channel: Channel, items: Sequence[OutboxItem]) -> Message:
        """A threaded channel's message; with its thread's first message as it now stands, when the channel shows it."""
        message = self._message(channel.name, items, None, False)
        thread = items[0].event.thread
        if thread and getattr(channel, "update_parent", False):
            parent = threads.parent_items(self.store, channel.name, thread)
            if parent:
                message = dataclasses.replace(message, parent=self._message(channel.name, parent, None, False))
        return message

    def _message(self, name: str, items: Sequence[OutboxItem], summary: StormSummary | None,
                 digest: bool) -> Message:
        # Per group, the newest post's cut (items are oldest first): a later post of a group, or a retry,
        # counts the same left-out alerts again.
        newest = {item.group_key: item for item in items}.values()
        limits = [item.cut_max_body_bytes for item in newest if item.cut_max_body_bytes]
        events = summary.examples if summary is not None else tuple(item.event for item in items)
        return Message(name, events, self._history_url(name, items, digest), digest,
                       left_out=sum(item.truncated_alerts for item in newest), summary=summary,
                       cut_by_receiver=sum(item.cut_alerts for item in newest),
                       max_body_bytes=min(limits) if limits else None,
                       receiver_url=self.config.external_url.rstrip("/"))

    # -- outcomes
    def _finish(self, name: str, items: Sequence[OutboxItem], result: SendResult, now: float,
                digest: bool, count_health: bool = True) -> None:
        if not items:
            return
        detail = safe_text(result.detail)
        # Past max_attempts a row is re-sent only while its alert fires, up to give_up_after: ask once.
        exhausted = [item.id for item in items if item.attempts + 1 >= self.config.max_attempts]
        facts: dict[int, tuple[float, bool]] = {}
        if exhausted and not result.ok and not result.permanent:
            try:
                facts = self.store.resend_facts(exhausted)
            except StorageError:  # the send happened: its outcome must be kept; unsure, keep trying
                facts = {row: (now, True) for row in exhausted}
        with self._rng_lock:  # one jitter per send: rows that failed together are retried together
            jitter = 0.5 + self.rng.random() / 2
        updates = [verdict(item, result, now, jitter, facts.get(item.id), self.config) for item in items]
        state = {}
        if count_health and name in self.health and (result.ok or any(u.counted for u in updates)):
            health = self.health[name]
            health.record(result.ok, now, detail)
            state[CHANNEL_PREFIX + name] = health.to_json()
        self._unrecorded.setdefault(name, []).append((name, now, result.ok, digest, detail, updates, state))
        self._record_unrecorded(name)
        log.info("relay.send channel=%s events=%d digest=%s ok=%s detail=%r", name, len(items), digest,
                 result.ok, detail)

    def _record_unrecorded(self, name: str) -> None:
        """Write `name`'s outcomes not yet stored; until they are, their rows stay claimed and are not sent again."""
        queue = self._unrecorded.get(name, [])
        while queue:
            try:
                self.store.finish(*queue[0])  # StorageError: kept for the next pass
            except StorageError:
                raise
            except Exception:
                # Not the database being busy: this outcome can never be written. Its rows are due again
                # (a second send beats none), so the channel is not blocked behind it for ever.
                log.exception("relay.outcome_unrecordable channel=%s", name)
                _, now, _, digest, detail, updates, _ = queue[0]
                if detail == _UNRECORDABLE:  # even the plain version failed: the next relay releases them
                    queue.pop(0)
                    continue
                queue[0] = (name, now, False, digest, _UNRECORDABLE,
                            [RowUpdate(u.id, PENDING, now + self.config.backoff_initial, counted=False)
                             for u in updates], {})
                continue
            queue.pop(0)

    def _history_url(self, channel: str, items: Sequence[OutboxItem], digest: bool) -> str:
        base = self.config.external_url.rstrip("/")
        if len(items) == 1 and not digest:
            return f"{base}/alerts/{quote(items[0].event.fingerprint, safe='')}"
        params = {"channel": channel, "since": format_epoch(min(i.received_at for i in items))}
        if digest:
            params["until"] = format_epoch(max(i.received_at for i in items) + 1e-6)
        return f"{base}/?{urlencode(params)}"


def _json(value) -> str:
    return json.dumps(value, sort_keys=True, allow_nan=False)
