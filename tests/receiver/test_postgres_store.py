"""What the PostgreSQL store adds: any number of relays and receivers on one database.

Claims shared with SKIP LOCKED (every row delivered once), a killed relay's claim delivered after the claim
timeout, migrations applied once when receivers start together, the dead man's switch announcing once, shared
counters. Each test has a database of its own in the session's PostgreSQL server (conftest.py).
"""
from __future__ import annotations

import dataclasses
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest
import yaml

from webhook_receiver import create_app
from webhook_receiver.deadman import ALERTNAME
from webhook_receiver.relay.worker import RelayWorker
from webhook_receiver.store.base import StorageError
from webhook_receiver.store import postgres_schema
from webhook_receiver.store.postgres import PostgresStore

from . import storesql
from .payloads import alert, notification

pytestmark = pytest.mark.postgresql_only("what PostgreSQL adds: several receivers on one database")


@pytest.fixture
def second(config_values):
    """A second receiver (its own app, store and connections) on the test's database."""
    other = create_app(config_values)
    try:
        yield other
    finally:
        other.extensions["dumont.store"].close()


def worker_on(app, clock, **kwargs) -> RelayWorker:
    return RelayWorker(app.extensions["dumont.store"], app.extensions["dumont.channels"], app.config["RECEIVER"],
                       clock=clock, rng=random.Random(7), **kwargs)


def post_groups(post, count: int, channel: str = "email-oncall") -> None:
    """`count` webhooks of one alert each: `count` messages when batch_size is 1."""
    for i in range(count):
        assert post(notification(alert(machine=f"gpu-{i}"), receiver=channel), channel=channel).status_code == 200


def test_two_relays_claim_disjoint_rows_and_deliver_every_row_once(app, second, post, smtp):
    post_groups(post, 15)  # below storm_threshold: a message each, not a digest
    first, other = app.extensions["dumont.store"], second.extensions["dumont.store"]
    now = time.time()
    # Claims racing row by row: SKIP LOCKED hands each row to exactly one of them, neither waits.
    taken: dict[str, list[int]] = {"first": [], "other": []}
    start = threading.Barrier(2)

    def claim_all(name, store):
        start.wait()
        while items := store.claim("email-oncall", now, 1):
            taken[name] += [item.id for item in items]
    threads = [threading.Thread(target=claim_all, args=item) for item in (("first", first), ("other", other))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not set(taken["first"]) & set(taken["other"])
    assert sorted(taken["first"] + taken["other"]) == [row[0] for row in storesql.query(first, "SELECT id FROM outbox ORDER BY id")]

    # Each relay's rows are its own: one relay starting (release_claims) leaves a live relay's claims alone.
    for store, name in ((first, "first"), (other, "other")):
        store.become_relay()
    assert first.release_claims() == len(taken["first"])  # its own, from before its start
    assert other.release_claims() == len(taken["other"])

    # Two relays delivering side by side: every message once, whichever relay sent it.
    workers = [worker_on(receiver, lambda: now) for receiver in (app, second)]
    for worker in workers:
        worker.config = dataclasses.replace(worker.config, batch_size=1)  # a message per row
    sent = [0, 0]
    start = threading.Barrier(2)

    def deliver(index):
        start.wait()
        while n := workers[index].deliver("email-oncall", now):
            sent[index] += n
    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sum(sent) == 15
    bodies = [mail["message"].get_body(("plain",)).get_content() for mail in smtp.messages]
    assert len(bodies) == 15 and all(sum(f"gpu-{i}" in body for body in bodies) >= 1 for i in range(15))
    assert storesql.query(first, "SELECT state, count(*) FROM outbox GROUP BY state") == [("delivered", 15)]
    assert storesql.query(first, "SELECT count(*), count(DISTINCT outbox_id) FROM delivery_items") == [(15, 15)]
    assert first.counters()[("delivered", "email-oncall")] == 15


def test_a_live_relays_claim_is_left_alone_and_a_killed_relays_is_delivered_after_the_timeout(
        app, second, post, smtp, config_values):
    post_groups(post, 3)
    now = time.time()
    store = app.extensions["dumont.store"]
    # A relay process claims the rows and is killed before it sends: its claim stays in the table.
    code = ("import sys, time\n"
            "from webhook_receiver.store.postgres import PostgresStore\n"
            "store = PostgresStore(sys.argv[1])\n"
            "store.become_relay()\n"
            "print(len(store.claim('email-oncall', float(sys.argv[2]), None)), flush=True)\n"
            "time.sleep(600)\n")
    doomed = subprocess.Popen([sys.executable, "-c", code, config_values["database"], repr(now)],
                              stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    try:
        assert doomed.stdout.readline().strip() == "3"
        running = worker_on(second, lambda: now)  # a relay that was running all along
        assert running.deliver("email-oncall", now) == 0  # the claim is fresh, its relay alive: not due
    finally:
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(30)
        doomed.stdout.close()
    assert [row[0] for row in storesql.query(store, "SELECT state FROM outbox")] == ["sending"] * 3
    claim_timeout = app.config["RECEIVER"].claim_timeout
    assert running.deliver("email-oncall", now + claim_timeout / 2) == 0
    assert running.deliver("email-oncall", now + claim_timeout + 1) == 1  # the 3 rows in one message
    assert len(smtp.messages) == 1
    assert [row[0] for row in storesql.query(store, "SELECT state FROM outbox")] == ["delivered"] * 3


def test_a_relay_starting_releases_at_once_the_claims_of_a_relay_that_is_gone(app, post, config_values):
    post_groups(post, 2)
    gone = PostgresStore(config_values["database"])
    gone.become_relay()
    assert len(gone.claim("email-oncall", time.time(), None)) == 2
    gone.close()  # its connections, and with them its liveness lock, are gone
    held = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = ? AND objsubid = 2"
    deadline = time.monotonic() + 30  # the server ends the closed session's backend on its own time
    while storesql.one(config_values["database"], held, (gone.relay_id,)) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert app.extensions["dumont.store"].release_claims() == 2


def test_an_outcome_is_written_only_to_rows_the_relay_still_holds(app, second, post, config_values):
    post_groups(post, 1)
    now = time.time()
    slow, fast = worker_on(app, lambda: now), worker_on(second, lambda: now)
    (item,) = slow.store.claim("email-oncall", now, None)
    later = now + app.config["RECEIVER"].claim_timeout + 1
    assert fast.deliver("email-oncall", later) == 1  # took the stale claim over and delivered it
    from webhook_receiver.store.base import RowUpdate
    slow.store.finish("email-oncall", later, False, False, "HTTP 500", [RowUpdate(item.id, "pending", later + 10)])
    assert storesql.query(app.extensions["dumont.store"], "SELECT state, attempts FROM outbox") == [("delivered", 1)]


def test_migrations_run_once_when_receivers_start_together(fresh_postgres):
    url = fresh_postgres(template=None)
    stores = [PostgresStore(url) for _ in range(4)]
    start, versions, errors = threading.Barrier(len(stores)), [], []

    def migrate(store):
        start.wait()
        try:
            versions.append(store.migrate())
        except Exception as exc:  # reported below: a race shows as an error here
            errors.append(exc)
    threads = [threading.Thread(target=migrate, args=(store,)) for store in stores]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        for store in stores:
            store.close()
    assert errors == []
    assert versions == [stores[0].migrate()] * 4
    assert storesql.query(url, "SELECT version, count(*) FROM schema_version GROUP BY version ORDER BY version") == [
        (version, 1) for version, _ in postgres_schema.available()]


def test_the_dead_mans_switch_announces_once_with_two_relays(app, second, post, slack, smtp, client):
    wall, mono = [time.time()], [1000.0]
    workers = [worker_on(receiver, lambda: wall[0], monotonic=lambda: mono[0]) for receiver in (app, second)]
    wall[0] += 86400 + 1
    mono[0] += 86400 + 1  # past the channels file's 1d timeout, for both relays
    for worker in workers:
        worker.run_once(wall[0])
    for worker in workers:
        worker.run_once(wall[0])  # the other relay's message is due for this one too: still sent once
    entries = client.get(f"/api/v1/history?alertname={ALERTNAME}").get_json()["entries"]
    assert [entry["status"] for entry in entries] == ["firing"]
    assert len(slack.received) == 1 and len(smtp.messages) == 1

    assert post(notification(alert("Watchdog", severity="none"), receiver="watchdog"),
                channel="watchdog").status_code == 200
    wall[0] += 1
    mono[0] += 1
    for worker in workers + workers:
        worker.run_once(wall[0])
    entries = client.get(f"/api/v1/history?alertname={ALERTNAME}").get_json()["entries"]
    assert [entry["status"] for entry in entries] == ["resolved", "firing"]
    assert len(slack.received) == 2 and len(smtp.messages) == 2


def test_counters_are_shared_by_every_receiver_and_never_go_down(app, second, post):
    stores = [app.extensions["dumont.store"], second.extensions["dumont.store"]]
    for store in stores:
        store.count("rejected", "unauthorized", 2)
    stores[0].flush_counts()
    assert stores[1].counters()[("rejected", "unauthorized")] == 2
    stores[1].flush_counts()
    assert stores[0].counters()[("rejected", "unauthorized")] == 4
    post(notification(alert()))
    second.test_client().post("/webhook/slack-oncall", json=notification(alert()),
                              headers={"Authorization": "Bearer s3cret-ingest-token"})
    for store in stores:
        store.flush_counts()
    counters = stores[1].counters()
    assert counters[("received", "slack-oncall")] == 2 and counters[("duplicate", "slack-oncall")] == 1


def test_pruning_runs_in_one_place_at_a_time(app, second):
    import psycopg
    from webhook_receiver.store.postgres_relay import PRUNE_LOCK

    with psycopg.connect(app.extensions["dumont.store"].url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s, %s)", PRUNE_LOCK)  # another receiver is pruning
        assert second.extensions["dumont.store"].prune(time.time() + 86400) == 0


PASSWORD = "pw-" + os.urandom(8).hex()  # a value no log line could contain by chance


@pytest.fixture
def password_role(postgres_cluster, config_values):
    """A role that must give PASSWORD (scram over TCP), owning the test's database; its URL."""
    role = "secretive_" + os.urandom(4).hex()
    postgres_cluster.add_password_role(role, PASSWORD)
    storesql.execute(config_values["database"], f"ALTER ROLE {role} SUPERUSER")  # the tables are the test's
    return config_values["database"].replace("postgresql://dumont@", f"postgresql://{role}@")


def test_the_password_comes_from_a_file_or_the_environment_and_is_never_shown(password_role, config_values, tmp_path,
                                                                               caplog, capfd):
    import logging
    from .conftest import TOKEN
    from .serving import BIN

    caplog.set_level(logging.DEBUG)
    secret = tmp_path / "db_password"
    secret.write_text(PASSWORD + "\n")
    values = {**config_values, "database": password_role, "database_password_file": str(secret)}
    good = create_app(values)
    try:
        answer = good.test_client().post("/webhook/slack-oncall", json=notification(alert()),
                                         headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.status_code == 200 and answer.get_json()["queued"] == 1
    finally:
        good.extensions["dumont.store"].close()

    secret.write_text("not-" + PASSWORD + "\n")  # a wrong password: refused by the server, said without it
    bad = create_app(values)
    try:
        answer = bad.test_client().post("/webhook/slack-oncall", json=notification(alert(machine="gpu-2")),
                                        headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.status_code == 503
        with pytest.raises(StorageError, match="password authentication failed") as raised:
            bad.extensions["dumont.store"].schema_version()
        assert PASSWORD not in str(raised.value)
    finally:
        bad.extensions["dumont.store"].close()

    # The command line, with the password in an environment variable: the same, in its output and errors.
    config = tmp_path / "receiver.yml"
    config.write_text(yaml.safe_dump({**values, "database_password_file": None,
                                      "database_password_env": "DUMONT_TEST_DB_PASSWORD"}))
    env = {**os.environ, "DUMONT_TEST_DB_PASSWORD": PASSWORD}
    done = subprocess.run([str(BIN), "init-db", "--config", str(config)], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and f"schema version {postgres_schema.latest()}" in done.stdout, done.stderr
    outputs = [done.stdout, done.stderr]
    done = subprocess.run([str(BIN), "init-db", "--config", str(config)], capture_output=True, text=True, timeout=60,
                          env={**env, "DUMONT_TEST_DB_PASSWORD": "not-" + PASSWORD})
    assert done.returncode == 1 and "password authentication failed" in done.stderr, done.stderr
    outputs += [done.stdout, done.stderr]
    captured = capfd.readouterr()
    for text in (*outputs, caplog.text, captured.out, captured.err):
        assert PASSWORD not in text


def test_a_password_inside_the_url_is_refused_naming_the_keys(config_values):
    from webhook_receiver.config import ConfigError

    url = config_values["database"].replace("dumont@", f"dumont:{PASSWORD}@")
    with pytest.raises(ConfigError, match="database_password_file") as raised:
        create_app({**config_values, "database": url})
    assert PASSWORD not in str(raised.value)
