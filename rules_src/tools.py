"""Run promtool and amtool over a rendered environment; a missing binary is a failure, never a skip."""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from . import explain
from .amroute import Matcher, RoutingError, load_routing
from .model import Spec
from .routing import contract_severities, promised_channels


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
    return steps + route_tests(am, spec) + explain_tests(env_dir, spec)


def _receivers(am: Path, spec: Spec) -> dict[str, tuple[str, ...]]:
    """Alertmanager receiver -> the channels it reaches: its webhooks' /webhook/<channel>, and the spec's
    channel behind each of Alertmanager's own integrations (by its secret file and address)."""
    try:
        config = yaml.safe_load(am.read_text())
    except (OSError, yaml.YAMLError):
        return {}

    def direct(kind: str, key: tuple) -> list[str]:
        return [name for name, ch in spec.channels.items() if ch.get("type") == kind and _direct_key(kind, ch) == key]
    out = {}
    for r in config.get("receivers", []):
        names = {w["url"].rsplit("/", 1)[-1] for w in r.get("webhook_configs", [])}
        names.update(n for c in r.get("slack_configs", []) for n in direct("alertmanager_slack", (c.get("api_url_file"),)))
        names.update(n for c in r.get("email_configs", []) for n in direct("alertmanager_email",
                                                                            (c.get("to"), c.get("smarthost"))))
        out[r["name"]] = tuple(sorted(names))
    return out


def _direct_key(kind: str, channel: dict) -> tuple:
    """What identifies one of Alertmanager's own integrations in alertmanager.yml as a channel of the spec."""
    if kind == "alertmanager_slack":
        return (channel.get("api_url_file"),)
    return (", ".join(channel.get("to", [])), channel.get("smarthost"))


def route_tests(am: Path, spec: Spec) -> list[Step]:
    """amtool config routes test: each contract route's labels, and every alert's, reach the promised channels.

    What is expected comes from contract.routes only, never from the routes the generator rendered, so
    a route in routing.yaml that sends an alert elsewhere than promised fails here.
    """
    receivers = _receivers(am, spec)
    steps = [_route_test(spec.env, am, receivers, " ".join(f"{k}={v}" for k, v in labels), dict(labels), channels)
             for labels, channels in spec.contract_routes]
    for alert in spec.alerts:
        for severity, promised_severity in contract_severities(alert):
            # What Alertmanager receives: the rule's labels, and some value for each label the alert carries.
            labels = {"alertname": alert.name, "severity": severity, **dict(alert.labels),
                      **{label: "x" for label in alert.carries}}
            promised = promised_channels(spec.contract_routes, alert, promised_severity) or ()
            what = alert.name if len(alert.severities) == 1 else f"{alert.name} ({severity})"
            steps.append(_route_test(spec.env, am, receivers, what, labels, promised))
    return steps


def _route_test(env: str, am: Path, receivers: dict[str, tuple[str, ...]], what: str, labels: dict[str, str],
                channels: tuple[str, ...]) -> Step:
    """Ask amtool where `labels` go, and compare the channels of those receivers with `channels`."""
    title = f"{env}: amtool config routes test {what} -> {', '.join(channels) or '(no channel promised)'}"
    step = _run(title, ["amtool", "config", "routes", "test", f"--config.file={am}",
                        *[f"{k}={v}" for k, v in sorted(labels.items())]])
    if not step.ok:
        return step
    names = amtool_receivers(step.output)
    reached = tuple(sorted({ch for name in names for ch in receivers.get(name, ())}))
    if channels and reached == tuple(sorted(channels)):
        return step
    return Step(title, False, f"amtool routes it to {', '.join(names) or 'no receiver'}, which post to "
                              f"{', '.join(reached) or 'no channel'}; rules_src/contract.yaml promises "
                              f"{', '.join(sorted(channels)) or 'nothing'}")


def amtool_receivers(output: str) -> list[str]:
    """The receivers `amtool config routes test` printed, in its order (one per route taken)."""
    # amtool prints the receivers comma-separated, and a warning about --config.file on stderr.
    lines = [line for line in output.splitlines() if line.strip() and not line.startswith("Warning:")]
    return [name.strip() for name in lines[0].split(",")] if lines else []


def explain_tests(env_dir: Path, spec: Spec) -> list[Step]:
    """For every alert and severity, amtool routes the labels `dumont-rules explain` uses to exactly the receivers
    explain computes: rules_src/amroute.py walks the tree as Alertmanager 0.25 does."""
    am = env_dir / "alertmanager" / "alertmanager.yml"
    try:
        routing = load_routing(am, env_dir / "receiver" / "channels.yml")
    except RoutingError as exc:
        return [Step(f"{spec.env}: dumont-rules explain reads the rendered routing", False, str(exc))]
    external = explain.external_labels(env_dir, spec)
    steps = []
    for alert in spec.alerts:
        for severity in alert.severities:
            labels, _ = explain.alert_labels(alert, severity, {}, external)
            computed = [route.receiver for route in routing.root.match(labels)]
            what = alert.name if len(alert.severities) == 1 else f"{alert.name} ({severity})"
            title = f"{spec.env}: explain {what} routes as amtool does -> {', '.join(computed)}"
            # Quoted as matchers, so that a placeholder such as <machine_id> reaches amtool as it is.
            step = _run(title, ["amtool", "config", "routes", "test", f"--config.file={am}",
                                *[str(Matcher(k, "=", v)) for k, v in sorted(labels.items())]])
            said = amtool_receivers(step.output)
            if step.ok and said != computed:
                step = Step(title, False, f"amtool routes it to {', '.join(said) or 'nothing'}; dumont-rules explain "
                                          f"computes {', '.join(computed)} (rules_src/amroute.py walks the route tree "
                                          f"otherwise than Alertmanager 0.25)")
            steps.append(step)
    return steps
