"""Read one Alertmanager's API v2: its alerts (suppressed ones included), its silences and when it started."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import requests

from webhook_receiver.payload import canonical_time, epoch

# Every state: suppressed alerts are what the webhooks never tell.
_ALERTS = "/api/v2/alerts?active=true&silenced=true&inhibited=true&unprocessed=true"
_MAX_BYTES = 64 << 20  # a larger answer is refused rather than held: the API of a sane Alertmanager is far smaller


@dataclass(frozen=True)
class ListedAlert:
    """One alert as an Alertmanager lists it; times canonical RFC3339 (the API gives milliseconds)."""

    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: str
    generator_url: str
    state: str                       # Alertmanager's: active, suppressed or unprocessed
    silenced_by: tuple[str, ...] = ()
    inhibited_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class PeerView:
    """What one Alertmanager said, or why it could not be asked (`error`, then `alerts` is empty)."""

    url: str
    alerts: dict[str, ListedAlert] = field(default_factory=dict)
    silences: dict[str, dict] = field(default_factory=dict)   # id -> the silence as the API gives it
    started_at: float | None = None  # Unix seconds, from /api/v2/status's uptime
    error: str | None = None

    @property
    def reachable(self) -> bool:
        """Whether every read of this pass answered."""
        return self.error is None


class PeerError(Exception):
    """An Alertmanager answered nothing usable; the message names the URL and what went wrong."""


def read_peer(session: requests.Session, url: str, timeout: float) -> PeerView:
    """Ask the Alertmanager at `url` (its base URL) for its status, alerts and silences."""
    base = url.rstrip("/")
    try:
        status = _get(session, base + "/api/v2/status", timeout)
        alerts = _get(session, base + _ALERTS, timeout)
        silences = _get(session, base + "/api/v2/silences", timeout)
        return PeerView(url=url, alerts=_alerts(alerts, base), silences=_silences(silences, base),
                        started_at=_started_at(status, base))
    except PeerError as exc:
        return PeerView(url=url, error=str(exc))


def _get(session: requests.Session, url: str, timeout: float) -> Any:
    try:
        with session.get(url, timeout=timeout, stream=True) as response:
            if response.status_code != 200:
                raise PeerError(f"GET {url}: HTTP {response.status_code}")
            body = response.raw.read(_MAX_BYTES + 1, decode_content=True)
    except requests.RequestException as exc:
        raise PeerError(f"GET {url}: {type(exc).__name__}") from None
    if len(body) > _MAX_BYTES:
        raise PeerError(f"GET {url}: answer larger than {_MAX_BYTES} bytes")
    try:
        return json.loads(body)
    except ValueError:
        raise PeerError(f"GET {url}: not JSON") from None


def _alerts(data: Any, base: str) -> dict[str, ListedAlert]:
    if not isinstance(data, list):
        raise PeerError(f"{base}/api/v2/alerts: expected a list")
    listed = {}
    try:
        for item in data:
            status = item["status"]
            alert = ListedAlert(
                fingerprint=str(item["fingerprint"]), labels=_strings(item["labels"]),
                annotations=_strings(item.get("annotations") or {}), starts_at=canonical_time(item["startsAt"]),
                generator_url=str(item.get("generatorURL") or ""), state=str(status["state"]),
                silenced_by=tuple(sorted(str(s) for s in status.get("silencedBy") or ())),
                inhibited_by=tuple(sorted(str(s) for s in status.get("inhibitedBy") or ())))
            listed[alert.fingerprint] = alert
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise PeerError(f"{base}/api/v2/alerts: an alert without a valid {exc}") from None
    return listed


def _strings(mapping: Any) -> dict[str, str]:
    if not isinstance(mapping, dict):
        raise TypeError("labels")
    return {str(key): str(value) for key, value in mapping.items()}


def _silences(data: Any, base: str) -> dict[str, dict]:
    if not isinstance(data, list) or not all(isinstance(item, dict) and "id" in item for item in data):
        raise PeerError(f"{base}/api/v2/silences: expected a list of silences with ids")
    return {str(item["id"]): item for item in data}


def _started_at(data: Any, base: str) -> float:
    try:
        return epoch(canonical_time(data["uptime"]))
    except (KeyError, TypeError, ValueError):
        raise PeerError(f"{base}/api/v2/status: no valid uptime") from None
