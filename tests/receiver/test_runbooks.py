"""/runbooks/: the receiver serves the runbooks dumont-rules renders, inside its pages and behind their sign-in."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import yaml

from rules_src.runbook_html import code_spans
from rules_src.spec import load
from webhook_receiver import SECURITY_HEADERS, create_app
from webhook_receiver.config import ConfigError

from deploy.local.stack import REPO_ROOT

RUNBOOKS = REPO_ROOT / "generated" / "dev" / "runbooks"


@pytest.fixture
def database(tmp_path):
    """SQLite only: the pages read no history (the store only counts sign-ins)."""
    return str(tmp_path / "history.db")


@pytest.fixture
def runbooks_dir(tmp_path):
    """A copy of the committed dev runbooks, beside a file no request may reach."""
    (tmp_path / "secret.html").write_text("TOPSECRET")
    return shutil.copytree(RUNBOOKS, tmp_path / "runbooks")


@pytest.fixture
def make_client(receiver_client, runbooks_dir):
    """A test client of a receiver with the runbooks and the extra receiver.yml keys given."""
    return lambda **extra: receiver_client(runbooks_dir=str(runbooks_dir), **extra)


@pytest.fixture
def dev_alerts():
    spec, errors = load("dev")
    assert errors == []
    return spec.alerts


def test_each_alerts_page_shows_its_meaning_and_steps_in_the_receivers_layout(make_client, dev_alerts):
    client = make_client()
    for alert in dev_alerts:
        answer = client.get(f"/runbooks/{alert.name}")
        page = answer.get_data(as_text=True)
        assert answer.status_code == 200 and answer.mimetype == "text/html", alert.name
        assert f"<h1>{alert.name}</h1>" in page
        assert str(code_spans(alert.meaning)) in page
        assert alert.steps and all(f"<li>{code_spans(step)}</li>" in page for step in alert.steps)
        assert '<link rel="stylesheet" href="/static/receiver.css">' in page and "<script" not in page
        assert f'href="/?alertname={alert.name}"' in page  # its history, one click away
        for name, value in SECURITY_HEADERS:
            assert answer.headers[name] == value


def test_the_index_links_every_alert(make_client, dev_alerts):
    client = make_client()
    answer = client.get("/runbooks/")
    assert answer.status_code == 200
    assert all(f'<a href="{alert.name}">{alert.name}</a>' in answer.get_data(as_text=True) for alert in dev_alerts)
    assert client.get("/runbooks").status_code == 308  # to /runbooks/, where the relative links resolve


def test_an_unknown_alert_is_a_404_that_says_so(make_client):
    answer = make_client().get("/runbooks/NoSuchAlert")
    assert answer.status_code == 404
    assert "No runbook for &#39;NoSuchAlert&#39;: it has no runbook here." in answer.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/runbooks/..%2Fsecret", "/runbooks/../secret", "/runbooks/%2e%2e/secret",
                                  "/runbooks/%2E%2E%2Fsecret", "/runbooks/..%5Csecret", "/runbooks/index.html",
                                  "/runbooks/DiskAlmostFull.md", "/runbooks/DiskAlmostFull%00",
                                  "/runbooks//etc/passwd"])
def test_a_name_that_is_no_alert_name_opens_no_file(make_client, path):
    answer = make_client().get(path, follow_redirects=True)  # werkzeug merges `//` with a redirect
    page = answer.get_data(as_text=True)
    assert answer.status_code == 404, path
    assert "TOPSECRET" not in page and "root:" not in page
    assert "is not an alert&#39;s name" in page or "has no runbook here" in page


def test_a_page_rendered_again_shows_without_a_restart(make_client, runbooks_dir):
    client = make_client()
    (runbooks_dir / "BrandNew.html").write_text("<article><h1>BrandNew</h1></article>\n")
    assert "<h1>BrandNew</h1>" in client.get("/runbooks/BrandNew").get_data(as_text=True)


def test_with_a_history_token_the_pages_ask_for_it_as_the_history_does(make_client, tmp_path):
    (tmp_path / "history_token").write_text("h1st0ry\n")
    client = make_client(history_token_file=str(tmp_path / "history_token"))
    for path in ("/runbooks/", "/runbooks/DiskAlmostFull", "/runbooks/NoSuchAlert"):
        asked = client.get(path)
        assert asked.status_code == 401 and asked.mimetype == "text/html", path
        assert "Meaning" not in asked.get_data(as_text=True)
        assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    asked = client.get("/runbooks/DiskAlmostFull")
    assert 'name="next" value="/runbooks/DiskAlmostFull"' in asked.get_data(as_text=True)
    assert client.get("/runbooks/DiskAlmostFull", headers={"Authorization": "Bearer h1st0ry"}).status_code == 200
    signed_in = client.post("/sign-in", data={"token": "h1st0ry", "next": "/runbooks/DiskAlmostFull"})
    assert signed_in.status_code == 303 and signed_in.headers["Location"] == "/runbooks/DiskAlmostFull"
    assert client.get("/runbooks/DiskAlmostFull").status_code == 200  # the cookie
    assert client.get("/runbooks/").status_code == 200


def test_without_runbooks_dir_the_pages_say_there_are_none(config_values):
    app = create_app(config_values)
    answer = app.test_client().get("/runbooks/DiskAlmostFull")
    assert answer.status_code == 404
    assert "This receiver serves no runbooks: its runbooks_dir is not set." in answer.get_data(as_text=True)


def test_a_runbooks_dir_that_is_not_there_stops_the_start_naming_key_and_path(config_values, tmp_path):
    missing = tmp_path / "generated" / "dev" / "runbook"
    with pytest.raises(ConfigError, match=f"^runbooks_dir: {missing} is not a directory"):
        create_app({**config_values, "runbooks_dir": str(missing)})
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match=f"^runbooks_dir: cannot read {empty / 'index.html'}: No such file"):
        create_app({**config_values, "runbooks_dir": str(empty)})


def test_serve_refuses_a_bad_runbooks_dir_before_starting(config_values, tmp_path):
    config = tmp_path / "receiver.yml"
    config.write_text(yaml.safe_dump({**config_values, "runbooks_dir": str(tmp_path / "nowhere"),
                                      "listen": "127.0.0.1:1"}))
    run = subprocess.run([sys.executable, "-m", "webhook_receiver", "serve", "--config", str(config)],
                         capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert run.returncode == 2
    assert f"dumont-receiver: error: runbooks_dir: {tmp_path / 'nowhere'} is not a directory" in run.stderr
