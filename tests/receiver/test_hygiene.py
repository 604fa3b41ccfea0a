"""What reaches people and browsers is escaped and bounded: Slack and email text, links, headers, sign-in,
the active-alerts metric and the alerts API."""
import json
import re
from email import policy

import pytest
from prometheus_client.parser import text_string_to_metric_families

from webhook_receiver.auth import SignInLimiter
from webhook_receiver.channels import AlertEvent, Message
from webhook_receiver.channels.email_format import build_email
from webhook_receiver.channels.slack_format import build_payload
from webhook_receiver.history import CLIP_CHARS

from .payloads import alert, notification

HISTORY = "http://receiver.test/"


def hostile_event(**overrides) -> AlertEvent:
    values = dict(
        fingerprint="f1", status="firing",
        labels={"alertname": "<!channel> Disk & <b>", "severity": "critical", "machine_id": "<@U123>"},
        annotations={"summary": "<!here|x> summary", "description": "a <https://evil.example|click> b",
                     "runbook_url": "javascript:alert(document.cookie)"},
        starts_at="2024-05-01T10:00:00Z", ends_at=None, generator_url="JavaScript:alert(1)")
    values.update(overrides)
    return AlertEvent(**values)


def slack_texts(payload) -> list[str]:
    """Every string of the payload but the colour."""
    found = []

    def walk(value):
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                if key != "color":
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
    walk(payload)
    return found


@pytest.mark.parametrize("digest", [False, True])
def test_slack_escapes_every_text_the_fallback_included(digest):
    payload = build_payload(Message("slack", [hostile_event()], HISTORY, digest=digest))
    texts = slack_texts(payload)
    fallbacks = [a["fallback"] for a in payload["attachments"]]
    assert fallbacks and all("<" not in text and ">" not in text for text in fallbacks)
    for text in texts:
        # the only < left open the receiver's own links: <http(s)://...|label>
        for opened in re.findall(r"<[^>]*>", text):
            assert re.fullmatch(r"<https?://[^|<>\s]+\|[^<>]*>", opened), (opened, text)
    if not digest:
        assert payload["attachments"][0]["fallback"] == (
            "FIRING &lt;!channel&gt; Disk &amp; &lt;b&gt;: &lt;!here|x&gt; summary")


def test_slack_links_only_http_urls():
    payload = build_payload(Message("slack", [hostile_event()], HISTORY))
    links = payload["attachments"][0]["blocks"][1]["elements"][0]["text"]
    assert links == "Runbook: javascript[:]alert(document.cookie) · Source: JavaScript[:]alert(1)"
    assert payload["text"].endswith(f"<{HISTORY}|History>")
    piped = build_payload(Message("slack", [hostile_event(generator_url="https://p.example/a|<!channel>")], HISTORY))
    assert "<https://p.example/a%7C&lt;!channel&gt;|Source>" in json.dumps(piped)


def test_email_links_only_http_urls_in_either_part():
    mail = build_email(Message("email", [hostile_event()], "javascript:alert(2)"), "a@b.example", ["c@d.example"])
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    for part in (text, html):
        assert "javascript:" not in part.lower()
    assert "href" not in html  # not even the history link: it was no web URL either
    assert "Runbook: javascript[:]alert(document.cookie)" in text
    good = build_email(Message("email", [hostile_event(annotations={"runbook_url": "https://rb.example/x?a=1&b=2"},
                                                       generator_url="http://prom.example/g")], HISTORY),
                       "a@b.example", ["c@d.example"]).get_body(("html",)).get_content()
    assert '<a href="https://rb.example/x?a=1&amp;b=2">' in good and '<a href="http://prom.example/g">' in good
    assert f'<a href="{HISTORY}">Alert history</a>' in good


def test_a_surrogate_stored_by_an_older_receiver_still_makes_a_message():
    broken = hostile_event(labels={"alertname": "Disk\ud800", "severity": "critical"},
                           annotations={"summary": "x\udfff"})
    mail = build_email(Message("email", [broken], HISTORY), "a@b.example", ["c@d.example"])
    mail.as_bytes(policy=policy.SMTP)  # raised UnicodeEncodeError before
    assert "Disk\ufffd" in str(mail["Subject"]) and "x\ufffd" in mail.get_body(("plain",)).get_content()
    payload = build_payload(Message("slack", [broken], HISTORY))
    json.dumps(payload, ensure_ascii=False).encode("utf-8")  # raised UnicodeEncodeError before


def test_a_javascript_generator_url_is_no_link_on_the_timeline_page(post, client):
    body = notification(alert())
    body["alerts"][0]["generatorURL"] = "javascript:alert(1)"
    assert post(body).status_code == 200
    fingerprint = body["alerts"][0]["fingerprint"]
    page = client.get(f"/alerts/{fingerprint}").get_data(as_text=True)
    assert "javascript:" not in page and ">source</a>" not in page
    good = notification(alert(machine="gpu-2"))
    assert post(good).status_code == 200
    page = client.get(f"/alerts/{good['alerts'][0]['fingerprint']}").get_data(as_text=True)
    assert ">source</a>" in page


# -- headers

EXPECTED_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self';"
                               " form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def test_every_page_and_api_answer_has_the_security_headers(client, post):
    assert post(notification(alert())).status_code == 200
    answers = [
        client.get("/"), client.get("/?limit=0"), client.get("/alerts/0000"), client.get("/api/v1/history"),
        client.get("/api/v1/alerts"), client.get("/api/v1/alerts/0000"), client.get("/metrics"),
        client.get("/-/healthy"), client.get("/-/ready"), client.get("/stats"), client.get("/api/v1/stats"),
        client.get("/no-such-page"), client.post("/sign-in", data={"next": "/"}),
        post(notification(alert())), post(notification(alert()), token="wrong"), post({"version": "3"}),
    ]
    with client.get("/static/receiver.css") as css:
        answers.append(css)
        for answer in answers:
            for name, value in EXPECTED_HEADERS.items():
                assert answer.headers.get(name) == value, (answer.request.path, answer.status_code, name)


def test_pages_have_no_inline_script_or_style_the_policy_would_block(client, post):
    assert post(notification(alert())).status_code == 200
    fingerprint = notification(alert())["alerts"][0]["fingerprint"]
    for path in ("/", f"/alerts/{fingerprint}", "/?limit=0"):
        page = client.get(path).get_data(as_text=True)
        assert "<script" not in page and "<style" not in page and " style=" not in page
        assert 'rel="stylesheet" href="/static/receiver.css"' in page
    with client.get("/static/receiver.css") as css:
        assert css.status_code == 200 and css.mimetype == "text/css" and b".sev-critical" in css.data


# -- sign-in rate limit

def test_sign_in_is_rate_limited_per_client_address(guarded_app):
    client = guarded_app.test_client()
    attacker = {"REMOTE_ADDR": "192.0.2.7"}
    answers = [client.post("/sign-in", data={"token": f"guess-{i}"}, environ_base=attacker) for i in range(12)]
    assert [a.status_code for a in answers[:10]] == [401] * 10
    limited = answers[10]
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert "Too many sign-ins" in limited.get_data(as_text=True)
    # even the right token waits: the limit is on guessing, before any comparison
    assert client.post("/sign-in", data={"token": "h1st0ry"}, environ_base=attacker).status_code == 429
    # another address is not held back
    other = {"REMOTE_ADDR": "192.0.2.8"}
    assert client.post("/sign-in", data={"token": "h1st0ry"}, environ_base=other).status_code == 303
    store = guarded_app.extensions["dumont.store"]
    store.flush_counts()
    text = guarded_app.test_client().get("/metrics").get_data(as_text=True)
    assert 'dumont_receiver_sign_ins_total{outcome="limited"} 3.0' in text
    assert 'dumont_receiver_sign_ins_total{outcome="wrong"} 10.0' in text
    assert 'dumont_receiver_sign_ins_total{outcome="ok"} 1.0' in text


def test_the_sign_in_bucket_refills_and_forgets_idle_clients():
    now = [0.0]
    limiter = SignInLimiter(burst=2, interval=5.0, max_clients=2, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 5.0]
    now[0] = 2.5
    assert limiter.take("a") == 2.5
    now[0] = 5.0
    assert limiter.take("a") == 0.0 and limiter.take("a") == 5.0
    limiter.take("b")
    limiter.take("c")  # a third client: the one idle longest ("a") is forgotten
    assert len(limiter._buckets) == 2 and "a" not in limiter._buckets


# -- the active-alerts metric

def test_alerts_active_has_only_known_severities(post, client):
    severities = ["critical", "warning", "Warning", "info", "", "page-me", "x" * 200, "ünknown"]
    body = notification(*(alert(machine=f"m{i}", severity=s) for i, s in enumerate(severities)))
    assert post(body).status_code == 200
    text = client.get("/metrics").get_data(as_text=True)
    (family,) = [f for f in text_string_to_metric_families(text) if f.name == "dumont_alerts_active"]
    values = {s.labels["severity"]: s.value for s in family.samples}
    assert values == {"critical": 1, "warning": 2, "info": 1, "none": 1, "other": 3}


# -- /api/v1/alerts: pages and clipped annotations

def test_active_alerts_come_in_pages_with_a_cursor(post, client):
    for i in range(7):
        starts = f"2024-05-01T10:0{i // 2}:00Z"  # pairs share a startsAt: the cursor must tell them apart
        assert post(notification(alert(machine=f"gpu-{i}", starts=starts))).status_code == 200
    seen, cursor, pages = [], None, 0
    while True:
        answer = client.get("/api/v1/alerts?limit=3" + (f"&cursor={cursor}" if cursor else ""))
        assert answer.status_code == 200
        body = answer.get_json()
        seen += [a["labels"]["machine_id"] for a in body["alerts"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and sorted(seen) == [f"gpu-{i}" for i in range(7)] and len(set(seen)) == 7
    assert seen[:2] == ["gpu-6", "gpu-5"]  # newest startsAt first, then newest stored
    assert len(client.get("/api/v1/alerts").get_json()["alerts"]) == 7  # default limit 50


def test_large_annotations_are_clipped_in_lists_but_whole_for_one_alert(post, client):
    big = "x" * 50_000  # within the tests' max_body_bytes of 64 KiB
    body = notification(alert())
    body["alerts"][0]["annotations"]["description"] = big
    assert post(body).status_code == 200
    (listed,) = client.get("/api/v1/alerts").get_json()["alerts"]
    assert listed["annotations"]["description"] == "x" * CLIP_CHARS + "…"
    assert listed["annotations_clipped"] == {"description": 50_000}
    assert listed["annotations"]["summary"] == "DiskAlmostFull on gpu-1"
    (entry,) = client.get("/api/v1/history").get_json()["entries"]
    assert entry["annotations"]["description"] == "x" * CLIP_CHARS + "…"
    assert entry["annotations_clipped"] == {"description": 50_000}
    timeline = client.get(f"/api/v1/alerts/{listed['fingerprint']}").get_json()["timeline"]
    assert timeline[0]["annotations"]["description"] == big
    answer = client.get("/api/v1/alerts")
    assert len(answer.data) < 10_000


def test_a_short_annotation_is_not_marked_clipped(post, client):
    body = notification(alert())
    body["alerts"][0]["annotations"]["description"] = "é" * CLIP_CHARS  # characters, not bytes
    assert post(body).status_code == 200
    (listed,) = client.get("/api/v1/alerts").get_json()["alerts"]
    assert listed["annotations"]["description"] == "é" * CLIP_CHARS and listed["annotations_clipped"] == {}
