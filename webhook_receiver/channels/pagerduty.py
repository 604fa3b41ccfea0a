"""Deliver state changes to PagerDuty's Events API v2: one event per alert, deduplicated by episode."""
from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import requests

from . import http_answer
from .fields import Invalid
from .model import Message, SendResult
from .pagerduty_format import build_event
from .ratelimit import RateLimiter
from .secrets import SecretError, read_secret

DEFAULT_API_URL = "https://events.pagerduty.com"  # EU service regions: https://events.eu.pagerduty.com
ENQUEUE = "/v2/enqueue"
MAX_RETRY_AFTER = 3600.0  # the default defer_limit; the relay lowers it to its own (RelayWorker)
# PagerDuty limits events per routing key: a 429's Retry-After holds back every channel using that key.
PAGERDUTY_LIMITER = RateLimiter(interval=0.0)


def check_api_url(value: Any) -> str:
    """`api_url`: an http(s) base URL with a host and nothing else (no credentials, query or fragment)."""
    try:
        parts = urlsplit(value) if isinstance(value, str) else None
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid(f"must be an http(s) URL such as {DEFAULT_API_URL}")
    if parts.username is not None or parts.password is not None:
        raise Invalid("must not hold credentials (the routing key goes in routing_key_file or routing_key_env)")
    if parts.query or parts.fragment:
        raise Invalid(f"must be a base URL such as {DEFAULT_API_URL}, without a query or fragment")
    return value.rstrip("/")


class PagerDutyChannel:
    """A PagerDuty service integration (Events API v2) whose routing key is read from a file or variable at every send."""

    type = "pagerduty"
    digests = False  # every state change is an incident's trigger or resolve: a summary would page nobody

    def __init__(
        self,
        name: str,
        *,
        routing_key_file: str | None = None,
        routing_key_env: str | None = None,
        api_url: str = DEFAULT_API_URL,
        timeout: float = 10.0,
        limiter: RateLimiter = PAGERDUTY_LIMITER,
        max_retry_after: float = MAX_RETRY_AFTER,
    ) -> None:
        self.name = name
        self.routing_key_file = routing_key_file
        self.routing_key_env = routing_key_env
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self.limiter = limiter
        self.max_retry_after = max_retry_after
        http_answer.hide_request_paths()

    def send(self, message: Message) -> SendResult:
        """Enqueue one event per state change, in order; the first failure is the message's result.

        A retry re-sends every event of the message: PagerDuty deduplicates by dedup_key, so a trigger sent
        twice is still one incident, and a resolve of a resolved incident changes nothing.
        """
        try:
            routing_key = read_secret(self.routing_key_file, self.routing_key_env)
        except SecretError as exc:
            return SendResult(ok=False, permanent=True, detail=str(exc))
        receiver = message.receiver_url
        events = [build_event(event, routing_key, receiver) for event in message.events]
        accepted: list[str] = []
        refused: SendResult | None = None
        for number, event in enumerate(events, 1):
            result = self._enqueue(event, routing_key)
            what = f"{event['event_action']} {event['dedup_key']}"
            if result.ok:
                accepted.append(what)
                continue
            where = what if len(events) == 1 else f"event {number} of {len(events)}: {what}"
            result = SendResult(ok=False, retry_after=result.retry_after, permanent=result.permanent,
                                detail=f"{result.detail} ({where})")
            if not result.permanent:
                # The rest would meet the same outage or limit; the retry sends them all again
                return result
            # Refused for good (400): the others still go out, so one bad event holds back no page
            refused = refused or result
        if refused is not None:
            return refused
        return SendResult(ok=True, detail=f"HTTP 202 {', '.join(accepted)}")

    def _enqueue(self, event: dict[str, Any], routing_key: str) -> SendResult:
        limiter_key = f"{self.api_url}\n{routing_key}"
        blocked = self.limiter.acquire(limiter_key)
        if blocked is not None:
            return http_answer.held_back(blocked)
        try:
            response = requests.post(self.api_url + ENQUEUE, json=event, timeout=(self.timeout, self.timeout),
                                     allow_redirects=False, headers={"User-Agent": "dumont-receiver"})
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema):
            return SendResult(ok=False, permanent=True, detail=f"api_url {self.api_url} is not valid")
        except requests.Timeout:
            return SendResult(ok=False, detail=f"timed out after {self.timeout:g}s")
        except requests.RequestException as exc:
            return SendResult(ok=False, detail=f"connection failed: {http_answer.reason(exc)}")
        status = response.status_code
        if 200 <= status < 300:
            return SendResult(ok=True, detail=f"HTTP {status}")
        if status == 429:  # PagerDuty's rate limit: with a Retry-After, a deferral; without, the relay's backoff
            return http_answer.rate_limited(response.headers.get("Retry-After"), self.max_retry_after,
                                            self.limiter, limiter_key)
        if status >= 500:
            return SendResult(ok=False, detail=f"HTTP {status}")
        return SendResult(ok=False, permanent=True, detail=f"HTTP {status} {_reason(response, routing_key)}".rstrip())


def _reason(response: requests.Response, routing_key: str) -> str:
    """PagerDuty's `message` and `errors` of a refusal, else the answer's first bytes; never the routing key."""
    try:
        answer = json.loads(response.text)
    except ValueError:
        answer = None
    if isinstance(answer, dict) and ("message" in answer or "errors" in answer):
        errors = answer.get("errors")
        text = str(answer.get("message") or "")
        if isinstance(errors, list) and errors:
            text += ": " + "; ".join(str(e) for e in errors)
        return http_answer.snippet(text, [routing_key], limit=200)
    return http_answer.snippet(response.text, [routing_key])
