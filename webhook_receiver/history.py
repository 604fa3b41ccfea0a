"""History blueprint: the JSON API under /api/v1 and the HTML page for people on call."""
from __future__ import annotations

import math

from flask import Blueprint, current_app, jsonify, redirect, render_template, request
from werkzeug.datastructures import MultiDict

from webhook_receiver.auth import COOKIE, guard_history, matches, safe_next
from webhook_receiver.db import get_store
from webhook_receiver.query import (PARAMS, QueryError, encode_alerts_cursor, encode_cursor, parse_alerts_query,
                                    parse_query)
from webhook_receiver.store.base import StorageError

bp = Blueprint("history", __name__)
_PAGES = ("history.page", "history.alert_page")
# Lists (/api/v1/history, /api/v1/alerts) show each annotation up to this many characters; the alert's own
# timeline (/api/v1/alerts/<fingerprint>) has the full text. A post may carry up to max_body_bytes of them.
CLIP_CHARS = 1024


@bp.before_request
def _require_token():
    """When history_token_file is set: a bearer token, or for the HTML pages also the cookie."""
    if request.endpoint == "history.sign_in":
        return None
    is_page = request.endpoint in _PAGES
    return guard_history(request, page=is_page, allow_cookie=is_page)


@bp.post("/sign-in")
def sign_in():
    """Check the history token typed into the page's form; keep it in an HttpOnly cookie and go back."""
    token = current_app.extensions["dumont.tokens"].history
    target = safe_next(request.form.get("next"))  # only back into this receiver, else to the history
    if token is None:
        return redirect(target, 303)
    # Per client address, before the token is compared: guessing is slow whatever the token's length.
    wait = current_app.extensions["dumont.sign_in_limiter"].take(request.remote_addr or "")
    if wait > 0:
        get_store().count("sign_in", "limited")
        page = render_template("sign_in.html", next=target, wrong=False, limited=True)
        return page, 429, {"Retry-After": str(max(1, math.ceil(wait)))}
    if not matches(request.form.get("token"), token):
        get_store().count("sign_in", "wrong")
        return render_template("sign_in.html", next=target, wrong=True), 401
    get_store().count("sign_in", "ok")
    response = redirect(target, 303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="Lax", secure=request.is_secure,
                        max_age=30 * 86400)
    return response


@bp.errorhandler(StorageError)
def _storage_failed(exc: StorageError):
    response = jsonify(error="storage unavailable, retry later")
    response.status_code = 503
    return response


def _error(status: int, message: str):
    response = jsonify(error=message)
    response.status_code = status
    return response


@bp.get("/api/v1/history")
def api_history():
    """State changes, newest first, filtered and paginated (parameters: webhook_receiver/README.md)."""
    try:
        query = parse_query(request.args)
    except QueryError as exc:
        return _error(400, str(exc))
    entries, next_id = get_store().history(query)
    return jsonify(entries=[clip_annotations(entry) for entry in entries],
                   next_cursor=encode_cursor(next_id) if next_id is not None else None)


def clip_annotations(entry: dict, limit: int = CLIP_CHARS) -> dict:
    """`entry` with each annotation longer than `limit` characters cut (ending in …), and `annotations_clipped`
    giving the full length of each one that was."""
    clipped = {name: len(text) for name, text in entry["annotations"].items() if len(text) > limit}
    if clipped:
        entry["annotations"] = {name: text[:limit] + "…" if name in clipped else text
                                for name, text in entry["annotations"].items()}
    entry["annotations_clipped"] = clipped
    return entry


@bp.get("/api/v1/alerts")
def api_alerts():
    """Alerts firing now, as far as the receiver knows: newest startsAt first, paginated, annotations clipped."""
    try:
        limit, after = parse_alerts_query(request.args)
    except QueryError as exc:
        return _error(400, str(exc))
    alerts, position = get_store().active_alerts_page(limit, after, CLIP_CHARS)
    return jsonify(alerts=alerts, next_cursor=encode_alerts_cursor(*position) if position is not None else None)


@bp.get("/api/v1/alerts/<fingerprint>")
def api_alert(fingerprint: str):
    """One alert's state changes, oldest first, with every delivery attempt."""
    timeline = get_store().timeline(fingerprint)
    if not timeline:
        return _error(404, f"unknown alert {fingerprint!r}")
    return jsonify(fingerprint=fingerprint, status=timeline[-1]["status"], timeline=timeline,
                   suppression=get_store().suppression_changes(fingerprint))


@bp.get("/")
def page():
    """The history as an HTML page with a filter form."""
    try:
        query = parse_query(request.args)
    except QueryError as exc:
        return render_template("history.html", error=str(exc), entries=[], args=request.args,
                               labels=[], next_args=None), 400
    entries, next_id = get_store().history(query)
    next_args = None
    if next_id is not None:
        next_args = MultiDict([(k, v) for k, v in request.args.items(multi=True) if k in PARAMS and k != "cursor"])
        next_args["cursor"] = encode_cursor(next_id)
    entries = [clip_annotations(entry) for entry in entries]  # a page of 500 posts' annotations could be 500 MB
    return render_template("history.html", error=None, entries=entries, args=request.args,
                           labels=request.args.getlist("label"), next_args=next_args,
                           firing=sum(get_store().active_by_severity().values()))


@bp.get("/alerts/<fingerprint>")
def alert_page(fingerprint: str):
    """One alert's timeline as an HTML page."""
    timeline = get_store().timeline(fingerprint)
    if not timeline:
        return render_template("timeline.html", fingerprint=fingerprint, timeline=[]), 404
    return render_template("timeline.html", fingerprint=fingerprint, timeline=timeline,
                           suppression=get_store().suppression_changes(fingerprint))
