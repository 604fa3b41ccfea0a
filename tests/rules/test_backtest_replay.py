"""The backtest's replay of Prometheus's rule manager (rules_src/backtest/replay.py): from the evaluations where a
rule's PromQL had a value to firing episodes, with `for`, gaps, keep_firing_for, the range's end and tier yielding.

The single-series cases are also run through promtool's rule manager (Prometheus's own AlertingRule.Eval), so
each expectation is Prometheus's answer, not a reading of its documentation.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from rules_src.backtest.fetch import Grid
from rules_src.backtest.plan import Rule
from rules_src.backtest.replay import replay, series_intervals
from rules_src.tools import binary

GRID = Grid(0.0, 19.0, 1.0)  # evaluations 0..19, one a second


def rule(for_: float = 0.0, keep: float = 0.0, severity: str = "warning", yields_on: tuple[str, ...] = (),
         yields_to: frozenset[str] = frozenset()) -> Rule:
    """A rule of alert A with the given timings and yield clause."""
    return Rule("A", severity, "x > 0", for_, keep, (("severity", severity),), yields_on, yields_to)


# (case, evaluations with a value, for, keep_firing_for, episodes as (firing index, resolving index or None))
CASES = [
    ("for 0 fires at once", [3, 4, 5], 0, 0, [(3, 6)]),
    ("for 0, one evaluation", [3], 0, 0, [(3, 4)]),
    ("for 2 steps fires on the third", [3, 4, 5, 6], 2, 0, [(5, 7)]),
    ("for 2 steps, gone while pending", [3, 4], 2, 0, []),
    ("for 2.5 s rounds up to 3 steps", [3, 4, 5, 6], 2.5, 0, [(6, 7)]),
    ("a gap resets pending", [3, 4, 6, 7], 2, 0, []),
    ("pending starts again after a gap", [3, 4, 6, 7, 8], 2, 0, [(8, 9)]),
    ("keep_firing_for bridges a short gap", [3, 4, 7], 0, 3, [(3, 11)]),
    # Back at the very evaluation keep_firing_for would end it: Prometheus resolves only an absent series.
    ("keep_firing_for bridges a gap as long as itself", [3, 4, 8], 0, 3, [(3, 12)]),
    ("keep_firing_for does not bridge a longer gap", [3, 4, 9], 0, 3, [(3, 8), (9, 13)]),
    ("keep_firing_for does not keep a pending series", [3, 4, 6, 7, 8], 2, 3, [(8, 12)]),
    ("a flap within keep_firing_for is one episode", [2, 3, 4, 5, 7, 8, 10, 11], 2, 2, [(4, 14)]),
    ("firing at the range's end", [17, 18, 19], 0, 0, [(17, None)]),
    ("kept firing past the range's end", [15, 16], 0, 3, [(15, None)]),
    ("still pending at the range's end", [18, 19], 2, 0, []),
]


@pytest.mark.parametrize("present, for_, keep, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_series_intervals(present, for_, keep, expected):
    """One series' firing episodes from where it had a value."""
    assert series_intervals(present, rule(for_, keep), GRID) == expected


@pytest.mark.parametrize("present, for_, keep, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_prometheus_agrees(tmp_path: Path, present, for_, keep, expected):
    """promtool's rule manager fires the same series at exactly the evaluations the replay says."""
    promtool = binary("promtool")
    assert promtool, "promtool is not installed (run `make setup`)"
    values = ["1" if i in present else "stale" if i - 1 in present else "_" for i in range(GRID.count)]
    alert = {"alert": "A", "expr": "x > 0"}
    alert.update({"for": f"{round(for_ * 1000)}ms"} if for_ else {})  # Prometheus takes no "2.5s"
    alert.update({"keep_firing_for": f"{round(keep * 1000)}ms"} if keep else {})
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [alert]}]}))
    firing = {i for start, end in expected for i in range(start, GRID.count if end is None else end)}
    sample = [{"labels": 'ALERTS{alertname="A",alertstate="firing"}', "value": 1}]
    (tmp_path / "test.yml").write_text(yaml.safe_dump({
        "rule_files": ["rules.yml"], "evaluation_interval": "1s",
        "tests": [{"interval": "1s", "input_series": [{"series": "x", "values": " ".join(values)}],
                   "promql_expr_test": [{"expr": 'ALERTS{alertstate="firing"}', "eval_time": f"{i}s",
                                         "exp_samples": sample if i in firing else []}
                                        for i in range(GRID.count)]}]}))
    result = subprocess.run([promtool, "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_lower_tier_yields_while_the_severe_one_fires():
    """A warning on the same `yields_on` labels as a firing critical has no value then: it resolves, and after
    the critical resolves it is pending again for its own `for`; other labels are not touched."""
    critical = rule(0, 0, "critical")
    warning = rule(2, 0, "warning", ("provider",), frozenset({"critical"}))
    aws, gcp = (("provider", "aws"),), (("provider", "gcp"),)
    present = [{aws: list(range(6, 10))}, {aws: list(range(2, 16)), gcp: list(range(2, 16))}]
    episodes = replay((critical, warning), present, GRID)
    found = sorted((dict(e.labels)["severity"], dict(e.labels)["provider"], e.start, e.end) for e in episodes)
    assert found == [("critical", "aws", 6.0, 10.0),
                     ("warning", "aws", 4.0, 6.0), ("warning", "aws", 12.0, 16.0),
                     ("warning", "gcp", 4.0, 16.0)]
    assert all(dict(e.labels)["alertname"] == "A" for e in episodes)


def test_a_lower_tier_yields_while_the_severe_one_is_kept_firing():
    """keep_firing_for keeps the severe tier in ALERTS, so the lower one yields through it too."""
    critical = rule(0, 3, "critical")
    warning = rule(0, 0, "warning", ("provider",), frozenset({"critical"}))
    aws = (("provider", "aws"),)
    episodes = replay((critical, warning), [{aws: [5, 6]}, {aws: list(range(2, 12))}], GRID)
    found = sorted((dict(e.labels)["severity"], e.start, e.end) for e in episodes)
    assert found == [("critical", 5.0, 10.0), ("warning", 2.0, 5.0), ("warning", 10.0, 12.0)]


def test_a_tier_does_not_yield_to_a_pending_severe_one():
    """Only a firing severe tier (ALERTS{alertstate="firing"}) makes the lower one yield."""
    critical = rule(3, 0, "critical")
    warning = rule(0, 0, "warning", ("provider",), frozenset({"critical"}))
    aws = (("provider", "aws"),)
    episodes = replay((critical, warning), [{aws: [5, 6, 7]}, {aws: list(range(2, 12))}], GRID)
    assert sorted((dict(e.labels)["severity"], e.start, e.end) for e in episodes) == [("warning", 2.0, 12.0)]
