"""Every query of the rendered Grafana dashboard, run against the stack's real Prometheus on the `fast` environment.

Grafana's own variables are filled in as Grafana would for a short range. Queries that read the hourly savings
tiles cannot be waited for (their group runs once an hour, at a slot up to an hour away): Prometheus must accept
them, and the same query with each tile replaced by the tile rule's own expression (a subquery over the raw
counter) must return series. Every other query must return series.
"""
from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request

import pytest

from rules_src.grafana import PATH, TILE
from rules_src.spec import load
from tests.e2e.conftest import scenario, wait_for

FLEET = {"gpu-1": {"type": "gpu", "provider": "vast"}, "cpu-1": {"type": "cpu", "provider": "aws"}}
SAVINGS = {"spot": 3.6, "transfer": 0.4}
# What Grafana puts in for its own variables; a short range, so the tile-free stand-ins stay cheap.
GRAFANA_VARIABLES = {"__range_ms": "3600000", "__range_s": "3600", "__range": "1h", "__interval_ms": "60000",
                     "__interval": "1m", "__rate_interval": "1m"}
# Every rule's first evaluation, the savings group's included (every 5 s in `fast`), and a scrape or two.
TIMEOUT = 120


def grafana_expr(expr: str) -> str:
    """`expr` with Grafana's variables filled in; a variable this test does not know fails it."""
    out = re.sub(r"\$(__[a-z_]+)", lambda m: GRAFANA_VARIABLES.get(m.group(1), m.group(0)), expr)
    assert "$" not in out, f"a Grafana variable this test does not fill in: {expr}"
    return out


def without_tiles(expr: str, tile_expr: str) -> str:
    """`expr` reading the raw counter instead of the tiles: each `TILE[range]` becomes a 1m subquery of its rule."""
    return re.sub(rf"{re.escape(TILE)}\[([^\]]+)\]", lambda m: f"({tile_expr})[{m.group(1)}:1m]", expr)


def query(prometheus: str, expr: str) -> dict:
    """Prometheus' whole answer to an instant query of `expr` (its error answer too)."""
    data = urllib.parse.urlencode({"query": expr}).encode()
    try:
        with urllib.request.urlopen(prometheus + "/api/v1/query", data=data, timeout=30) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:  # 400 bad_data, 422 execution: the body says why
        return json.load(exc)


@pytest.mark.e2e
def test_every_dashboard_query_runs_against_prometheus(make_stack):
    run = scenario(FLEET, components={"sync": 1.0, "api": 0.5})
    run["phases"][0]["savings"] = SAVINGS
    client = make_stack(run)
    prometheus = client.stack.url("prometheus")
    board = json.loads((client.stack.config_dir / PATH).read_text())
    spec, errors = load("fast")
    assert errors == []
    tile_expr = next(r.expr for g in spec.recording for r in g.records if r.name == TILE)

    pending = {}  # (panel, refId) -> the expression that must return series
    for panel in board["panels"]:
        for target in panel["targets"]:
            expr = grafana_expr(target["expr"])
            where = (panel["title"], target["refId"])
            if TILE in expr:
                answer = query(prometheus, expr)
                assert answer.get("status") == "success", (where, expr, answer)
                expr = without_tiles(expr, tile_expr)
            pending[where] = expr
    assert len(pending) >= 10

    answers, missing = {}, []

    def all_return_series() -> bool:
        for where, expr in pending.items():
            if where not in answers:
                answer = query(prometheus, expr)
                assert answer.get("status") == "success", (where, expr, answer)
                if answer["data"]["result"]:
                    answers[where] = answer["data"]["result"]
        missing[:] = [(where, pending[where]) for where in pending if where not in answers]
        return not missing

    try:
        wait_for(all_return_series, TIMEOUT, "every dashboard query to return series", interval=1)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nstill without series: {missing}") from None

    for (title, ref), result in answers.items():
        labels = [series["metric"] for series in result]
        if title == "Machines":  # one row per machine: every query keeps machine_id alone
            assert sorted(m.get("machine_id") for m in labels) == sorted(FLEET), (title, ref, labels)
        if any("category" in m for m in labels):
            assert {m["category"] for m in labels} == set(SAVINGS), (title, ref, labels)
