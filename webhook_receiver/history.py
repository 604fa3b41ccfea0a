"""History blueprint: the JSON API under /api/v1 and the HTML page for people on call."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, redirect, render_template, request
from werkzeug.datastructures import MultiDict

from webhook_receiver.auth import COOKIE, authorized, matches
from webhook_receiver.db import get_store
from webhook_receiver.query import PARAMS, QueryError, encode_cursor, parse_query
from webhook_receiver.store.base import StorageError

bp = Blueprint("history", __name__)
_PAGES = ("history.page", "history.alert_page")


@bp.before_request
def _require_token():
    """When history_token_file is set: a bearer token, or for the HTML pages also the cookie."""
    token = current_app.extensions["dumont.tokens"].history
    is_page = request.endpoint in _PAGES
    if token is None or request.endpoint == "history.sign_in" or authorized(request, token, allow_cookie=is_page):
        return None
    if is_page:  # a browser sends no bearer header: ask for the token once, then keep it in the cookie
        return render_template("sign_in.html", next=request.full_path.rstrip("?"), wrong=False), 401
    response = jsonify(error="missing or wrong bearer token")
    response.status_code = 401
    response.headers["WWW-Authenticate"] = "Bearer"
    return response


@bp.post("/sign-in")
def sign_in():
    """Check the history token typed into the page's form; keep it in an HttpOnly cookie and go back."""
    token = current_app.extensions["dumont.tokens"].history
    target = request.form.get("next", "/")
    if not target.startswith("/") or target[1:2] in ("/", "\\"):
        target = "/"  # only back into this receiver: browsers read //host and /\host as another site
    if token is None:
        return redirect(target, 303)
    if not matches(request.form.get("token"), token):
        return render_template("sign_in.html", next=target, wrong=True), 401
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
    return jsonify(entries=entries, next_cursor=encode_cursor(next_id) if next_id is not None else None)


@bp.get("/api/v1/alerts")
def api_alerts():
    """Alerts firing now, as far as the receiver knows."""
    return jsonify(alerts=get_store().active_alerts())


@bp.get("/api/v1/alerts/<fingerprint>")
def api_alert(fingerprint: str):
    """One alert's state changes, oldest first, with every delivery attempt."""
    timeline = get_store().timeline(fingerprint)
    if not timeline:
        return _error(404, f"unknown alert {fingerprint!r}")
    return jsonify(fingerprint=fingerprint, status=timeline[-1]["status"], timeline=timeline)


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
    return render_template("history.html", error=None, entries=entries, args=request.args,
                           labels=request.args.getlist("label"), next_args=next_args,
                           firing=sum(get_store().active_by_severity().values()))


@bp.get("/alerts/<fingerprint>")
def alert_page(fingerprint: str):
    """One alert's timeline as an HTML page."""
    timeline = get_store().timeline(fingerprint)
    if not timeline:
        return render_template("timeline.html", fingerprint=fingerprint, timeline=[]), 404
    return render_template("timeline.html", fingerprint=fingerprint, timeline=timeline)
