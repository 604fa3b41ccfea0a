"""Bearer-token checks, constant-time, that never echo or log the token."""
from __future__ import annotations

import hmac

from flask import Request

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
