"""Loads a scenario file and checks every field, reporting all problems as `file: field: message`."""
from __future__ import annotations

import math
from pathlib import Path

import yaml

from exporter import checks
from exporter.scenario import (DEFAULT_HEALTH, DEFAULT_MOUNTS, DEFAULT_STANDBY_TYPE, DEFAULT_TICK_SECONDS,
                               MACHINE_DEFAULTS, Machine, Phase, Scenario, parse_duration)

TOP_KEYS = ("tick", "loop", "machines", "components", "phases")
MACHINE_KEYS = ("type", "provider", "mounts", "standby_type")
PHASE_KEYS = ("name", "duration", "machines", "components", "savings")
# Allowed range of each numeric machine field; sync_ok, up, reporting and retired are booleans.
RANGES = {
    "sync_latency_seconds": (0, None), "sync_bytes": (0, None), "sync_files": (0, None),
    "disk_used_ratio": (0, 1), "memory_used_ratio": (0, 1), "cpu_percent": (0, 100),
    "cost_hourly_usd": (0, None), "disk_total_bytes": (1, None), "memory_total_bytes": (1, None),
    "failovers_per_minute": (0, None),
}
WILDCARD = "*"


def load_scenario(path: str | Path) -> Scenario:
    """Read and check a scenario file; the ValueError lists every problem as `file: field: message` lines."""
    path = str(path)
    try:
        with open(path, encoding="utf-8") as stream:
            document = yaml.safe_load(stream)
    except OSError as error:
        raise ValueError(f"{path}: cannot read the file: {error.strerror or error}") from error
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML: {error}") from error
    errors: list[str] = []
    scenario = _check_document(path, document, errors)
    if errors:
        raise ValueError("\n".join(f"{path}: {error}" for error in errors))
    return scenario


def _mapping(value, field: str, errors: list[str], allowed: tuple[str, ...] | None = None) -> dict:
    if not isinstance(value, dict):
        errors.append(f"{field or '(top level)'}: must be a mapping, got {value!r}")
        return {}
    for key in value:
        if allowed is not None and key not in allowed:
            path = f"{field}.{key}" if field else key
            errors.append(f"{path}: unknown field (expected one of {', '.join(allowed)})")
    return value


def _names(value, field: str, errors: list[str]) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        errors.append(f"{field}: must be a non-empty list of names, got {value!r}")
        return ()
    for index, name in enumerate(value):
        if not isinstance(name, str) or not name:
            errors.append(f"{field}[{index}]: must be a non-empty string, got {name!r}")
    if len(set(map(str, value))) != len(value):
        errors.append(f"{field}: names must be distinct, got {value!r}")
    return tuple(str(name) for name in value)


def _check_document(path: str, document, errors: list[str]) -> Scenario | None:
    top = _mapping(document, "", errors, TOP_KEYS)
    tick = parse_duration(top.get("tick", DEFAULT_TICK_SECONDS))
    if tick is None or tick <= 0:
        errors.append(f"tick: must be a positive duration such as 1s or 500ms, got {top.get('tick')!r}")
    loop = top.get("loop", False)
    if not isinstance(loop, bool):
        errors.append(f"loop: must be true or false, got {loop!r}")
    machines = _check_machines(top.get("machines"), errors)
    components = _names(top["components"], "components", errors) if "components" in top else ()
    phases_value = top.get("phases")
    if not isinstance(phases_value, list) or not phases_value:
        errors.append(f"phases: must be a non-empty list, got {phases_value!r}")
        phases_value = []
    state = {machine_id: dict(MACHINE_DEFAULTS) for machine_id in machines}
    health = {component: DEFAULT_HEALTH for component in components}
    savings: dict[str, float] = {}
    phases = []
    for index, phase_value in enumerate(phases_value):
        is_last = index == len(phases_value) - 1
        phases.append(_check_phase(f"phases[{index}]", phase_value, is_last, machines, components, state, health,
                                   savings, errors))
    if errors:
        return None
    return Scenario(path, tick, loop, machines, components, tuple(phases))


def _check_machines(value, errors: list[str]) -> dict[str, Machine]:
    if not isinstance(value, dict) or not value:
        errors.append(f"machines: must be a non-empty mapping of machine id to its fields, got {value!r}")
        return {}
    machines = {}
    for machine_id, fields in value.items():
        field = f"machines.{machine_id}"
        if not isinstance(machine_id, str) or not machine_id or machine_id == WILDCARD:
            errors.append(f"{field}: a machine id must be a non-empty string other than {WILDCARD!r}")
            continue
        fields = _mapping(fields, field, errors, MACHINE_KEYS)
        labels = {}
        for key in ("type", "provider"):
            if not isinstance(fields.get(key), str) or not fields.get(key):
                errors.append(f"{field}.{key}: must be a non-empty string, got {fields.get(key)!r}")
            labels[key] = str(fields.get(key))
        mounts = _names(fields["mounts"], f"{field}.mounts", errors) if "mounts" in fields else DEFAULT_MOUNTS
        standby = fields.get("standby_type", DEFAULT_STANDBY_TYPE)
        if not isinstance(standby, str) or not standby:
            errors.append(f"{field}.standby_type: must be a non-empty string, got {standby!r}")
        machines[machine_id] = Machine(machine_id, labels["type"], labels["provider"], mounts, str(standby))
    return machines


def _check_phase(field: str, value, is_last: bool, machines: dict[str, Machine], components: tuple[str, ...],
                 state: dict[str, dict], health: dict[str, float], savings: dict[str, float],
                 errors: list[str]) -> Phase:
    """Check one phase and fold it into `state`, `health` and `savings`, the values carried over between phases."""
    phase = _mapping(value, field, errors, PHASE_KEYS)
    name = phase.get("name", field)
    if not isinstance(name, str) or not name:
        errors.append(f"{field}.name: must be a non-empty string, got {name!r}")
    duration = None
    if "duration" in phase or not is_last:
        duration = parse_duration(phase.get("duration"))
        if duration is None or duration <= 0:
            hint = "" if is_last else " (only the last phase may omit it)"
            errors.append(f"{field}.duration: must be a positive duration such as 60s{hint}, "
                          f"got {phase.get('duration')!r}")
    entries = _mapping(phase.get("machines", {}), f"{field}.machines", errors)
    for machine_id in entries:
        if machine_id != WILDCARD and machine_id not in machines:
            errors.append(f"{field}.machines.{machine_id}: no such machine (machines: {', '.join(machines)})")
    shared = _check_fields(f"{field}.machines.{WILDCARD}", entries.get(WILDCARD, {}), errors)
    for machine_id in machines:
        own = _check_fields(f"{field}.machines.{machine_id}", entries.get(machine_id, {}), errors)
        state[machine_id] = {**state[machine_id], **shared, **own}
    for component, level in _mapping(phase.get("components", {}), f"{field}.components", errors).items():
        if component not in components:
            errors.append(f"{field}.components.{component}: not in the top-level components list")
        elif not _within(level, 0, 1):
            errors.append(f"{field}.components.{component}: must be a number between 0 and 1, got {level!r}")
        else:
            health[component] = float(level)
    _check_savings(f"{field}.savings", phase.get("savings", {}), savings, errors)
    return Phase(str(name), duration, {machine_id: dict(values) for machine_id, values in state.items()},
                 dict(health), dict(savings))


def _check_savings(field: str, value, savings: dict[str, float], errors: list[str]) -> None:
    """Fold a phase's savings rates into `savings`; a category becomes a label value, so it must be a valid one."""
    for category, rate in _mapping(value, field, errors).items():
        try:
            # The telemetry API's own check: a name it would refuse at the first tick is refused at load.
            checks.text("category", category)
        except ValueError as error:
            errors.append(f"{field}.{category}: {error}")
            continue
        if not _within(rate, 0, None):
            errors.append(f"{field}.{category}: must be a number >= 0, got {rate!r}")
        else:
            savings[category] = float(rate)


def _check_fields(field: str, value, errors: list[str]) -> dict:
    fields = _mapping(value, field, errors, tuple(MACHINE_DEFAULTS))
    checked = {}
    for key, item in fields.items():
        if key not in MACHINE_DEFAULTS:
            continue
        if key not in RANGES:
            if isinstance(item, bool):
                checked[key] = item
            else:
                errors.append(f"{field}.{key}: must be true or false, got {item!r}")
            continue
        low, high = RANGES[key]
        if not _within(item, low, high):
            bounds = f"between {low} and {high}" if high is not None else f">= {low}"
            errors.append(f"{field}.{key}: must be a number {bounds}, got {item!r}")
        else:
            checked[key] = float(item)
    return checked


def _within(value, low: float, high: float | None) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    return low <= value and (high is None or value <= high)
