"""Bearer-token checks, constant-time, that never echo or log the token; the sign-in's limits."""
from __future__ import annotations

import hmac
import re
import threading
import time
from collections import OrderedDict
from typing import Callable
from urllib.parse import quote, quote_from_bytes

from flask import Request, current_app, jsonify, render_template

COOKIE = "dumont_history_token"


def matches(given: str | None, token: str) -> bool:
    """Whether `given` is `token`, compared in constant time."""
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def bearer(request: Request) -> str | None:
    """The token of an `Authorization: Bearer ...` header, or None."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def authorized(request: Request, token: str, allow_cookie: bool = False) -> bool:
    """Whether the request carries `token` as a bearer token (or, for pages, in the cookie)."""
    if matches(bearer(request), token):
        return True
    return allow_cookie and matches(request.cookies.get(COOKIE), token)


# A `next` to go back to after signing in: this receiver's own path and query, in printable ASCII (the pages
# percent-encode theirs). Browsers drop tabs and newlines inside a URL and read a backslash as a slash, so
# `/<TAB>/evil.example` or `/\evil.example` would leave the site; a newline made the redirect itself fail.
_SAME_SITE_PATH = re.compile(r"/(?![/\\])[!-~]*\Z", re.ASCII)


def request_target(request: Request) -> str:
    """The request's path and query, percent-encoded: what sign-in's `next` takes (safe_next)."""
    query = quote_from_bytes(request.query_string, safe="=&+%;/:,@?")
    return quote(request.path) + (f"?{query}" if query else "")


def safe_next(target: str | None) -> str:
    """`target` when it is a path on this receiver (no scheme, host, whitespace or backslash), else "/"."""
    if target and _SAME_SITE_PATH.match(target) and "\\" not in target:
        return target
    return "/"


class SignInLimiter:
    """A token bucket per client address: `burst` sign-ins at once, then one per `interval` seconds."""

    def __init__(self, burst: int = 10, interval: float = 6.0, max_clients: int = 10000,
                 clock: Callable[[], float] = time.monotonic):
        self.burst, self.interval, self.max_clients, self.clock = burst, interval, max_clients, clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, as of)
        self._lock = threading.Lock()

    def take(self, client: str) -> float:
        """0 when `client` may try to sign in now (and uses up one token), else the seconds until it may."""
        now = self.clock()
        with self._lock:
            tokens, since = self._buckets.pop(client, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + max(0.0, now - since) / self.interval)
            if tokens >= 1.0:
                tokens -= 1.0
                wait = 0.0
            else:
                wait = (1.0 - tokens) * self.interval
            self._buckets[client] = (tokens, now)  # most recent last
            # Bounded memory whatever the number of addresses: the client idle longest is forgotten first
            # (forgetting one only gives it a full bucket again).
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        return wait


def guard_history(request: Request, page: bool, allow_cookie: bool):
    """None when the history is open or `request` carries its token; else the answer: the sign-in form for a page,
    a 401 naming the bearer scheme for the API."""
    token = current_app.extensions["dumont.tokens"].history
    if token is None or authorized(request, token, allow_cookie=allow_cookie):
        return None
    if page:  # a browser sends no bearer header: the sign-in form, then the cookie
        return render_template("sign_in.html", next=request_target(request), wrong=False), 401
    response = jsonify(error="missing or wrong bearer token")
    response.status_code = 401
    response.headers["WWW-Authenticate"] = "Bearer"
    return response
