"""Group commit: webhooks arriving together share a transaction, yet each is stored whole or not at all, and
one webhook the database rejects never takes another down with it."""
from __future__ import annotations

import json
import sqlite3
import threading

from webhook_receiver.payload import parse_webhook
from webhook_receiver.store.base import StorageError
from webhook_receiver.store.sqlite import SQLiteStore

from .payloads import alert, notification

THREADS = 8
WEBHOOKS_PER_THREAD = 25
POISON = "gpu-poison"


def webhook(i: int) -> bytes:
    return json.dumps(notification(alert(machine=POISON if i == 37 else f"gpu-{i}"),
                                   alert(name="HighMemoryUsage", machine=f"gpu-{i}"))).encode()


def test_concurrent_webhooks_are_each_stored_once_and_a_rejected_one_fails_alone(tmp_path):
    path = str(tmp_path / "history.db")
    store = SQLiteStore(path)
    store.migrate()
    # A real SQLite rejection, as a full disk or a constraint would give: the whole webhook must roll back.
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TRIGGER poison BEFORE INSERT ON events WHEN NEW.labels LIKE '%gpu-poison%' "
                     "BEGIN SELECT RAISE(ABORT, 'poisoned'); END")
    outcomes: dict[int, object] = {}
    start = threading.Barrier(THREADS)

    def send(thread: int) -> None:
        start.wait()
        for n in range(WEBHOOKS_PER_THREAD):
            i = thread * WEBHOOKS_PER_THREAD + n
            for attempt in range(2):  # every webhook twice, as Alertmanager's retries and HA peer do
                try:
                    outcomes[i, attempt] = store.ingest("slack-oncall", parse_webhook(webhook(i)), 1.0e9 + i)
                except StorageError as exc:
                    outcomes[i, attempt] = exc

    threads = [threading.Thread(target=send, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    total = THREADS * WEBHOOKS_PER_THREAD
    failed = sorted(i for (i, _), outcome in outcomes.items() if isinstance(outcome, StorageError))
    assert failed == [37, 37]
    firsts = [outcomes[i, 0] for i in range(total) if i != 37]
    seconds = [outcomes[i, 1] for i in range(total) if i != 37]
    assert all((r.new_events, r.queued, r.duplicates) == (2, 2, 0) for r in firsts)
    assert all((r.new_events, r.queued, r.duplicates) == (0, 0, 2) for r in seconds)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 2 * (total - 1)
        assert conn.execute("SELECT count(*) FROM intake").fetchone()[0] == 2 * (total - 1)
        assert conn.execute("SELECT count(*) FROM events WHERE labels LIKE '%\"gpu-37\"%'").fetchone()[0] == 0
    assert store.apply_intake() == 2 * (total - 1)
    store.flush_counts()  # counts are written within a second; do not wait for it
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 2 * (total - 1)
        assert conn.execute("SELECT count(*) FROM intake").fetchone()[0] == 0
        counters = dict(conn.execute("SELECT name, value FROM counters WHERE label = 'slack-oncall'"))
    assert counters == {"received": 4 * (total - 1), "duplicate": 2 * (total - 1)}
    store.close()


def test_an_entrys_shown_time_selects_exactly_that_entry(tmp_path):
    """A `since`/`until` copied from an entry's received_at includes/excludes it, whatever the float."""
    import random

    from webhook_receiver.payload import canonical_time, epoch
    from webhook_receiver.store.base import HistoryQuery

    store = SQLiteStore(str(tmp_path / "history.db"))
    store.migrate()
    rng = random.Random(20261125)
    stamps = sorted(1.7e9 + rng.random() * 1e7 for _ in range(300))
    for i, stamp in enumerate(stamps):
        store.ingest("slack-oncall", parse_webhook(webhook(1000 + i)), stamp)
    for entry in rng.sample(store.history(HistoryQuery(limit=500))[0], 100):
        shown = epoch(canonical_time(entry["received_at"]))
        since, _ = store.history(HistoryQuery(since=shown, limit=500))
        until, _ = store.history(HistoryQuery(until=shown, limit=500))
        assert entry["id"] in {e["id"] for e in since}
        assert entry["id"] not in {e["id"] for e in until}
    store.close()
