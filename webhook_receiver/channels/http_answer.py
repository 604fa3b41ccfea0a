"""What a channel that posts over HTTP makes of a failed request or an unwelcome answer, never quoting a secret.

Shared by the Slack, webhook and PagerDuty channels.
"""
from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Iterable

from .model import SendResult, parse_retry_after
from .ratelimit import RateLimiter

_DIGITS = re.compile(r"[0-9]+")
SNIPPET_CHARS = 120  # of an answer's body kept in the history: enough for the server's reason


def reason(exc: BaseException) -> str:
    """The innermost OS-level reason (e.g. "Connection refused"), which carries no URL."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        wrapped = getattr(seen, "reason", None)  # urllib3's MaxRetryError wraps the real error here
        seen = wrapped if isinstance(wrapped, BaseException) else (seen.__cause__ or seen.__context__)
    return type(exc).__name__


def quote(header: str) -> str:
    """A header value shortened for the history (a hostile server chooses it)."""
    text = " ".join(header.split())
    return text[:40] + ("..." if len(text) > 40 else "")


def snippet(text: str, secrets: Iterable[str] = (), limit: int = SNIPPET_CHARS) -> str:
    """The first characters of an answer's body on one line, any secret we sent it blanked out."""
    # A server that echoes the request (a debugging proxy, a misrouted URL) must not put our secrets in history.
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<redacted>")
    return " ".join(text.split())[:limit]


def rate_limited(header: str | None, max_retry_after: float, limiter: RateLimiter, key: str,
                 said: str = "HTTP 429") -> SendResult:
    """A 429 (or what the server says instead, `said`): its Retry-After validated (model.parse_retry_after), capped
    at max_retry_after, and kept by `limiter` for `key` so nobody posts into the wait."""
    asked = parse_retry_after(header, time.time(), math.inf)
    if asked is None:
        # Garbage, negative or nan: an ordinary failure that uses an attempt and the relay's backoff
        unusable = f" (unusable Retry-After {quote(header)!r})" if header is not None else ""
        return SendResult(ok=False, detail=f"{said}{unusable}")
    retry_after = min(asked, max_retry_after)
    limiter.back_off(key, retry_after)
    capped = f" capped to {retry_after:g}s" if asked > retry_after else ""
    if _DIGITS.fullmatch(header.strip()):
        shown = f"{asked:g}s"
    else:  # a date, an exponent, inf: what the server said, then what it means
        shown = f"{quote(header)!r}" + (f" = {asked:.0f}s" if math.isfinite(asked) else "")
    return SendResult(ok=False, retry_after=retry_after, detail=f"{said} (Retry-After {shown}{capped})")


def held_back(blocked: float) -> SendResult:
    """The answer when the limiter still holds a key back after a 429: no request is made."""
    return SendResult(ok=False, retry_after=blocked, detail=f"rate limited: asked to wait {blocked:.0f}s more")


class _RedactPaths(logging.Filter):
    """urllib3 logs request paths at DEBUG; a webhook's path may be its secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                "<redacted>" if isinstance(a, str) and (a.startswith("/") or "://" in a) else a for a in record.args
            )
        return True


def hide_request_paths() -> None:
    """Install the urllib3 log filter once per process."""
    logger = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, _RedactPaths) for f in logger.filters):
        logger.addFilter(_RedactPaths())
