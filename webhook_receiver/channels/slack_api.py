"""Post to Slack through its Web API with a bot token, so a later change of an alert replies in its firing's thread."""
from __future__ import annotations

import dataclasses
import re
from typing import Any
from urllib.parse import urlsplit

import requests

from . import fields
from .model import Message, SendResult
from .ratelimit import SLACK_LIMITER, RateLimiter
from .secrets import SecretError, read_secret
from .http_answer import hide_request_paths, rate_limited, reason
from .slack import MAX_RETRY_AFTER
from .slack_format import build_payload

DEFAULT_API_URL = "https://slack.com/api"
CHANNEL_ID = re.compile(r"[CDG][A-Z0-9]{8,}")
_ERROR = re.compile(r"[a-z0-9_]{1,60}")  # Slack's error codes; anything else a server says is not repeated
_TOKEN = re.compile(r"[\x21-\x7e]+")     # what an Authorization header can carry
_TS = re.compile(r"[0-9A-Za-z._:-]{1,64}")
RATE_LIMITED = frozenset({"ratelimited", "rate_limited"})
# Web API errors a later attempt may not meet; every other one is the token's, the channel's or the message's fault
# (invalid_auth, channel_not_found, not_in_channel, is_archived, msg_too_long...), which retrying cannot mend.
RETRYABLE = frozenset({"internal_error", "fatal_error", "service_unavailable", "request_timeout"})


class SlackApiChannel:
    """A Slack channel posted to with chat.postMessage; the bot token is read from a file or variable at every send."""

    type = "slack"
    digests = True
    threads = True  # the relay sends one message per thread (relay/threads.py)

    def __init__(
        self,
        name: str,
        *,
        channel: str,
        bot_token_file: str | None = None,
        bot_token_env: str | None = None,
        api_url: str = DEFAULT_API_URL,
        update_parent: bool = False,
        timeout: float = 10.0,
        limiter: RateLimiter = SLACK_LIMITER,
        max_retry_after: float = MAX_RETRY_AFTER,
    ) -> None:
        self.name = name
        self.channel = channel
        self.bot_token_file = bot_token_file
        self.bot_token_env = bot_token_env
        self.api_url = api_url.rstrip("/")
        self.update_parent = update_parent
        self.timeout = timeout
        self.limiter = limiter
        # The longest Retry-After believed; the relay sets it to its defer_limit (RelayWorker).
        self.max_retry_after = max_retry_after
        # Slack allows about one message a second per channel, whoever posts it
        self._key = f"{self.api_url} {channel}"
        hide_request_paths()

    def send(self, message: Message) -> SendResult:
        """Post `message`, in its thread when it has one; never raises for delivery problems."""
        try:
            token = self._token()
        except SecretError as exc:
            return SendResult(ok=False, permanent=True, detail=str(exc))
        result = self._post(token, message)
        # Belt and braces: no answer a server made up may carry the token into the history
        return dataclasses.replace(result, detail=result.detail.replace(token, "<token>"))

    def _token(self) -> str:
        token = read_secret(self.bot_token_file, self.bot_token_env)
        if not _TOKEN.fullmatch(token):
            raise SecretError(f"the bot token in {self._source()} holds spaces or control characters")
        return token

    def _source(self) -> str:
        return f"file {self.bot_token_file}" if self.bot_token_file else f"variable {self.bot_token_env}"

    def _post(self, token: str, message: Message) -> SendResult:
        payload = build_payload(message, self.channel)
        thread = thread_of(message)
        if thread:
            payload["thread_ts"] = thread
        result, answer = self._call("chat.postMessage", token, payload, paced=True)
        orphan = ""
        if thread and result.detail == _error_detail("thread_not_found"):
            # The firing's message was deleted: the change is still told, as a message of its own
            del payload["thread_ts"]
            result, answer = self._call("chat.postMessage", token, payload, paced=True)
            thread, orphan = None, " (its thread is gone: posted on its own)"
        if not result.ok:
            return result
        ts = answer.get("ts")
        ts = ts if isinstance(ts, str) and _TS.fullmatch(ts) else None
        detail = (f"ok, ts {ts}" if ts else "ok, without a ts (a later change cannot reply to it)") + orphan
        if thread:
            detail += f", in thread {thread}"
            if self.update_parent and message.parent is not None:
                detail += self._update(token, thread, message.parent)
        return SendResult(ok=True, detail=detail, reference=ts)

    def _update(self, token: str, ts: str, parent: Message) -> str:
        """Show the thread's first message as its alerts now stand (chat.update); what became of it, for the detail."""
        payload = build_payload(parent, self.channel)
        payload["ts"] = ts
        result, _ = self._call("chat.update", token, payload, paced=False)
        # Never retried: the reply told the news; the first message's colour is a courtesy
        return "; first message updated" if result.ok else f"; first message not updated: {result.detail}"

    def _call(self, method: str, token: str, payload: dict[str, Any], paced: bool) -> tuple[SendResult, dict]:
        """One Web API call: its outcome and, when it succeeded, Slack's answer."""
        if paced:
            blocked = self.limiter.acquire(self._key)
            if blocked is not None:
                return SendResult(ok=False, retry_after=blocked, detail=f"Slack asked to wait {blocked:.0f}s more"), {}
        try:
            # (connect, read) timeouts; no redirects: an api_url that redirects is misconfigured
            response = requests.post(f"{self.api_url}/{method}", json=payload, timeout=(self.timeout, self.timeout),
                                     headers={"Authorization": f"Bearer {token}"}, allow_redirects=False)
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema):
            return SendResult(ok=False, permanent=True, detail=f"the api_url {self.api_url} is not valid"), {}
        except requests.Timeout:
            return SendResult(ok=False, detail=f"timed out after {self.timeout:g}s"), {}
        except requests.RequestException as exc:
            return SendResult(ok=False, detail=f"connection failed: {reason(exc)}"), {}
        return self._answer(response)

    def _answer(self, response: requests.Response) -> tuple[SendResult, dict]:
        status = response.status_code
        if status == 429:
            return rate_limited(response.headers.get("Retry-After"), self.max_retry_after, self.limiter, self._key), {}
        if status >= 500:
            return SendResult(ok=False, detail=f"HTTP {status}"), {}
        if status != 200:
            body = " ".join(response.text.split())[:80]
            return SendResult(ok=False, permanent=True, detail=f"HTTP {status} {body}".rstrip()), {}
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or not isinstance(answer.get("ok"), bool):
            return SendResult(ok=False, detail="HTTP 200 without a Web API answer (is api_url Slack's?)"), {}
        if answer["ok"]:
            return SendResult(ok=True), answer
        error = answer.get("error")
        error = error if isinstance(error, str) and _ERROR.fullmatch(error) else "unknown_error"
        if error in RATE_LIMITED:
            header = response.headers.get("Retry-After")
            return rate_limited(header, self.max_retry_after, self.limiter, self._key, said=error), {}
        return SendResult(ok=False, permanent=error not in RETRYABLE, detail=_error_detail(error)), {}


def _error_detail(error: str) -> str:
    return f"Slack Web API error {error}"


def thread_of(message: Message) -> str | None:
    """The thread `message` replies in: its changes' own when they share one; a digest is never a reply."""
    if message.digest:
        return None
    found = {event.thread for event in message.events}
    return found.pop() if len(found) == 1 else None


def api_url(value: Any) -> str:
    """The Web API's base URL (channels.yml's api_url): http(s), a host, no credentials, query or fragment."""
    text = fields.string(value).rstrip("/")
    try:
        parts = urlsplit(text)
        host = parts.hostname
    except ValueError:
        host = None
    if not host or parts.scheme not in ("http", "https") or "@" in parts.netloc or parts.query or parts.fragment:
        raise fields.Invalid("must be an http(s) URL like https://slack.com/api, without credentials, query or fragment")
    if host == "hooks.slack.com":  # an incoming webhook's URL is a secret
        raise fields.Invalid("is an incoming webhook's URL, a secret: give it in webhook_url_file or webhook_url_env")
    return text


def channel_id(value: Any) -> str:
    """A Slack channel ID, which the Web API needs (a name can be renamed; chat.update takes IDs only)."""
    if not isinstance(value, str) or not CHANNEL_ID.fullmatch(value):
        raise fields.Invalid("with a bot token, must be a channel ID like C0123456789 (shown in the channel's"
                             " details in Slack), not a name")
    return value
