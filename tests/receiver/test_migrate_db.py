"""`dumont-receiver migrate-db`: a SQLite history, filled through the real ingest and relay, copied into PostgreSQL
answers every read the same; the ids carry on; a target that is not empty is refused."""
from __future__ import annotations

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from webhook_receiver import create_app
from webhook_receiver.cli import main

from . import storesql
from .conftest import TOKEN
from .payloads import alert, notification

pytestmark = pytest.mark.sqlite_only("the source of the copy is a SQLite store; the target is PostgreSQL")


def reads(client) -> dict:
    """Everything a person or Prometheus reads of the history, from one receiver."""
    history = client.get("/api/v1/history?limit=500").get_json()
    found = {
        "history": history,
        "alerts": client.get("/api/v1/alerts?limit=500").get_json(),
        "relay": {k: v for k, v in client.get("/api/v1/relay").get_json().items() if k not in ("stalled", "problems")},
        # the day the payloads' alerts start: the copy's stored stats columns (0009) read as SQLite computes them
        "stats": client.get("/api/v1/stats?since=2024-05-01T00:00:00Z&until=2024-05-02T00:00:00Z").get_json(),
        "metrics": {(s.name, tuple(sorted(s.labels.items()))): s.value
                    for family in text_string_to_metric_families(client.get("/metrics").get_data(as_text=True))
                    for s in family.samples if s.name.startswith("dumont_") and "stalled" not in s.name},
    }
    for fingerprint in sorted({entry["fingerprint"] for entry in history["entries"]}):
        found[fingerprint] = client.get(f"/api/v1/alerts/{fingerprint}").get_json()
    return found


def test_a_sqlite_history_copied_into_postgresql_reads_the_same(app, store, post, client, make_worker, slack, smtp,
                                                               config_values, fresh_postgres, capsys):
    now = time.time()
    post(notification(alert(machine="gpu-1"), alert(machine="gpu-2")))
    post(notification(alert(machine="gpu-1"), receiver="email-oncall"), channel="email-oncall")
    post(notification(alert(machine="gpu-1")))  # a redelivery: counted as a duplicate, stores nothing
    post(notification(alert(machine="gpu-1", status="resolved")))
    post(notification(alert("Watchdog", severity="none"), receiver="watchdog"), channel="watchdog")
    post(notification(alert()), token="wrong")
    make_worker().run_once(now)  # delivered
    slack.script([(500, {})])
    post(notification(alert("HighMemoryUsage", machine="gpu-3", severity="warning")))
    make_worker().run_once(now + 1)  # Slack fails: pending, with an attempt
    store.flush_counts()
    before = reads(client)
    store.close()  # the SQLite receiver stops
    assert before["history"]["entries"] and before["metrics"][("dumont_receiver_rejected_total",
                                                                (("reason", "unauthorized"),))] == 1

    url = fresh_postgres(template=None)  # migrate-db migrates it
    assert main(["migrate-db", "--from", config_values["database"], "--to", url]) == 0
    assert "copied" in capsys.readouterr().out
    moved = create_app({**config_values, "database": url})
    try:
        assert reads(moved.test_client()) == before
        # The ids carry on after the copied ones.
        last_event = storesql.one(url, "SELECT max(id) FROM events")
        answer = moved.test_client().post("/webhook/slack-oncall", json=notification(alert(machine="gpu-9")),
                                          headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.get_json()["new"] == 1
        assert storesql.one(url, "SELECT max(id) FROM events") == last_event + 1
    finally:
        moved.extensions["dumont.store"].close()

    # A second copy would mix two histories: refused, nothing written.
    rows = storesql.one(url, "SELECT count(*) FROM events")
    assert main(["migrate-db", "--from", config_values["database"], "--to", url]) == 1
    assert "not empty" in capsys.readouterr().err
    assert storesql.one(url, "SELECT count(*) FROM events") == rows


def test_a_password_in_the_target_url_is_refused_without_repeating_it(tmp_path, capsys):
    source = tmp_path / "history.db"
    source.touch()
    assert main(["migrate-db", "--from", str(source), "--to", "postgresql://u:Sw0rdf1sh@127.0.0.1:1/db"]) == 2
    err = capsys.readouterr().err
    assert "password inside the URL is refused" in err and "Sw0rdf1sh" not in err
