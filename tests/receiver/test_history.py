"""History: the JSON API's filters and pagination, the HTML pages, and the optional history token."""
from urllib.parse import urlencode

import pytest


from .payloads import alert, notification


@pytest.fixture
def filled(post):
    """Six state changes: two channels, two severities, one resolved, distinct machines."""
    post(notification(alert("DiskAlmostFull", machine="gpu-1"), alert("DiskAlmostFull", machine="gpu-2")))
    post(notification(alert("SyncStalled", machine="gpu-3", severity="critical")))
    post(notification(alert("SyncStalled", machine="gpu-3", severity="critical", status="resolved")))
    post(notification(alert("CostHigh", machine="cpu-1", severity="warning"), receiver="email-oncall"),
         channel="email-oncall")
    post(notification(alert("CostHigh", machine="cpu-2", severity="warning"), receiver="email-oncall"),
         channel="email-oncall")


def history(client, query=""):
    response = client.get(f"/api/v1/history{query}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def names(body):
    return [(e["alertname"], e["labels"]["machine_id"], e["status"]) for e in body["entries"]]


def test_newest_first(client, filled):
    assert names(history(client)) == [
        ("CostHigh", "cpu-2", "firing"), ("CostHigh", "cpu-1", "firing"), ("SyncStalled", "gpu-3", "resolved"),
        ("SyncStalled", "gpu-3", "firing"), ("DiskAlmostFull", "gpu-2", "firing"),
        ("DiskAlmostFull", "gpu-1", "firing")]


@pytest.mark.parametrize("query, expected", [
    ("?alertname=SyncStalled", [("SyncStalled", "gpu-3", "resolved"), ("SyncStalled", "gpu-3", "firing")]),
    ("?severity=critical&status=firing", [("SyncStalled", "gpu-3", "firing")]),
    ("?status=resolved", [("SyncStalled", "gpu-3", "resolved")]),
    ("?channel=email-oncall", [("CostHigh", "cpu-2", "firing"), ("CostHigh", "cpu-1", "firing")]),
    ("?label=machine_id=gpu-2", [("DiskAlmostFull", "gpu-2", "firing")]),
    ("?label=machine_type=gpu&label=alertname=DiskAlmostFull",
     [("DiskAlmostFull", "gpu-2", "firing"), ("DiskAlmostFull", "gpu-1", "firing")]),
    ("?alertname=Nope", []),
])
def test_filters(client, filled, query, expected):
    assert names(history(client, query)) == expected


def test_time_range(client, filled):
    entries = history(client)["entries"]
    middle = entries[2]["received_at"]
    since = names(history(client, f"?since={middle}"))
    until = names(history(client, f"?until={middle}"))
    assert since == names(history(client))[:3]
    assert until == names(history(client))[3:]


def test_cursor_pagination_walks_everything_once(client, filled):
    seen, cursor, pages = [], None, 0
    while True:
        body = history(client, "?limit=4" + (f"&cursor={cursor}" if cursor else ""))
        seen += [e["id"] for e in body["entries"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 2 and len(seen) == 6 and seen == sorted(set(seen), reverse=True)
    page = history(client, "?limit=1&channel=email-oncall")
    assert names(history(client, f"?limit=1&channel=email-oncall&cursor={page['next_cursor']}")) == [
        ("CostHigh", "cpu-1", "firing")]


@pytest.mark.parametrize("query, message", [
    ("?limit=0", "limit: expected an integer from 1 to 500, got '0'"),
    ("?limit=ten", "limit: expected an integer from 1 to 500, got 'ten'"),
    ("?status=pending", "status: expected \"firing\" or \"resolved\", got 'pending'"),
    ("?since=yesterday", "since: expected an RFC3339 time like 2024-05-01T12:00:00Z, got 'yesterday'"),
    ("?cursor=bm9wZQ", "cursor: not a cursor this API returned"),
    ("?label=machine-id", "label: expected name=value, got 'machine-id'"),
    ("?label==gpu-1", "label: empty label name in '=gpu-1'"),
    ('?label=""=gpu-1', "label: empty label name in '\"\"=gpu-1'"),
    ('?label="na=me=x', "label: expected \"name\"=value with the name a JSON string, got '\"na=me=x'"),
    ('?label="name"x', "label: expected = after the quoted name, got '\"name\"x'"),
    ("?machine_id=gpu-1", "machine_id: unknown parameter (known: alertname, severity, status, channel, label,"
                          " since, until, limit, cursor, suppressed)"),
    ("?status=firing&status=resolved", "status: given more than once"),
])
def test_bad_parameters_are_400_naming_them(client, query, message):
    response = client.get(f"/api/v1/history{query}")
    assert response.status_code == 400
    assert response.get_json() == {"error": message}


@pytest.fixture
def utf8_labels(post):
    """Alerts carrying label names Alertmanager 0.27+ accepts: any UTF-8, `=`, dots and quotes included."""
    post(notification(alert(machine="gpu-1", **{"service.name": "sync", "zone=eu": "1", "ünïcødé": "ja",
                                                 '"quoted"': "q", "a b": "c=d"})))
    post(notification(alert(machine="gpu-2", **{"service.name": "api", "zone=eu": "2", "ünïcødé": "nein"})))


def machines(client, query):
    return [e["labels"]["machine_id"] for e in history(client, query)["entries"]]


@pytest.mark.parametrize("label, expected", [
    ("service.name=sync", ["gpu-1"]),
    ("ünïcødé=nein", ["gpu-2"]),
    ("a b=c=d", ["gpu-1"]),                    # split at the first =: the value may hold more
    ('"zone=eu"=2', ["gpu-2"]),                # a name holding = is given as a JSON string
    ('"\\"quoted\\""=q', ["gpu-1"]),            # so is one starting with a quote
    ('"\\u00fcn\\u00efc\\u00f8d\\u00e9"=ja', ["gpu-1"]),  # any JSON string spelling
    ('"machine_id"=gpu-2', ["gpu-2"]),         # a quoted classic name means the same
    ("zone=eu=2", []),                         # unquoted: the name is "zone", which no alert carries
    ("service.name=", []),
])
def test_label_filter_takes_any_name_alertmanager_sends(client, utf8_labels, label, expected):
    assert machines(client, "?" + urlencode({"label": label})) == expected


def test_label_filters_of_both_kinds_are_anded(client, utf8_labels):
    query = urlencode([("label", '"zone=eu"=1'), ("label", "machine_id=gpu-1"), ("label", "service.name=sync")])
    assert machines(client, "?" + query) == ["gpu-1"]
    query = urlencode([("label", '"zone=eu"=1'), ("label", "machine_id=gpu-2")])
    assert machines(client, "?" + query) == []


def test_history_page_filters_by_a_quoted_label_name(client, utf8_labels):
    page = client.get("/?" + urlencode({"label": '"zone=eu"=2'}))
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "<code>machine_id=gpu-2</code>" in text and "<code>machine_id=gpu-1</code>" not in text
    assert 'value="&#34;zone=eu&#34;=2"' in text  # the form shows the filter as given
    bad = client.get("/?" + urlencode({"label": "=2"}))
    assert bad.status_code == 400 and "label: empty label name" in bad.get_data(as_text=True)


def test_active_alerts_and_timeline(client, filled):
    active = client.get("/api/v1/alerts").get_json()["alerts"]
    assert sorted(a["labels"]["machine_id"] for a in active) == ["cpu-1", "cpu-2", "gpu-1", "gpu-2"]
    fingerprint = alert("SyncStalled", machine="gpu-3", severity="critical")["fingerprint"]
    body = client.get(f"/api/v1/alerts/{fingerprint}").get_json()
    assert body["status"] == "resolved"
    assert [e["status"] for e in body["timeline"]] == ["firing", "resolved"]
    delivery = body["timeline"][0]["deliveries"][0]
    assert delivery["channel"] == "slack-oncall" and delivery["state"] == "pending"
    assert delivery["attempt_log"] == [] and delivery["notification"]["receiver"] == "slack-oncall"
    missing = client.get("/api/v1/alerts/0000000000000000")
    assert missing.status_code == 404 and missing.get_json() == {"error": "unknown alert '0000000000000000'"}


def test_a_delivery_says_how_many_alerts_alertmanager_left_out_of_the_post(client, post):
    body = notification(alert(machine="gpu-1"))
    body["truncatedAlerts"] = 499  # a group of 500 alerts with max_alerts: 1
    post(body)
    (entry,) = client.get("/api/v1/history").get_json()["entries"]
    assert entry["deliveries"][0]["notification"]["truncated_alerts"] == 499


def test_html_page_escapes_what_comes_from_outside(client, post):
    post(notification(alert("Evil", machine="<script>alert(1)</script>", severity="critical")))
    page = client.get("/")
    assert page.status_code == 200 and page.content_type.startswith("text/html")
    text = page.get_data(as_text=True)
    assert "<script>alert(1)</script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "sev-critical" in text and "/alerts/" in text
    fingerprint = alert("Evil", machine="<script>alert(1)</script>", severity="critical")["fingerprint"]
    timeline = client.get(f"/alerts/{fingerprint}")
    assert timeline.status_code == 200 and "<script>alert" not in timeline.get_data(as_text=True)
    assert client.get("/alerts/nope").status_code == 404


def test_html_page_filters_and_pages(client, filled):
    text = client.get("/?severity=critical&limit=1").get_data(as_text=True)
    assert "SyncStalled" in text and "DiskAlmostFull" not in text and "cursor=" in text
    bad = client.get("/?limit=0")
    assert bad.status_code == 400 and "limit: expected an integer" in bad.get_data(as_text=True)


@pytest.fixture
def guarded_client(guarded_app):
    return guarded_app.test_client()


def test_history_token(guarded_client):
    client = guarded_client
    for path in ("/", "/api/v1/history", "/api/v1/alerts"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer h1st0ry"}).status_code == 200
    assert client.get("/api/v1/history?token=h1st0ry").status_code == 401
    client.set_cookie("dumont_history_token", "h1st0ry")
    assert client.get("/").status_code == 200  # the page takes the cookie
    assert client.get("/api/v1/history").status_code == 401  # the API only a bearer token
    assert client.get("/-/healthy").status_code == 200  # operations stay open


def test_a_person_signs_in_on_the_page_and_keeps_the_token_in_a_cookie(guarded_client):
    client = guarded_client
    asked = client.get("/?severity=critical")
    assert asked.status_code == 401 and asked.mimetype == "text/html"
    assert 'name="next" value="/?severity=critical"' in asked.get_data(as_text=True)
    wrong = client.post("/sign-in", data={"token": "nope", "next": "/?severity=critical"})
    assert wrong.status_code == 401 and "That is not the history token." in wrong.get_data(as_text=True)
    assert client.get("/").status_code == 401
    signed_in = client.post("/sign-in", data={"token": "h1st0ry", "next": "/?severity=critical"})
    assert signed_in.status_code == 303 and signed_in.headers["Location"] == "/?severity=critical"
    cookie = signed_in.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert client.get("/?severity=critical").status_code == 200
    assert client.get("/api/v1/history").status_code == 401  # the API still wants a bearer token
    for elsewhere in ("//evil.example/", "/\\evil.example/", "https://evil.example/"):
        answer = client.post("/sign-in", data={"token": "h1st0ry", "next": elsewhere})
        assert answer.headers["Location"] == "/"  # never redirects off the receiver
