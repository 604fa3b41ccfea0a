"""The dead man's switch: announce that the alerting pipeline is down when heartbeats stop, and when they resume."""
from __future__ import annotations

import hashlib
import json
import logging

from webhook_receiver.channels.model import DeadmanConfig
from webhook_receiver.payload import Alert, format_epoch
from webhook_receiver.store.base import Store

log = logging.getLogger(__name__)

ALERTNAME = "AlertingPipelineDown"
STATE_KEY = "deadman"  # JSON {"starts_at", "down_at", "last_heartbeat", "marker"} while down, "" while up


def fingerprint(labels: dict[str, str]) -> str:
    """A stable 16-hex fingerprint for the receiver's own alert, shaped like Alertmanager's."""
    text = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Deadman:
    """Checks the heartbeat channel on each relay pass; its down/up state lives in the store.

    Silence is measured on the monotonic clock: a wall-clock step (NTP, a VM resumed) must neither freeze
    the switch (back) nor fire it (forward). The wall clock only dates what people read.
    """

    def __init__(self, store: Store, config: DeadmanConfig, started_at: float, started_mono: float):
        self.store = store
        self.config = config
        # Silence counts from the later of the last heartbeat and this start: while the receiver was not
        # running it could not hear heartbeats, so a restart after downtime must not page at once.
        self.started_at = started_at
        self.labels = {"alertname": ALERTNAME, "severity": "critical", "heartbeat_channel": config.channel}
        self.fingerprint = fingerprint(self.labels)
        # A heartbeat is seen when the store's marker changes (never by comparing wall times).
        self._seen = store.heartbeat_marker(config.channel)
        self._quiet_since = started_mono   # monotonic time the silence counts from
        self._checked = started_mono       # monotonic time of the previous check

    def check(self, now: float, mono: float) -> str | None:
        """Queue a down or recovered message when the state flips; which one, or None.

        `now` is the wall clock (for messages), `mono` the monotonic clock (for silence).
        """
        marker = self.store.heartbeat_marker(self.config.channel)
        if marker != self._seen:
            # It arrived since the previous check; its wall age says when, bounded by that interval.
            age = min(max(now - marker[0], 0.0), max(mono - self._checked, 0.0)) if marker else 0.0
            self._seen, self._quiet_since = marker, mono - age
        self._checked = mono
        last = marker[0] if marker else None
        raw = self.store.get_state(STATE_KEY)
        if not raw:
            if mono - self._quiet_since <= self.config.timeout_seconds:
                return None
            return self._announce_down(now, last, marker)
        down = json.loads(raw)
        if "marker" in down:
            resumed = marker is not None and list(marker) != down["marker"]
        else:  # written by an older relay: only the time was kept
            resumed = last is not None and (down["last_heartbeat"] is None or last > down["last_heartbeat"])
        return self._announce_recovered(now, last, down) if resumed else None

    def _announce_down(self, now: float, last: float | None, marker: tuple | None) -> str:
        since = (f"the last heartbeat arrived at {format_epoch(last)}" if last is not None
                 else f"no heartbeat has arrived since the receiver's relay started at {format_epoch(self.started_at)}")
        starts_at = format_epoch(now)
        alert = Alert(self.fingerprint, "firing", self.labels, {
            "summary": f"The alerting pipeline is down: {since} on channel {self.config.channel!r}.",
            "description": (f"Alertmanager's Watchdog heartbeat has been silent for more than "
                            f"{self.config.timeout_seconds:g}s, so alerts may not be reaching anyone."),
        }, starts_at, None, "")
        self.store.add_system_event(alert, self.config.notify, now, {
            STATE_KEY: json.dumps({"starts_at": starts_at, "down_at": now, "last_heartbeat": last,
                                   "marker": list(marker) if marker else None})})
        log.warning("deadman.down channel=%s last_heartbeat=%s", self.config.channel,
                    format_epoch(last) if last is not None else "never")
        return "down"

    def _announce_recovered(self, now: float, last: float | None, down: dict) -> str:
        if last is None or last < down.get("down_at", last):
            last = now  # the wall clock stepped back since: the stored time is not this heartbeat's
        alert = Alert(self.fingerprint, "resolved", self.labels, {
            "summary": (f"The alerting pipeline is back: heartbeats resumed at {format_epoch(last)} "
                        f"on channel {self.config.channel!r}."),
        }, down["starts_at"], format_epoch(last), "")
        self.store.add_system_event(alert, self.config.notify, now, {STATE_KEY: ""})
        log.info("deadman.recovered channel=%s heartbeat=%s", self.config.channel, format_epoch(last))
        return "recovered"
