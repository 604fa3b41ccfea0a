"""The relay's verdict on one outbox row after an attempt: delivered, due again (when), or failed for good."""
from __future__ import annotations

from webhook_receiver.channels.model import SendResult, clamp_delay
from webhook_receiver.config import Config
from webhook_receiver.store.base import DELIVERED, FAILED, PENDING, OutboxItem, RowUpdate

DETAIL_MAX = 300  # characters of an outcome kept in the history
REFERENCE_MAX = 100  # a message id longer than this (a Slack ts has 17 characters) is no id: not stored


def safe_text(text: object, limit: int = DETAIL_MAX) -> str:
    """`text` as storable UTF-8 (a lone surrogate would make the outcome's write fail), shortened."""
    text = str(text).encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[:limit - 3] + "..."


def verdict(item: OutboxItem, result: SendResult, now: float, jitter: float, facts: tuple[float, bool] | None,
            config: Config) -> RowUpdate:
    """The row's new state; `facts` (first attempt, still firing) are asked for only past max_attempts."""
    if result.ok:
        return RowUpdate(item.id, DELIVERED, now, reference=reference(result.reference))
    # Validated here too, whatever the channel: a nan or inf due time parks a row for ever.
    retry_after = clamp_delay(result.retry_after, config.defer_limit)
    if retry_after is not None and not result.permanent and now - item.received_at < config.defer_limit:
        # The channel said when to come back (Slack's 429 Retry-After): rate limiting in a storm must
        # not use up the attempts meant for failures. Past defer_limit it counts, so it cannot go on forever.
        return RowUpdate(item.id, PENDING, now + retry_after, counted=False)
    attempts = item.attempts + 1
    if result.permanent:
        return RowUpdate(item.id, FAILED, now)
    if attempts >= config.max_attempts:
        # Never give up on a firing alert in silence: re-sent every backoff_max up to give_up_after.
        first, firing = facts if facts is not None else (now, False)
        if not firing:
            return RowUpdate(item.id, FAILED, now, detail=safe_text(
                f"{result.detail} (gave up after {attempts} attempts: the alert is no longer firing)"))
        if now - first >= config.give_up_after:
            return RowUpdate(item.id, FAILED, now, detail=safe_text(
                f"{result.detail} (gave up after {attempts} attempts, give_up_after"
                f" {config.give_up_after:g}s after the first)"))
    # 2**60 is past any backoff_max: a larger power would overflow the float.
    delay = min(config.backoff_max, config.backoff_initial * 2 ** min(attempts - 1, 60))
    delay *= jitter  # so that messages failed at once do not all retry at once
    if retry_after:
        delay = max(delay, retry_after)
    return RowUpdate(item.id, PENDING, now + delay)


def reference(value: object) -> str | None:
    """A delivered message's id as storable text, or None when the channel gave none usable."""
    if not isinstance(value, str) or not value.strip() or len(value) > REFERENCE_MAX:
        return None
    return safe_text(value, REFERENCE_MAX)
