"""Rows of the read queries as the API shows them: one shape for both stores, whose SELECTs list the same columns."""
from __future__ import annotations

import json
from typing import Sequence

from webhook_receiver.payload import format_epoch


def event(row: Sequence) -> dict:
    """A history entry from the event columns (id, fingerprint, ... received_at, origin, suppressed)."""
    return {
        "id": row[0], "fingerprint": row[1], "status": row[2], "starts_at": row[3], "ends_at": row[4],
        "alertname": row[5], "severity": row[6], "labels": json.loads(row[7]),
        "annotations": json.loads(row[8]), "generator_url": row[9], "received_at": format_epoch(row[10]),
        "origin": row[11], "suppressed": bool(row[12]),
    }


def suppression_change(row: Sequence) -> dict:
    """One suppression change of an alert (state, detail JSON, at, the firing's event id)."""
    return {"state": row[0], **json.loads(row[1]), "at": format_epoch(row[2]), "event_id": row[3]}


def delivery(row: Sequence) -> dict:
    """One outbox row of an entry (the delivery columns from the third on), with the post that queued it."""
    return {
        "channel": row[2], "state": row[3], "attempts": row[4], "detail": row[5],
        "finished_at": format_epoch(row[6]) if row[6] is not None else None,
        "next_attempt_at": format_epoch(row[7]) if row[3] == "pending" else None,
        "notification": None if row[8] is None else {
            "receiver": row[8], "group_key": row[9], "received_at": format_epoch(row[10]),
            # alerts of the group left out: by Alertmanager (max_alerts) and by the receiver
            "truncated_alerts": row[11],
            "cut_by_receiver": None if row[12] is None else {
                "alerts": row[12], "body_bytes": row[13], "max_body_bytes": row[14]}},
    }


def attempt(row: Sequence) -> dict:
    """One attempt of an outbox row (outbox id, attempted_at, ok, digest, detail)."""
    return {"at": format_epoch(row[1]), "ok": bool(row[2]), "digest": bool(row[3]), "detail": row[4]}
