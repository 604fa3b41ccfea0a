"""Threads for the channels that keep them (Slack's Web API): one message per thread, and a thread's first
message as its alerts now stand."""
from __future__ import annotations

import logging
from typing import Sequence

from webhook_receiver.store.base import OutboxItem, StorageError, Store

log = logging.getLogger(__name__)
# A thread's first message is shown again (update_parent) only when it carried at most this many rows: a larger
# one was a summary (Slack's 20 attachments) or a digest, which the rows alone cannot render again.
PARENT_MAX = 20


def by_thread(items: Sequence[OutboxItem]) -> list[list[OutboxItem]]:
    """`items` in one group per thread (None: a new top-level message), groups and rows in claim order."""
    groups: dict[str | None, list[OutboxItem]] = {}
    for item in items:
        groups.setdefault(item.event.thread if item.event else None, []).append(item)
    return list(groups.values())


def parent_items(store: Store, channel: str, thread: str) -> list[OutboxItem] | None:
    """The rows the thread's first message carried, each as its episode now stands; None to leave it as it is."""
    try:
        items = store.thread_start(channel, thread, PARENT_MAX + 1)
    except StorageError as exc:  # the reply matters, its parent's colour does not: never fail a send for it
        log.warning("relay.thread_parent_unread channel=%s error=%r", channel, str(exc))
        return None
    if not items or len(items) > PARENT_MAX or any(item.event is None for item in items):
        return None
    return items
