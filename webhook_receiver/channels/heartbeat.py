"""The channel that receives the Watchdog alert; the dead man's switch watches it, nothing is relayed."""
from __future__ import annotations

from .model import Message, SendResult


class HeartbeatChannel:
    """A channel whose alerts prove the pipeline is alive; it never delivers anything."""

    type = "heartbeat"
    digests = True

    def __init__(self, name: str) -> None:
        self.name = name

    def send(self, message: Message) -> SendResult:
        """Refuse: the pipeline must not relay heartbeats."""
        return SendResult(ok=False, permanent=True, detail=f"{self.name} is a heartbeat channel; nothing is relayed")
