"""Stats blueprint: alerting analytics as JSON (GET /api/v1/stats) and as a page with charts (GET /stats)."""
from __future__ import annotations

import time

from flask import Blueprint, jsonify, render_template, request

from webhook_receiver.auth import guard_history
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
    is_page = request.endpoint == _PAGE
    return guard_history(request, page=is_page, allow_cookie=is_page)


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
