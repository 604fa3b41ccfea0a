"""Fixtures: real Slack/SMTP sinks, a channels file pointing at them, the app on a temp SQLite file, a relay worker."""
from __future__ import annotations

import random
import time
import uuid

import pytest
import yaml

from deploy.local.sinks import SlackSink, SmtpSink
from webhook_receiver import create_app
from webhook_receiver.config import build_config
from webhook_receiver.relay.worker import RelayWorker

TOKEN = "s3cret-ingest-token"


@pytest.fixture
def slack():
    sink = SlackSink(port=0).start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def smtp():
    sink = SmtpSink(port=0).start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def slack_path():
    """A path of its own per test: the Slack channel spaces posts to one URL a second apart."""
    return f"/services/T000/B000/{uuid.uuid4().hex}"


@pytest.fixture
def channels_file(tmp_path, slack, smtp, slack_path):
    url_file = tmp_path / "slack_url"
    url_file.write_text(slack.url_for(slack_path) + "\n")
    path = tmp_path / "channels.yml"
    path.write_text(yaml.safe_dump({
        "channels": {
            "slack-oncall": {"type": "slack", "webhook_url_file": str(url_file), "channel": "#oncall",
                             "timeout": "5s"},
            "email-oncall": {"type": "email", "to": ["oncall@example.com"], "from": "alerts@dumont.cloud",
                             "smarthost": f"127.0.0.1:{smtp.port}", "require_tls": False, "timeout": "5s"},
            "watchdog": {"type": "heartbeat"},
        },
        "deadman": {"channel": "watchdog", "timeout": "1d", "notify": ["slack-oncall", "email-oncall"]},
    }))
    return path


@pytest.fixture
def config_values(tmp_path, channels_file):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    return {
        "database": str(tmp_path / "history.db"),
        "channels_file": str(channels_file),
        "token_file": str(token_file),
        "external_url": "http://receiver.test",
        "busy_timeout": "200ms",
        "max_body_bytes": 64 * 1024,
        "max_attempts": 3,
        "backoff_initial": "10s",
        "backoff_max": "1m",
        "batch_size": 5,
        "storm_threshold": 20,
    }


@pytest.fixture
def app(config_values):
    app = create_app(config_values)
    store = app.extensions["dumont.store"]
    store.migrate()
    try:
        yield app
    finally:
        store.close()


@pytest.fixture
def store(app):
    return app.extensions["dumont.store"]


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def post(client):
    """POST a body to /webhook/<channel> with the right token."""
    def post(body, channel="slack-oncall", token=TOKEN, **kwargs):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return client.post(f"/webhook/{channel}", json=body, headers=headers, **kwargs)
    return post


@pytest.fixture
def relay_pass_after_restart(config_values):
    """Run one relay pass as a receiver started afresh would: a new app, store and worker on the same files."""
    def run() -> None:
        restarted = create_app(config_values)
        try:
            RelayWorker(restarted.extensions["dumont.store"], restarted.extensions["dumont.channels"],
                        restarted.config["RECEIVER"]).run_once(time.time())
        finally:
            restarted.extensions["dumont.store"].close()
    return run


@pytest.fixture
def make_worker(app):
    """A relay worker on the app's database and channels with seeded jitter; tests pass `now` to run_once.

    Ingest stamps rows with the real time, so tests drive the worker from time.time() plus offsets.
    """
    def make(start: float | None = None, **overrides) -> RelayWorker:
        start = time.time() if start is None else start
        config = app.config["RECEIVER"]
        if overrides:
            config = build_config({**{k: getattr(config, k) for k in config.__dataclass_fields__}, **overrides})
        return RelayWorker(app.extensions["dumont.store"], app.extensions["dumont.channels"], config,
                           clock=lambda: start, rng=random.Random(7))
    return make


@pytest.fixture
def guarded_app(config_values, tmp_path):
    """An app whose history pages and API need the token h1st0ry."""
    token_file = tmp_path / "history_token"
    token_file.write_text("h1st0ry\n")
    app = create_app({**config_values, "history_token_file": str(token_file)})
    app.extensions["dumont.store"].migrate()
    try:
        yield app
    finally:
        app.extensions["dumont.store"].close()
