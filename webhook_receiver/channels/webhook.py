"""Deliver messages to any HTTP endpoint as a signed, versioned JSON document (webhook_format.py)."""
from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import requests

from . import http_answer
from .model import Message, SendResult
from .ratelimit import RateLimiter
from .secrets import SecretError, read_secret
from .webhook_format import SIGNATURE_HEADER, TIMESTAMP_HEADER, build_document, encode, sign
from .webhook_headers import SecretValue, resolve, secret_values

MAX_RETRY_AFTER = 3600.0  # the default defer_limit; the relay lowers it to its own (RelayWorker)
# No spacing between posts (an endpoint of ours has no published limit), but a 429's Retry-After holds back
# every channel that posts to the same URL, in any thread.
WEBHOOK_LIMITER = RateLimiter(interval=0.0)


class WebhookChannel:
    """An HTTP endpoint whose URL, signing secret and secret headers are read from files or variables at every send."""

    type = "webhook"
    digests = False  # the receiving system wants every state change, never a storm's summary

    def __init__(
        self,
        name: str,
        *,
        url_file: str | None = None,
        url_env: str | None = None,
        secret_file: str | None = None,
        secret_env: str | None = None,
        headers: Mapping[str, str | SecretValue] | None = None,
        timeout: float = 10.0,
        limiter: RateLimiter = WEBHOOK_LIMITER,
        max_retry_after: float = MAX_RETRY_AFTER,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.url_file = url_file
        self.url_env = url_env
        self.secret_file = secret_file
        self.secret_env = secret_env
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.limiter = limiter
        self.max_retry_after = max_retry_after
        self.clock = clock
        http_answer.hide_request_paths()

    def send(self, message: Message) -> SendResult:
        """Post the message's document; never raises for delivery problems."""
        try:
            url = read_secret(self.url_file, self.url_env)
            secret = read_secret(self.secret_file, self.secret_env) if self.secret_file or self.secret_env else None
            extra = resolve(self.headers)
        except SecretError as exc:
            return SendResult(ok=False, permanent=True, detail=str(exc))
        secrets = [url, *_url_parts(url), secret or "", *secret_values(self.headers, extra)]
        body = encode(build_document(message))
        blocked = self.limiter.acquire(url)
        if blocked is not None:
            return http_answer.held_back(blocked)
        # Stamped at each attempt: a retry is signed afresh, so the receiving end may refuse old timestamps.
        timestamp = str(int(self.clock()))
        headers = {"User-Agent": "dumont-receiver", **extra, "Content-Type": "application/json",
                   TIMESTAMP_HEADER: timestamp}
        if secret is not None:
            headers[SIGNATURE_HEADER] = sign(secret, timestamp, body)
        try:
            # (connect, read) timeouts; no redirects: an endpoint that redirects is misconfigured
            response = requests.post(url, data=body, headers=headers, timeout=(self.timeout, self.timeout),
                                     allow_redirects=False)
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema):
            return SendResult(ok=False, permanent=True, detail=f"the URL from {self._source()} is not valid")
        except requests.Timeout:
            return SendResult(ok=False, detail=f"timed out after {self.timeout:g}s")
        except requests.RequestException as exc:
            # str(exc) would quote the URL, which is a secret
            return SendResult(ok=False, detail=f"connection failed: {http_answer.reason(exc)}")
        return self._result(url, response, secrets)

    def _source(self) -> str:
        return f"file {self.url_file}" if self.url_file else f"variable {self.url_env}"

    def _result(self, url: str, response: requests.Response, secrets: list[str]) -> SendResult:
        status = response.status_code
        if 200 <= status < 300:
            return SendResult(ok=True, detail=f"HTTP {status}")
        if status == 429:
            return http_answer.rate_limited(response.headers.get("Retry-After"), self.max_retry_after,
                                            self.limiter, url)
        if status >= 500:
            return SendResult(ok=False, detail=f"HTTP {status}")
        # 3xx and other 4xx: the endpoint refuses this document; its first words say why
        return SendResult(ok=False, permanent=True,
                          detail=f"HTTP {status} {http_answer.snippet(response.text, secrets)}".rstrip())


def _url_parts(url: str) -> list[str]:
    """The parts of a URL that may be its secret, to keep out of the history: its path and query, and each of
    their longer segments (a token an echoing server quotes alone)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    segments = [seg for part in (parts.path, parts.query) for seg in re.split(r"[/&=]", part) if len(seg) >= 8]
    return [part for part in (parts.path, parts.query) if len(part) > 1] + segments
