"""Webhook bodies shaped exactly like Alertmanager 0.25 sends them (version 4)."""
from __future__ import annotations

import hashlib
import json

ZERO = "0001-01-01T00:00:00Z"  # Go's zero time: Alertmanager's endsAt of a firing alert


def alert(name: str = "DiskAlmostFull", machine: str = "gpu-1", status: str = "firing",
          severity: str = "warning", starts: str = "2024-05-01T10:00:00.123456789Z",
          ends: str | None = None, **labels: str) -> dict:
    """One alert of a notification; the fingerprint is stable for the same labels."""
    all_labels = {"alertname": name, "machine_id": machine, "machine_type": "gpu", "severity": severity,
                  "instance": "127.0.0.1:9877", "job": "dumont-exporter", **labels}
    fingerprint = hashlib.sha256(json.dumps(all_labels, sort_keys=True).encode()).hexdigest()[:16]
    return {
        "status": status,
        "labels": all_labels,
        "annotations": {"summary": f"{name} on {machine}", "description": f"{machine} needs attention.",
                        "runbook_url": f"https://runbooks.dumont.cloud/{name}.md"},
        "startsAt": starts,
        "endsAt": ends if ends is not None else (ZERO if status == "firing" else "2024-05-01T10:05:00.123456789Z"),
        "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=dumont_disk_usage_bytes+%3E+0.9&g0.tab=1",
        "fingerprint": fingerprint,
    }


def notification(*alerts: dict, receiver: str = "slack-oncall") -> dict:
    """The webhook body of one group: common labels and the group key as Alertmanager computes them."""
    alerts = alerts or (alert(),)
    common = dict(set.intersection(*(set(a["labels"].items()) for a in alerts)))
    common_annotations = dict(set.intersection(*(set(a["annotations"].items()) for a in alerts)))
    group_labels = {"alertname": common["alertname"]} if "alertname" in common else {}
    return {
        "receiver": receiver,
        "status": "firing" if any(a["status"] == "firing" for a in alerts) else "resolved",
        "alerts": list(alerts),
        "groupLabels": group_labels,
        "commonLabels": common,
        "commonAnnotations": common_annotations,
        "externalURL": "http://127.0.0.1:9093",
        "version": "4",
        "groupKey": '{}/{severity=~"critical|warning"}:{alertname="%s"}' % group_labels.get("alertname", ""),
        "truncatedAlerts": 0,
    }
