"""How long GET /api/v1/stats takes over the last 30 days of a year of a busy fleet's history, on both stores.

A year of history, up to a moment ago, is generated (seeded: every run holds the same rows, at the same distance
from now): 2,000 machines, a few of them much noisier than the rest, the alerts of rules_src/alerts.yaml per
machine and a few fleet-wide ones, ~500,000 episodes (~1M state changes, firings and resolutions, ids in the order
the receiver stored them) of minutes to days, some flapping, some re-fired after Alertmanager resolved them, some
seen only while silenced, a few fire drills; two outbox messages per relayed change (by severity, as
rules_src/routing.yaml routes), mostly delivered at once, some retried, some failed, with their attempts. It is
bulk-loaded (executemany on SQLite, COPY on PostgreSQL) into a database the store migrated (0009 included). Then,
on each store, GET /api/v1/stats (the default window: the last 30 days, ~80,000 state changes and ~160,000
messages) is called through the Flask test client ROUNDS times, and so is the store's call alone, beside the
baseline: the bare SQL, the store's own statements executed and fetched one after the other on one connection,
without the figures computed from them (Python on SQLite), the JSON or Flask. The store runs its two halves side
by side (store/sidecar.py), so its call can take less than the bare SQL.

PostgreSQL is a throwaway cluster (deploy/local/postgres.py) with fsync on, as the HA stack runs it.
"""
from __future__ import annotations

import gc
import json
import math
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from deploy.local.postgres import TempPostgres  # noqa: E402
from webhook_receiver.payload import DRILL_LABEL, format_epoch  # noqa: E402

SEED = 17
DAY = 86400.0
YEAR = 365 * DAY
EPISODES = 500_000           # ~1M state changes: each episode's firing and its resolution
MACHINES = 2_000
ROUNDS = 21                  # requests timed per store; p95 is the 20th slowest
TARGET_MS = 500
WINDOW = 30 * DAY
# Per machine: (alertname, severity, extra labels, relative rate)
MACHINE_ALERTS = (
    ("HighSyncLatency", "warning", {}, 6.0), ("SyncStopped", "critical", {}, 1.0),
    ("DiskAlmostFull", "critical", {"mount": "/"}, 1.0), ("DiskAlmostFull", "critical", {"mount": "/data"}, 1.5),
    ("DiskFillingUp", "warning", {"mount": "/data"}, 2.0), ("HighMemoryUsage", "warning", {}, 4.0),
    ("HighCostAnomaly", "warning", {}, 1.0), ("MachineDown", "critical", {}, 0.5),
    ("MachineVanished", "critical", {}, 0.3),
)
FLEET_ALERTS = (  # (alertname, severity, labels, rate): no machine_id
    *(("HealthDegraded", "warning", {"component": c}, 40.0) for c in ("sync", "api", "scheduler", "billing")),
    *(("FailoverStorm", "warning", {"machine_type": t}, 20.0) for t in ("gpu", "cpu")),
    *(("ProviderCostHigh", severity, {"provider": provider}, 10.0)
      for provider in ("vast", "gcp", "aws") for severity in ("warning", "critical")),
    *(("ReceiverChannelFailing", "critical", {"channel": ch}, 5.0) for ch in ("slack-alerts", "email-team")),
)
ROUTES = {"critical": ("slack-oncall", "email-oncall"), "warning": ("slack-alerts", "email-team")}
DRILL_SERIES = 20
EVENT_COLUMNS = ("id", "fingerprint", "status", "starts_at", "ends_at", "alertname", "severity", "labels",
                 "annotations", "generator_url", "received_at", "episode", "origin", "suppressed")
OUTBOX_COLUMNS = ("id", "channel", "event_id", "notification_id", "state", "attempts", "due_at", "finished_at",
                  "detail", "created_at")
NOTIFICATION_COLUMNS = ("id", "channel", "receiver", "status", "group_key", "group_labels", "truncated_alerts",
                        "external_url", "received_at")
DELIVERY_COLUMNS = ("id", "channel", "attempted_at", "ok", "digest", "event_count", "detail")
ALERT_COLUMNS = ("fingerprint", "event_id", "status", "starts_at", "severity", "episode")


def rfc3339(seconds: float) -> str:
    """A canonical time (UTC, nine fraction digits) from Unix seconds, to the microsecond."""
    whole = int(seconds)
    parts = time.gmtime(whole)
    return (f"{parts.tm_year:04d}-{parts.tm_mon:02d}-{parts.tm_mday:02d}T{parts.tm_hour:02d}:{parts.tm_min:02d}:"
            f"{parts.tm_sec:02d}.{int((seconds - whole) * 1e6):06d}000Z")


def series(rng: random.Random) -> list[tuple[str, str, str, dict, float]]:
    """Every alert series of the fleet: (fingerprint, alertname, severity, labels, rate of episodes)."""
    found = []
    for number in range(MACHINES):
        kind = "cpu" if number % 3 == 0 else "gpu"
        machine = f"{kind}-{number:04d}"
        noise = rng.paretovariate(1.5)  # a few machines are much noisier than the rest
        for name, severity, extra, rate in MACHINE_ALERTS:
            labels = {"alertname": name, "severity": severity, "machine_id": machine, "machine_type": kind,
                      "instance": "exporter:9877", "job": "dumont-exporter", **extra}
            found.append((labels, rate * noise))
    for name, severity, extra, rate in FLEET_ALERTS:
        found.append(({"alertname": name, "severity": severity, "job": "dumont-exporter", **extra}, rate))
    for number in range(DRILL_SERIES):
        found.append(({"alertname": "DiskAlmostFull", "severity": "critical", "machine_id": f"gpu-{number:04d}",
                       "mount": "/", DRILL_LABEL: f"drill-{number}"}, 2.0))
    return [(f"{index:016x}", labels["alertname"], labels["severity"], labels, rate)
            for index, (labels, rate) in enumerate(found)]


def episodes(rng: random.Random, end_of_year: float) -> list[tuple]:
    """The year before `end_of_year`'s episodes: (series index, startsAt, episode number, start, end or None while
    still firing, suppressed)."""
    fleet = series(rng)
    counts = [0] * len(fleet)
    for index in rng.choices(range(len(fleet)), weights=[s[4] for s in fleet], k=EPISODES):
        counts[index] += 1
    found = []
    for index, count in enumerate(counts):
        starts = sorted(rng.uniform(end_of_year - YEAR, end_of_year) for _ in range(count))
        starts_at, number, previous_end = None, 0, None
        for position, moment in enumerate(starts):
            following = starts[position + 1] if position + 1 < count else end_of_year + YEAR
            duration = min(rng.lognormvariate(math.log(600), 1.3), 3 * DAY, 0.9 * (following - moment))
            end = moment + max(duration, 1.0)
            if previous_end is not None and moment - previous_end < 900 and rng.random() < 0.2:
                number += 1  # fired again after Alertmanager resolved it: same startsAt, next episode
            else:
                starts_at, number = moment, 0
            found.append((index, starts_at, number, moment, end if end < end_of_year else None, rng.random() < 0.02))
            previous_end = end
            if position + 1 < count and rng.random() < 0.1:  # flapping: back within minutes of its end
                starts[position + 1] = min(end + rng.uniform(30, 900), following)
    return fleet, found


def generate(rng: random.Random, end_of_year: float) -> dict[str, list[tuple]]:
    """Every table's rows for the year before `end_of_year`, ids in the order the receiver would have stored them."""
    fleet, found = episodes(rng, end_of_year)
    texts = [(json.dumps(labels, sort_keys=True),
              json.dumps({"summary": f"{name} on {labels.get('machine_id', 'the fleet')}",
                          "runbook_url": f"https://runbooks.dumont.cloud/{name}.html"}, sort_keys=True))
             for _, name, _, labels, _ in fleet]
    changes = []  # (received_at, series index, status, startsAt, endsAt, episode, suppressed)
    for index, starts_at, number, start, end, suppressed in found:
        firing_at = start + rng.uniform(30, 35) if number == 0 else start
        changes.append((firing_at, index, "firing", starts_at, None, number, suppressed))
        if end is not None and end + 60 < end_of_year:
            changes.append((end + rng.uniform(1, 60), index, "resolved", starts_at, end, number, suppressed))
    changes.sort()
    events, outbox, notifications, deliveries, items, newest = [], [], [], [], [], {}
    open_post = {}      # channel: (notification id, changes in it)
    open_delivery = {}  # channel: (delivery id, rows in it): the first attempts of a channel go four at a time
    for event_id, (received_at, index, status, starts_at, ends_at, number, suppressed) in enumerate(changes, 1):
        fingerprint, name, severity, _, _ = fleet[index]
        labels, annotations = texts[index]
        origin = "reconciliation" if suppressed and status == "firing" else "webhook"
        events.append((event_id, fingerprint, status, rfc3339(starts_at), rfc3339(ends_at) if ends_at else None,
                       name, severity, labels, annotations, "http://prometheus:9090/graph", received_at, number,
                       origin, int(suppressed and status == "firing")))
        newest[fingerprint] = (fingerprint, event_id, status, rfc3339(starts_at), severity, number)
        if suppressed:
            continue  # silenced or inhibited: never relayed
        for channel in ROUTES[severity]:
            notification_id, carried = open_post.get(channel, (0, 4))
            if carried >= 4:  # a post carries about four changes of its channel
                notification_id, carried = len(notifications) + 1, 0
                notifications.append((notification_id, channel, channel, status, f'{{}}:{{alertname="{name}"}}',
                                      f'{{"alertname": "{name}"}}', 0, "http://alertmanager:9093", received_at))
            open_post[channel] = (notification_id, carried + 1)
            roll = rng.random()
            attempts = 8 if roll < 0.015 else rng.choice((2, 2, 3, 4)) if roll < 0.09 else 1
            state = "failed" if attempts == 8 else "delivered"
            if received_at > end_of_year - 60 and roll > 0.5:
                state, attempts = "pending", 0
            outbox_id = len(outbox) + 1
            attempted = received_at + rng.uniform(0.2, 2.0)
            for attempt in range(attempts):
                ok = state == "delivered" and attempt == attempts - 1
                if attempt == 0 and open_delivery.get(channel, (0, 4))[1] < 4:
                    delivery_id, rows = open_delivery[channel]
                    open_delivery[channel] = (delivery_id, rows + 1)
                else:
                    delivery_id = len(deliveries) + 1
                    deliveries.append((delivery_id, channel, attempted, ok, False, 1, "ok" if ok else "HTTP 500"))
                    if attempt == 0:
                        open_delivery[channel] = (delivery_id, 1)
                items.append((delivery_id, outbox_id))
                if attempt < attempts - 1:
                    attempted += rng.uniform(10, 60) * 2 ** attempt
            finished = attempted if state != "pending" else None
            outbox.append((outbox_id, channel, event_id, notification_id, state, attempts,
                           finished or received_at, finished, "" if state != "failed" else "HTTP 500", received_at))
    return {"notifications": notifications, "events": events, "alerts": list(newest.values()), "outbox": outbox,
            "deliveries": deliveries, "delivery_items": items}


COLUMNS = {"notifications": NOTIFICATION_COLUMNS, "events": EVENT_COLUMNS, "alerts": ALERT_COLUMNS,
           "outbox": OUTBOX_COLUMNS, "deliveries": DELIVERY_COLUMNS, "delivery_items": ("delivery_id", "outbox_id")}


def load_sqlite(path: str, tables: dict[str, list[tuple]]) -> None:
    """Bulk-insert `tables` into the migrated SQLite database at `path`."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -1000000")  # 1 GB: the random-order unique indexes stay in memory
    conn.execute("BEGIN")
    for table, rows in tables.items():
        columns = COLUMNS[table]
        conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                         rows)
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # no ANALYZE: the receiver never runs it, so neither does this
    conn.close()


def load_postgres(url: str, tables: dict[str, list[tuple]]) -> None:
    """COPY `tables` into the migrated PostgreSQL database at `url`, then move the identities past them."""
    import psycopg

    with psycopg.connect(url) as conn:
        with conn.cursor() as cursor:
            for table, rows in tables.items():
                columns = COLUMNS[table]
                booleans = [column in ("ok", "digest", "suppressed") for column in columns]
                with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row([bool(v) if flag else v for v, flag in zip(row, booleans)]
                                       if any(booleans) else row)
                if "id" in columns:
                    cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                                   f" (SELECT max(id) FROM {table}))")
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")  # what autovacuum does soon after such a load


def bare_sqlite(store, query) -> None:
    """The SQLite store's statements for `query`, executed and fetched one after the other: no Python figures."""
    from webhook_receiver.store import sqlite_stats as sql

    with store._read() as conn:
        conn.execute(f"PRAGMA mmap_size = {sql._MMAP_BYTES}")
        conn.execute("BEGIN")
        params = {"first": sql._first_id(conn, query.scan_from), "until_text": format_epoch(query.until + 1)}
        episodes = conn.execute(sql._RESOLVED, params).fetchall()
        conn.execute(sql._OPEN).fetchall()
        conn.execute(sql._SUPPRESSED, params).fetchall()
        one_each = json.dumps(list({row[0]: row[3] for row in reversed(episodes)}.values()))
        conn.execute(sql._ALERTS.format(filters=""), {"ids": one_each}).fetchall()
        window = {"first": sql._first_id(conn, query.since), "end": sql._first_id(conn, query.until)}
        names = [name for name, in conn.execute(sql._CHANNEL_NAMES)]
        conn.execute(sql._DRILL_MESSAGES, window).fetchall()
        texts = ", ".join(sql._LATENCY.format(number=number) for number in range(len(names)))
        conn.execute(sql._LATENCIES.format(texts=texts, filters_e=""),
                     {**window, **{f"channel_{number}": name for number, name in enumerate(names)}}).fetchall()
        for name in names:
            conn.execute(sql._COUNTS.format(kept=""), {**window, "channel": name}).fetchall()
        conn.execute("ROLLBACK")


def bare_postgres(store, query) -> None:
    """The PostgreSQL store's two statements for `query`, executed and fetched one after the other."""
    from webhook_receiver.store import postgres_stats as sql

    with store._read() as conn, conn.transaction():
        conn.execute("SET LOCAL jit = off")
        conn.execute("SET LOCAL work_mem = '64MB'")
        conn.execute(*sql._episodes_statement(conn, query)).fetchall()
        conn.execute(*sql._channels_statement(conn, query)).fetchall()


def timed(call, rounds: int = ROUNDS) -> dict:
    """Milliseconds of `rounds` calls (after one untimed, which warms caches): median and p95 (nearest rank)."""
    call()
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {"median": statistics.median(times), "p95": times[math.ceil(0.95 * len(times)) - 1]}


def receiver_config(workdir: Path, database: str) -> dict:
    """The least receiver.yml an app needs, on `database`."""
    (workdir / "token").write_text("bench-token\n")
    # The outbox's channels need not be configured for their figures; the relay does not run.
    (workdir / "channels.yml").write_text(yaml.safe_dump({"channels": {"watchdog": {"type": "heartbeat"}}}))
    return {"database": database, "channels_file": str(workdir / "channels.yml"), "token_file": str(workdir / "token"),
            "relay": False}


def measure(name: str, config: dict, bare) -> bool:
    """Time GET /api/v1/stats (the last 30 days), the store's call and the bare SQL on one receiver; print them."""
    from werkzeug.datastructures import MultiDict

    from webhook_receiver import create_app
    from webhook_receiver.stats_params import parse_stats_query

    app = create_app(config)
    store = app.extensions["dumont.store"]
    try:
        client = app.test_client()
        answer = client.get("/api/v1/stats")
        assert answer.status_code == 200, answer.get_data(as_text=True)
        body = answer.get_json()
        api = timed(lambda: client.get("/api/v1/stats").get_data())
        query = parse_stats_query(MultiDict(), time.time()).query
        call = timed(lambda: store.stats(query))
        sql = timed(lambda: bare(store, query))
    finally:
        store.close()
    totals = body["totals"]
    print(f"{name}: {totals['episodes']:,} episodes in the window, {len(body['machines']):,} machines,"
          f" {sum(c['delivered'] + c['failed'] + c['pending'] for c in body['channels']):,} messages")
    for label, figures in (("GET /api/v1/stats (Flask test client)", api), ("store.stats() alone", call),
                           ("baseline: the bare SQL, one statement after the other", sql)):
        print(f"  {label:54s} median {figures['median']:6.1f} ms   p95 {figures['p95']:6.1f} ms")
    met = api["p95"] < TARGET_MS
    print(f"  target: the API within {TARGET_MS} ms (p95 of {ROUNDS}): {'OK' if met else 'MISSED'}")
    return met


def main() -> int:
    started = time.monotonic()
    end_of_year = float(int(time.time()))
    tables = generate(random.Random(SEED), end_of_year)
    print(f"stats query: a year of history generated in {time.monotonic() - started:.0f} s:"
          f" {len(tables['events']):,} state changes, {len(tables['outbox']):,} outbox rows,"
          f" {len(tables['delivery_items']):,} attempts; the request: the last 30 days, no filter")
    from webhook_receiver.store.postgres import PostgresStore
    from webhook_receiver.store.sqlite import SQLiteStore

    with tempfile.TemporaryDirectory(prefix="stats-bench-") as tmp:
        workdir = Path(tmp)
        path = str(workdir / "history.db")
        loading = time.monotonic()
        store = SQLiteStore(path)
        store.migrate()
        store.close()
        load_sqlite(path, tables)
        print(f"sqlite loaded in {time.monotonic() - loading:.0f} s ({os.path.getsize(path) / 1e9:.2f} GB)")
        pg = TempPostgres(workdir / "postgres", fsync=True)
        try:
            pg.start()
            loading = time.monotonic()
            url = pg.create_database("stats_bench")
            store = PostgresStore(url)
            store.migrate()
            store.close()
            load_postgres(url, tables)
            print(f"postgresql loaded in {time.monotonic() - loading:.0f} s")
            # The 7M generated rows go before anything is timed: a receiver holds nothing like them, and the
            # collector's full passes over them would be timed with the requests.
            del tables
            gc.collect()
            sqlite_ok = measure("sqlite", receiver_config(workdir, path), bare_sqlite)
            postgres_ok = measure("postgresql", receiver_config(workdir, url), bare_postgres)
        finally:
            pg.stop()
    print(f"target met on both stores: {'OK' if sqlite_ok and postgres_ok else 'MISSED'}"
          f" (benchmark took {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
