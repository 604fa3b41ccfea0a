"""The two HTTP APIs a drill reads: Alertmanager's v2 alerts and the receiver's history; errors name the URL."""
from __future__ import annotations

from urllib.parse import quote

import requests

REQUEST_TIMEOUT = 10.0  # seconds for one request: connecting, then each read


class ApiProblem(Exception):
    """A request that failed: unreachable, refused or answered with an error; the message names the URL."""


class Unauthorized(ApiProblem):
    """The history API refused the token: asking again cannot help."""


def _reason(exc: requests.RequestException) -> str:
    # requests nests the OS error several levels deep; its last words are the useful ones.
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "timed out", "No route to host"):
        if marker in text:
            return marker.lower()
    return text[:200]


def _detail(response: requests.Response) -> str:
    text = " ".join(response.text.split())[:300]
    return f"HTTP {response.status_code}" + (f": {text}" if text else "")


class Alertmanager:
    """One Alertmanager's API v2 (`/api/v2/alerts`)."""

    def __init__(self, url: str, timeout: float = REQUEST_TIMEOUT):
        self.url = url.rstrip("/")
        self.timeout = timeout

    def post(self, alerts: list[dict]) -> None:
        """POST /api/v2/alerts, as Prometheus does; ApiProblem unless it answers 200."""
        try:
            response = requests.post(self.url + "/api/v2/alerts", json=alerts, timeout=self.timeout)
        except requests.RequestException as exc:
            raise ApiProblem(f"{self.url}: {_reason(exc)}") from None
        if response.status_code != 200:
            raise ApiProblem(f"{self.url}/api/v2/alerts: {_detail(response)}")

    def alerts(self, labels: dict[str, str]) -> list[dict]:
        """The alerts it holds whose labels include `labels` (active, silenced, inhibited and unprocessed)."""
        params = [("filter", f'{name}="{_escape(value)}"') for name, value in sorted(labels.items())]
        try:
            response = requests.get(self.url + "/api/v2/alerts", params=params, timeout=self.timeout)
        except requests.RequestException as exc:
            raise ApiProblem(f"{self.url}: {_reason(exc)}") from None
        if response.status_code != 200:
            raise ApiProblem(f"{self.url}/api/v2/alerts: {_detail(response)}")
        try:
            found = response.json()
        except ValueError:
            raise ApiProblem(f"{self.url}/api/v2/alerts: not JSON") from None
        if not isinstance(found, list):
            raise ApiProblem(f"{self.url}/api/v2/alerts: expected a list of alerts")
        return found


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class History:
    """The receiver's history API; the bearer token (when the history has one) is sent, never shown."""

    def __init__(self, url: str, token: str | None, timeout: float = REQUEST_TIMEOUT):
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.timeout = timeout

    def timeline(self, fingerprint: str) -> list[dict] | None:
        """GET /api/v1/alerts/<fingerprint>: its state changes, oldest first, with deliveries; None when unknown."""
        url = f"{self.url}/api/v1/alerts/{quote(fingerprint, safe='')}"
        try:
            response = requests.get(url, headers=self._headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise ApiProblem(f"receiver {self.url}: {_reason(exc)}") from None
        if response.status_code == 404:
            return None
        if response.status_code == 401:
            raise Unauthorized(f"receiver {self.url}: the history API refused the token (401): give the history "
                             "token's file with --history-token-file, or history_token_file in receiver.yml")
        if response.status_code != 200:
            raise ApiProblem(f"receiver {url}: {_detail(response)}")
        try:
            return response.json()["timeline"]
        except (ValueError, KeyError, TypeError):
            raise ApiProblem(f"receiver {url}: not the history API's answer") from None
