"""Checks across one environment's rendered files: what no single file can show is wrong."""
from __future__ import annotations

import yaml

from .model import Spec
from .promtool_tests import record_test_file


def crosscheck(spec: Spec, files: dict[str, str]) -> list[str]:
    """Gaps between the rendered files of `spec`: each one is a validation error."""
    errors = []
    where = f"{spec.env}/"
    am = yaml.safe_load(files["alertmanager/alertmanager.yml"])
    for receiver in am["receivers"]:
        if not any(receiver.get(key) for key in ("webhook_configs", "slack_configs", "email_configs")):
            errors.append(f"{where}alertmanager/alertmanager.yml: receiver {receiver['name']} notifies nobody")
    rules = {}
    for path, text in files.items():
        if path.startswith("prometheus/rules/"):
            groups = yaml.safe_load(text).get("groups") or []
            if not any(g.get("rules") for g in groups):
                errors.append(f"{where}{path}: empty rule file")
            for group in groups:
                for rule in group.get("rules", []):
                    rules.setdefault(rule.get("alert"), []).append(rule)
    for alert in spec.alerts:
        for rule in rules.get(alert.name, []):
            for key in ("summary", "description", "runbook_url"):
                if not rule.get("annotations", {}).get(key):
                    errors.append(f"{where}prometheus/rules/{alert.group}.yml: {alert.name} has no {key}")
        if alert.name not in rules:
            errors.append(f"{where}prometheus/rules: no rule for {alert.name}")
        if f"runbooks/{alert.name}.md" not in files:
            errors.append(f"{where}runbooks: no page for {alert.name}")
        if f"runbooks/{alert.name}.html" not in files:  # the receiver's /runbooks/<Alert>, where runbook_url points
            errors.append(f"{where}runbooks: no HTML page for {alert.name}")
        tests = files.get(f"prometheus/tests/{alert.name}.yml", "")
        if f"alertname: {alert.name}\n" not in tests:
            errors.append(f"{where}prometheus/tests: no test case for {alert.name}")
    for record in (r for group in spec.recording for r in group.records if r.test):
        if f"expr: {record.name}\n" not in files.get(f"prometheus/tests/{record_test_file(record.name)}", ""):
            errors.append(f"{where}prometheus/tests: no test case for recording rule {record.name}")
    return errors
