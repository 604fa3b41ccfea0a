"""Alerting analytics: GET /api/v1/stats's figures against a scripted history, its filters and parameters, the
/stats page with its charts' files, and the history token. On both stores (store_kind)."""
from __future__ import annotations

import hashlib
import json
import re
import time
from urllib.parse import urlencode

import pytest

from webhook_receiver.payload import DRILL_LABEL, epoch, format_epoch, notification_from
from webhook_receiver.store.stats_facts import StatsQuery, first_id_at, nearest_rank

from .payloads import notification
from .storesql import execute, one

T0 = epoch("2026-03-01T00:00:00.000000000Z")  # the window is the day [T0, T0 + 1 day), long past
DAY, HOUR, MINUTE = 86400.0, 3600.0, 60.0
WINDOW = {"since": "2026-03-01T00:00:00Z", "until": "2026-03-02T00:00:00Z"}
ZERO = "0001-01-01T00:00:00Z"


def am_alert(name: str, status: str, starts: float, ends: float | None = None, severity: str = "critical",
             **labels: str) -> dict:
    """One alert as Alertmanager posts it, its labels exactly `labels` (no machine_id unless given)."""
    all_labels = {"alertname": name, "severity": severity, **labels}
    return {"status": status, "labels": all_labels, "annotations": {"summary": name},
            "startsAt": format_epoch(starts), "endsAt": format_epoch(ends) if ends is not None else ZERO,
            "generatorURL": "http://prometheus:9090/graph",
            "fingerprint": hashlib.sha256(json.dumps(all_labels, sort_keys=True).encode()).hexdigest()[:16]}


def store_change(store, at: float, channels: tuple[str, ...], body: dict) -> None:
    """Store one alert's state change as a webhook posted at `at` would, to each channel (the store's write API)."""
    for channel in channels:
        store.ingest(channel, notification_from(notification(body, receiver=channel)), at)


def event_id(store, body: dict, episode: int = 0) -> int:
    return one(store, "SELECT id FROM events WHERE fingerprint = ? AND status = ? AND starts_at = ? AND episode = ?",
               (body["fingerprint"], body["status"], body["startsAt"], episode))


def outcome(store, event: int, channel: str, state: str, attempts: int, finished_at: float | None) -> None:
    """What the relay did with one message (precise SQL: the relay's own path is tested elsewhere)."""
    assert execute(store, "UPDATE outbox SET state = ?, attempts = ?, finished_at = ?"
                          " WHERE event_id = ? AND channel = ?", (state, attempts, finished_at, event, channel)) == 1


# Alertmanager times with a millisecond fraction, to check both stores round them alike
A1_START, A1_END = T0 + HOUR + 0.25, T0 + HOUR + 10 * MINUTE + 0.75      # 600.5 s
A2_START, A2_END = T0 + 75 * MINUTE, T0 + 105 * MINUTE                    # 1800 s, 5 min after A1 ended
B1_START, B1_END = T0 + 2 * HOUR, T0 + 3 * HOUR                           # 3600 s
B2_FIRED, B2_END = T0 + 3 * HOUR + 10 * MINUTE, T0 + 3 * HOUR + 40 * MINUTE  # a re-fire, 10 min after B1 ended
C1_START = T0 + 5 * HOUR                                                  # fleet-wide, still firing
E1_START, E1_END = T0 + 6 * HOUR, T0 + 6 * HOUR + 20 * MINUTE             # seen only silenced


@pytest.fixture
def history(store):
    """The scripted history; its figures are worked out by hand in test_figures_are_what_the_history_implies."""
    both, slack = ("slack-oncall", "email-oncall"), ("slack-oncall",)
    gpu1 = {"machine_id": "gpu-1", "mount": "/data"}
    a0 = am_alert("DiskAlmostFull", "firing", T0 - 2 * HOUR, **gpu1)                 # began before the window
    store_change(store, T0 - 2 * HOUR + 30, both, a0)
    a0_end = am_alert("DiskAlmostFull", "resolved", T0 - 2 * HOUR, T0 + 10 * MINUTE, **gpu1)
    store_change(store, T0 + 10 * MINUTE + 20, both, a0_end)
    a1 = am_alert("DiskAlmostFull", "firing", A1_START, **gpu1)
    store_change(store, A1_START + 30, both, a1)
    a1_end = am_alert("DiskAlmostFull", "resolved", A1_START, A1_END, **gpu1)
    store_change(store, A1_END + 20, both, a1_end)
    a2 = am_alert("DiskAlmostFull", "firing", A2_START, **gpu1)
    store_change(store, A2_START + 30, both, a2)
    a2_end = am_alert("DiskAlmostFull", "resolved", A2_START, A2_END, **gpu1)
    store_change(store, A2_END + 20, both, a2_end)
    gpu2 = {"machine_id": "gpu-2"}
    b1 = am_alert("HighMemoryUsage", "firing", B1_START, severity="warning", **gpu2)
    store_change(store, B1_START + 30, slack, b1)
    b1_end = am_alert("HighMemoryUsage", "resolved", B1_START, B1_END, severity="warning", **gpu2)
    store_change(store, B1_END + 20, slack, b1_end)
    store_change(store, B2_FIRED, slack, b1)  # the same startsAt fires again: episode 1, starting when stored
    b2_end = am_alert("HighMemoryUsage", "resolved", B1_START, B2_END, severity="warning", **gpu2)
    store_change(store, B2_END + 20, slack, b2_end)
    c1 = am_alert("FailoverStorm", "firing", C1_START, severity="warning", machine_type="gpu")
    store_change(store, C1_START + 30, slack, c1)
    d1 = am_alert("DiskAlmostFull", "firing", T0 + 4 * HOUR, machine_id="gpu-3", mount="/", **{DRILL_LABEL: "d-1"})
    store_change(store, T0 + 4 * HOUR + 30, slack, d1)
    d1_end = am_alert("DiskAlmostFull", "resolved", T0 + 4 * HOUR, T0 + 4 * HOUR + 5 * MINUTE, machine_id="gpu-3",
                      mount="/", **{DRILL_LABEL: "d-1"})
    store_change(store, T0 + 4 * HOUR + 5 * MINUTE + 20, slack, d1_end)
    gpu3 = {"machine_id": "gpu-3"}
    e1 = am_alert("MachineDown", "firing", E1_START, **gpu3)
    store_change(store, E1_START + 30, slack, e1)
    e1_end = am_alert("MachineDown", "resolved", E1_START, E1_END, **gpu3)
    store_change(store, E1_END + 20, slack, e1_end)
    f1 = am_alert("MachineDown", "firing", T0 + DAY + HOUR, **gpu3)                  # after the window
    store_change(store, T0 + DAY + HOUR + 30, slack, f1)
    store.apply_intake()  # SQLite: the messages into the outbox, before they are given outcomes
    # E1 was only ever seen from Alertmanager's API while silenced: stored suppressed, never relayed
    execute(store, "UPDATE events SET suppressed = TRUE, origin = 'reconciliation' WHERE fingerprint = ?"
            " AND status = 'firing'", (e1["fingerprint"],))
    execute(store, "DELETE FROM outbox WHERE event_id IN (SELECT id FROM events WHERE fingerprint = ?)",
            (e1["fingerprint"],))
    for channel, body, episode, state, attempts, finished in [
        ("slack-oncall", a0_end, 0, "delivered", 1, T0 + 11 * MINUTE),
        ("slack-oncall", a1, 0, "delivered", 1, A1_START + 40),
        ("slack-oncall", a1_end, 0, "delivered", 1, A1_END + 30),
        ("slack-oncall", a2, 0, "delivered", 2, A2_START + 70),
        ("slack-oncall", a2_end, 0, "failed", 8, A2_END + 3 * HOUR),
        ("slack-oncall", b1, 0, "delivered", 1, B1_START + 100),
        ("slack-oncall", b1_end, 0, "delivered", 1, B1_END + 30),
        ("slack-oncall", b1, 1, "delivered", 1, B2_FIRED + 20),
        ("slack-oncall", b2_end, 1, "pending", 0, None),
        ("slack-oncall", c1, 0, "delivered", 3, C1_START + 300),
        ("slack-oncall", d1, 0, "delivered", 1, T0 + 4 * HOUR + 45),
        ("slack-oncall", d1_end, 0, "delivered", 2, T0 + 4 * HOUR + 6 * MINUTE),
        ("email-oncall", a0_end, 0, "failed", 8, T0 + HOUR),
        ("email-oncall", a1, 0, "delivered", 1, A1_START + 50),
        ("email-oncall", a1_end, 0, "delivered", 1, A1_END + 40),
        ("email-oncall", a2, 0, "failed", 8, A2_START + HOUR),
        ("email-oncall", a2_end, 0, "delivered", 1, A2_END + 30),
    ]:
        outcome(store, event_id(store, body, episode), channel, state, attempts, finished)
    return store


def stats(client, **params):
    args = [(key, one_value) for key, value in {**WINDOW, **params}.items()
            for one_value in (value if isinstance(value, list) else [value])]
    response = client.get(f"/api/v1/stats?{urlencode(args)}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def figures(episodes, firing, resolved, mean, p95, flapping, suppressed):
    return {"episodes": episodes, "firing_seconds": firing, "resolved": resolved,
            "time_to_resolve_seconds": {"mean": mean, "p95": p95}, "flapping": flapping, "suppressed": suppressed,
            "suppressed_share": round(suppressed / episodes, 4) if episodes else None}


def test_figures_are_what_the_history_implies(client, history):
    body = stats(client)
    assert body["window"] == {"since": "2026-03-01T00:00:00.000000000Z", "until": "2026-03-02T00:00:00.000000000Z",
                              "flap_seconds": 900.0, "alertname": None, "labels": []}
    # Episodes that began in the window: A1, A2 (flapping: 5 min after A1), B1, B2 (a re-fire 10 min after B1:
    # flapping), C1 (still firing), E1 (suppressed). Not A0 (began before, but fired 10 min inside), not the drill
    # D1, not F1 (after). Time firing: A0 600 + A1 600.5 + A2 1800 + B1 3600 + B2 1800 + C1 19 h + E1 1200.
    assert body["totals"] == figures(6, 600 + 600.5 + 1800 + 3600 + 1800 + 19 * HOUR + 1200, 5,
                                     (600.5 + 1800 + 3600 + 1800 + 1200) / 5, 3600.0, 2, 1)
    assert body["alerts"] == [  # most episodes first, then most time firing
        {"alertname": "HighMemoryUsage", **figures(2, 5400.0, 2, 2700.0, 3600.0, 1, 0)},
        {"alertname": "DiskAlmostFull", **figures(2, 600 + 600.5 + 1800, 2, 1200.25, 1800.0, 1, 0)},
        {"alertname": "FailoverStorm", **figures(1, 19 * HOUR, 0, None, None, 0, 0)},
        {"alertname": "MachineDown", **figures(1, 1200.0, 1, 1200.0, 1200.0, 0, 1)},
    ]
    assert body["machines"] == [  # the fleet-wide FailoverStorm is about no machine; gpu-3's drill is left out
        {"machine_id": "gpu-2", **figures(2, 5400.0, 2, 2700.0, 3600.0, 1, 0)},
        {"machine_id": "gpu-1", **figures(2, 600 + 600.5 + 1800, 2, 1200.25, 1800.0, 1, 0)},
        {"machine_id": "gpu-3", **figures(1, 1200.0, 1, 1200.0, 1200.0, 0, 1)},
    ]
    assert body["noisiest"] == {"alerts": body["alerts"][:10], "machines": body["machines"][:10]}
    assert body["daily"] == [{"day": "2026-03-01", "episodes": 6}]
    # Messages of the changes stored in the window (A0's firing was stored before it; D1's are a drill's; E1 had
    # none). Time to delivery of the delivered firings, from their episode's start: 40, 70, 100, 20 (B2 from when
    # it fired again), 300 on slack-oncall; 50 on email-oncall.
    assert body["channels"] == [
        {"channel": "email-oncall", "delivered": 3, "failed": 2, "pending": 0, "retried": 2,
         "time_to_delivery_seconds": {"count": 1, "p50": 50.0, "p95": 50.0}},
        {"channel": "slack-oncall", "delivered": 8, "failed": 1, "pending": 1, "retried": 3,
         "time_to_delivery_seconds": {"count": 5, "p50": 70.0, "p95": 300.0}},
    ]


def test_the_store_reads_the_same_figures_the_api_shows(history):
    facts = history.stats(StatsQuery(since=T0, until=T0 + DAY, now=T0 + 30 * DAY))
    assert (facts.total.episodes, facts.total.firing_ms, facts.total.resolve_ms_p95) == (6, 78000500, 3600000)
    assert facts.days == {int(T0 * 1000) // 86_400_000: 6}
    # `now` inside the window: the open C1 fires up to now, not to until; E1 starts later
    assert history.stats(StatsQuery(since=T0, until=T0 + DAY, now=C1_START + HOUR)).total.firing_ms == 8400500 + 3600000


def test_a_shorter_flap_window_finds_fewer_flapping_episodes(client, history):
    assert stats(client, flap="5m")["totals"]["flapping"] == 1  # A2 (5 min); not B2 (10 min)
    assert stats(client, flap="0s")["totals"]["flapping"] == 0


@pytest.mark.parametrize("params, alerts, channels", [
    ({"alertname": "DiskAlmostFull"}, ["DiskAlmostFull"], {"email-oncall": 3, "slack-oncall": 4}),
    ({"label": "machine_id=gpu-2"}, ["HighMemoryUsage"], {"slack-oncall": 3}),
    ({"label": ["machine_id=gpu-1", "mount=/data"]}, ["DiskAlmostFull"], {"email-oncall": 3, "slack-oncall": 4}),
    ({"label": '"mount"=/data'}, ["DiskAlmostFull"], {"email-oncall": 3, "slack-oncall": 4}),
    ({"label": "machine_type=gpu"}, ["FailoverStorm"], {"slack-oncall": 1}),
    ({"alertname": "MachineDown"}, ["MachineDown"], {}),
    ({"alertname": "Nope"}, [], {}),
])
def test_filters_keep_only_the_alerts_that_match(client, history, params, alerts, channels):
    body = stats(client, **params)
    assert [entry["alertname"] for entry in body["alerts"]] == alerts
    assert {entry["channel"]: entry["delivered"] for entry in body["channels"]} == channels
    assert body["totals"]["episodes"] == sum(entry["episodes"] for entry in body["alerts"])


def test_drill_alerts_are_left_out_even_when_asked_for(client, history):
    body = stats(client, label="machine_id=gpu-3")
    assert [entry["alertname"] for entry in body["alerts"]] == ["MachineDown"]
    assert body["channels"] == []  # gpu-3's only messages are the drill's
    assert stats(client, label=f"{DRILL_LABEL}=d-1")["totals"]["episodes"] == 0


def test_top_limits_the_noisiest_lists(client, history):
    body = stats(client, top="1")
    assert body["noisiest"] == {"alerts": body["alerts"][:1], "machines": body["machines"][:1]}
    assert body["noisiest"]["alerts"][0]["alertname"] == "HighMemoryUsage"  # 2 episodes, more firing than A's 2


def test_the_default_window_is_the_last_30_days(client, store):
    body = client.get("/api/v1/stats").get_json()
    since, until = epoch(body["window"]["since"]), epoch(body["window"]["until"])
    assert until - since == pytest.approx(30 * DAY, abs=1e-3)
    assert body["totals"]["episodes"] == 0 and body["channels"] == [] and body["daily"] == []


@pytest.mark.parametrize("query, parameter", [
    ("since=yesterday", "since"), ("until=2026-13-01T00:00:00Z", "until"),
    ("since=2026-03-02T00:00:00Z&until=2026-03-01T00:00:00Z", "since"),
    ("since=2026-03-01T00:00:00Z&since=2026-03-02T00:00:00Z", "since"),
    ("flap=soon", "flap"), ("flap=2d", "flap"), ("flap=-5m", "flap"),
    ("top=0", "top"), ("top=101", "top"), ("top=ten", "top"), ("top=%C2%B2", "top"),
    ("label=nope", "label"), ("label==x", "label"), ("alertname=a&alertname=b", "alertname"),
    ("limit=5", "limit"),
])
def test_bad_parameters_are_a_400_naming_them(client, query, parameter):
    response = client.get(f"/api/v1/stats?{query}")
    assert response.status_code == 400
    assert response.get_json()["error"].startswith(f"{parameter}:"), response.get_json()
    page = client.get(f"/stats?{query}")
    assert page.status_code == 400 and f"Bad filter: {parameter}:" in page.get_data(as_text=True)


def test_the_page_draws_its_charts_with_the_vendored_library(client, history):
    response = client.get(f"/stats?{urlencode(WINDOW)}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    scripts = re.findall(r'<script defer src="([^"]+)"></script>', page)
    assert scripts == ["/static/vendor/uplot/uPlot.iife.min.js", "/static/stats.js"]
    assert page.count("<script") == 2 and "<style" not in page and " style=" not in page  # nothing inline
    assert 'href="/static/vendor/uplot/uPlot.min.css"' in page
    data = json.loads(re.search(r"data-stats='([^']*)'", page).group(1))
    assert data == stats(client)
    assert "HighMemoryUsage" in page and "gpu-2" in page and "slack-oncall" in page
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    javascript = ("text/javascript", "application/javascript")  # Python's mimetypes name it either way
    for path, mimetypes, content in [("/static/vendor/uplot/uPlot.iife.min.js", javascript, b"uPlot"),
                                     ("/static/vendor/uplot/uPlot.min.css", ("text/css",), b".uplot"),
                                     ("/static/stats.js", javascript, b"stats-data"),
                                     ("/static/stats.css", ("text/css",), b".charts"),
                                     ("/static/vendor/uplot/LICENSE", None, b"MIT License")]:
        with client.get(path) as answer:
            assert answer.status_code == 200, path
            assert mimetypes is None or answer.mimetype in mimetypes, (path, answer.mimetype)
            assert content in answer.data


def test_the_history_page_links_to_the_stats(client):
    assert 'href="/stats"' in client.get("/").get_data(as_text=True)


def test_a_history_token_guards_the_api_and_the_page(guarded_app):
    client = guarded_app.test_client()
    denied = client.get("/api/v1/stats")
    assert denied.status_code == 401 and denied.headers["WWW-Authenticate"] == "Bearer"
    assert client.get("/api/v1/stats", headers={"Authorization": "Bearer h1st0ry"}).status_code == 200
    page = client.get("/stats?top=3")
    assert page.status_code == 401 and 'name="next" value="/stats?top=3"' in page.get_data(as_text=True)
    assert client.get("/stats", headers={"Authorization": "Bearer h1st0ry"}).status_code == 200
    signed_in = guarded_app.test_client()
    assert signed_in.post("/sign-in", data={"token": "h1st0ry", "next": "/stats"}).status_code == 303
    assert signed_in.get("/stats").status_code == 200
    assert signed_in.get("/api/v1/stats").status_code == 401  # the cookie is for pages only, as the history's


def test_nearest_rank_percentiles():
    assert nearest_rank([], 0.95) is None
    assert nearest_rank([7], 0.5) == 7
    assert [nearest_rank(list(range(1, 21)), p) for p in (0.5, 0.95, 1.0)] == [10, 19, 20]
    assert nearest_rank([1, 2], 0.95) == 2 and nearest_rank([1, 2, 3, 4], 0.5) == 2


def test_the_window_bisection_skips_gaps_pruning_left():
    received = {1: 10.0, 2: 20.0, 5: 50.0, 9: 90.0}  # ids 3, 4, 6-8 pruned

    def probe(at_least):
        found = min(i for i in received if i >= at_least)
        return found, received[found]
    for at in (0, 10, 15, 20, 21, 50, 89, 90, 91):
        first = first_id_at(at, (1, 9), probe)
        assert {i for i in received if i >= first} == {i for i in received if received[i] >= at}, at
    assert first_id_at(91, (1, 9), probe) == 10
    assert first_id_at(5.0, (None, None), probe) == 0


def test_the_sidecar_runs_both_halves_and_waits_for_both_whichever_fails():
    from webhook_receiver.store.sidecar import Sidecar

    sidecar, finished = Sidecar(), []
    assert sidecar.run(lambda: "beside", lambda: "here") == ("beside", "here")

    def slow():
        time.sleep(0.2)
        finished.append("beside")

    def failing():
        raise RuntimeError("here failed")
    with pytest.raises(RuntimeError, match="here failed"):
        sidecar.run(slow, failing)
    assert finished == ["beside"]  # it had finished before the error reached the caller
    with pytest.raises(ValueError):
        sidecar.run(lambda: int("x"), lambda: None)
