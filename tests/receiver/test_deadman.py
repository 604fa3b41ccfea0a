"""The dead man's switch: silence -> down message -> heartbeat -> recovered, once each, across restarts.

Silence is measured on the monotonic clock, so the tests drive both clocks (`Clocks`); the wall clock only
dates what people read, and stepping it (back or forward) neither freezes nor fires the switch.
"""
import random
import time

import pytest

from webhook_receiver.deadman import ALERTNAME
from webhook_receiver.relay.worker import RelayWorker

from .payloads import alert, notification

DAY = 86400  # the channels file's deadman timeout


class Clocks:
    """A wall clock and a monotonic clock the test moves: together, or the wall one alone (a step)."""

    def __init__(self):
        self.wall = time.time()  # heartbeats are stamped with the real time by ingest
        self.mono = 1000.0

    def advance(self, seconds: float) -> float:
        self.wall += seconds
        self.mono += seconds
        return self.wall


@pytest.fixture
def clocks():
    return Clocks()


@pytest.fixture
def start_worker(app, clocks):
    """A relay worker started now on both clocks (a restart is another call)."""
    def start() -> RelayWorker:
        return RelayWorker(app.extensions["dumont.store"], app.extensions["dumont.channels"],
                           app.config["RECEIVER"], clock=lambda: clocks.wall, monotonic=lambda: clocks.mono,
                           rng=random.Random(7))
    return start


def heartbeat(post):
    assert post(notification(alert("Watchdog", severity="none"), receiver="watchdog"),
                channel="watchdog").status_code == 200


def pipeline_alerts(client):
    return [e for e in client.get(f"/api/v1/history?alertname={ALERTNAME}").get_json()["entries"]]


def test_silence_then_heartbeat(post, start_worker, clocks, slack, smtp, client):
    worker = start_worker()
    assert worker.run_once(clocks.advance(DAY - 1)) == 0  # never seen, but not silent for long enough yet
    assert pipeline_alerts(client) == []

    assert worker.run_once(clocks.advance(2)) == 2  # one message to each notify channel
    (down,) = pipeline_alerts(client)
    assert down["status"] == "firing" and down["severity"] == "critical"
    assert "no heartbeat has arrived since the receiver's relay started" in down["annotations"]["summary"]
    assert len(slack.received) == 1 and len(smtp.messages) == 1
    assert [a["alertname"] for a in client.get("/api/v1/alerts").get_json()["alerts"]] == [ALERTNAME]

    worker.run_once(clocks.advance(600))  # still silent: said once only
    clocks.advance(100)
    restarted = start_worker()  # a restart does not announce again
    restarted.run_once(clocks.advance(2 * DAY))
    assert len(pipeline_alerts(client)) == 1 and len(slack.received) == 1

    heartbeat(post)
    assert restarted.run_once(clocks.advance(1)) == 2
    recovered, _ = pipeline_alerts(client)
    assert recovered["status"] == "resolved" and "heartbeats resumed" in recovered["annotations"]["summary"]
    assert recovered["fingerprint"] == down["fingerprint"]
    assert len(slack.received) == 2 and len(smtp.messages) == 2
    assert client.get("/api/v1/alerts").get_json()["alerts"] == []


def test_regular_heartbeats_keep_it_quiet(post, start_worker, clocks, client):
    worker = start_worker()
    for _ in range(6):  # three days, a heartbeat every half day
        worker.run_once(clocks.advance(DAY / 2))
        heartbeat(post)
    worker.run_once(clocks.advance(DAY - 60))
    assert pipeline_alerts(client) == []


def test_down_summary_says_when_the_last_heartbeat_came(post, start_worker, clocks, client):
    heartbeat(post)
    start_worker().run_once(clocks.advance(DAY + 1))
    (down,) = pipeline_alerts(client)
    assert "the last heartbeat arrived at 20" in down["annotations"]["summary"]


def test_a_restart_after_downtime_gets_a_full_timeout_before_paging(post, start_worker, clocks, client):
    heartbeat(post)  # the last heartbeat before the receiver went away for two days
    clocks.advance(2 * DAY)
    worker = start_worker()
    worker.run_once(clocks.advance(DAY - 60))
    assert pipeline_alerts(client) == []
    worker.run_once(clocks.advance(61))
    (down,) = pipeline_alerts(client)
    assert "the last heartbeat arrived at 20" in down["annotations"]["summary"]


def test_a_wall_clock_stepped_back_neither_freezes_it(post, start_worker, clocks, client):
    worker = start_worker()
    heartbeat(post)
    worker.run_once(clocks.advance(1))
    clocks.wall -= 2 * DAY  # the wall clock is set back two days; the silence goes on
    worker.run_once(clocks.advance(DAY - 60))
    assert pipeline_alerts(client) == []
    worker.run_once(clocks.advance(61))
    (down,) = pipeline_alerts(client)
    assert down["status"] == "firing"


def test_a_wall_clock_stepped_forward_does_not_fire_it(post, start_worker, clocks, client):
    worker = start_worker()
    heartbeat(post)
    worker.run_once(clocks.advance(1))
    clocks.wall += 3 * DAY  # a jump ahead: no time passed for the heartbeats
    worker.run_once(clocks.advance(60))
    assert pipeline_alerts(client) == []


def test_a_heartbeat_stamped_before_the_last_one_still_ends_the_silence(post, start_worker, clocks, store,
                                                                       client):
    """After the wall clock stepped back, a heartbeat's time is earlier than the one stored: it still counts."""
    heartbeat(post)
    worker = start_worker()
    worker.run_once(clocks.advance(DAY + 1))
    (down,) = pipeline_alerts(client)
    store.record_heartbeat("watchdog", time.time() - DAY, 1)  # stamped by a clock set back a day
    assert store.last_heartbeat("watchdog") > time.time() - 60  # the stored time did not move
    worker.run_once(clocks.advance(1))
    recovered, _ = pipeline_alerts(client)
    assert recovered["status"] == "resolved"
