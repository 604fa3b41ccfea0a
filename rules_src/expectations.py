"""What the generated promtool tests expect of an alert: the labels and annotations of a firing alert, and
which of its tiers fire for a series whose value runs along a given trajectory."""
from __future__ import annotations

from . import gotemplate, promql, units
from .model import Alert


def duration(seconds: float) -> str:
    """Seconds as promtool reads a duration."""
    return units.format_duration(seconds)


def selector(match: dict) -> str:
    """`{machine_type="cpu"}` for an override's labels."""
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(match.items())) + "}"


class Tiers:
    """Which tiers of an alert fire for a series whose value runs along a trajectory, as Prometheus decides it:
    a tier's condition holds while the value is beyond its threshold and no more severe tier fires."""

    def __init__(self, alert: Alert, thresholds: tuple[float, ...], interval: float):
        self.alert, self.thresholds, self.interval = alert, thresholds, interval

    def firing(self, values: list[float | None], at: float) -> list[int]:
        """Indexes of the tiers firing at `at` (seconds)."""
        active: dict[int, int] = {}
        firing: list[int] = []
        for k in range(int(round(at / self.interval)) + 1):
            firing = []
            for index, tier in enumerate(self.alert.tiers):
                value = values[k] if k < len(values) else values[-1]
                holds = value is not None and units.compare(value, self.alert.op, self.thresholds[index]) \
                    and not firing
                if not holds:
                    active.pop(index, None)
                    continue
                active.setdefault(index, k)
                if (k - active[index]) * self.interval >= tier.for_:
                    firing.append(index)
        return firing

    def check(self, at: float, series_values: list[tuple[dict, list]]) -> dict:
        """An alert_rule_test entry at `at`: every (alert labels, trajectory) with the tier it fires, if any."""
        expected = []
        for labels, values in series_values:
            k = min(int(round(at / self.interval)), len(values) - 1)
            for index in self.firing(values, at):
                tier = self.alert.tiers[index]
                expected.append(expected_alert(self.alert, labels, values[k],
                                               self.thresholds[index], tier.expected_severity,
                                               labels_override(self.alert, labels)))
        return {"eval_time": duration(at), "alertname": self.alert.name, "exp_alerts": expected}


def labels_override(alert: Alert, labels: dict) -> str:
    """The override whose matchers the series' labels meet first, or "" (the default threshold)."""
    return next((o.name for o in alert.overrides if all(labels.get(k) == v for k, v in o.match)), "")


def expected_alert(alert: Alert, labels: dict, value: float, threshold: float | None, severity: str,
                   override: str = "") -> dict:
    """An exp_alerts entry: the series' labels with the rule's, and every annotation as Prometheus expands it."""
    humane = units.humane(alert.unit, threshold) if threshold is not None else ""
    exp_labels = {**labels, "severity": severity, **dict(alert.labels)}
    if override:
        exp_labels["override"] = override
    texts = (("summary", alert.summary), ("description", alert.description)) + alert.annotations
    annotations = {key: gotemplate.expand(promql.substitute(text, {"threshold": humane})[0], labels, value)
                   for key, text in texts}
    return {"exp_labels": exp_labels, "exp_annotations": {**annotations, "runbook_url": alert.runbook_url}}


