"""Sequences of one alert's firings and resolutions, from both Alertmanagers of an HA pair, in the orders a network
can deliver them: the history ends in the state the last word says, and a redelivery stores nothing."""
from __future__ import annotations

import sqlite3

import pytest

from webhook_receiver import create_app
from webhook_receiver.store import migrations
from webhook_receiver.store.episodes import StoredChange, Verdict, decide

from . import storesql
from .payloads import ZERO, alert, notification

E1 = "2024-05-01T10:05:00.123456789Z"
E2 = "2024-05-01T10:20:00Z"


def peer(body: dict, name: str) -> dict:
    """The same group as the other Alertmanager of the pair sends it: only its own URL differs."""
    return {**body, "externalURL": f"http://{name}:9093"}


def firing_now(client) -> list[str]:
    body = client.get("/api/v1/alerts").get_json()
    return [a["labels"]["machine_id"] for a in body["alerts"]]


def timeline(client, fingerprint: str) -> list[tuple[str, str | None]]:
    entries = client.get(f"/api/v1/alerts/{fingerprint}").get_json()["timeline"]
    return [(e["status"], e["ends_at"]) for e in entries]


def alerts_rows(store) -> list[tuple]:
    store.apply_intake()
    return storesql.query(store, "SELECT status, episode FROM alerts")


def test_a_late_copy_of_the_firing_then_the_same_resolution_ends_resolved(post, client, store):
    fired, resolved = notification(alert()), notification(alert(status="resolved", ends=E1))
    assert post(peer(fired, "am-a")).get_json()["new"] == 1
    assert post(peer(resolved, "am-a")).get_json()["new"] == 1
    # Peer B's copy of the firing arrives only now: it reads as a re-fire (told again; a missed page is worse).
    assert post(peer(fired, "am-b")).get_json() == {"status": "ok", "new": 1, "queued": 1, "duplicates": 0}
    assert firing_now(client) == ["gpu-1"]
    # B's copy of the resolution, identical to A's, closes that episode instead of passing for A's again.
    assert post(peer(resolved, "am-b")).get_json() == {"status": "ok", "new": 1, "queued": 1, "duplicates": 0}
    assert firing_now(client) == []
    assert alerts_rows(store) == [("resolved", 1)]
    fingerprint = fired["alerts"][0]["fingerprint"]
    assert timeline(client, fingerprint) == [("firing", None), ("resolved", "2024-05-01T10:05:00.123456789Z")] * 2
    # Any copy of the resolution from now on, of either, changes nothing (a firing would be a re-fire, as above).
    for body in (resolved, peer(resolved, "am-a"), peer(resolved, "am-b")):
        assert post(body).get_json() == {"status": "ok", "new": 0, "queued": 0, "duplicates": 1}
    assert firing_now(client) == []
    assert len(timeline(client, fingerprint)) == 4


def test_a_late_copy_whose_own_end_is_covered_by_the_resolution_is_no_change(post, client, store):
    post(notification(alert()))
    post(notification(alert(status="resolved", ends=E1)))
    # A firing whose endsAt says it had ended by E1 (not Go's zero time): a stored resolution already covers it.
    late = notification(alert(ends="2024-05-01T10:04:00Z"))
    assert post(late).get_json() == {"status": "ok", "new": 0, "queued": 0, "duplicates": 1}
    assert post(notification(alert(status="resolved", ends=E1))).get_json()["new"] == 0
    assert firing_now(client) == []
    assert [status for status, _ in timeline(client, late["alerts"][0]["fingerprint"])] == ["firing", "resolved"]


def test_the_late_sequence_split_over_two_channels_ends_resolved_on_both(post, client, store):
    fired, resolved = notification(alert()), notification(alert(status="resolved", ends=E1))
    post(fired, channel="slack-oncall")
    post(resolved, channel="slack-oncall")
    post(fired, channel="email-oncall")     # the email route's firing, late: a re-fire for the receiver
    post(resolved, channel="email-oncall")  # ...and its resolution closes it
    assert firing_now(client) == []
    entries = client.get(f"/api/v1/alerts/{fired['alerts'][0]['fingerprint']}").get_json()["timeline"]
    assert [(e["status"], [d["channel"] for d in e["deliveries"]]) for e in entries] == [
        ("firing", ["slack-oncall"]), ("resolved", ["slack-oncall"]),
        ("firing", ["email-oncall"]), ("resolved", ["email-oncall"])]


def test_a_re_fire_and_its_own_resolution_still_count_and_redeliveries_do_not(post, client, store):
    post(notification(alert()))
    post(notification(alert(status="resolved", ends=E1)))
    assert post(notification(alert())).get_json()["new"] == 1  # fired again after Alertmanager resolved it
    assert post(notification(alert())).get_json()["new"] == 0  # its retry
    assert firing_now(client) == ["gpu-1"]
    assert post(notification(alert(status="resolved", ends=E2))).get_json()["new"] == 1
    for ends in (E1, E2, E1):  # either resolution again, from either peer
        assert post(notification(alert(status="resolved", ends=ends))).get_json()["new"] == 0
    assert firing_now(client) == []
    assert alerts_rows(store) == [("resolved", 1)]


def test_a_resolution_with_the_zero_end_is_stored_once(post, client, store):
    post(notification(alert()))
    resolved = notification(alert(status="resolved", ends=ZERO))
    assert post(resolved).get_json() == {"status": "ok", "new": 1, "queued": 1, "duplicates": 0}
    for _ in range(3):  # Alertmanager's retries and the peer's copy
        assert post(resolved).get_json() == {"status": "ok", "new": 0, "queued": 0, "duplicates": 1}
    assert post(resolved, channel="email-oncall").get_json() == {"status": "ok", "new": 0, "queued": 1,
                                                                 "duplicates": 0}
    assert firing_now(client) == []
    fingerprint = resolved["alerts"][0]["fingerprint"]
    assert timeline(client, fingerprint) == [("firing", None), ("resolved", None)]
    entries = client.get(f"/api/v1/alerts/{fingerprint}").get_json()["timeline"]
    assert sorted(d["channel"] for d in entries[1]["deliveries"]) == ["email-oncall", "slack-oncall"]


def test_a_zero_end_resolution_never_seen_firing_is_stored_once(post, client, store):
    resolved = notification(alert(status="resolved", ends=ZERO))
    assert [post(resolved).get_json()["new"] for _ in range(3)] == [1, 0, 0]
    assert len(timeline(client, resolved["alerts"][0]["fingerprint"])) == 1


@pytest.mark.parametrize("first, second", [(E1, ZERO), (ZERO, E1)])
def test_peers_resolving_with_and_without_an_end_are_one_resolution(post, client, first, second):
    post(notification(alert()))
    assert post(notification(alert(status="resolved", ends=first))).get_json()["new"] == 1
    assert post(notification(alert(status="resolved", ends=second))).get_json()["new"] == 0
    assert firing_now(client) == []


@pytest.mark.parametrize("status, ends_at, stored, verdict", [
    ("firing", None, [], Verdict(True, episode=0)),
    ("firing", None, [StoredChange(1, "firing", 0, None)], Verdict(False, existing=1)),
    ("firing", None, [StoredChange(1, "firing", 0, None), StoredChange(2, "resolved", 0, "b")],
     Verdict(True, episode=1)),
    ("firing", "a", [StoredChange(1, "firing", 0, None), StoredChange(2, "resolved", 0, "b")], Verdict(False)),
    ("firing", "c", [StoredChange(1, "firing", 0, None), StoredChange(2, "resolved", 0, "b")],
     Verdict(True, episode=1)),
    ("resolved", "b", [StoredChange(1, "firing", 0, None), StoredChange(2, "resolved", 0, "b"),
                       StoredChange(3, "firing", 1, None)], Verdict(True, episode=1)),
    ("resolved", "b", [StoredChange(1, "firing", 0, None), StoredChange(2, "resolved", 0, "b"),
                       StoredChange(3, "firing", 1, None), StoredChange(4, "resolved", 1, "c")],
     Verdict(False, existing=2)),
    ("resolved", "d", [StoredChange(1, "firing", 0, None), StoredChange(2, "resolved", 0, "b")],
     Verdict(True, episode=1)),
    ("resolved", None, [StoredChange(2, "resolved", 0, "b"), StoredChange(4, "resolved", 1, "c")],
     Verdict(False, existing=4)),
    ("resolved", "e", [StoredChange(2, "resolved", 3, None)], Verdict(False, existing=2)),
])
def test_decide(status, ends_at, stored, verdict):
    assert decide(status, ends_at, stored) == verdict


@pytest.mark.sqlite_only("the SQLite store's own migration 0006")
def test_a_version_5_database_whose_pruned_resolutions_share_an_episode_migrates(tmp_path, config_values):
    """Before 0006 a resolution's episode counted those stored before it: after pruning two could share one."""
    path = tmp_path / "v5.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
    for version, sql in migrations.available():
        if version <= 5:
            conn.executescript(sql)
            conn.execute("INSERT INTO schema_version VALUES (?, 0)", (version,))
    fingerprint, starts = alert()["fingerprint"], "2024-05-01T10:00:00.123456789Z"
    # Episode 0 was pruned; 4 and 5 both counted one resolution before them.
    for event_id, status, ends, episode in ((3, "firing", None, 1),
                                            (4, "resolved", "2024-05-02T00:00:00.000000000Z", 1),
                                            (5, "resolved", "2024-05-03T00:00:00.000000000Z", 1)):
        conn.execute("INSERT INTO events (id, fingerprint, status, starts_at, ends_at, alertname, severity, labels,"
                     " annotations, generator_url, received_at, episode) VALUES (?, ?, ?, ?, ?, 'DiskAlmostFull',"
                     " 'warning', '{}', '{}', '', 1, ?)", (event_id, fingerprint, status, starts, ends, episode))
    conn.execute("INSERT INTO alerts VALUES (?, 5, 'resolved', ?, 'warning', 1)", (fingerprint, starts))
    conn.close()
    app = create_app({**config_values, "database": str(path)})
    try:
        assert app.extensions["dumont.store"].migrate() == migrations.latest()
    finally:
        app.extensions["dumont.store"].close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT id, episode FROM events ORDER BY id").fetchall() == [(3, 1), (4, 1), (5, 2)]
        assert conn.execute("SELECT event_id, episode FROM alerts").fetchall() == [(5, 2)]
        with pytest.raises(sqlite3.IntegrityError):  # one resolution per episode from now on
            conn.execute("INSERT INTO events (fingerprint, status, starts_at, ends_at, alertname, severity, labels,"
                         " annotations, generator_url, received_at, episode) VALUES (?, 'resolved', ?, NULL, '',"
                         " '', '{}', '{}', '', 1, 2)", (fingerprint, starts))
    finally:
        conn.close()
