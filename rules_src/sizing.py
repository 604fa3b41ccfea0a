"""The largest webhook post Alertmanager can send the receiver for the spec's alerts, checked against the
receiver's body limit, so that no group of the catalogue's alerts is ever cut.

The bound holds for label values as the exporter takes them (exporter.catalog.LABEL_VALUE_MAX_BYTES,
nothing JSON escapes) and for values of up to 1e18 in magnitude. A post is built as Alertmanager builds
it (notify/webhook: version 4, Go's compact JSON, which writes < > & as six-byte escapes), with every
label at its longest, and measured; the receiver still keeps the first alerts of a larger post (from a
rule outside this spec), so that bound is about never cutting, not about never losing.
"""
from __future__ import annotations

import json
import urllib.parse

from exporter import catalog

from . import gotemplate, promql
from .model import Alert, Spec
from .render import alert_rules

LONGEST = "x" * catalog.LABEL_VALUE_MAX_BYTES  # the longest label value the exporter takes
LONGEST_VALUE = -1.2345678901234567e18  # the longest `$value` the bound allows for
TIME = "2006-01-02T15:04:05.999999999+07:00"  # RFC 3339 with nanoseconds: the longest time Go writes
FINGERPRINT = "f" * 16
URL = "http://" + "h" * 240 + ":65535"  # an external URL of Prometheus or Alertmanager: 256 bytes allowed
_SCRAPE = ("job", "instance")


def go_json(value) -> int:
    """Bytes of `value` as Go's encoding/json writes it (compact, UTF-8, < > & escaped as \\u003c ...)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return len(text.encode()) + 5 * sum(text.count(ch) for ch in "<>&")


def _variable_labels(alert: Alert) -> set[str]:
    """Labels whose values come from the series: what the alert carries, what its input has, and the scrape's."""
    labels = set(alert.carries) | set(_SCRAPE)
    if alert.driver is not None:
        labels |= set(alert.driver.labels)
    if alert.shape == "vanished":
        family = catalog.BY_NAME.get(alert.value.replace("${selector}", ""))
        labels |= set(family.labels if family else ())
    return labels


def worst_alert(spec: Spec, alert: Alert) -> dict:
    """The largest alert object `alert` can put in a post: its longest rule with every label at its longest."""
    variable = {name: LONGEST for name in sorted(_variable_labels(alert))}
    candidates = []
    for rule in alert_rules(alert):
        labels = {**variable, **dict(spec.external_labels), **rule["labels"], "alertname": alert.name}
        annotations = {key: gotemplate.expand(text, variable, LONGEST_VALUE) for key, text in rule["annotations"].items()}
        link = URL + "/graph?g0.expr=" + urllib.parse.quote_plus(rule["expr"]) + "&g0.tab=1"
        candidates.append({"status": "resolved", "labels": labels, "annotations": annotations, "startsAt": TIME,
                           "endsAt": TIME, "generatorURL": link, "fingerprint": FINGERPRINT})
    return max(candidates, key=go_json)


def worst_post(spec: Spec, alerts_in_post: int) -> int:
    """Bytes of the largest post of `alerts_in_post` alerts: each the largest any alert of the spec can be."""
    largest = max((worst_alert(spec, a) for a in spec.alerts), key=go_json)
    group = {name: LONGEST for name in spec.routing["group_by"]}
    routes = max((len(",".join(r.matchers)) for r in spec.routes), default=0)
    post = {"receiver": "r" * 64, "status": "resolved", "alerts": [],
            "groupLabels": group, "commonLabels": largest["labels"], "commonAnnotations": largest["annotations"],
            "externalURL": URL, "version": "4",
            "groupKey": "{}/{" + "m" * routes + "}:" + promql.render_series("", group), "truncatedAlerts": 2 ** 63 - 1}
    return go_json(post) + alerts_in_post * (go_json(largest) + 1)


def check_post_size(c, spec: Spec) -> None:
    """`routing.max_alerts` alerts at their largest fit `routing.max_body_bytes` (the receiver's limit)."""
    limit, count = spec.routing.get("max_body_bytes"), spec.routing.get("max_alerts")
    if limit is None or count is None:
        return
    size = worst_post(spec, count)
    if size > limit:
        each = go_json(max((worst_alert(spec, a) for a in spec.alerts), key=go_json)) + 1
        fits = max(0, (limit - (size - count * each)) // each)
        c.fail(("routing", "max_alerts"), f"{count} alerts at their largest make a post of {size} bytes in "
                                          f"{spec.env}, over max_body_bytes ({limit}): at most {fits} fit")
