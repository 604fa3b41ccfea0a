"""Odd input gets a 4xx naming the field or parameter, never a 500: strings, integers, bodies, queries, `next`."""
import json
import socket

import pytest

from . import storesql
from .conftest import TOKEN
from .payloads import alert, notification
from .serving import Served

SURROGATE = "\ud800"


def counts(store) -> dict[str, int]:
    counted = {table: storesql.one(store, f"SELECT count(*) FROM {table}")
               for table in ("notifications", "events", "outbox")}
    # The PostgreSQL store has no intake: its webhooks write the outbox directly.
    return {**counted, "intake": 0 if storesql.is_pg(store) else storesql.one(store, "SELECT count(*) FROM intake")}


def raw_post(client, body: bytes, channel="slack-oncall"):
    return client.post(f"/webhook/{channel}", data=body, content_type="application/json",
                       headers={"Authorization": f"Bearer {TOKEN}"})


def _set(body: dict, path: tuple, value):
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return body


# (where in the body, the field the answer names); each gets a lone surrogate as its value.
STRING_FIELDS = [
    (("receiver",), "receiver"),
    (("status",), "status"),
    (("groupKey",), "groupKey"),
    (("externalURL",), "externalURL"),
    (("groupLabels", "alertname"), "groupLabels.alertname"),
    (("commonLabels", "machine_id"), "commonLabels.machine_id"),
    (("commonAnnotations", "summary"), "commonAnnotations.summary"),
    (("alerts", 0, "status"), "alerts[0].status"),
    (("alerts", 0, "labels", "machine_id"), "alerts[0].labels.machine_id"),
    (("alerts", 0, "annotations", "summary"), "alerts[0].annotations.summary"),
    (("alerts", 0, "startsAt"), "alerts[0].startsAt"),
    (("alerts", 0, "endsAt"), "alerts[0].endsAt"),
    (("alerts", 0, "generatorURL"), "alerts[0].generatorURL"),
    (("alerts", 0, "fingerprint"), "alerts[0].fingerprint"),
]


@pytest.mark.parametrize("path, field", STRING_FIELDS, ids=[field for _, field in STRING_FIELDS])
def test_a_lone_surrogate_in_any_string_is_a_400_naming_the_field(post, store, path, field):
    body = _set(notification(alert()), path, f"x{SURROGATE}y")
    answer = post(body)  # json.dumps writes it as the escape \ud800, as a hostile sender would
    assert answer.status_code == 400
    assert answer.get_json()["error"].startswith(f"{field}: not valid Unicode")
    assert counts(store) == {"notifications": 0, "events": 0, "intake": 0, "outbox": 0}


def test_a_lone_surrogate_in_a_label_name_is_a_400_naming_the_map(post, store):
    body = notification(alert())
    body["alerts"][0]["labels"][SURROGATE] = "x"
    answer = post(body)
    assert answer.status_code == 400
    assert answer.get_json()["error"] == (
        "alerts[0].labels: the name '\\ud800': not valid Unicode (a lone UTF-16 surrogate such as \\ud800)")
    assert counts(store)["events"] == 0


def test_a_surrogate_encoded_as_raw_utf8_bytes_is_refused_too(client, store):
    # json.loads decodes bytes with surrogatepass: ED A0 80 becomes "\ud800" without any escape.
    body = json.dumps(notification(alert(summary_marker="MARK"))).encode().replace(b"MARK", b"\xed\xa0\x80")
    answer = raw_post(client, body)
    assert answer.status_code == 400
    assert answer.get_json()["error"].startswith("commonLabels.summary_marker: not valid Unicode")


def test_other_unicode_is_stored_as_sent(post, client):
    text = "disk \u00e9\u4e2d\U0001f525 \uffff"  # accents, CJK, an emoji (a surrogate pair in JSON), a noncharacter
    body = notification(alert(note=text))
    body["alerts"][0]["annotations"]["summary"] = text
    assert post(body).status_code == 200
    (entry,) = client.get("/api/v1/history").get_json()["entries"]
    assert entry["labels"]["note"] == text and entry["annotations"]["summary"] == text


@pytest.mark.parametrize("value, ok", [(0, True), (2**31 - 1, True), (2**31, False), (2**63, False),
                                       (2**64 + 1, False), (-1, False)])
def test_truncated_alerts_is_bounded(post, value, ok):
    body = notification(alert())
    body["truncatedAlerts"] = value
    answer = post(body)
    if ok:
        assert answer.status_code == 200
    else:
        assert answer.status_code == 400
        assert answer.get_json()["error"] == "truncatedAlerts: expected an integer from 0 to 2147483647"


def test_a_number_too_long_for_python_is_malformed_json(client):
    body = json.dumps(notification(alert())).replace('"truncatedAlerts": 0', '"truncatedAlerts": ' + "9" * 5000)
    answer = raw_post(client, body.encode())
    assert answer.status_code == 400 and answer.get_json()["error"].startswith("malformed JSON")


@pytest.mark.parametrize("when", ["\u0662\u0660\u0662\u0664-05-01T10:00:00Z",  # Arabic-Indic digits
                                  "2024-05-01T10:00:00Z\n", "２０２４-05-01T10:00:00Z"])
def test_times_take_only_ascii_digits(post, when):
    body = notification(alert(starts=when))
    answer = post(body)
    assert answer.status_code == 400
    assert answer.get_json()["error"].startswith("alerts[0].startsAt: not an RFC3339 time")


# -- history query parameters

@pytest.mark.parametrize("query, parameter", [
    ("limit=\u00b2", "limit"),          # str.isdigit() says yes, int() says no: was a 500
    ("limit=\u0665", "limit"),          # Arabic-Indic 5: int() reads it
    ("limit=0", "limit"), ("limit=501", "limit"), ("limit=" + "9" * 40, "limit"),
    ("cursor=" + "djE6OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5", "cursor"),  # v1:999...: past SQLite's integers
    ("cursor=djE6MA", "cursor"),        # v1:0
    ("cursor=%C3%A9", "cursor"), ("cursor=djE6wrI", "cursor"),  # "é"; "v1:²"
    ('label=%22%5Cud800%22%3D1', "label"),  # label="\ud800"=1: a JSON-quoted name that is no Unicode
    ("since=%D9%A2%D9%A0%D9%A2%D9%A4-05-01T00:00:00Z", "since"),
])
def test_bad_history_parameters_are_a_400_naming_them(client, query, parameter):
    for path in ("/api/v1/history", "/"):
        answer = client.get(f"{path}?{query}")
        assert answer.status_code == 400, (path, query)
    assert client.get(f"/api/v1/history?{query}").get_json()["error"].startswith(f"{parameter}: ")


def test_alerts_api_parameters_are_checked(client):
    for query, parameter in (("limit=%C2%B2", "limit"), ("limit=0", "limit"), ("cursor=xyz", "cursor"),
                             ("cursor=djE6MQ", "cursor"), ("severity=critical", "severity")):
        answer = client.get(f"/api/v1/alerts?{query}")
        assert answer.status_code == 400 and answer.get_json()["error"].startswith(f"{parameter}: "), query


# -- a page stays up with what older versions stored

def test_a_surrogate_stored_before_the_check_does_not_break_the_pages(post, client, store):
    assert post(notification(alert())).status_code == 200
    # What an older receiver stored: json.dumps writes the escape, the database keeps it.
    labels = json.loads(storesql.one(store, "SELECT labels FROM events"))
    storesql.execute(store, "UPDATE events SET labels = ?", (json.dumps({**labels, "machine_id": "a\ud800b"}),))
    page = client.get("/")
    assert page.status_code == 200 and "a\ufffdb" in page.get_data(as_text=True)
    fingerprint = client.get("/api/v1/history").get_json()["entries"][0]["fingerprint"]
    assert client.get(f"/alerts/{fingerprint}").status_code == 200


# -- sign-in's `next`

@pytest.fixture
def guarded(guarded_app):
    return guarded_app.test_client()


@pytest.mark.parametrize("target, lands", [
    ("/?severity=critical", "/?severity=critical"),
    ("/alerts/abc", "/alerts/abc"),
    ("/\n", "/"), ("/\r\nSet-Cookie: x=1", "/"),         # a newline made the redirect itself fail: 500
    ("/\t/evil.example", "/"), ("/\n/evil.example", "/"),  # browsers drop tabs and newlines: //evil.example
    ("//evil.example", "/"), ("/\\evil.example", "/"), ("/a\\b", "/"),
    ("https://evil.example/", "/"), ("javascript:alert(1)", "/"), ("", "/"), (" /x", "/"), ("/\u00e9", "/"),
])
def test_sign_in_goes_back_only_to_a_path_of_this_receiver(guarded, target, lands):
    answer = guarded.post("/sign-in", data={"token": "h1st0ry", "next": target})
    assert answer.status_code == 303
    assert answer.headers["Location"] == lands


def test_the_sign_in_page_carries_a_percent_encoded_next(guarded):
    asked = guarded.get("/alerts/%C3%A9%09x?label=a%3Db&alertname=%22q%22")
    assert asked.status_code == 401
    text = asked.get_data(as_text=True)
    assert 'name="next" value="/alerts/%C3%A9%09x?label=a%3Db&amp;alertname=%22q%22"' in text
    signed = guarded.post("/sign-in", data={"token": "h1st0ry",
                                            "next": "/alerts/%C3%A9%09x?label=a%3Db&alertname=%22q%22"})
    assert signed.headers["Location"] == "/alerts/%C3%A9%09x?label=a%3Db&alertname=%22q%22"


# -- the real server: bodies only a raw socket can send

@pytest.fixture(scope="module")
def served(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("bounds")
    (workdir / "token").write_text(TOKEN + "\n")
    (workdir / "channels.yml").write_text(json.dumps({"channels": {"slack-oncall": {
        "type": "slack", "webhook_url_file": str(workdir / "slack_url"), "timeout": "1s"}}}))
    (workdir / "slack_url").write_text("http://127.0.0.1:9/services/T/B/x\n")  # nothing listens: never reached
    server = Served({"database": str(workdir / "history.db"), "channels_file": str(workdir / "channels.yml"),
                     "token_file": str(workdir / "token"), "relay": False, "workers": 1, "threads": 4}, workdir)
    try:
        yield server.start()
    finally:
        server.stop()


def send_raw(port: int, request: bytes) -> bytes:
    """Send `request` on a new connection and read the answer until the server closes or 10 s pass."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (socket.timeout, ConnectionResetError):
            pass
    return answer


def chunked_request(chunks: bytes) -> bytes:
    return (b"POST /webhook/slack-oncall HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + TOKEN.encode()
            + b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            + chunks)


GOOD = json.dumps(notification(alert(machine="chunked"))).encode()


@pytest.mark.parametrize("chunks, cut_short", [
    (b"zz\r\n" + GOOD + b"\r\n0\r\n\r\n", False),                            # a chunk size that is no hex
    (b"%x\r\n" % len(GOOD) + GOOD + b"XX" + b"0\r\n\r\n", False),            # data longer than its size
    (b"-5\r\n" + GOOD + b"\r\n0\r\n\r\n", False),                            # a negative size
    (b"%x\r\n" % (len(GOOD) + 5) + GOOD, True),                              # cut short, no last chunk
], ids=["bad-size", "missing-terminator", "negative-size", "cut-short"])
def test_a_malformed_chunked_body_is_a_400_not_a_500(served, chunks, cut_short):
    answer = send_raw(served.port, chunked_request(chunks))
    # A body cut short by a client that is gone may get no answer at all (the server may drop the connection
    # before the app sees it); any answer is a 4xx, and nothing is stored.
    if answer or not cut_short:
        assert answer.startswith(b"HTTP/1.1 4"), answer[:500]
    assert b'"status":"ok"' not in answer


def test_a_well_formed_chunked_body_is_stored(served):
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(GOOD[i:i + 100]), GOOD[i:i + 100]) for i in range(0, len(GOOD), 100))
    answer = send_raw(served.port, chunked_request(chunks + b"0\r\n\r\n"))
    assert answer.startswith(b"HTTP/1.1 200"), answer[:500]


@pytest.mark.parametrize("path, field", STRING_FIELDS[::3], ids=[field for _, field in STRING_FIELDS[::3]])
def test_the_real_server_answers_a_surrogate_with_a_400(served, path, field):
    import requests
    body = json.dumps(_set(notification(alert()), path, SURROGATE))
    answer = requests.post(served.url + "/webhook/slack-oncall", data=body, timeout=10,
                           headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    assert answer.status_code == 400 and answer.json()["error"].startswith(f"{field}: "), answer.text
