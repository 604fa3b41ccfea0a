"""Fixtures: real Slack/SMTP sinks, a channels file pointing at them, the app on a temp database, a relay worker.

The store's behaviour is tested on both stores: every test that uses the app's database (through config_values)
runs once on a SQLite file and once on a PostgreSQL database of its own, copied from a migrated template in one
PostgreSQL server per session. A test about SQLite itself is marked `sqlite_only("why")`, one about what only
PostgreSQL has (several relays on one database) `postgresql_only("why")`.
"""
from __future__ import annotations

import random
import signal
import threading
import time
import uuid

import pytest
import yaml

from deploy.local.postgres import TempPostgres
from webhook_receiver import create_app
from webhook_receiver.config import build_config
from webhook_receiver.relay.worker import RelayWorker

TOKEN = "s3cret-ingest-token"
STORE_KINDS = ("sqlite", "postgresql")
TEMPLATE = "dumont_template"  # migrated once per session; each test's database is a copy


def pytest_generate_tests(metafunc):
    """Run every test that needs the app's database on each store, but SQLite-only ones on SQLite."""
    if "store_kind" in metafunc.fixturenames:
        if metafunc.definition.get_closest_marker("sqlite_only"):
            kinds = ["sqlite"]
        elif metafunc.definition.get_closest_marker("postgresql_only"):
            kinds = ["postgresql"]
        else:
            kinds = list(STORE_KINDS)
        metafunc.parametrize("store_kind", kinds)


@pytest.fixture(scope="session")
def postgres_cluster(tmp_path_factory):
    """One PostgreSQL server for the session (started on first use, always stopped), with a migrated template."""
    from webhook_receiver.store.postgres import PostgresStore

    cluster = TempPostgres(tmp_path_factory.mktemp("postgres"))  # fails, never skips, without the binaries
    # A SIGTERM (a CI timeout, a `kill`) would end pytest without teardown and leave the server running:
    # taken as Ctrl-C instead, which pytest unwinds through every fixture's finalizer.
    previous = signal.signal(signal.SIGTERM, _interrupt) if threading.current_thread() is threading.main_thread() else None
    try:
        cluster.start()
        store = PostgresStore(cluster.create_database(TEMPLATE))
        try:
            store.migrate()
        finally:
            store.close()  # a template with an open connection cannot be copied
        yield cluster
    finally:
        cluster.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture
def fresh_postgres(postgres_cluster):
    """A function making migrated PostgreSQL databases of this test's own (dropped after it); their URLs."""
    names = []

    def make(template: str | None = TEMPLATE) -> str:
        """A new database: migrated (a copy of the template), or empty with template=None."""
        names.append(f"t_{uuid.uuid4().hex[:20]}")
        return postgres_cluster.create_database(names[-1], template=template)
    yield make
    for name in names:
        postgres_cluster.drop_database(name)


@pytest.fixture
def database(store_kind, tmp_path, request):
    """The test's database: a SQLite file in its temp dir, or a PostgreSQL database of its own."""
    if store_kind == "sqlite":
        return str(tmp_path / "history.db")
    return request.getfixturevalue("fresh_postgres")()


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
def config_values(tmp_path, channels_file, database):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    return {
        "database": database,
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
def receiver_client(config_values):
    """make(**keys): a test client of a receiver built from config_values plus `keys`; each is closed at the end."""
    apps = []

    def make(**extra):
        app = create_app({**config_values, **extra})
        app.extensions["dumont.store"].migrate()
        apps.append(app)
        return app.test_client()

    yield make
    for app in apps:
        app.extensions["dumont.store"].close()


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
