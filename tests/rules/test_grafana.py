"""The Grafana dashboard the generator renders per environment: its shape, and the PromQL checks on its panels."""
from __future__ import annotations

import json
import re

import pytest

from tests.rules.rules_helpers import edit
from rules_src import grafana
from rules_src.cli import main
from rules_src.render import render
from rules_src.spec import environments, load

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
TILE = "category:dumont_savings_usd:increase1h"


def dashboard(env: str) -> dict:
    """The dashboard `env` renders, parsed from the file text (so it must be valid JSON)."""
    spec, errors = load(env)
    assert errors == []
    return json.loads(render(spec)[grafana.PATH])


def targets(board: dict) -> list[tuple[str, dict]]:
    """(panel title, target) for every query of every panel."""
    return [(panel["title"], target) for panel in board["panels"] for target in panel["targets"]]


@pytest.mark.parametrize("env", environments())
def test_every_environment_gets_an_importable_dashboard(env):
    board = dashboard(env)
    assert board["uid"] == f"dumont-fleet-{env}" and board["title"] == f"Dumont fleet ({env})"
    assert 30 <= board["schemaVersion"] < 40 and board["timezone"] == "browser"
    variables = board["templating"]["list"]
    assert [(v["name"], v["type"], v["query"]) for v in variables] == [("datasource", "datasource", "prometheus")]
    assert "DO NOT EDIT" in board["description"]


@pytest.mark.parametrize("env", environments())
def test_every_panel_reads_the_datasource_variable_and_has_queries(env):
    board = dashboard(env)
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids)
    for panel in board["panels"]:
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
    for title, target in targets(board):
        assert target["datasource"] == DATASOURCE, title
        assert target["expr"].strip(), title


@pytest.mark.parametrize("env", environments())
def test_the_tile_rule_is_only_read_summed_over_a_range(env):
    # A tile is recorded once an hour: an instant read finds it only minutes an hour.
    reads = 0
    for title, target in targets(dashboard(env)):
        for match in re.finditer(re.escape(TILE), target["expr"]):
            reads += 1
            before, after = target["expr"][:match.start()], target["expr"][match.end():]
            assert re.search(r"sum_over_time\(\s*$", before) and re.match(r"\[[^\]]+\]\s*\)", after), (title, target)
    assert reads >= 5  # today, month, year (by category and in total), per day, per 30 days


def test_the_periods_span_today_this_month_and_this_year():
    panels = {panel["title"]: panel for panel in dashboard("prod")["panels"]}
    assert {title: panels[title].get("timeFrom") for title in ("Savings today", "Savings this month",
                                                               "Savings this year")} == {
        "Savings today": "now/d", "Savings this month": "now/M", "Savings this year": "now/y"}
    for title in ("Savings today", "Savings this month", "Savings this year"):
        assert all(t["instant"] and f"sum_over_time({TILE}[$__range])" in t["expr"] for t in panels[title]["targets"])
        assert panels[title]["fieldConfig"]["defaults"]["unit"] == "currencyUSD"
    daily = panels["Savings per day"]
    assert (daily["interval"], daily["timeFrom"]) == ("1d", "30d")
    assert daily["targets"][0]["expr"] == f"sum by (category) (sum_over_time({TILE}[1d]))"


def test_rendering_is_deterministic():
    spec, _ = load("prod")
    first, second = render(spec)[grafana.PATH], render(spec)[grafana.PATH]
    assert first == second
    assert first == json.dumps(json.loads(first), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert [panel["id"] for panel in json.loads(first)["panels"]] == list(range(1, len(json.loads(first)["panels"]) + 1))


@pytest.mark.parametrize("old, new, panel", [
    ("provider:dumont_cost_hourly_usd:sum:", "provider:dumont_cost_hourly_usd:total:", "Cost per hour by provider"),
    (f"{TILE}:", "category:dumont_savings_usd:hourly1h:", "Savings today"),
    ("category:dumont_savings_usd:increase1d:", "category:dumont_savings_usd:rolling1d:", "Savings in the last 24 h"),
])
def test_a_renamed_recording_rule_fails_generation_naming_the_panel(rules_copy, tmp_path, capsys, old, new, panel):
    edit(rules_copy / "recording.yaml", f"    {old}\n", f"    {new}\n")
    out = tmp_path / "generated"
    assert main(["--spec", str(rules_copy), "generate", "--env", "prod", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f'prod/{grafana.PATH}: panel "{panel}" query A reads {old.rstrip(":")}, which no recording rule defines' in err
    assert not out.exists()


def test_a_tile_read_as_an_instant_vector_is_refused():
    spec, _ = load("prod")
    panels = grafana.panels()
    panels[0]["targets"][0]["expr"] = f"sum by (category) ({TILE})"
    panels[1]["targets"][1]["expr"] = f"sum_over_time({TILE}[1h]) + {TILE}"
    assert grafana.problems(spec, panels) == [
        f'prod/{grafana.PATH}: panel "Savings today" query A reads {TILE} as an instant vector: a tile is recorded '
        f"once per 1h, so read it only as sum_over_time({TILE}[range])",
        f'prod/{grafana.PATH}: panel "Savings this month" query B reads {TILE} as an instant vector: a tile is '
        f"recorded once per 1h, so read it only as sum_over_time({TILE}[range])"]


def test_a_panel_reading_an_unknown_metric_is_refused():
    spec, _ = load("prod")
    panels = grafana.panels()
    panels[-1]["targets"][0]["expr"] = "sum(dumont_nope)"
    assert grafana.problems(spec, panels) == [
        f'prod/{grafana.PATH}: panel "{panels[-1]["title"]}" query A reads unknown metric dumont_nope '
        "(not in exporter.catalog)"]


def test_check_fails_when_the_dashboard_is_stale(good, tmp_path, tools, capsys):
    out = tmp_path / "generated"
    assert main(["--spec", str(good), "generate", "--out", str(out)]) == 0
    path = out / "test" / grafana.PATH
    board = json.loads(path.read_text())
    board["title"] = "edited by hand"
    path.write_text(json.dumps(board, indent=2, sort_keys=True) + "\n")
    capsys.readouterr()
    assert main(["--spec", str(good), "check", "--out", str(out)]) == 1
    assert f"differs: {path}" in capsys.readouterr().out
