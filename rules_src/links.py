"""Where people open the receiver, and the runbook links that point at its /runbooks pages."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

# Every alert's runbook_url unless the spec or the alert sets one: the page the receiver serves.
DEFAULT_RUNBOOK_URL = "${receiver_external_url}/runbooks/${alert}"
# Stands in for a receiver_external_url that is wrong (already reported): a second error on every
# runbook_url built from it would only repeat the first.
_REPORTED = "http://receiver.invalid"


def receiver_external_url(c, endpoints: dict) -> str:
    """`receiver_external_url` without its trailing slash, or http://<the first receiver endpoint> when unset."""
    at = ("receiver_external_url",)
    if c.broken(at):
        return _REPORTED
    given = c.get(at)
    if given is None:
        receivers = endpoints.get("receiver") if c.clean(("endpoints", "receiver")) else None
        first = str((receivers or [""])[0])
        # A wrong endpoint is reported as one (validate._endpoints).
        return f"http://{first}" if re.fullmatch(r"[^\s:/]+:\d+", first) else _REPORTED
    problem = web_url_problem(given) or _base_problem(given)
    if problem:
        c.fail(at, f"{problem}: expected the address people open the receiver at, such as"
                   f" https://alerts.example.net, got {given!r}")
        return _REPORTED
    return given.rstrip("/")


def check_runbook_url(c, at: tuple, written: str, url: str) -> None:
    """Report at `at` a runbook_url that, filled in, is no http(s) link: Slack, mail and the pages show it as text."""
    problem = web_url_problem(url)
    if problem:
        # `written`, not `url`: the base pattern gives one message for every alert, reported once.
        c.fail(at, f"{problem}: a runbook_url must give an http:// or https:// URL, got {written!r}")


def web_url_problem(url: str) -> str | None:
    """Why `url` is no absolute http(s) URL with a host, or None."""
    if re.search(r"[\s\x00-\x1f\x7f]", url):
        return "holds whitespace or a control character"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return "is not a valid URL"
    if parts.scheme.lower() not in ("http", "https"):
        return "is not an http:// or https:// URL"
    if not parts.hostname:
        return "has no host"
    if "@" in parts.netloc:  # a password in a committed file, and in every alert
        return "carries a user name or password"
    return None


def _base_problem(url: str) -> str | None:
    """Why `url` cannot have paths appended to it, or None."""
    parts = urlsplit(url)
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        return "has a query or fragment (paths such as /runbooks/<Alert> are appended to it)"
    return None
