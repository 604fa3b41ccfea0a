"""Alert events and constants the channel tests share."""
from __future__ import annotations

from webhook_receiver.channels import AlertEvent

HISTORY = "http://127.0.0.1:9878/alerts"
SLACK_SECRET_PATH = "/services/T000/B000/s3cr3t-t0ken"
SMTP_PASSWORD = "hunter2-smtp-pass"


def event(name="DiskAlmostFull", status="firing", severity="critical", **extra) -> AlertEvent:
    """An alert event with the labels and annotations our rules set."""
    labels = {"alertname": name, "severity": severity, "machine_id": extra.pop("machine", "gpu-1")}
    annotations = {
        "summary": extra.pop("summary", f"{name} on gpu-1"),
        "description": extra.pop("description", "Disk / is 95% full"),
        "runbook_url": "https://runbooks.example/DiskAlmostFull.md",
    }
    return AlertEvent(
        fingerprint=extra.pop("fingerprint", f"fp-{name}-{status}"),
        status=status,
        labels=labels,
        annotations=annotations,
        starts_at="2024-05-01T10:00:00Z",
        ends_at="2024-05-01T10:05:00Z" if status == "resolved" else None,
        generator_url="http://prometheus:9090/graph?g0.expr=x&g0.tab=1",
    )
