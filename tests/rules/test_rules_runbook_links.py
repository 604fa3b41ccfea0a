"""Runbook links: by default every alert's runbook_url is the receiver's /runbooks/<Alert> page, which the
generator renders as HTML beside the Markdown; a site can move the base URL or the whole pattern."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rules_src.render import render
from rules_src.spec import load

from tests.rules.rules_helpers import edit, messages


def append(path: Path, text: str) -> int:
    """Append `text` to a spec file; the line number it starts at."""
    before = path.read_text()
    path.write_text(before + text)
    return before.count("\n") + 1


def runbook_urls(spec_dir: Path, env: str, overlay: Path | None = None) -> dict[str, set[str]]:
    """alert -> the runbook_url of each of its rules, as rendered into prometheus/rules/."""
    spec, errors = load(env, spec_dir, overlay)
    assert errors == []
    urls: dict[str, set[str]] = {}
    for path, text in render(spec).items():
        if path.startswith("prometheus/rules/"):
            for group in yaml.safe_load(text)["groups"]:
                for rule in group["rules"]:
                    if "alert" in rule:
                        urls.setdefault(rule["alert"], set()).add(rule["annotations"]["runbook_url"])
    return urls


def test_by_default_every_runbook_url_is_the_receivers_page_for_that_alert(rules_copy):
    urls = runbook_urls(rules_copy, "dev")
    assert urls and urls == {name: {f"http://127.0.0.1:9878/runbooks/{name}"} for name in urls}


def test_each_alert_has_the_html_page_its_link_names(rules_copy):
    spec, errors = load("dev", rules_copy)
    assert errors == []
    files = render(spec)
    for alert in spec.alerts:
        page = files[f"runbooks/{alert.name}.html"]
        assert f"<h1>{alert.name}</h1>" in page
        assert "<script" not in page and "style=" not in page  # the receiver's CSP allows neither
    assert all(f'<a href="{alert.name}">' in files["runbooks/index.html"] for alert in spec.alerts)


def test_the_default_comes_from_the_first_receiver_endpoint_of_a_list(rules_copy, tmp_path):
    overlay = tmp_path / "overlay.yml"
    overlay.write_text("endpoints: {receiver: [receiver-a:9878, receiver-b:9878]}\n")
    urls = runbook_urls(rules_copy, "dev", overlay)
    assert urls["DiskAlmostFull"] == {"http://receiver-a:9878/runbooks/DiskAlmostFull"}


def test_receiver_external_url_moves_every_link(rules_copy):
    append(rules_copy / "env" / "dev.yaml", "receiver_external_url: https://alerts.example.net/dumont/\n")
    urls = runbook_urls(rules_copy, "dev")
    assert urls["SyncStopped"] == {"https://alerts.example.net/dumont/runbooks/SyncStopped"}


def test_prod_links_to_where_compose_publishes_its_receiver(rules_copy):
    assert runbook_urls(rules_copy, "prod")["MachineDown"] == {"http://localhost:9878/runbooks/MachineDown"}


def test_a_full_pattern_in_an_environment_overrides_the_default(rules_copy):
    append(rules_copy / "env" / "dev.yaml", "runbook_url: https://wiki.example.net/alerting/${env}/${alert}\n")
    urls = runbook_urls(rules_copy, "dev")
    assert urls == {name: {f"https://wiki.example.net/alerting/dev/{name}"} for name in urls}


def test_an_alerts_own_runbook_url_wins(good):
    own = "  HealthDegraded:\n    runbook_url: ${receiver_external_url}/x\n"
    edit(good / "alerts.yaml", "  HealthDegraded:\n", own)
    urls = runbook_urls(good, "test")
    assert urls["HealthDegraded"] == {"http://127.0.0.1:9878/x"}
    assert urls["DiskAlmostFull"] == {"https://runbooks.example.com/test/DiskAlmostFull.md"}  # good's pattern


@pytest.mark.parametrize("value, problem", [
    ("alerts.example.net", "is not an http:// or https:// URL"),
    ("ftp://alerts.example.net", "is not an http:// or https:// URL"),
    ("https://", "has no host"),
    ("https://alerts.example.net/?page=1", "has a query or fragment (paths such as /runbooks/<Alert> are appended"
                                           " to it)"),
    ("https://admin:hunter2@alerts.example.net", "carries a user name or password"),
    ("https://alerts.example.net/a b", "holds whitespace or a control character"),
])
def test_a_bad_receiver_external_url_is_one_error_naming_file_line_and_field(rules_copy, value, problem):
    line = append(rules_copy / "env" / "dev.yaml", f"receiver_external_url: '{value}'\n")
    assert messages(rules_copy, "dev") == [
        f"rules_src/env/dev.yaml:{line}: receiver_external_url: {problem}: expected the address people open the"
        f" receiver at, such as https://alerts.example.net, got {value!r}"]


def test_a_runbook_url_that_is_no_web_link_is_one_error_for_all_alerts(rules_copy):
    line = append(rules_copy / "env" / "dev.yaml", "runbook_url: wiki/${alert}\n")
    assert messages(rules_copy, "dev") == [
        f"rules_src/env/dev.yaml:{line}: runbook_url: is not an http:// or https:// URL: a runbook_url must give"
        " an http:// or https:// URL, got 'wiki/${alert}'"]


def test_an_alerts_bad_runbook_url_is_reported_at_the_alert(good):
    edit(good / "alerts.yaml", "  HealthDegraded:\n", "  HealthDegraded:\n    runbook_url: 'javascript:alert(1)'\n")
    [message] = messages(good)
    assert message.startswith("rules_src/alerts.yaml:")
    assert message.endswith(": alerts.HealthDegraded.runbook_url: is not an http:// or https:// URL: a runbook_url"
                            " must give an http:// or https:// URL, got 'javascript:alert(1)'")


def test_receiver_external_url_is_no_param_and_no_alert_is_called_index(good):
    edit(good / "config.yaml", "  window: 1m\n", "  window: 1m\n  receiver_external_url: https://x.example\n")
    edit(good / "meta.yaml", "  Watchdog:\n", "  index:\n")
    found = messages(good)
    assert "rules_src/config.yaml:4: params.receiver_external_url: reserved name: alerts define it themselves" in found
    assert ("rules_src/meta.yaml:3: meta.index: reserved name: runbooks/index.md and index.html list the runbooks"
            in found)
