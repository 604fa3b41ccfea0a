"""Ingest blueprint: `POST /webhook/<channel>` stores Alertmanager's notification before answering 200."""
from __future__ import annotations

import json
import logging
import time
from typing import Iterator

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import HTTPException

from webhook_receiver.auth import authorized
from webhook_receiver.db import get_store
from webhook_receiver.oversized import CHUNK, TooLarge, read_oversized
from webhook_receiver.payload import BodyCut, Notification, PayloadError, notification_from, parse_webhook
from webhook_receiver.store.base import StorageError

log = logging.getLogger(__name__)
bp = Blueprint("ingest", __name__)
_json_body = json.JSONEncoder().encode


def _answer(code: int, /, **fields) -> Response:
    """A JSON answer with HTTP status `code`; jsonify would cost each webhook of a storm ~50 us more."""
    return current_app.response_class(_json_body(fields) + "\n", status=code, mimetype="application/json")


def _reject(reason: str, status: int, message: str, **fields):
    """A JSON error answer, counted by reason (in memory first: see Store.count)."""
    get_store().count("rejected", reason)
    log.info("ingest.rejected reason=%s status=%d remote=%s", reason, status, request.remote_addr)
    return _answer(status, error=message, **fields)


class Unreadable(PayloadError):
    """The body could not be read: a malformed chunked encoding, or the client went away mid-body."""


def _read(stream, size: int) -> bytes:
    """Up to `size` bytes of the request body; Unreadable (a 400) when the server cannot decode it."""
    try:
        return stream.read(size)
    except HTTPException:
        raise  # the server's own answer (408 from http_limits.py for a body past its deadline)
    # What the server's input stream raises on a bad chunk differs by server: gunicorn's InvalidChunkSize and
    # ChunkMissingTerminator (Exception), werkzeug's OSError or ClientDisconnected. Any of them is the
    # client's doing, and was a 500.
    except Exception as exc:
        raise Unreadable(f"body: could not be read ({type(exc).__name__}: malformed chunked encoding or"
                         " the connection ended mid-body)") from None


def _body(limit: int, read_limit: int) -> bytes | Iterator[bytes] | None:
    """The request's body; past `limit` bytes its chunks instead, and None when it says it is past `read_limit`."""
    # Straight from the WSGI input: werkzeug's wrapper for MAX_CONTENT_LENGTH reads every body twice over,
    # which cost a storm ~3% of the receiver's CPU.
    length, stream = request.content_length, request.environ["wsgi.input"]
    if length is not None:
        if length <= limit:
            return _read(stream, length)
        return _chunks(stream, b"", length) if length <= read_limit else None
    if not request.environ.get("wsgi.input_terminated"):
        return b""  # no length and no end the server vouches for: nothing is safe to read (as werkzeug does)
    body = _read(stream, limit + 1)  # chunked: the server ends the stream after the last chunk
    return body if len(body) <= limit else _chunks(stream, body, None)


def _chunks(stream, first: bytes, length: int | None) -> Iterator[bytes]:
    """`first`, then the rest of the stream (`length` bytes in all when known), CHUNK bytes at a time."""
    left = None if length is None else length - len(first)
    view = memoryview(first)
    for start in range(0, len(view), CHUNK):
        yield view[start:start + CHUNK]
    del view, first
    while left is None or left > 0:
        chunk = _read(stream, CHUNK if left is None else min(CHUNK, left))
        if not chunk:
            return  # shorter than announced: the scanner finds the body cut short
        if left is not None:
            left -= len(chunk)
        yield chunk


def _oversized(chunks: Iterator[bytes], limit: int, read_limit: int) -> Notification:
    """The notification of a body past `limit`: its first alerts that fit, the rest counted as cut."""
    kept = read_oversized(chunks, limit, read_limit)
    return notification_from(kept.body, BodyCut(kept.cut, kept.body_bytes, limit) if kept.cut else None)


@bp.post("/webhook/<channel>")
def webhook(channel: str):
    """Store one notification (or heartbeat); 2xx only once it is committed."""
    if not authorized(request, current_app.extensions["dumont.tokens"].ingest):
        response = _reject("unauthorized", 401, "missing or wrong bearer token")
        response.headers["WWW-Authenticate"] = "Bearer"
        return response
    target = current_app.extensions["dumont.channels"].channels.get(channel)
    if target is None:
        return _reject("unknown_channel", 404, f"unknown channel {channel!r}")
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    read_limit = current_app.config["RECEIVER"].max_read_bytes
    try:
        body = _body(limit, read_limit)
    except Unreadable as exc:
        return _reject("bad_request", 400, str(exc))
    if body is None:
        return _reject("too_large", 413, f"body larger than {read_limit} bytes (max_read_bytes)")
    try:
        # Over max_body_bytes, Alertmanager's post is not refused (it never retries a 4xx): its first alerts
        # are kept and the rest counted, so the history and the message say what is missing.
        notification = parse_webhook(body) if isinstance(body, bytes) else _oversized(body, limit, read_limit)
    except TooLarge as exc:
        return _reject("too_large", 413, str(exc))
    except PayloadError as exc:
        return _reject("bad_request", 400, str(exc))

    now = time.time()
    store = get_store()
    try:
        if target.type == "heartbeat":
            # A resolved Watchdog means Prometheus stopped sending it: that is no sign of life.
            alive = any(alert.status == "firing" for alert in notification.alerts)
            if alive:
                store.record_heartbeat(channel, now, len(notification.alerts))
            _count_cut(channel, notification)
            return _answer(200, status="ok", heartbeat=alive)
        result = store.ingest(channel, notification, now)
    except StorageError as exc:
        log.error("ingest.storage_failed channel=%s error=%r", channel, str(exc))
        # 5xx: Alertmanager retries, and nothing of this request was committed.
        return _reject("storage", 503, "storage unavailable, retry later")
    _count_cut(channel, notification)
    log.info("ingest.stored channel=%s group_key=%r alerts=%d new=%d queued=%d duplicates=%d", channel,
             notification.group_key, len(notification.alerts), result.new_events, result.queued,
             result.duplicates)
    return _answer(200, status="ok", new=result.new_events, queued=result.queued, duplicates=result.duplicates)


def _count_cut(channel: str, notification: Notification) -> None:
    """Count and log the alerts the receiver left out of an oversized post, once it is answered 200."""
    cut = notification.cut
    if cut is not None:
        get_store().count("receiver_cut", channel, cut.alerts)
        log.warning("ingest.cut channel=%s group_key=%r kept=%d cut=%d body_bytes=%d max_body_bytes=%d", channel,
                    notification.group_key, len(notification.alerts), cut.alerts, cut.body_bytes,
                    cut.max_body_bytes)
