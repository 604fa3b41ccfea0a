"""The webhook receiver: Flask app that stores Alertmanager notifications and relays them to people."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

from flask import Flask

from webhook_receiver import db, history, ingest, ops
from webhook_receiver.channels import load_channels
from webhook_receiver.metrics import build_registry
from webhook_receiver.config import Config, ConfigError, build_config, load_config, read_secret

CONFIG_ENV = "DUMONT_RECEIVER_CONFIG"  # path of receiver.yml when create_app() is given nothing


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
    app.extensions["dumont.tokens"] = Tokens(
        ingest=read_secret(config.token_file, "token_file"),
        history=read_secret(config.history_token_file, "history_token_file") if config.history_token_file else None,
    )
    app.extensions["dumont.registry"] = build_registry(db.init_app(app, config))
    app.register_blueprint(ingest.bp)
    app.register_blueprint(history.bp)
    app.register_blueprint(ops.bp)
    return app
