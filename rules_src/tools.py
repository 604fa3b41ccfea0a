"""Run promtool and amtool over a rendered environment; a missing binary is a failure, never a skip."""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from . import promql
from .model import Spec
from .routing import channels_for


@dataclass(frozen=True)
class Step:
    """One tool run: what it checked, whether it passed, and what the tool said when it did not."""

    title: str
    ok: bool
    output: str = ""


def binary(name: str) -> str | None:
    """Path of promtool or amtool; DUMONT_PROMTOOL / DUMONT_AMTOOL override the lookup on PATH."""
    return shutil.which(os.environ.get(f"DUMONT_{name.upper()}", name))


def _run(title: str, args: list[str], cwd: Path | None = None) -> Step:
    exe = binary(args[0])
    if exe is None:
        return Step(title, False, f"{args[0]} not found (install Debian's prometheus and prometheus-alertmanager: make setup)")
    proc = subprocess.run([exe, *args[1:]], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    return Step(title, proc.returncode == 0, (proc.stdout + proc.stderr).strip())


def check_env(env_dir: Path, spec: Spec) -> list[Step]:
    """Every tool check of one rendered environment directory."""
    prom = env_dir / "prometheus"
    rules = sorted(str(p.relative_to(prom)) for p in (prom / "rules").glob("*.yml"))
    tests = sorted(str(p.relative_to(prom)) for p in (prom / "tests").glob("*.yml"))
    env = spec.env
    steps = [_run(f"{env}: promtool check rules --lint=all --lint-fatal ({len(rules)} files)",
                  ["promtool", "check", "rules", "--lint=all", "--lint-fatal", *rules], prom),
             _run(f"{env}: promtool check config prometheus.yml", ["promtool", "check", "config", "prometheus.yml"], prom),
             _run(f"{env}: promtool test rules ({len(tests)} files)", ["promtool", "test", "rules", *tests], prom)]
    am = env_dir / "alertmanager" / "alertmanager.yml"
    steps.append(_run(f"{env}: amtool check-config alertmanager.yml", ["amtool", "check-config", str(am)]))
    return steps + route_tests(am, spec)


def _receivers(am: Path) -> dict[str, tuple[str, ...]]:
    """Alertmanager receiver -> the channels its webhooks post to."""
    try:
        config = yaml.safe_load(am.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return {r["name"]: tuple(sorted(w["url"].rsplit("/", 1)[-1] for w in r.get("webhook_configs", [])))
            for r in config.get("receivers", [])}


def route_tests(am: Path, spec: Spec) -> list[Step]:
    """amtool routes test: the contract's labels reach its channels, and every alert its expected route."""
    receivers = _receivers(am)
    steps = []
    for labels, channels in spec.contract_routes:
        names = [n for n, chs in receivers.items() if chs == tuple(sorted(channels))]
        # Several receivers may post to the same channels; expect the one the labels' route names.
        routed = next((r.name for r in spec.routes if promql.selects(r.matchers, dict(labels), set())), "default")
        names.sort(key=lambda n: n != routed)
        text = " ".join(f"{k}={v}" for k, v in labels)
        title = f"{spec.env}: amtool config routes test {text} -> {', '.join(channels)}"
        if not names:
            steps.append(Step(title, False, f"no receiver posts to exactly {', '.join(channels)}"))
            continue
        steps.append(_run(title, ["amtool", "config", "routes", "test", f"--config.file={am}",
                                  f"--verify.receivers={names[0]}", *[f"{k}={v}" for k, v in labels]]))
    for alert in spec.alerts:
        route, _ = channels_for(spec, alert)
        labels = {"alertname": alert.name, "severity": alert.severity, **dict(alert.labels),
                  **{label: "x" for label in alert.carries}}
        text = " ".join(f"{k}={v}" for k, v in sorted(labels.items()))
        steps.append(_run(f"{spec.env}: amtool config routes test {alert.name} -> {route}",
                          ["amtool", "config", "routes", "test", f"--config.file={am}", f"--verify.receivers={route}",
                           *[f"{k}={v}" for k, v in sorted(labels.items())]]))
    return steps
