"""Unit tests of what the generated promtool tests expect: which tier of an alert fires along a trajectory
(rules_src.expectations.Tiers), and the input series the drivers build (rules_src.drivers), counters with
their reset."""
from __future__ import annotations

import re

import pytest

from rules_src.drivers import series, trajectory
from rules_src.expectations import Tiers
from rules_src.model import Alert, Driver, Tier

INTERVAL = 10.0
CRITICAL, WARNING = 0, 1  # indexes into the tiers, most severe first


def _alert(tiers: tuple[Tier, ...], op: str = ">") -> Alert:
    return Alert(name="CostHigh", group="cost", severity=tiers[0].severity,
                 summary="{{ $labels.machine_id }} costs a lot",
                 description="{{ $value | printf \"%.2f\" }} USD/h (threshold ${threshold})",
                 runbook_url="https://runbooks.example.com/CostHigh.md", meaning="", steps=(), for_=20.0,
                 keep_firing_for=0.0, labels=(("team", "finops"),), op=op, unit="usd_per_hour", tiers=tiers,
                 carries=("machine_id",))


# critical past 5 after 50s, warning past 2 after 20s (the good spec's CostHigh)
TWO_TIERS = _alert((Tier("critical", 5.0, 5.0, "critical", 50.0), Tier("warning", 2.0, 2.0, "warning", 20.0)))


def _states(tiers: Tiers, values: list, steps: int) -> list[list[int]]:
    return [tiers.firing(values, k * INTERVAL) for k in range(steps)]


def test_the_milder_tier_fires_while_the_severe_one_waits_and_stops_when_it_fires():
    tiers = Tiers(TWO_TIERS, (5.0, 2.0), INTERVAL)
    # warning: pending at 0s and 10s, firing from 20s; critical: pending 0s..40s, firing from 50s, and then alone.
    assert _states(tiers, [5.1] * 8, 8) == [[], [], [WARNING], [WARNING], [WARNING], [CRITICAL], [CRITICAL], [CRITICAL]]


def test_each_tier_waits_its_own_for():
    tiers = Tiers(TWO_TIERS, (5.0, 2.0), INTERVAL)
    # Past the warning threshold only: the warning fires after its 20s, the critical tier never.
    assert _states(tiers, [3.0] * 8, 8) == [[], [], [WARNING]] + [[WARNING]] * 5
    # Both tiers with no `for`: critical from the first evaluation, the warning never.
    instant = _alert((Tier("critical", 5.0, 5.0, "critical", 0.0), Tier("warning", 2.0, 2.0, "warning", 0.0)))
    assert _states(Tiers(instant, (5.0, 2.0), INTERVAL), [5.1] * 3, 3) == [[CRITICAL]] * 3


def test_on_the_way_down_the_milder_tier_waits_its_for_again():
    tiers = Tiers(TWO_TIERS, (5.0, 2.0), INTERVAL)
    values = [5.1] * 7 + [3.0] * 5  # critical firing at 50s and 60s; from 70s only past the warning threshold
    assert _states(tiers, values, 12)[5:] == [[CRITICAL], [CRITICAL], [], [], [WARNING], [WARNING], [WARNING]]


def test_back_to_normal_nothing_fires_and_a_short_spell_never_fires():
    tiers = Tiers(TWO_TIERS, (5.0, 2.0), INTERVAL)
    assert _states(tiers, [3.0] * 4 + [1.0] * 2, 6) == [[], [], [WARNING], [WARNING], [], []]
    assert _states(tiers, [9.0, 9.0, 1.0, 9.0, 9.0], 5) == [[]] * 5  # never past either threshold for its `for`


def test_a_value_not_yet_there_holds_no_tier():
    # A histogram's rate needs two samples: None at the first evaluation restarts the `for`.
    tiers = Tiers(TWO_TIERS, (5.0, 2.0), INTERVAL)
    assert _states(tiers, [None, 3.0, 3.0, 3.0], 4) == [[], [], [], [WARNING]]


def test_thresholds_are_the_ones_given_and_the_op_is_the_alerts():
    # Tiers judges with the thresholds it is given (the contract's), not the rule's.
    tiers = Tiers(TWO_TIERS, (8.0, 4.0), INTERVAL)
    assert tiers.firing([5.1] * 8, 70.0) == [WARNING]
    falling = _alert((Tier("critical", 1.0, 1.0, "critical", 0.0), Tier("warning", 2.0, 2.0, "warning", 0.0)), op="<")
    assert [Tiers(falling, (1.0, 2.0), INTERVAL).firing([v], 0.0) for v in (0.5, 1.5, 2.5)] == [[CRITICAL], [WARNING], []]


def test_the_check_expects_each_series_at_the_tier_it_fires():
    tiers = Tiers(TWO_TIERS, (5.0, 2.0), INTERVAL)
    check = tiers.check(40.0, [({"machine_id": "gpu-1"}, [5.1] * 8), ({"machine_id": "gpu-2"}, [1.0] * 8)])
    assert check == {"eval_time": "40s", "alertname": "CostHigh", "exp_alerts": [{
        "exp_labels": {"machine_id": "gpu-1", "severity": "warning", "team": "finops"},
        "exp_annotations": {"summary": "gpu-1 costs a lot", "description": "5.10 USD/h (threshold 2.00 USD/h)",
                            "runbook_url": "https://runbooks.example.com/CostHigh.md"}}]}
    assert [a["exp_labels"]["severity"] for a in tiers.check(50.0, [({"machine_id": "gpu-1"}, [5.1] * 8)])["exp_alerts"]] \
        == ["critical"]


def _driver(kind: str, window: float = 60.0) -> Driver:
    return Driver(kind, ("dumont_sync_files_total",), ("machine_id",), 1.0, window=window)


@pytest.mark.parametrize("kind", ["increase", "rate"])
def test_a_counters_value_climbs_for_one_window(kind):
    # 60s window, 10s interval: the increase (or rate) counts from the first sample, full after 6 steps.
    assert trajectory(_driver(kind), 6.0, 9, INTERVAL) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 6.0, 6.0]


def test_other_drivers_have_their_value_at_once_but_a_histogram_after_one_sample():
    assert trajectory(Driver("gauge", ("m",), (), 1.0), 3.0, 3, INTERVAL) == [3.0, 3.0, 3.0]
    assert trajectory(Driver("histogram", ("m",), (), 1.0, window=60.0), 3.0, 3, INTERVAL) == [None, 3.0, 3.0]


def _expand(values: str) -> list[float]:
    """promtool's expanding notation (`a+bxn`, `a-bxn`, `axn`) as the samples it stands for."""
    out = []
    for part in values.split():
        start, sign, delta, count = re.fullmatch(r"(-?[0-9.e]+)(?:([+-])([0-9.e]+))?x([0-9]+)", part).groups()
        step = float(delta or 0) * (-1 if sign == "-" else 1)
        out += [float(start) + step * i for i in range(int(count) + 1)]
    return out


def _increments(samples: list[float]) -> list[float]:
    """What increase() counts between samples: a drop is a counter reset, counted from 0."""
    return [b - a if b >= a else b for a, b in zip(samples, samples[1:])]


@pytest.mark.parametrize("kind, per_step", [("increase", 0.85), ("rate", 51.0)])
def test_a_counter_series_restarts_halfway_through_its_first_phase(kind, per_step):
    # 5.1 over a 60s window: increase grows 5.1/60*10 = 0.85 a step; rate (5.1 a second) 51 a step.
    [made] = series(_driver(kind), {"machine_id": "gpu-1"}, [(5.1, 11), (1.0, 8)], INTERVAL)
    assert made["series"] == 'dumont_sync_files_total{machine_id="gpu-1"}'
    samples = _expand(made["values"])
    assert len(samples) == 19 and samples[0] == 0.0
    drops = [k for k in range(1, 19) if samples[k] < samples[k - 1]]
    assert drops == [5]  # one reset, halfway through the 11 steps of the first phase
    slow = per_step / 5.1  # the second phase's pace: a value of 1
    assert _increments(samples) == pytest.approx([per_step] * 10 + [slow] * 8)


def test_a_short_first_phase_has_no_reset():
    [made] = series(_driver("increase"), {"machine_id": "gpu-1"}, [(6.0, 3), (0.0, 3)], INTERVAL)
    samples = _expand(made["values"])
    assert samples == [0.0, 1.0, 2.0, 2.0, 2.0, 2.0]
