"""Runbooks blueprint: the pages `dumont-rules` renders (generated/<env>/runbooks/*.html) at /runbooks/<Alert>.

Every generated alert's runbook_url points here by default, so the link works wherever the receiver runs.
The pages are read per request: a new `make generate` shows without a restart.
"""
from __future__ import annotations

import re
from pathlib import Path

from flask import Blueprint, current_app, render_template, request
from markupsafe import Markup

from webhook_receiver.auth import authorized, request_target
from webhook_receiver.config import Config, ConfigError

bp = Blueprint("runbooks", __name__)
INDEX = "index"
# An alert's name as rules_src allows it (rules_src.model.NAME): it names the page's file, so nothing that
# could reach outside the directory (`..`, `/`, `%2F`) is ever opened.
ALERT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


def check_config(config: Config) -> None:
    """Raise ConfigError naming runbooks_dir and its path unless it holds the rendered runbooks (or is unset)."""
    if config.runbooks_dir is None:
        return
    path = Path(config.runbooks_dir)
    if not path.is_dir():
        raise ConfigError(f"runbooks_dir: {path} is not a directory (expected generated/<env>/runbooks,"
                          " rendered by make generate)")
    index = path / f"{INDEX}.html"
    try:
        index.read_bytes()
    except OSError as exc:
        raise ConfigError(f"runbooks_dir: cannot read {index}: {exc.strerror} (expected generated/<env>/runbooks,"
                          " rendered by make generate)") from None


@bp.before_request
def _require_token():
    """The history's sign-in: when history_token_file is set, a bearer token or the sign-in cookie."""
    token = current_app.extensions["dumont.tokens"].history
    if token is None or authorized(request, token, allow_cookie=True):
        return None
    return render_template("sign_in.html", next=request_target(request), wrong=False), 401


@bp.get("/runbooks/")
def index():
    """Every alert's runbook, as a table."""
    return _page(INDEX, "Runbooks")


@bp.get("/runbooks/<path:name>")
def runbook(name: str):
    """One alert's runbook: what it means, when it fires, its query and the first steps."""
    if not ALERT_NAME.match(name):
        return _missing(name, "is not an alert's name")
    return _page(name, f"Runbook: {name}")


def _page(name: str, title: str):
    directory = current_app.config["RECEIVER"].runbooks_dir
    if directory is None:
        return render_template("runbook.html", title="No runbooks", name=None, page=None,
                               missing="This receiver serves no runbooks: its runbooks_dir is not set."), 404
    try:
        page = (Path(directory) / f"{name}.html").read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError):
        return _missing(name, "has no runbook here")
    except OSError as exc:  # the directory was checked at start: a retry after fixing it may succeed
        return render_template("runbook.html", title="Runbook unavailable", name=None, page=None,
                               missing=f"The runbook cannot be read now ({exc.strerror}); try again later."), 503
    # Rendered by dumont-rules with autoescape from the spec: trusted markup, as the templates are.
    return render_template("runbook.html", title=title, name=None if name == INDEX else name, page=Markup(page),
                           missing=None)


def _missing(name: str, why: str):
    return render_template("runbook.html", title="No such runbook", name=None, page=None,
                           missing=f"No runbook for {name!r}: it {why}."), 404
