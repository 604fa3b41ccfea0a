"""The versioned JSON document a webhook channel posts, its bytes and their signature.

The document is specified in webhook_receiver/README.md ("Webhook channel") and, as JSON Schema, in
docs/webhook-document.schema.json; a change to its shape is a new VERSION.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any
from urllib.parse import quote

from . import formatting as fmt
from .model import AlertEvent, Message

VERSION = "1"
SIGNATURE_HEADER = "X-Dumont-Signature"
TIMESTAMP_HEADER = "X-Dumont-Timestamp"
SIGNATURE_SCHEME = "sha256"  # the header reads `sha256=<hex>`: a later scheme gets its own prefix


def alert_page(base: str, fingerprint: str) -> str:
    """The receiver's page of one alert: its history, every delivery and attempt."""
    return f"{base}/alerts/{quote(fingerprint, safe='')}"


def build_document(message: Message) -> dict[str, Any]:
    """The document for `message`: every state change in full (webhook channels never get digests)."""
    base = message.receiver_url
    return _printable({
        "version": VERSION,
        "receiver": base,
        "channel": message.channel,
        "status": "firing" if any(e.status == "firing" for e in message.events) else "resolved",
        "alerts": [_alert(event, base) for event in message.events],
        "history_url": message.history_url,
        "left_out": message.left_out,
    })


def _alert(event: AlertEvent, base: str) -> dict[str, Any]:
    return {
        "status": event.status,
        "fingerprint": event.fingerprint,
        "episode": event.episode,
        "labels": dict(event.labels),
        "annotations": dict(event.annotations),
        "starts_at": event.starts_at,
        "ends_at": event.ends_at,
        "generator_url": event.generator_url,
        "history_url": alert_page(base, event.fingerprint),
    }


def _printable(value: Any) -> Any:
    """`value` with every string printable (fmt.printable): a lone surrogate is no Unicode, so no JSON parser's."""
    if isinstance(value, str):
        return fmt.printable(value)
    if isinstance(value, dict):
        return {_printable(key): _printable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_printable(item) for item in value]
    return value


def encode(document: dict[str, Any]) -> bytes:
    """The exact bytes posted (and signed): compact UTF-8 JSON."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The X-Dumont-Signature value: `sha256=` and the hex HMAC-SHA256 of `<timestamp>.<body>` under `secret`."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return f"{SIGNATURE_SCHEME}={mac.hexdigest()}"
