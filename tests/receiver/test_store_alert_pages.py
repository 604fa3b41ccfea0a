"""The store's pages of firing alerts (for /api/v1/alerts): every alert once, newest startsAt first, long annotations
clipped, read through an index."""
from __future__ import annotations

import pytest

from webhook_receiver.store import sqlite_reads

from .payloads import alert, notification


def post_alerts(post, count: int) -> None:
    """`count` firing alerts, gpu-0 started first; gpu-1 and gpu-2 started at the same time."""
    starts = ["2024-05-01T10:00:00Z", "2024-05-01T11:00:00Z", "2024-05-01T11:00:00Z"] + [
        f"2024-05-01T{12 + i:02d}:00:00Z" for i in range(count - 3)]
    for i in range(count):
        post(notification(alert(machine=f"gpu-{i}", starts=starts[i])))


def walk(store, limit: int) -> list[list[str]]:
    pages, after = [], None
    while True:
        alerts, after = store.active_alerts_page(limit, after, 1000)
        pages.append([a["labels"]["machine_id"] for a in alerts])
        if after is None:
            return pages


def test_pages_hold_every_firing_alert_once_newest_start_first(post, store):
    post_alerts(post, 7)
    post(notification(alert(machine="gpu-4", starts="2024-05-01T13:00:00Z", status="resolved")))
    assert walk(store, 2) == [["gpu-6", "gpu-5"], ["gpu-3", "gpu-2"], ["gpu-1", "gpu-0"]]
    assert walk(store, 10) == [["gpu-6", "gpu-5", "gpu-3", "gpu-2", "gpu-1", "gpu-0"]]
    assert store.active_alerts_page(6, None, 1000)[1] is None  # exactly one page: no cursor to an empty one


def test_an_alert_that_changes_between_pages_is_never_listed_twice(post, store):
    post_alerts(post, 4)
    first, after = store.active_alerts_page(2, None, 1000)
    post(notification(alert(machine="gpu-3", starts="2024-05-01T12:00:00Z", status="resolved")))
    post(notification(alert(machine="gpu-3", starts="2024-05-01T12:00:00Z")))  # re-fired: a newer event
    rest, _ = store.active_alerts_page(10, after, 1000)
    assert [a["labels"]["machine_id"] for a in first + rest] == ["gpu-3", "gpu-2", "gpu-1", "gpu-0"]


def test_long_annotations_are_clipped_in_pages_and_whole_in_the_timeline(post, store):
    long_text = "é" * 1500
    body = notification(alert(machine="gpu-1", description=long_text))
    body["alerts"][0]["annotations"]["description"] = long_text
    post(body)
    [listed], _ = store.active_alerts_page(10, None, 1000)
    assert listed["annotations"]["description"] == "é" * 1000 + "…"
    assert listed["annotations"]["summary"] == "DiskAlmostFull on gpu-1"
    assert listed["annotations_clipped"] == {"description": 1500}
    assert store.timeline(listed["fingerprint"])[0]["annotations"]["description"] == long_text


@pytest.mark.sqlite_only("SQLite's query plans")
def test_a_page_reads_the_index_not_every_alert(post, store):
    post_alerts(post, 3)
    store.active_alerts_page(1, None, 1000)
    with store._read() as conn:
        for sql, args in ((sqlite_reads._ALERTS_FIRST, (1000, None, None, 2)),
                          (sqlite_reads._ALERTS_AFTER, (1000, "2024-05-01T11:00:00.000000000Z", 3, 2))):
            plan = " / ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, args))
            assert "USING INDEX alerts_firing" in plan or "USING COVERING INDEX alerts_firing" in plan, plan
            # the page's rows come sorted from the index; only the final few rows are sorted again
            assert plan.count("TEMP B-TREE") <= 1, plan


def test_any_cursor_position_answers(post, store):
    post_alerts(post, 3)
    assert store.active_alerts_page(5, ("9999-12-31T00:00:00.000000000Z", 2 ** 80), 1000)[0] != []
    assert store.active_alerts_page(5, ("", -(2 ** 80)), 1000) == ([], None)
