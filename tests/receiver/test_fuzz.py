"""Property-based fuzzing of ingest and the history API against the real `dumont-receiver serve`.

Asserts: no answer is a 5xx; every body in Alertmanager's shape is stored; every other body is a 4xx naming
what is wrong; after each run the database passes `PRAGMA integrity_check` and the store's invariants (no
partial rows). `make test` runs a bounded, derandomized number of examples; `make fuzz` (DUMONT_FUZZ_EXAMPLES)
runs many more, at random.
"""
from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from contextlib import closing
from urllib.parse import urlencode

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from deploy.local.sinks import SlackSink, SmtpSink
from webhook_receiver.fingerprint import label_fingerprint
from webhook_receiver.store.episodes import same_start
from webhook_receiver.payload import canonical_time
from webhook_receiver.query import PARAMS

from .conftest import TOKEN
from .serving import Served

# Hypothesis keeps a cache of its own (constants it found in the code) even without an example database: in a
# temp dir, not in the work tree.
set_hypothesis_home_dir(os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY")
                        or os.path.join(tempfile.gettempdir(), "dumont-hypothesis"))
EXAMPLES = int(os.environ.get("DUMONT_FUZZ_EXAMPLES", "0")) or None
FUZZ = settings(
    max_examples=EXAMPLES or 60,
    deadline=None,          # a real server: a slow answer under load is no failure of the property
    database=None,          # no .hypothesis folder in the work tree
    derandomize=EXAMPLES is None,  # `make test` explores the same examples every run; `make fuzz` new ones
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
STORING = ("slack-oncall", "email-oncall")
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The real server with its relay, delivering to Slack and SMTP stand-ins, so messages are rendered too."""
    workdir = tmp_path_factory.mktemp("fuzz")
    slack, smtp = SlackSink(port=0).start(), SmtpSink(port=0).start()
    (workdir / "token").write_text(TOKEN + "\n")
    (workdir / "slack_url").write_text(slack.url_for("/services/T/B/fuzz") + "\n")
    (workdir / "channels.yml").write_text(json.dumps({
        "channels": {
            "slack-oncall": {"type": "slack", "webhook_url_file": str(workdir / "slack_url"), "timeout": "5s"},
            "email-oncall": {"type": "email", "to": ["oncall@example.com"], "from": "alerts@dumont.cloud",
                             "smarthost": f"127.0.0.1:{smtp.port}", "require_tls": False, "timeout": "5s"},
            "watchdog": {"type": "heartbeat"},
        },
        "deadman": {"channel": "watchdog", "timeout": "1d", "notify": ["slack-oncall"]},
    }))
    server = Served({"database": str(workdir / "history.db"), "channels_file": str(workdir / "channels.yml"),
                     "token_file": str(workdir / "token"), "relay_interval": "200ms", "busy_timeout": "5s"},
                    workdir)
    try:
        yield server.start()
    finally:
        server.stop()
        slack.stop()
        smtp.stop()
    assert "Traceback" not in server.log(), server.log()[-5000:]


def database(served) -> sqlite3.Connection:
    """A read-only connection to the served receiver's database (the checks never write)."""
    return sqlite3.connect(f"file:{served.config_path.with_name('history.db')}?mode=ro", uri=True, timeout=10)


# -- what an Alertmanager sends

# Prometheus's classic names and, since Alertmanager 0.27, any UTF-8 name; values are any text. Hypothesis's
# text() never makes a lone surrogate: every such string is valid Unicode, as Go's encoder guarantees.
classic_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,20}", fullmatch=True)
label_names = st.one_of(classic_names, classic_names, st.text(min_size=1, max_size=20))
texts = st.text(max_size=40)
label_maps = st.dictionaries(label_names, texts, max_size=6)


@st.composite
def go_times(draw, after: str | None = None) -> str:
    """A time as Go's RFC3339Nano writes it: trailing fraction zeros dropped, Z or a numeric offset."""
    year = draw(st.integers(2000, 2100)) if after is None else int(after[:4]) + draw(st.integers(0, 2))
    text = (f"{year:04d}-{draw(st.integers(1, 12)):02d}-{draw(st.integers(1, 28)):02d}T"
            f"{draw(st.integers(0, 23)):02d}:{draw(st.integers(0, 59)):02d}:{draw(st.integers(0, 59)):02d}")
    nanos = draw(st.integers(0, 999_999_999))
    if nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    offset = draw(st.sampled_from(["Z", "+02:00", "-07:00", "+05:30"]))
    return text + offset


@st.composite
def am_alerts(draw) -> dict:
    labels = draw(label_maps)
    labels.setdefault("alertname", draw(st.sampled_from(["DiskAlmostFull", "Watchdog", "é<!channel>&", "x"])))
    if draw(st.booleans()):
        labels["severity"] = draw(st.sampled_from(["critical", "warning", "info", "", "page"]))
    status = draw(st.sampled_from(["firing", "resolved"]))
    starts = draw(go_times())
    if status == "resolved":
        ends = draw(go_times(after=starts))
    else:  # Alertmanager's zero time, or the endsAt Prometheus keeps moving ahead
        ends = draw(st.sampled_from(["0001-01-01T00:00:00Z", draw(go_times(after=starts))]))
    annotations = draw(st.dictionaries(st.sampled_from(["summary", "description", "runbook_url", "value"]) | texts,
                                       texts | st.sampled_from(["javascript:alert(1)", "https://rb.example/a|b"]),
                                       max_size=4))
    alert = {"status": status, "labels": labels, "annotations": annotations, "startsAt": starts, "endsAt": ends,
             "generatorURL": draw(st.sampled_from(["", "http://prom:9090/graph?g0.expr=up&g0.tab=1", "javascript:x"]))}
    if draw(st.integers(0, 4)):  # Alertmanager 0.19+ sends it; older ones leave it out
        alert["fingerprint"] = label_fingerprint(labels)
    return alert


@st.composite
def am_bodies(draw) -> dict:
    alerts = draw(st.lists(am_alerts(), min_size=1, max_size=5))
    body = {
        "receiver": draw(texts), "status": "firing" if any(a["status"] == "firing" for a in alerts) else "resolved",
        "alerts": alerts, "groupLabels": draw(label_maps), "commonLabels": draw(label_maps),
        "commonAnnotations": draw(st.dictionaries(texts, texts, max_size=3)),
        "externalURL": draw(st.sampled_from(["http://127.0.0.1:9093", ""])), "version": "4",
        "groupKey": draw(texts),
    }
    if draw(st.integers(0, 3)):  # 0.21+
        body["truncatedAlerts"] = draw(st.integers(0, 2**31 - 1))
    if draw(st.booleans()):  # newer releases' fields, ignored
        body["routeLabels"] = draw(label_maps)
    return body


def encode(body, ascii_only: bool) -> bytes:
    """As Go's encoder writes it (<, > and & escaped), or as UTF-8 (a lone surrogate then as its raw bytes)."""
    text = json.dumps(body, ensure_ascii=ascii_only)
    if ascii_only:
        text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text.encode("utf-8", "surrogatepass")


def post(served, channel: str, data: bytes) -> requests.Response:
    return requests.post(f"{served.url}/webhook/{channel}", data=data, headers=HEADERS, timeout=30)


# -- invariants

def check_database(served) -> None:
    """integrity_check, then the store's invariants: no row refers to a missing one, nothing half-stored."""
    requests.get(f"{served.url}/api/v1/alerts", headers={}, timeout=30)  # applies the intake first
    with closing(database(served)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        queries = {
            "outbox row without its event": "SELECT id FROM outbox WHERE event_id NOT IN (SELECT id FROM events)",
            "intake row without its event":
                "SELECT event_id FROM intake WHERE event_id NOT IN (SELECT id FROM events)",
            "outbox row without its notification":
                "SELECT id FROM outbox WHERE notification_id IS NOT NULL"
                " AND notification_id NOT IN (SELECT id FROM notifications)",
            "intake row without its notification":
                "SELECT event_id FROM intake WHERE notification_id IS NOT NULL"
                " AND notification_id NOT IN (SELECT id FROM notifications)",
            "notification that queued nothing":
                "SELECT id FROM notifications WHERE id NOT IN"
                " (SELECT notification_id FROM outbox WHERE notification_id IS NOT NULL"
                " UNION SELECT notification_id FROM intake WHERE notification_id IS NOT NULL)",
            "event queued to no channel":
                "SELECT id FROM events WHERE id NOT IN (SELECT event_id FROM outbox UNION SELECT event_id FROM intake)",
            "alert whose newest event is missing or another's":
                "SELECT a.fingerprint FROM alerts a LEFT JOIN events e ON e.id = a.event_id WHERE e.id IS NULL"
                " OR e.fingerprint != a.fingerprint OR e.status != a.status OR e.starts_at != a.starts_at",
            "stored alert without its current state":
                "SELECT fingerprint FROM events EXCEPT SELECT fingerprint FROM alerts",
            "attempt of a missing delivery or row":
                "SELECT outbox_id FROM delivery_items WHERE delivery_id NOT IN (SELECT id FROM deliveries)"
                " OR outbox_id NOT IN (SELECT id FROM outbox)",
            "outbox row in an unknown state":
                "SELECT id FROM outbox WHERE state NOT IN ('pending', 'sending', 'delivered', 'failed')",
            "event of unknown status": "SELECT id FROM events WHERE status NOT IN ('firing', 'resolved')",
            "labels or annotations not JSON":
                "SELECT id FROM events WHERE NOT json_valid(labels) OR NOT json_valid(annotations)",
            "alertname column not the label":  # the receiver's own (dead man's switch) events aside
                "SELECT id FROM events WHERE alertname != coalesce(json_extract(labels, '$.alertname'), '')"
                " AND id NOT IN (SELECT event_id FROM outbox WHERE notification_id IS NULL)",
            "non-canonical time":
                "SELECT id FROM events WHERE starts_at NOT GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T"
                "[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]Z'",
        }
        broken = {name: rows for name, sql in queries.items() if (rows := conn.execute(sql).fetchall()[:5])}
        assert broken == {}


def stored(served, alert: dict) -> bool:
    """Whether the alert's state change is in the history, with its labels as sent.

    Its alert start is the stored one of the same millisecond (episodes.same_start: Alertmanager's API gives
    milliseconds), which may be an earlier example's.
    """
    fingerprint = alert.get("fingerprint") or label_fingerprint(alert["labels"])
    with closing(database(served)) as conn:
        rows = conn.execute("SELECT labels FROM events WHERE fingerprint = ? AND status = ?"
                            " AND starts_at BETWEEN ? AND ?",
                            (fingerprint, alert["status"], *same_start(canonical_time(alert["startsAt"])))).fetchall()
    return any(json.loads(labels) == alert["labels"] for (labels,) in rows)


# -- properties

def test_every_alertmanager_body_is_stored(served):
    @FUZZ
    @given(body=am_bodies(), channel=st.sampled_from(STORING + ("watchdog",)), ascii_only=st.booleans())
    def run(body, channel, ascii_only):
        answer = post(served, channel, encode(body, ascii_only))
        assert answer.status_code == 200, answer.text
        if channel != "watchdog":
            result = answer.json()
            assert result["queued"] + result["duplicates"] == len(body["alerts"])
            for alert in body["alerts"]:
                assert stored(served, alert), alert
    run()
    check_database(served)


# One change that makes a valid body invalid, and the field the answer must name.
@st.composite
def broken_bodies(draw) -> tuple[bytes, str]:
    body = draw(am_bodies())
    alert_index = draw(st.integers(0, len(body["alerts"]) - 1))
    alert = body["alerts"][alert_index]
    where = draw(st.sampled_from(["top", "alert", "map", "surrogate", "truncated", "bytes"]))
    if where == "top":
        key = draw(st.sampled_from(["receiver", "status", "groupKey", "externalURL", "version", "alerts",
                                    "groupLabels", "commonLabels", "commonAnnotations"]))
        if draw(st.booleans()):
            del body[key]
        else:
            body[key] = draw(wrong_type(key))
        return encode(body, True), key
    if where == "alert":
        key = draw(st.sampled_from(["status", "labels", "annotations", "startsAt", "endsAt", "generatorURL"]))
        if draw(st.booleans()):
            del alert[key]
        else:
            alert[key] = draw(wrong_type(key))
        return encode(body, True), f"alerts[{alert_index}].{key}"
    if where == "map":
        name = draw(st.sampled_from(["labels", "annotations"]))
        alert[name][draw(texts)] = draw(st.one_of(st.integers(), st.none(), st.booleans(), st.lists(texts)))
        return encode(body, True), f"alerts[{alert_index}].{name}"
    if where == "surrogate":
        lone = chr(draw(st.integers(0xD800, 0xDFFF)))
        target = draw(st.sampled_from(["receiver", "groupKey", "label-name", "label-value", "annotation",
                                       "generatorURL"]))
        field = {"receiver": "receiver", "groupKey": "groupKey", "generatorURL": f"alerts[{alert_index}].generatorURL",
                 "label-name": f"alerts[{alert_index}].labels", "label-value": f"alerts[{alert_index}].labels",
                 "annotation": f"alerts[{alert_index}].annotations"}[target]
        if target in ("receiver", "groupKey"):
            body[target] += lone
        elif target == "generatorURL":
            alert["generatorURL"] += lone
        elif target == "label-name":
            alert["labels"][draw(texts) + lone] = "x"
        elif target == "label-value":
            alert["labels"]["alertname"] += lone
        else:
            alert["annotations"]["summary"] = lone + draw(texts)
        return encode(body, draw(st.booleans())), field  # as a \ud800 escape, or as raw bytes ED A0 80
    if where == "truncated":
        body["truncatedAlerts"] = draw(st.one_of(st.integers(max_value=-1), st.integers(min_value=2**31),
                                                 st.floats(allow_nan=False), st.text(max_size=3)))
        return encode(body, True), "truncatedAlerts"
    # bytes: JSON cut short, or not JSON at all
    data = encode(body, True)
    return (data[:draw(st.integers(0, len(data) - 1))] if draw(st.booleans()) else draw(st.binary(max_size=200)),
            "")


def wrong_type(key: str):
    """A JSON value of a type `key` must not have."""
    if key in ("labels", "annotations", "groupLabels", "commonLabels", "commonAnnotations"):
        return st.one_of(st.none(), texts, st.integers(), st.lists(texts, max_size=2))
    if key == "alerts":
        return st.one_of(st.none(), texts, st.just([]), st.dictionaries(texts, texts, max_size=2))
    if key in ("status", "version"):
        return st.one_of(st.none(), st.integers(), texts.filter(lambda t: t not in ("firing", "resolved", "4")))
    if key in ("startsAt", "endsAt"):
        return st.one_of(st.none(), st.integers(), texts, st.just("2024-05-01T10:00:00Z\n"),
                         st.just("\u0662\u0660\u0662\u0664-05-01T10:00:00Z"))
    return st.one_of(st.none(), st.integers(), st.booleans(), st.lists(texts, max_size=2),
                     st.dictionaries(texts, texts))


def test_every_other_body_is_a_4xx_naming_the_field(served):
    @FUZZ
    @given(case=broken_bodies(), channel=st.sampled_from(STORING + ("watchdog",)))
    def run(case, channel):
        data, field = case
        answer = post(served, channel, data)
        assert 400 <= answer.status_code < 500, (answer.status_code, answer.text)
        error = answer.json()["error"]
        assert error.startswith(field), (field, error)
    run()
    check_database(served)


# -- the history API and pages

query_values = st.one_of(texts, st.sampled_from([
    "\u00b2", "0", "500", "501", "firing", "resolved", "2024-05-01T00:00:00Z", "djE6MQ",
    "djE6OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5", '"\\ud800"=1', "severity=critical", "=x", '"a=b"=c', "-1", "1e3"]))


def test_history_queries_never_answer_5xx(served):
    @FUZZ
    @given(params=st.lists(st.tuples(st.sampled_from(PARAMS) | texts, query_values), max_size=4),
           path=st.sampled_from(["/api/v1/history", "/", "/api/v1/alerts"]))
    def run(params, path):
        answer = requests.get(f"{served.url}{path}?{urlencode(params)}", timeout=30)
        assert answer.status_code in (200, 400), (answer.status_code, answer.text[:500])
        if answer.status_code == 400 and path != "/":
            error = answer.json()["error"]
            assert any(error.startswith(f"{name}: ") for name, _ in params), (error, params)
        if answer.status_code == 200 and path != "/":
            body = answer.json()
            cursor = body["next_cursor"]
            if cursor is not None:  # the cursor it gave is taken back
                follow = requests.get(f"{served.url}{path}", params={"cursor": cursor}, timeout=30)
                assert follow.status_code == 200, follow.text[:500]

    run()
    check_database(served)


def test_alert_pages_never_answer_5xx(served):
    with closing(database(served)) as conn:
        known = [row[0] for row in conn.execute("SELECT DISTINCT fingerprint FROM events LIMIT 50")]

    @FUZZ
    @given(fingerprint=st.sampled_from(known or ["0"]) | texts.filter(lambda t: t and "/" not in t and t not in ".."),
           api=st.booleans())
    def run(fingerprint, api):
        path = f"/api/v1/alerts/{requests.utils.quote(fingerprint, safe='')}" if api else \
            f"/alerts/{requests.utils.quote(fingerprint, safe='')}"
        answer = requests.get(served.url + path, timeout=30)
        assert answer.status_code in (200, 404), (answer.status_code, answer.text[:500])
    run()
    check_database(served)
