"""The cross-file checks: gaps no single rendered file shows. The spec's validation keeps users from causing
them, so each is proven here by rendering the good spec and then opening one gap in the rendered files."""
from __future__ import annotations

import pytest
import yaml

from rules_src.crosscheck import crosscheck
from rules_src.render import render
from rules_src.spec import load


def _edit_yaml(files: dict, path: str, change) -> None:
    document = yaml.safe_load(files[path])
    change(document)
    files[path] = yaml.safe_dump(document)


def _drop_disk_rules(document: dict) -> None:
    for group in document["groups"]:
        group["rules"] = [rule for rule in group["rules"] if rule.get("alert") != "DiskAlmostFull"]


def _strip_runbook(document: dict) -> None:
    for group in document["groups"]:
        for rule in group["rules"]:
            rule.get("annotations", {}).pop("runbook_url", None)


GAPS = {
    "a receiver that tells nobody": (
        lambda f: _edit_yaml(f, "alertmanager/alertmanager.yml",
                             lambda d: d["receivers"][-1].update(webhook_configs=[])),
        "test/alertmanager/alertmanager.yml: receiver {last_receiver} notifies nobody"),
    "an alert without a rule": (
        lambda f: _edit_yaml(f, "prometheus/rules/machines.yml", _drop_disk_rules),
        "test/prometheus/rules: no rule for DiskAlmostFull"),
    "a rule without a runbook link": (
        lambda f: _edit_yaml(f, "prometheus/rules/machines.yml", _strip_runbook),
        "test/prometheus/rules/machines.yml: DiskAlmostFull has no runbook_url"),
    "an alert without a runbook page": (
        lambda f: f.pop("runbooks/DiskAlmostFull.md"),
        "test/runbooks: no page for DiskAlmostFull"),
    "an alert without the page the receiver serves": (
        lambda f: f.pop("runbooks/DiskAlmostFull.html"),
        "test/runbooks: no HTML page for DiskAlmostFull"),
    "an alert without generated tests": (
        lambda f: f.pop("prometheus/tests/DiskAlmostFull.yml"),
        "test/prometheus/tests: no test case for DiskAlmostFull"),
    "a tested recording rule without its generated test": (
        lambda f: f.pop("prometheus/tests/category.dumont_savings_usd.increase1d.yml"),
        "test/prometheus/tests: no test case for recording rule category:dumont_savings_usd:increase1d"),
}


@pytest.fixture
def rendered(good):
    spec, errors = load("test", good, None)
    assert errors == []
    return spec, render(spec)


def test_the_good_spec_renders_without_gaps(rendered):
    spec, files = rendered
    assert crosscheck(spec, files) == []


@pytest.mark.parametrize("gap", sorted(GAPS))
def test_each_gap_is_reported_with_its_file(rendered, gap):
    spec, files = rendered
    open_gap, message = GAPS[gap]
    last_receiver = yaml.safe_load(files["alertmanager/alertmanager.yml"])["receivers"][-1]["name"]
    open_gap(files)
    assert message.format(last_receiver=last_receiver) in crosscheck(spec, files)
