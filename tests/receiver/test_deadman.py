"""The dead man's switch: silence -> down message -> heartbeat -> recovered, once each, across restarts."""
import time

from webhook_receiver.deadman import ALERTNAME

from .payloads import alert, notification

DAY = 86400  # the channels file's deadman timeout


def heartbeat(post):
    assert post(notification(alert("Watchdog", severity="none"), receiver="watchdog"),
                channel="watchdog").status_code == 200


def pipeline_alerts(client):
    return [e for e in client.get(f"/api/v1/history?alertname={ALERTNAME}").get_json()["entries"]]


def test_silence_then_heartbeat(post, make_worker, slack, smtp, client):
    start = time.time()
    worker = make_worker(start=start)
    assert worker.run_once(start + DAY - 1) == 0  # never seen, but not silent for long enough yet
    assert pipeline_alerts(client) == []

    assert worker.run_once(start + DAY + 1) == 2  # one message to each notify channel
    (down,) = pipeline_alerts(client)
    assert down["status"] == "firing" and down["severity"] == "critical"
    assert "no heartbeat has arrived since the receiver's relay started" in down["annotations"]["summary"]
    assert len(slack.received) == 1 and len(smtp.messages) == 1
    assert [a["alertname"] for a in client.get("/api/v1/alerts").get_json()["alerts"]] == [ALERTNAME]

    worker.run_once(start + DAY + 600)  # still silent: said once only
    restarted = make_worker(start=start + DAY + 700)  # a restart does not announce again
    restarted.run_once(start + 3 * DAY)
    assert len(pipeline_alerts(client)) == 1 and len(slack.received) == 1

    heartbeat(post)
    assert restarted.run_once(start + 3 * DAY + 1) == 2
    recovered, _ = pipeline_alerts(client)
    assert recovered["status"] == "resolved" and "heartbeats resumed" in recovered["annotations"]["summary"]
    assert recovered["fingerprint"] == down["fingerprint"]
    assert len(slack.received) == 2 and len(smtp.messages) == 2
    assert client.get("/api/v1/alerts").get_json()["alerts"] == []


def test_regular_heartbeats_keep_it_quiet(post, make_worker, client):
    heartbeat(post)
    worker = make_worker(start=time.time() - 2 * DAY)  # started long ago: the heartbeat counts, not the start
    worker.run_once(time.time() + DAY - 60)
    assert pipeline_alerts(client) == []


def test_down_summary_says_when_the_last_heartbeat_came(post, make_worker, client):
    heartbeat(post)
    make_worker().run_once(time.time() + DAY + 1)
    (down,) = pipeline_alerts(client)
    assert "the last heartbeat arrived at 20" in down["annotations"]["summary"]


def test_a_restart_after_downtime_gets_a_full_timeout_before_paging(post, make_worker, client):
    heartbeat(post)  # the last heartbeat before the receiver went away for two days
    back = time.time() + 2 * DAY
    worker = make_worker(start=back)
    worker.run_once(back + DAY - 60)
    assert pipeline_alerts(client) == []
    worker.run_once(back + DAY + 1)
    (down,) = pipeline_alerts(client)
    assert "the last heartbeat arrived at 20" in down["annotations"]["summary"]
