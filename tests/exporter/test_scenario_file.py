"""Scenario files: the contract's format, defaults, carry-over, "*" and messages naming file and field."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from deploy.local.stack import demo_scenario
from exporter.catalog import LABEL_VALUE_MAX_BYTES
from exporter.scenario import GIB, parse_duration
from exporter.scenario_file import load_scenario
from tests.exporter.scenarios import fleet, lifecycle


@pytest.fixture
def scenario_path(tmp_path):
    return tmp_path / "scenario.yml"


def _load_with(scenario_path, change):
    """Load the example fleet after `change` edits its parsed document in place."""
    document = yaml.safe_load(fleet())
    change(document)
    scenario_path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return load_scenario(scenario_path)


def test_the_contract_example(scenario_path):
    scenario_path.write_text(fleet(), encoding="utf-8")
    scenario = load_scenario(scenario_path)
    assert scenario.tick == 0.1 and scenario.loop is False
    assert scenario.machines["gpu-1"].mounts == ("/", "/data")
    assert scenario.machines["cpu-1"].mounts == ("/",)
    assert scenario.machines["cpu-1"].provider == "gcp"
    healthy, disk_fills, outage = scenario.phases
    assert healthy.machines["gpu-1"]["disk_used_ratio"] == 0.40
    assert disk_fills.machines["gpu-1"]["disk_used_ratio"] == 0.95
    assert disk_fills.machines["cpu-1"]["disk_used_ratio"] == 0.40      # carried over
    assert disk_fills.machines["gpu-1"]["cpu_percent"] == 30            # carried over
    assert outage.machines["gpu-1"]["up"] is False and outage.machines["cpu-1"]["up"] is True
    assert outage.machines["gpu-1"]["disk_used_ratio"] == 0.95          # carried over two phases
    assert outage.components == {"sync": 0.0, "api": 1.0}
    assert healthy.machines["gpu-1"]["disk_total_bytes"] == 1e12
    assert healthy.machines["gpu-1"]["memory_total_bytes"] == 64 * GIB


def test_phase_at_without_and_with_loop(scenario_path):
    scenario_path.write_text(fleet(), encoding="utf-8")
    scenario = load_scenario(scenario_path)
    assert [scenario.phase_at(t).name for t in (0, 59.9, 60, 119, 120, 10_000)] == [
        "healthy", "healthy", "disk fills", "disk fills", "outage", "outage"]
    def loop_with_a_30s_outage(doc):
        doc["loop"] = True
        doc["phases"][2]["duration"] = "30s"

    looping = _load_with(scenario_path, loop_with_a_30s_outage)
    assert [looping.phase_at(t).name for t in (0, 60, 120, 150, 210)] == [
        "healthy", "disk fills", "outage", "healthy", "disk fills"]


def test_machine_entry_beats_star_in_the_same_phase(scenario_path):
    def change(doc):
        doc["phases"][1]["machines"]["*"] = {"disk_used_ratio": 0.1}

    scenario = _load_with(scenario_path, change)
    assert scenario.phases[1].machines["gpu-1"]["disk_used_ratio"] == 0.95
    assert scenario.phases[1].machines["cpu-1"]["disk_used_ratio"] == 0.1


def test_defaults_when_nothing_is_set(scenario_path):
    scenario_path.write_text("machines: {m: {type: gpu, provider: vast}}\nphases: [{name: only}]\n")
    scenario = load_scenario(scenario_path)
    values = scenario.phases[0].machines["m"]
    assert scenario.tick == 1.0
    assert values["sync_ok"] is True and values["up"] is True
    assert values["disk_total_bytes"] == 1e12 and values["memory_total_bytes"] == 64 * GIB


@pytest.mark.parametrize("text, seconds", [("1s", 1), ("500ms", 0.5), ("2m30s", 150), ("1h", 3600), (2, 2),
                                           ("", None), ("1x", None), ("s", None), (True, None)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


def _set(path, value):
    """A change that sets the field at `path` (a list of keys and indexes) to `value`."""
    def change(doc):
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


def _delete(path):
    def change(doc):
        target = doc
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
    return change


BAD = [
    (_set(["tick"], "soon"), "tick: must be a positive duration"),
    (_set(["tick"], "0s"), "tick: must be a positive duration"),
    (_set(["loop"], "yes please"), "loop: must be true or false"),
    (_set(["colour"], "blue"), "colour: unknown field"),
    (_set(["machines"], {}), "machines: must be a non-empty mapping"),
    (_delete(["machines", "gpu-1", "type"]), "machines.gpu-1.type: must be a non-empty string"),
    (_set(["machines", "gpu-1", "provider"], 3), "machines.gpu-1.provider: must be a non-empty string"),
    (_set(["machines", "gpu-1", "mounts"], []), "machines.gpu-1.mounts: must be a non-empty list"),
    (_set(["machines", "gpu-1", "gpus"], 8), "machines.gpu-1.gpus: unknown field"),
    (_set(["components"], ["sync", "sync"]), "components: names must be distinct"),
    (_set(["phases"], []), "phases: must be a non-empty list"),
    (_delete(["phases", 0, "duration"]), "phases[0].duration: must be a positive duration"),
    (_set(["phases", 1, "duration"], "-5s"), "phases[1].duration: must be a positive duration"),
    (_set(["phases", 1, "machines", "gpu-9"], {"cpu_percent": 1}), "phases[1].machines.gpu-9: no such machine"),
    (_set(["phases", 1, "machines", "gpu-1", "disk_used_ratio"], 1.5),
     "phases[1].machines.gpu-1.disk_used_ratio: must be a number between 0 and 1, got 1.5"),
    (_set(["phases", 0, "machines", "*", "cpu_percent"], 101),
     "phases[0].machines.*.cpu_percent: must be a number between 0 and 100, got 101"),
    (_set(["phases", 0, "machines", "*", "sync_latency_seconds"], -2),
     "phases[0].machines.*.sync_latency_seconds: must be a number >= 0, got -2"),
    (_set(["phases", 0, "machines", "*", "sync_ok"], "sometimes"),
     "phases[0].machines.*.sync_ok: must be true or false"),
    (_set(["phases", 0, "machines", "*", "disk_total_bytes"], 0),
     "phases[0].machines.*.disk_total_bytes: must be a number >= 1"),
    (_set(["phases", 0, "machines", "*", "cpu_persent"], 3), "phases[0].machines.*.cpu_persent: unknown field"),
    (_set(["phases", 0, "machines", "*", "reporting"], "no"),
     "phases[0].machines.*.reporting: must be true or false, got 'no'"),
    (_set(["phases", 1, "machines", "gpu-1", "retired"], 1),
     "phases[1].machines.gpu-1.retired: must be true or false, got 1"),
    (_set(["phases", 0, "machines", "*", "failovers_per_minute"], -1),
     "phases[0].machines.*.failovers_per_minute: must be a number >= 0, got -1"),
    (_set(["phases", 0, "machines", "*", "failovers_per_minute"], "often"),
     "phases[0].machines.*.failovers_per_minute: must be a number >= 0, got 'often'"),
    (_set(["machines", "gpu-1", "standby_type"], ""), "machines.gpu-1.standby_type: must be a non-empty string"),
    (_set(["machines", "gpu-1", "standby_type"], ["cpu"]),
     "machines.gpu-1.standby_type: must be a non-empty string"),
    (_set(["phases", 0, "components", "db"], 1), "phases[0].components.db: not in the top-level components"),
    (_set(["phases", 0, "components", "api"], 2), "phases[0].components.api: must be a number between 0 and 1"),
    (_set(["phases", 1, "savings"], {"spot": "x"}), "phases[1].savings.spot: must be a number >= 0, got 'x'"),
    (_set(["phases", 0, "savings"], {"spot": -0.5}), "phases[0].savings.spot: must be a number >= 0, got -0.5"),
    (_set(["phases", 0, "savings"], {"spot": True}), "phases[0].savings.spot: must be a number >= 0, got True"),
    (_set(["phases", 0, "savings"], {"spot": float("inf")}),
     "phases[0].savings.spot: must be a number >= 0, got inf"),
    (_set(["phases", 0, "savings"], ["spot"]), "phases[0].savings: must be a mapping, got ['spot']"),
    (_set(["phases", 0, "savings"], {"": 1}), "phases[0].savings.: category must be a non-empty string"),
    (_set(["phases", 0, "savings"], {7: 1}), "phases[0].savings.7: category must be a non-empty string, got 7"),
    (_set(["phases", 0, "savings"], {"s" * (LABEL_VALUE_MAX_BYTES + 1): 1}),
     f"phases[0].savings.{'s' * (LABEL_VALUE_MAX_BYTES + 1)}: category must be at most {LABEL_VALUE_MAX_BYTES} "
     f"bytes of UTF-8, got {LABEL_VALUE_MAX_BYTES + 1}"),
    (_set(["phases", 0, "savings"], {"é" * (LABEL_VALUE_MAX_BYTES // 2 + 1): 1}),   # bytes count, not characters
     f"phases[0].savings.{'é' * (LABEL_VALUE_MAX_BYTES // 2 + 1)}: category must be at most "
     f"{LABEL_VALUE_MAX_BYTES} bytes of UTF-8, got {LABEL_VALUE_MAX_BYTES + 2}"),
    (_set(["phases", 0, "savings"], {"spot\n": 1}), "phases[0].savings.spot\n: category must not contain"),
    (_set(["phases", 0, "savings"], {"a&b": 1}), "phases[0].savings.a&b: category must not contain"),
]


@pytest.mark.parametrize("change, message", BAD, ids=[message.split(":")[0] for _, message in BAD])
def test_a_bad_field_is_named_with_the_file(scenario_path, change, message):
    with pytest.raises(ValueError) as raised:
        _load_with(scenario_path, change)
    assert f"{scenario_path}: {message}" in str(raised.value)


def test_every_problem_is_reported_at_once(scenario_path):
    def change(doc):
        doc["tick"] = "soon"
        doc["phases"][0]["machines"]["*"]["cpu_percent"] = 200

    with pytest.raises(ValueError) as raised:
        _load_with(scenario_path, change)
    assert str(raised.value).splitlines() == [
        f"{scenario_path}: tick: must be a positive duration such as 1s or 500ms, got 'soon'",
        f"{scenario_path}: phases[0].machines.*.cpu_percent: must be a number between 0 and 100, got 200"]


def test_new_fields_report_every_problem_at_once(scenario_path):
    def change(doc):
        doc["machines"]["cpu-1"]["standby_type"] = 7
        doc["phases"][1]["machines"]["gpu-1"].update(reporting="off", retired="yes", failovers_per_minute=-3)

    with pytest.raises(ValueError) as raised:
        _load_with(scenario_path, change)
    assert str(raised.value).splitlines() == [
        f"{scenario_path}: machines.cpu-1.standby_type: must be a non-empty string, got 7",
        f"{scenario_path}: phases[1].machines.gpu-1.failovers_per_minute: must be a number >= 0, got -3",
        f"{scenario_path}: phases[1].machines.gpu-1.reporting: must be true or false, got 'off'",
        f"{scenario_path}: phases[1].machines.gpu-1.retired: must be true or false, got 'yes'"]


def test_lifecycle_fields_default_and_carry_over(scenario_path):
    scenario_path.write_text(lifecycle(), encoding="utf-8")
    scenario = load_scenario(scenario_path)
    healthy, gone, back = scenario.phases
    assert scenario.machines["gpu-1"].standby_type == "cpu"
    assert scenario.machines["gpu-2"].standby_type == "cpu-spare"
    assert healthy.machines["gpu-1"]["reporting"] is True and healthy.machines["gpu-2"]["retired"] is False
    assert healthy.machines["gpu-1"]["failovers_per_minute"] == 0
    assert gone.machines["gpu-1"]["reporting"] is False and gone.machines["gpu-1"]["retired"] is False
    assert gone.machines["gpu-2"]["retired"] is True and gone.machines["gpu-2"]["reporting"] is True
    assert back.machines["gpu-1"]["reporting"] is True and back.machines["gpu-2"]["retired"] is False


def test_savings_carry_over_category_by_category(scenario_path):
    def change(doc):
        doc["phases"][0]["savings"] = {"spot": 3.6, "standby": 1.2}
        doc["phases"][1]["savings"] = {"spot": 0, "transfer": 0.4}

    healthy, disk_fills, outage = _load_with(scenario_path, change).phases
    assert healthy.savings == {"spot": 3.6, "standby": 1.2}
    assert disk_fills.savings == {"spot": 0.0, "standby": 1.2, "transfer": 0.4}   # standby carried over
    assert outage.savings == disk_fills.savings                                     # names none: all carry over
    assert all(isinstance(rate, float) for rate in outage.savings.values())


def test_savings_default_to_none_and_take_any_label_value(scenario_path):
    assert all(phase.savings == {} for phase in _load_with(scenario_path, lambda doc: None).phases)
    longest = "s" * LABEL_VALUE_MAX_BYTES

    def change(doc):
        doc["phases"][2]["savings"] = {longest: 2, "reserved instances (1y)": 0, "économies": 1}

    outage = _load_with(scenario_path, change).phases[2]
    assert outage.savings == {longest: 2.0, "reserved instances (1y)": 0.0, "économies": 1.0}


def test_savings_problems_are_reported_with_the_others(scenario_path):
    def change(doc):
        doc["phases"][0]["savings"] = {"": 1, "spot": "x", "standby": 1.2}
        doc["phases"][1]["savings"] = {"spot": -1}

    with pytest.raises(ValueError) as raised:
        _load_with(scenario_path, change)
    assert str(raised.value).splitlines() == [
        f"{scenario_path}: phases[0].savings.: category must be a non-empty string, got ''",
        f"{scenario_path}: phases[0].savings.spot: must be a number >= 0, got 'x'",
        f"{scenario_path}: phases[1].savings.spot: must be a number >= 0, got -1"]


def test_the_local_stacks_demo_scenario_saves_in_every_phase(scenario_path):
    scenario_path.write_text(yaml.safe_dump(demo_scenario()), encoding="utf-8")
    expected = {"spot": 3.6, "standby": 1.2, "transfer": 0.4}
    assert [phase.savings for phase in load_scenario(scenario_path).phases] == [expected] * 3


def _section_5_examples() -> list[str]:
    text = (Path(__file__).parents[2] / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text[text.index("## 5. "):text.index("## 6. ")]
    return re.findall(r"```yaml\n(.*?)```", section, re.S)


def test_the_documented_examples_load(scenario_path):
    examples = _section_5_examples()
    assert len(examples) == 2
    for example in examples:
        scenario_path.write_text(example, encoding="utf-8")
        assert load_scenario(scenario_path).phases
    scenario_path.write_text(examples[0], encoding="utf-8")
    assert [phase.savings for phase in load_scenario(scenario_path).phases] == [
        {"spot": 3.6, "standby": 1.2, "transfer": 0.4}, {"spot": 0.0, "standby": 1.2, "transfer": 0.4}]


def test_unreadable_and_invalid_yaml_name_the_file(scenario_path):
    with pytest.raises(ValueError, match=rf"^{scenario_path}: cannot read the file"):
        load_scenario(scenario_path)
    scenario_path.write_text("machines: [unclosed\n")
    with pytest.raises(ValueError, match=rf"^{scenario_path}: not valid YAML"):
        load_scenario(scenario_path)
