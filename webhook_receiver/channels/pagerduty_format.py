"""One alert state change as a PagerDuty Events API v2 event (trigger or resolve)."""
from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import urlsplit

from . import drill_mark
from . import formatting as fmt
from .model import AlertEvent
from .webhook_format import alert_page

SUMMARY_MAX = 1024  # PagerDuty's limit on payload.summary
CLIENT = "Dumont alerting receiver"
# Alert severity -> PagerDuty's; any other (or none) is "error", which pages like critical's neighbour
SEVERITIES = {"critical": "critical", "warning": "warning", "info": "info"}


def dedup_key(event: AlertEvent) -> str:
    """The incident's key: one per episode of (fingerprint, startsAt), so a retry is the same, a re-fire is new."""
    # starts_at is canonical (UTC, nine fraction digits) as the store keeps it, so both ends of an episode agree
    identity = f"{event.fingerprint}\n{event.starts_at}\n{event.episode}".encode("utf-8", "backslashreplace")
    return "dumont-" + hashlib.sha256(identity).hexdigest()[:32]


def build_event(event: AlertEvent, routing_key: str, receiver: str) -> dict[str, Any]:
    """The event to enqueue: `trigger` for a firing, `resolve` for a resolution; `receiver` is its external_url."""
    key = dedup_key(event)
    if event.status == "resolved":
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": key}
    page = alert_page(receiver, event.fingerprint)
    payload = {
        "summary": summary(event),
        "source": _text(event.labels.get("machine_id") or event.labels.get("instance")
                        or urlsplit(receiver).netloc or "dumont-receiver"),
        "severity": SEVERITIES.get(fmt.severity(event), "error"),
        "timestamp": _timestamp(event.starts_at),
        "class": _text(fmt.alertname(event)),
        "custom_details": {
            "labels": {_text(k): _text(v) for k, v in event.labels.items()},
            "annotations": {_text(k): _text(v) for k, v in event.annotations.items()},
            "fingerprint": event.fingerprint,
            "starts_at": event.starts_at,
            "episode": event.episode,
            "history": page,
        },
    }
    # What failed, and the part of the fleet it belongs to: omitted when the alert does not say
    for field, labels in (("component", ("component", "mountpoint")), ("group", ("machine_type", "provider"))):
        value = next((event.labels[k] for k in labels if event.labels.get(k)), None)
        if value:
            payload[field] = _text(value)
    links = [{"href": page, "text": "Alert history (Dumont)"}]
    runbook = fmt.web_url(event.annotations.get("runbook_url"))
    if runbook:  # only an http(s) link: a javascript: runbook_url must never become one
        links.append({"href": runbook, "text": "Runbook"})
    return {"routing_key": routing_key, "event_action": "trigger", "dedup_key": key, "payload": payload,
            "links": links, "client": CLIENT, "client_url": page}


def summary(event: AlertEvent) -> str:
    """The summary annotation, else the alert's name and labels; marked for a drill, at most SUMMARY_MAX."""
    text = event.annotations.get("summary", "").strip()
    if not text:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(event.labels.items()) if k != "alertname" and v)
        text = fmt.alertname(event) + (f" {{{labels}}}" if labels else "")
    if drill_mark.is_drill(event):
        text = f"[{drill_mark.MARK}] {text}"
    text = _text(" ".join(text.split()))
    return text if len(text) <= SUMMARY_MAX else text[: SUMMARY_MAX - 1] + "…"


def _timestamp(starts_at: str) -> str:
    """startsAt to the millisecond (ISO 8601, as PagerDuty's examples): the store's nine digits say no more."""
    head, dot, rest = starts_at.partition(".")
    if not dot:
        return starts_at
    digits = "".join(ch for ch in rest if ch.isdigit())
    return f"{head}.{digits[:3].ljust(3, '0')}Z" if rest.endswith("Z") else starts_at


def _text(value: str) -> str:
    return fmt.printable(value)
