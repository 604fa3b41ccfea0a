"""The webhook receiver: Flask app that stores Alertmanager notifications and relays them to people."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

from flask import Flask, Response, jsonify

from webhook_receiver import dashboard, db, history, ingest, ops, runbooks, stats
from webhook_receiver.auth import SignInLimiter
from webhook_receiver.channels import load_channels
from webhook_receiver.channels.formatting import printable, web_url
from webhook_receiver.metrics import build_registry
from webhook_receiver.payload import DRILL_LABEL
from webhook_receiver.config import Config, ConfigError, build_config, load_config, read_secret
from webhook_receiver.store.base import StorageError

CONFIG_ENV = "DUMONT_RECEIVER_CONFIG"  # path of receiver.yml when create_app() is given nothing
# On every answer, pages and API alike. The pages load one stylesheet of their own and no script; their forms
# post only here; nothing may frame them (clickjacking); and links to runbooks or Prometheus carry no
# Referer, which would give the history's URL with its filters to another site.
SECURITY_HEADERS = (
    # script-src 'self': the /stats and /dashboard pages' charts (their static scripts and the vendored uPlot),
    # never an inline script; connect-src 'self': the dashboard's script fetches its figures from this receiver
    ("Content-Security-Policy", "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self';"
                                " img-src 'self';"
                                " form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
)


@dataclass(frozen=True)
class Tokens:
    """Bearer tokens read at start; history is None when the history is open."""

    ingest: str
    history: str | None


def create_app(config: Config | Mapping | None = None) -> Flask:
    """The receiver app for `config` (a Config, a mapping of receiver.yml keys, or None: $DUMONT_RECEIVER_CONFIG)."""
    if config is None:
        if CONFIG_ENV not in os.environ:
            raise ConfigError(f"no configuration: pass one to create_app() or set {CONFIG_ENV}")
        config = load_config(os.environ[CONFIG_ENV])
    elif not isinstance(config, Config):
        config = build_config(config, source="create_app(config)", env=os.environ)

    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=config.max_body_bytes, RECEIVER=config)
    app.extensions["dumont.channels"] = load_channels(config.channels_file)
    runbooks.check_config(config)
    app.extensions["dumont.tokens"] = Tokens(
        ingest=read_secret(config.token_file, "token_file"),
        history=read_secret(config.history_token_file, "history_token_file") if config.history_token_file else None,
    )
    app.extensions["dumont.registry"] = build_registry(db.init_app(app, config), config.alertmanager_urls)
    app.extensions["dumont.sign_in_limiter"] = SignInLimiter()
    app.register_blueprint(ingest.bp)
    app.register_blueprint(history.bp)
    app.register_blueprint(ops.bp)
    app.register_blueprint(runbooks.bp)
    app.register_blueprint(stats.bp)
    dashboard.init_app(app, config)
    app.after_request(_security_headers)
    app.register_error_handler(StorageError, _storage_unavailable)
    # A string no UTF-8 encoder can write (a lone surrogate stored before ingest refused them) must not make
    # a page answer 500 for everyone: it is shown with U+FFFD in its place.
    app.jinja_env.finalize = lambda value: printable(value) if type(value) is str else value
    app.jinja_env.filters["web_url"] = web_url
    app.jinja_env.globals["DRILL_LABEL"] = DRILL_LABEL  # the pages badge a fire drill's alerts
    return app


def _security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS:
        response.headers.setdefault(name, value)
    return response


def _storage_unavailable(exc: StorageError):
    """503 for any read or write the database could not do: a retry later may succeed."""
    response = jsonify(error="storage unavailable, retry later")
    response.status_code = 503
    return response
