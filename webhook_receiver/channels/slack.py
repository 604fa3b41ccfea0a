"""Deliver messages to a Slack incoming webhook, within Slack's rate limit."""
from __future__ import annotations

import requests

from .http_answer import hide_request_paths, rate_limited, reason
from .model import Message, SendResult
from .ratelimit import SLACK_LIMITER, RateLimiter
from .secrets import SecretError, read_secret
from .slack_format import build_payload

MAX_RETRY_AFTER = 3600.0  # the default defer_limit: a Retry-After longer than the relay waits is not believed


class SlackChannel:
    """A Slack incoming webhook whose URL is read from a file or variable at every send."""

    type = "slack"
    digests = True

    def __init__(
        self,
        name: str,
        *,
        webhook_url_file: str | None = None,
        webhook_url_env: str | None = None,
        channel: str | None = None,
        timeout: float = 10.0,
        limiter: RateLimiter = SLACK_LIMITER,
        max_retry_after: float = MAX_RETRY_AFTER,
    ) -> None:
        self.name = name
        self.webhook_url_file = webhook_url_file
        self.webhook_url_env = webhook_url_env
        self.channel = channel
        self.timeout = timeout
        self.limiter = limiter
        # The longest Retry-After believed; the relay sets it to its defer_limit (RelayWorker).
        self.max_retry_after = max_retry_after
        hide_request_paths()

    def send(self, message: Message) -> SendResult:
        """Post `message`; never raises for delivery problems."""
        try:
            url = read_secret(self.webhook_url_file, self.webhook_url_env)
        except SecretError as exc:
            return SendResult(ok=False, permanent=True, detail=str(exc))
        payload = build_payload(message, self.channel)
        blocked = self.limiter.acquire(url)
        if blocked is not None:
            return SendResult(ok=False, retry_after=blocked, detail=f"Slack asked to wait {blocked:.0f}s more")
        try:
            # (connect, read) timeouts; no redirects: a webhook that redirects is misconfigured
            response = requests.post(url, json=payload, timeout=(self.timeout, self.timeout), allow_redirects=False)
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema):
            return SendResult(ok=False, permanent=True, detail=f"the webhook URL from {self._source()} is not valid")
        except requests.Timeout:
            return SendResult(ok=False, detail=f"timed out after {self.timeout:g}s")
        except requests.RequestException as exc:
            # str(exc) would quote the URL, which is the secret
            return SendResult(ok=False, detail=f"connection failed: {reason(exc)}")
        return self._result(url, response)

    def _source(self) -> str:
        return f"file {self.webhook_url_file}" if self.webhook_url_file else f"variable {self.webhook_url_env}"

    def _result(self, url: str, response: requests.Response) -> SendResult:
        status = response.status_code
        if 200 <= status < 300:
            return SendResult(ok=True, detail=f"HTTP {status}")
        if status == 429:
            return self._rate_limited(url, response.headers.get("Retry-After"))
        if status >= 500:
            return SendResult(ok=False, detail=f"HTTP {status}")
        # Slack names the problem in the body: invalid_payload, no_service, channel_is_archived, ...
        body = " ".join(response.text.split())[:80]
        return SendResult(ok=False, permanent=True, detail=f"HTTP {status} {body}".rstrip())

    def _rate_limited(self, url: str, header: str | None) -> SendResult:
        """A 429: its Retry-After validated (see parse_retry_after) and capped at max_retry_after."""
        return rate_limited(header, self.max_retry_after, self.limiter, url)
