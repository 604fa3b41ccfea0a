"""/metrics from the database, /-/healthy, /-/ready, and retention pruning."""
import sqlite3
import sys
import time

import psycopg
import pytest

from prometheus_client.parser import text_string_to_metric_families

from exporter import catalog
from webhook_receiver import create_app
from webhook_receiver.store import sqlite_relay
from webhook_receiver.payload import canonical_time
from webhook_receiver.store import counts, migrations

from . import storesql
from .conftest import TOKEN
from .payloads import alert, notification


def samples(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.get_data(as_text=True)) for s in family.samples}


def test_metrics_values(client, post, make_worker, slack, store):
    body = notification(alert(machine="gpu-1"), alert(machine="gpu-2", severity="critical"))
    post(body)
    post(body)  # a retry: two duplicates
    post(body, token="wrong")
    post(notification(alert(machine="gpu-3")), channel="email-oncall")
    store.flush_counts()  # rejections are written within a second; do not wait for it
    before = samples(client)
    assert before[("dumont_receiver_received_total", (("channel", "slack-oncall"),))] == 4
    assert before[("dumont_receiver_duplicates_total", (("channel", "slack-oncall"),))] == 2
    assert before[("dumont_receiver_rejected_total", (("reason", "unauthorized"),))] == 1
    assert before[("dumont_receiver_outbox_depth", (("channel", "slack-oncall"),))] == 2
    assert before[("dumont_alerts_active", (("severity", "warning"),))] == 2
    assert before[("dumont_alerts_active", (("severity", "critical"),))] == 1
    assert before[("dumont_alerts_active", (("severity", "info"),))] == 0

    slack.script([])
    make_worker().run_once(time.time())  # delivers slack; email to the sink too
    after = samples(client)
    assert after[("dumont_receiver_delivered_total", (("channel", "slack-oncall"),))] == 2
    assert ("dumont_receiver_outbox_depth", (("channel", "slack-oncall"),)) not in after


def test_the_receivers_catalog_metrics_are_exposed_with_their_labels(client, slack, make_worker):
    # Rules read these (rules_src/meta.yaml: ReceiverChannelFailing): exporter.catalog.RECEIVER promises them.
    make_worker().run_once(time.time())
    families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").get_data(as_text=True))}
    for spec in catalog.RECEIVER:
        assert spec.name in families, spec.name
        assert families[spec.name].type == spec.type
        series = families[spec.name].samples
        assert series and all(set(sample.labels) == set(spec.labels) for sample in series), series


def test_healthy_and_ready(client):
    assert client.get("/-/healthy").status_code == 200
    ready = client.get("/-/ready")
    assert ready.status_code == 200 and ready.get_data(as_text=True) == "ready\n"


def relay_module(store):
    """The module of the store's pruning statements and PRUNE_CHUNK."""
    return sys.modules[type(store).__module__.replace("postgres", "postgres_relay").replace("sqlite", "sqlite_relay")]


def test_not_ready_before_migrations(config_values, tmp_path, store_kind, request):
    fresh = (request.getfixturevalue("fresh_postgres")(template=None) if store_kind == "postgresql"
             else str(tmp_path / "fresh.db"))
    app = create_app({**config_values, "database": fresh})
    try:
        response = app.test_client().get("/-/ready")
        assert response.status_code == 503
        assert f"schema is version 0, expected {migrations.latest()}" in response.get_data(as_text=True)
        assert app.test_client().get("/-/healthy").status_code == 200
    finally:
        app.extensions["dumont.store"].close()


def test_migrations_are_idempotent(store):
    assert store.migrate() == migrations.latest()
    assert store.migrate() == migrations.latest()
    assert store.schema_version() == migrations.latest()


def page_size(path) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA page_size").fetchone()[0]
    finally:
        conn.close()


@pytest.mark.sqlite_only("SQLite's synchronous pragma")
@pytest.mark.parametrize("setting, pragma", [("normal", 1), ("full", 2)])
def test_synchronous_is_what_the_config_says(config_values, setting, pragma):
    app = create_app({**config_values, "synchronous": setting})
    store = app.extensions["dumont.store"]
    try:
        store.migrate()
        with store._read() as conn:  # the connections that ingest commits on
            assert conn.execute("PRAGMA synchronous").fetchone()[0] == pragma
    finally:
        store.close()


@pytest.mark.sqlite_only("SQLite's page size")
def test_a_new_database_gets_small_pages(store):
    # Each webhook's commit writes every page it touched whole into the WAL.
    assert page_size(store.path) == 1024


@pytest.mark.sqlite_only("the SQLite store's own migrations from version 1")
def test_a_version_1_database_keeps_its_history_and_gains_episodes(config_values, tmp_path):
    """A database written before episodes existed: its rows survive 0002-0005, and a re-fire then counts."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
    conn.executescript(dict(migrations.available())[1])
    conn.execute("INSERT INTO schema_version VALUES (1, 0)")
    first = alert()
    conn.execute("INSERT INTO events (id, fingerprint, status, starts_at, ends_at, alertname, severity, labels,"
                 " annotations, generator_url, received_at) VALUES (7, ?, 'resolved', ?, ?, 'DiskAlmostFull',"
                 " 'warning', '{}', '{}', '', 1)", (first["fingerprint"], canonical_time(first["startsAt"]),
                                                    "2024-05-01T10:05:00.000000000Z"))
    conn.execute("INSERT INTO alerts VALUES (?, 7, 'resolved', ?, 'warning')",
                 (first["fingerprint"], canonical_time(first["startsAt"])))
    conn.execute("INSERT INTO outbox (id, channel, event_id, state, due_at, finished_at, created_at)"
                 " VALUES (42, 'slack-oncall', 7, 'delivered', 1, 2, 1)")
    conn.execute("INSERT INTO deliveries VALUES (5, 'slack-oncall', 2, 1, 0, 1, 'sent')")
    conn.execute("INSERT INTO delivery_items VALUES (5, 42)")
    conn.close()
    app = create_app({**config_values, "database": str(path)})
    try:
        assert app.extensions["dumont.store"].migrate() == migrations.latest()
        assert page_size(path) == 4096  # an existing database keeps its page size, and works
        client = app.test_client()
        assert [e["id"] for e in client.get("/api/v1/history").get_json()["entries"]] == [7]
        # 0003 rebuilt the outbox: its rows keep their ids, so delivery_items still point at them.
        timeline = client.get(f"/api/v1/alerts/{first['fingerprint']}").get_json()
        assert [(d["channel"], d["state"], [a["detail"] for a in d["attempt_log"]])
                for e in timeline["timeline"] for d in e["deliveries"]] == [("slack-oncall", "delivered", ["sent"])]
        again = client.post("/webhook/slack-oncall", json=notification(first),
                            headers={"Authorization": f"Bearer {TOKEN}"})
        assert again.get_json()["new"] == 1  # the alert fired again after its stored resolution
        assert len(client.get("/api/v1/alerts").get_json()["alerts"]) == 1
    finally:
        app.extensions["dumont.store"].close()


def test_retention_prunes_finished_history_but_never_undelivered_rows(post, make_worker, slack, client, store):
    post(notification(alert("Old", machine="gpu-1")), channel="email-oncall")
    post(notification(alert("Old", machine="gpu-1", status="resolved")), channel="email-oncall")
    slack.script([(500, {}), (500, {})])
    post(notification(alert("Stuck", machine="gpu-2")))
    worker = make_worker(retention="1h", prune_interval="10m")
    now = time.time()
    worker.run_once(now)  # email delivered, Slack failed once
    worker.run_once(now + 3600 + 60)  # Slack fails again; pruning runs
    assert [e["alertname"] for e in client.get("/api/v1/history").get_json()["entries"]] == ["Stuck"]
    assert storesql.query(store, "SELECT channel, state FROM outbox") == [("slack-oncall", "pending")]
    assert storesql.one(store, "SELECT count(*) FROM alerts") == 1


def test_pruning_a_large_history_takes_the_write_lock_in_short_turns(post, make_worker, slack, store, monkeypatch):
    monkeypatch.setattr(relay_module(store), "PRUNE_CHUNK", 3)
    post(notification(*(alert("Old", machine=f"gpu-{i}") for i in range(25))))
    post(notification(*(alert("Old", machine=f"gpu-{i}", status="resolved") for i in range(25))))
    now = time.time()
    make_worker().run_once(now)  # one digest delivers all 50 changes
    commits = []
    if storesql.is_pg(store):
        counted = psycopg.Connection.transaction  # every pruning transaction is one of these

        def transaction(conn, *args, **kwargs):
            commits.append("COMMIT")
            return counted(conn, *args, **kwargs)
        monkeypatch.setattr(psycopg.Connection, "transaction", transaction)
    else:
        store._conn().set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    assert store.prune(now - 60) == 0  # nothing is older than a minute ago
    commits.clear()
    removed = store.prune(now + 60)
    # 50 delivery items and their 1 attempt, 50 outbox rows, 25 alerts, 50 events, 2 notifications
    assert removed == 178
    for table in ("delivery_items", "deliveries", "outbox", "alerts", "events", "notifications"):
        assert storesql.one(store, f"SELECT count(*) FROM {table}") == 0, table
    # At most 3 deliveries, events or notifications per transaction: 1 + 17 + 1 short ones, not one long one,
    # and one for reconciliation's records.
    assert len(commits) == 20


def test_pruning_walks_past_old_changes_it_must_keep(post, make_worker, slack, store, monkeypatch):
    """Events are walked in arrival order: an undelivered change at the start keeps its place, and the walk goes
    on past it (chunk after chunk) to the old changes behind it."""
    monkeypatch.setattr(relay_module(store), "PRUNE_CHUNK", 3)
    slack.script([(500, {})])
    post(notification(alert("Stuck", machine="gpu-0")))  # Slack fails: stays pending
    for i in range(1, 5):  # fired and resolved: nothing keeps them
        post(notification(alert("Old", machine=f"gpu-{i}")), channel="email-oncall")
        post(notification(alert("Old", machine=f"gpu-{i}", status="resolved")), channel="email-oncall")
    now = time.time()
    make_worker().run_once(now)
    assert store.prune(now + 60) > 0
    assert storesql.query(store, "SELECT alertname FROM events") == [("Stuck",)]


@pytest.mark.sqlite_only("SQLite's query plans (PostgreSQL's pruning reads the same indexes: events by id, outbox by event)")
def test_pruning_finds_every_chunk_through_an_index(store):
    """Every pruning statement looks rows up by the chunk's keys: a chunk costs the same however much history
    is kept. A table scan, or a search on state or status alone (every delivered row, every resolved alert),
    would grow with the history while holding the write lock."""
    params = {"cutoff": 0.0, "chunk": 3, "id": 0, "ids": "[1, 2]"}
    statements = (sqlite_relay._PRUNE_DELIVERIES, sqlite_relay._EVENTS_AFTER, *sqlite_relay._PRUNE_EVENTS,
                  sqlite_relay._NOTIFICATIONS_AFTER, sqlite_relay._PRUNE_NOTIFICATIONS)
    selective = {"rowid=?", "rowid>?", "event_id=?", "fingerprint=?", "notification_id=?", "outbox_id=?",
                 "attempted_at<?"}
    conn = sqlite3.connect(store.path)
    try:
        for statement in statements:
            plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {statement}", params)]
            for step in plan:
                assert not step.startswith(("SCAN", "USE TEMP B-TREE")) or "VIRTUAL TABLE" in step, (statement, plan)
                if step.startswith("SEARCH"):
                    assert step[step.rindex("(") + 1:-1] in selective, (statement, plan)
    finally:
        conn.close()


def stored_counter(store, name, label):
    return storesql.one(store, "SELECT value FROM counters WHERE name = ? AND label = ?", (name, label)) or 0


def test_rejections_while_the_database_is_locked_are_counted_once_it_is_free(post, client, store):
    if storesql.is_pg(store):  # another writer holds the counters past busy_timeout (lock_timeout)
        locker = psycopg.connect(store.url, autocommit=True)
        locker.execute("BEGIN")
        locker.execute("LOCK TABLE counters IN EXCLUSIVE MODE")
    else:
        locker = sqlite3.connect(store.path, isolation_level=None)
        locker.execute("BEGIN IMMEDIATE")  # another writer holds the database
    try:
        assert [post(notification(alert()), token="wrong").status_code for _ in range(2)] == [401, 401]
        store.flush_counts()  # cannot write: the counts stay in memory
        assert ("dumont_receiver_rejected_total", (("reason", "unauthorized"),)) not in samples(client)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    deadline = time.monotonic() + 10
    while stored_counter(store, "rejected", "unauthorized") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stored_counter(store, "rejected", "unauthorized") == 2  # written by the flusher, none lost
    assert samples(client)[("dumont_receiver_rejected_total", (("reason", "unauthorized"),))] == 2


def test_closing_the_store_writes_the_counts_it_holds(post, store, monkeypatch):
    monkeypatch.setattr(counts, "COUNTS_FLUSH_INTERVAL", 3600)
    post(notification(alert()), channel="nowhere")
    assert stored_counter(store, "rejected", "unknown_channel") == 0  # in memory only
    store.close()
    assert stored_counter(store, "rejected", "unknown_channel") == 1
