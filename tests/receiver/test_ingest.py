"""POST /webhook/<channel>: auth, validation, idempotency, atomic storage."""
import json
import sqlite3

import psycopg
import pytest

from . import storesql
from .conftest import TOKEN
from .payloads import alert, notification


def rows(store, sql):
    """`sql`'s rows once the intake is applied, as every read of the store applies it (see test_intake)."""
    store.apply_intake()
    return storesql.query(store, sql)


def counts(store):
    return {t: rows(store, f"SELECT count(*) FROM {t}")[0][0]
            for t in ("notifications", "events", "outbox", "alerts")}


def test_firing_group_is_stored_and_queued(post, store):
    body = notification(alert(machine="gpu-1"), alert(machine="gpu-2"), alert(machine="gpu-3"))
    response = post(body)
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "new": 3, "queued": 3, "duplicates": 0}
    assert counts(store) == {"notifications": 1, "events": 3, "outbox": 3, "alerts": 3}


def test_resolution_is_a_new_state_change(post, store, client):
    post(notification(alert()))
    response = post(notification(alert(status="resolved")))
    assert response.get_json()["new"] == 1
    assert counts(store)["events"] == 2
    assert client.get("/api/v1/alerts").get_json() == {"alerts": [], "next_cursor": None}


def test_alert_firing_again_with_its_old_start_is_a_new_episode(post, store, client):
    # Alertmanager resolved it when its endsAt passed; Prometheus then sends it again, startsAt unchanged.
    post(notification(alert()))
    post(notification(alert(status="resolved", ends="2024-05-01T10:05:00Z")))
    again = post(notification(alert()))
    assert again.get_json() == {"status": "ok", "new": 1, "queued": 1, "duplicates": 0}
    assert [a["labels"]["machine_id"] for a in client.get("/api/v1/alerts").get_json()["alerts"]] == ["gpu-1"]
    resolved_again = post(notification(alert(status="resolved", ends="2024-05-01T10:20:00Z")))
    assert resolved_again.get_json()["new"] == 1
    assert client.get("/api/v1/alerts").get_json() == {"alerts": [], "next_cursor": None}
    assert counts(store) == {"notifications": 4, "events": 4, "outbox": 4, "alerts": 1}


def test_retried_episode_after_a_re_fire_is_a_duplicate(post, store, client):
    post(notification(alert()))
    resolved = notification(alert(status="resolved", ends="2024-05-01T10:05:00Z"))
    post(resolved)
    post(notification(alert()))
    assert post(notification(alert())).get_json()["duplicates"] == 1   # the re-fire, retried
    # The first resolution again closes the re-fire: it cannot be told from the HA peer's late copies of the
    # firing and the resolution (test_state_sequences), which must not leave the alert firing for ever.
    assert post(resolved).get_json()["new"] == 1
    assert post(resolved).get_json()["duplicates"] == 1                # and again: nothing more
    assert client.get("/api/v1/alerts").get_json()["alerts"] == []
    assert counts(store)["events"] == 4


def test_same_notification_twice_is_stored_once(post, store):
    body = notification(alert(machine="gpu-1"), alert(machine="gpu-2"))
    assert post(body).get_json()["queued"] == 2
    again = post(body)
    assert again.status_code == 200
    assert again.get_json() == {"status": "ok", "new": 0, "queued": 0, "duplicates": 2}
    assert counts(store) == {"notifications": 1, "events": 2, "outbox": 2, "alerts": 2}


def test_ha_pair_sends_the_same_alert_with_other_grouping(post, store):
    # The second Alertmanager's group also holds a new alert: only that one is new.
    post(notification(alert(machine="gpu-1")))
    response = post(notification(alert(machine="gpu-1"), alert(machine="gpu-2")))
    assert response.get_json() == {"status": "ok", "new": 1, "queued": 1, "duplicates": 1}
    assert counts(store) == {"notifications": 2, "events": 2, "outbox": 2, "alerts": 2}


def test_same_alert_on_two_channels_is_one_change_two_messages(post, store):
    body = notification(alert())
    post(body, channel="slack-oncall")
    response = post(body, channel="email-oncall")
    assert response.get_json() == {"status": "ok", "new": 0, "queued": 1, "duplicates": 0}
    assert counts(store)["events"] == 1
    assert sorted(r[0] for r in rows(store, "SELECT channel FROM outbox")) == ["email-oncall", "slack-oncall"]


def test_a_resolved_watchdog_is_no_heartbeat(post, store):
    body = notification(alert("Watchdog", severity="none", status="resolved"), receiver="watchdog")
    response = post(body, channel="watchdog")
    assert response.get_json() == {"status": "ok", "heartbeat": False}
    assert store.last_heartbeat("watchdog") is None
    assert counts(store) == {"notifications": 0, "events": 0, "outbox": 0, "alerts": 0}


def test_heartbeat_records_time_and_queues_nothing(post, store):
    response = post(notification(alert("Watchdog", severity="none"), receiver="watchdog"), channel="watchdog")
    assert response.get_json() == {"status": "ok", "heartbeat": True}
    assert store.last_heartbeat("watchdog") is not None
    assert counts(store) == {"notifications": 0, "events": 0, "outbox": 0, "alerts": 0}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                                     {"Authorization": "Basic " + TOKEN}])
def test_missing_or_wrong_token_is_401_and_stores_nothing(client, store, headers):
    response = client.post("/webhook/slack-oncall", json=notification(), headers=headers)
    assert response.status_code == 401
    assert response.get_json() == {"error": "missing or wrong bearer token"}
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert counts(store)["events"] == 0


def test_unknown_channel_is_404(post, store):
    response = post(notification(), channel="pager")
    assert response.status_code == 404
    assert response.get_json() == {"error": "unknown channel 'pager'"}


def test_one_alert_larger_than_the_limit_is_413(post, store):
    big = notification(alert(note="x" * 70_000))
    response = post(big)
    assert response.status_code == 413
    assert response.get_json() == {"error": "alerts[0]: one alert larger than 65536 bytes (max_body_bytes)"}
    assert counts(store)["events"] == 0


def test_a_body_of_exactly_the_limit_is_taken(post, store):
    body = notification(alert())
    body["alerts"][0]["generatorURL"] += "x" * (65536 - len(json.dumps(body).encode()))  # appears once
    assert len(json.dumps(body).encode()) == 65536
    assert post(body).status_code == 200
    body["alerts"][0]["generatorURL"] += "x"
    body["alerts"][0]["labels"]["machine_id"] = "gpu-2"  # a new alert, one byte over: still kept, as it fits
    body["alerts"][0]["fingerprint"] = alert(machine="gpu-2")["fingerprint"]
    response = post(body)
    assert response.status_code == 200 and response.get_json()["queued"] == 1
    assert rows(store, "SELECT truncated_alerts, cut_alerts FROM notifications") == [(0, None), (0, None)]


@pytest.mark.parametrize("body, message", [
    (b"{not json", "malformed JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
    (json.dumps({**notification(), "version": "2"}).encode(), "version: expected \"4\", got '2'"),
    (json.dumps({**notification(alert(), alert(machine="b"), alert(machine="c"))}).replace(
        '"startsAt"', '"start"').encode(), "alerts[0].startsAt: required"),
    (json.dumps({**notification(), "alerts": [{**alert(), "labels": ["a"]}]}).encode(),
     "alerts[0].labels: expected an object, got array"),
    (b"[" * 30_000 + b"]" * 30_000, "malformed JSON: nested too deeply"),
])
def test_bad_input_is_400_naming_the_field(client, store, body, message):
    response = client.post("/webhook/slack-oncall", data=body, content_type="application/json",
                           headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 400
    assert response.get_json() == {"error": message}
    assert counts(store)["events"] == 0


def test_locked_database_answers_503_and_nothing_is_half_written(post, store):
    if storesql.is_pg(store):  # another transaction holds the table past busy_timeout (lock_timeout)
        blocker = psycopg.connect(store.url)
        blocker.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
    else:
        blocker = sqlite3.connect(store.path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
    try:
        response = post(notification(alert()))
    finally:
        blocker.close()
    assert response.status_code == 503
    assert response.get_json() == {"error": "storage unavailable, retry later"}
    assert counts(store) == {"notifications": 0, "events": 0, "outbox": 0, "alerts": 0}
    assert post(notification(alert())).get_json()["queued"] == 1  # Alertmanager's retry succeeds


def test_failure_mid_transaction_rolls_everything_back(post, store):
    # The second alert's message fails, after the first alert was stored whole.
    if storesql.is_pg(store):
        storesql.execute(store, "CREATE FUNCTION broken() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                                " IF NEW.event_id > 1 THEN RAISE EXCEPTION 'disk on fire'; END IF; RETURN NEW; END $$")
        storesql.execute(store, "CREATE TRIGGER broken BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION broken()")
    else:
        storesql.execute(store, "CREATE TRIGGER broken BEFORE INSERT ON intake WHEN NEW.event_id > 1"
                                " BEGIN SELECT RAISE(ABORT, 'disk on fire'); END")
    response = post(notification(alert(machine="gpu-1"), alert(machine="gpu-2")))
    assert response.status_code == 503
    assert counts(store) == {"notifications": 0, "events": 0, "outbox": 0, "alerts": 0}
