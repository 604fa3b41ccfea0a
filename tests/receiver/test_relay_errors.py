"""A message whose handling raises (a bad row, a channel bug) is marked with the error and skipped; it never
blocks the other messages or channels, and is retried after its backoff, not in a loop."""
import json
import time

from . import storesql
from .payloads import alert, notification


def outbox(store):
    return storesql.query(store, "SELECT o.channel, e.labels, o.state, o.attempts, o.due_at, o.detail FROM outbox o"
                                 " JOIN events e ON e.id = o.event_id ORDER BY o.id")


def test_an_unreadable_row_is_failed_alone_with_the_error(post, make_worker, smtp, store):
    slack_ok = [alert(machine=f"gpu-{i}") for i in range(3)]
    post(notification(*slack_ok), channel="email-oncall")
    store.apply_intake()
    # a bad row: its annotations are no JSON object any more (labels feed generated columns, which refuse it)
    storesql.execute(store, "UPDATE events SET annotations = '{not json' WHERE fingerprint = ?",
                     (slack_ok[1]["fingerprint"],))
    now = time.time()
    make_worker().run_once(now)
    assert len(smtp.messages) == 1  # the two others, in one message
    states = [(row[2], row[3], row[5]) for row in outbox(store)]
    assert states[0][0] == states[2][0] == "delivered"
    assert states[1] == ("failed", 1, "the stored alert cannot be read (JSONDecodeError)")
    make_worker().run_once(now + 3600)
    assert len(smtp.messages) == 1


def test_a_message_whose_sending_raises_is_marked_and_skipped(app, post, make_worker, slack, smtp, store):
    email = app.extensions["dumont.channels"].channels["email-oncall"]
    real_send = email.send

    def send_with_a_bug(message):  # a channel bug that only one alert triggers
        if any(event.labels["machine_id"] == "gpu-1" for event in message.events):
            raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")
        return real_send(message)

    email.send = send_with_a_bug
    post(notification(*(alert(machine=f"gpu-{i}") for i in range(3))), channel="email-oncall")
    post(notification(alert(machine="gpu-9")))
    now = time.time()
    make_worker().run_once(now)
    assert len(slack.received) == 1  # the other channel is untouched
    assert len(smtp.messages) == 2  # gpu-0 and gpu-2, each alone once their message raised
    rows = {json.loads(row[1])["machine_id"]: row for row in outbox(store) if row[0] == "email-oncall"}
    assert [rows[m][2] for m in ("gpu-0", "gpu-2")] == ["delivered", "delivered"]
    _, _, state, attempts, due_at, detail = rows["gpu-1"]
    assert (state, attempts) == ("pending", 1) and due_at > now  # retried after its backoff, not in a loop
    assert detail == "the relay could not send it: UnicodeEncodeError (see its log)"
    make_worker().run_once(now)  # not due again in the same instant
    assert outbox(store)[1][3] == 1
