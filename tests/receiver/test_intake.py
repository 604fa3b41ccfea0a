"""The intake: a webhook queues its messages there, and apply_intake moves them into the outbox and the alerts'
newest state. Users must not be able to tell: every read, the relay and a restart see what was acknowledged."""
from __future__ import annotations

import sqlite3

import pytest

from webhook_receiver.store import sqlite as sqlite_store

from .payloads import alert, notification

# The intake batches the SQLite store's writes; the PostgreSQL store writes the outbox in the webhook's transaction.
sqlite_intake = pytest.mark.sqlite_only("the SQLite store's intake table and its batches")


def table_counts(store, *tables: str) -> dict[str, int]:
    """Row counts read straight from the file, applying nothing."""
    conn = sqlite3.connect(store.path)
    try:
        return {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in tables}
    finally:
        conn.close()


@sqlite_intake
def test_a_webhooks_messages_wait_in_the_intake_yet_the_first_read_sees_them(post, client, store):
    assert post(notification(alert(machine="gpu-1"), alert(machine="gpu-2"))).get_json()["queued"] == 2
    assert table_counts(store, "intake", "outbox", "alerts") == {"intake": 2, "outbox": 0, "alerts": 0}

    firing = client.get("/api/v1/alerts").get_json()["alerts"]
    assert sorted(a["labels"]["machine_id"] for a in firing) == ["gpu-1", "gpu-2"]
    assert table_counts(store, "intake", "outbox", "alerts") == {"intake": 0, "outbox": 2, "alerts": 2}
    entries = client.get("/api/v1/history").get_json()["entries"]
    assert [d["state"] for e in entries for d in e["deliveries"]] == ["pending", "pending"]


@sqlite_intake
def test_a_redelivery_queues_nothing_whether_its_message_waits_or_was_moved(post, store):
    body = notification(alert(machine="gpu-1"))
    assert post(body).get_json()["queued"] == 1
    assert post(body).get_json() == {"status": "ok", "new": 0, "queued": 0, "duplicates": 1}  # still waiting
    assert store.apply_intake() == 1
    assert post(body).get_json() == {"status": "ok", "new": 0, "queued": 0, "duplicates": 1}  # moved
    assert post(body, channel="email-oncall").get_json()["queued"] == 1  # the other channel has no message yet
    assert store.apply_intake() == 1
    assert store.apply_intake() == 0
    assert table_counts(store, "intake", "outbox", "notifications") == {"intake": 0, "outbox": 2,
                                                                        "notifications": 2}


@sqlite_intake
def test_the_intake_moves_in_short_transactions_in_the_order_changes_were_stored(post, client, store,
                                                                                monkeypatch):
    monkeypatch.setattr(sqlite_store, "APPLY_CHUNK", 3)
    for i in range(7):
        post(notification(alert(machine=f"gpu-{i}")))
    post(notification(alert(machine="gpu-0", status="resolved")))  # the last change of gpu-0, in a later chunk
    commits = []
    store._conn().set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    assert store.apply_intake() == 8
    assert len(commits) == 3  # 3 + 3 + 2, not one long transaction

    conn = sqlite3.connect(store.path)
    try:
        assert [row[0] for row in conn.execute("SELECT event_id FROM outbox ORDER BY id")] == list(range(1, 9))
    finally:
        conn.close()
    firing = client.get("/api/v1/alerts").get_json()["alerts"]
    assert sorted(a["labels"]["machine_id"] for a in firing) == [f"gpu-{i}" for i in range(1, 7)]


def test_a_change_and_its_resolution_moved_together_leave_the_alert_resolved(post, client, store):
    firing = alert(machine="gpu-1")
    post(notification(firing))
    post(notification(firing), channel="email-oncall")  # the same change for a second channel
    post(notification(alert(machine="gpu-1", status="resolved")))
    post(notification(alert(machine="gpu-2")))
    assert [a["labels"]["machine_id"] for a in client.get("/api/v1/alerts").get_json()["alerts"]] == ["gpu-2"]
    timeline = client.get(f"/api/v1/alerts/{firing['fingerprint']}").get_json()["timeline"]
    assert [(e["status"], sorted(d["channel"] for d in e["deliveries"])) for e in timeline] == [
        ("firing", ["email-oncall", "slack-oncall"]), ("resolved", ["slack-oncall"])]


@sqlite_intake
def test_messages_still_in_the_intake_are_delivered_after_a_restart(post, store, relay_pass_after_restart, slack):
    post(notification(alert(machine="gpu-1"), alert(machine="gpu-2")))
    store.close()  # the receiver stops before any relay pass
    assert table_counts(store, "intake", "outbox") == {"intake": 2, "outbox": 0}

    relay_pass_after_restart()
    assert len(slack.received) == 1
    assert table_counts(store, "intake", "outbox") == {"intake": 0, "outbox": 2}


@sqlite_intake
def test_a_read_answers_from_what_is_applied_when_the_intake_cannot_be_applied(post, client, store):
    post(notification(alert(machine="gpu-1")))
    writer = sqlite3.connect(store.path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # another writer holds the lock past busy_timeout; readers still read
        entries = client.get("/api/v1/history").get_json()["entries"]
        assert [(e["labels"]["machine_id"], e["deliveries"]) for e in entries] == [("gpu-1", [])]
    finally:
        writer.close()
    entries = client.get("/api/v1/history").get_json()["entries"]
    assert [d["state"] for e in entries for d in e["deliveries"]] == ["pending"]
