"""The relay's health, kept in the store's state table so the web workers (other processes) can read it.

Three kinds of facts: the relay's heartbeat (when its last pass, and each channel's last delivery pass, ended),
each channel's failing streak, and when the outbound heartbeat last reached its outside check (relay/ping.py).
/-/ready, /metrics and the history page's banner read them.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

from webhook_receiver.payload import format_epoch
from webhook_receiver.store.base import Store

HEARTBEAT_KEY = "relay.heartbeat"  # JSON {"pid", "started_at", "at", "channels": {name: at}}
CHANNEL_PREFIX = "channel."        # + name: JSON of ChannelHealth
PING_KEY = "heartbeat_ping"        # JSON {"last_ok_at"}: the outside check last answered 2xx (any relay's ping)


def _time(value) -> float | None:
    """A stored time, or None when it is not a finite number (a hand-edited or foreign row)."""
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


@dataclass
class ChannelHealth:
    """A channel's streak: failures since its last success (a deferral the channel asked for is neither)."""

    consecutive_failures: int = 0
    failing_since: float | None = None   # the first failure of the current streak
    last_success_at: float | None = None
    last_failure_at: float | None = None
    detail: str = ""                     # the last failure's outcome

    @property
    def failing(self) -> bool:
        """Whether the channel's latest counted attempt failed."""
        return self.consecutive_failures > 0

    def record(self, ok: bool, now: float, detail: str) -> None:
        """Take one counted attempt's outcome."""
        if ok:
            self.consecutive_failures, self.failing_since, self.last_success_at = 0, None, now
            return
        if not self.failing:
            self.failing_since = now
        self.consecutive_failures += 1
        self.last_failure_at, self.detail = now, detail

    def to_json(self) -> str:
        """The stored form."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> ChannelHealth:
        """The stored form read back; anything unreadable is a channel with no history."""
        try:
            raw = json.loads(text) if text else {}
            failures = raw.get("consecutive_failures", 0)
            return cls(failures if isinstance(failures, int) and failures > 0 else 0,
                       _time(raw.get("failing_since")), _time(raw.get("last_success_at")),
                       _time(raw.get("last_failure_at")), str(raw.get("detail", ""))[:300])
        except (ValueError, AttributeError):
            return cls()


@dataclass
class RelayStatus:
    """What the web workers know of the relay: its heartbeat and every channel's health."""

    last_pass_at: float | None = None                  # None: no relay ever ran on this database
    channel_pass_at: dict[str, float] = field(default_factory=dict)
    channels: dict[str, ChannelHealth] = field(default_factory=dict)

    def stalls(self, now: float, stall_after: float) -> list[str]:
        """Why the relay counts as stalled at `now` (wall clock), or [] when it does not."""
        if self.last_pass_at is None:
            return []
        problems = []
        if now - self.last_pass_at > stall_after:
            problems.append(f"the relay has completed no pass since {format_epoch(self.last_pass_at)}"
                            f" ({now - self.last_pass_at:.0f}s, more than relay_stall_after {stall_after:g}s)")
        for name, at in sorted(self.channel_pass_at.items()):
            if now - at > stall_after:
                problems.append(f"the relay's delivery to {name} has completed no pass since {format_epoch(at)}"
                                f" ({now - at:.0f}s)")
        return problems

    def failing(self, names) -> list[str]:
        """A sentence per channel among `names` whose latest attempt failed."""
        return [f"channel {name} is failing: {health.consecutive_failures} failed attempt(s) since "
                f"{format_epoch(health.failing_since)}, the last: {health.detail}"
                for name in sorted(names) if (health := self.channels.get(name)) and health.failing
                and health.failing_since is not None]


def read_status(store: Store) -> RelayStatus:
    """The relay's heartbeat and channel health as stored (StorageError when the store cannot be read)."""
    status = RelayStatus()
    heartbeat = store.state_items(HEARTBEAT_KEY).get(HEARTBEAT_KEY)
    try:
        raw = json.loads(heartbeat) if heartbeat else {}
        status.last_pass_at = _time(raw.get("at"))
        status.channel_pass_at = {str(k): t for k, v in dict(raw.get("channels") or {}).items()
                                  if (t := _time(v)) is not None}
    except (ValueError, AttributeError, TypeError):
        pass  # unreadable: as if no relay had written one
    for key, value in store.state_items(CHANNEL_PREFIX).items():
        status.channels[key[len(CHANNEL_PREFIX):]] = ChannelHealth.from_json(value)
    return status


def last_ping_ok(store: Store) -> float | None:
    """When a relay's outbound heartbeat last succeeded, or None (StorageError when the store cannot be read)."""
    try:
        return _time(json.loads(store.get_state(PING_KEY) or "{}").get("last_ok_at"))
    except (ValueError, AttributeError):
        return None
