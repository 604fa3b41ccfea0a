"""Stats blueprint: alerting analytics as JSON (GET /api/v1/stats) and as a page with charts (GET /stats)."""
from __future__ import annotations

import time

from flask import Blueprint, current_app, jsonify, render_template, request

from webhook_receiver.auth import authorized, request_target
from webhook_receiver.db import get_store
from webhook_receiver.query import QueryError
from webhook_receiver.stats_params import DEFAULT_FLAP, DEFAULT_TOP, parse_stats_query
from webhook_receiver.stats_shape import stats_json
from webhook_receiver.store.base import StorageError

bp = Blueprint("stats", __name__)
_PAGE = "stats.page"


@bp.before_request
def _require_token():
    """The history's auth: with history_token_file set, a bearer token, or for the page also the sign-in cookie."""
    token = current_app.extensions["dumont.tokens"].history
    is_page = request.endpoint == _PAGE
    if token is None or authorized(request, token, allow_cookie=is_page):
        return None
    if is_page:  # a browser sends no bearer header: the history's sign-in form, then the cookie
        return render_template("sign_in.html", next=request_target(request), wrong=False), 401
    response = jsonify(error="missing or wrong bearer token")
    response.status_code = 401
    response.headers["WWW-Authenticate"] = "Bearer"
    return response


@bp.errorhandler(StorageError)
def _storage_failed(exc: StorageError):
    response = jsonify(error="storage unavailable, retry later")
    response.status_code = 503
    return response


@bp.get("/api/v1/stats")
def api_stats():
    """Episodes, time firing and to resolve, flapping, the noisiest alerts and machines, and deliveries per channel."""
    try:
        parsed = parse_stats_query(request.args, time.time())
    except QueryError as exc:
        response = jsonify(error=str(exc))
        response.status_code = 400
        return response
    return jsonify(stats_json(parsed, get_store().stats(parsed.query)))


@bp.get("/stats")
def page():
    """The stats as a page: tables, and charts drawn by static/stats.js from the figures in a data attribute."""
    try:
        parsed = parse_stats_query(request.args, time.time())
    except QueryError as exc:
        return render_template("stats.html", error=str(exc), stats=None, args=request.args,
                               labels=request.args.getlist("label"), default_flap=DEFAULT_FLAP,
                               default_top=DEFAULT_TOP), 400
    return render_template("stats.html", error=None, stats=stats_json(parsed, get_store().stats(parsed.query)),
                           args=request.args, labels=request.args.getlist("label"), default_flap=DEFAULT_FLAP,
                           default_top=DEFAULT_TOP)
