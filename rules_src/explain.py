"""`dumont-rules explain`: when and where an alert pages, from the spec and the rendered routing that is deployed.

The alert (its `for`, `keep_firing_for`, labels, runbook) and the intervals come from the Spec of the environment;
where it goes comes from the rendered `alertmanager/alertmanager.yml` and `receiver/channels.yml` (generated/<env>/,
or any rendered environment directory such as `make up`'s run/config/<env>/), read by rules_src.amroute as
Alertmanager 0.25 reads them. `make check` holds the receivers computed here to amtool's (tools.explain_tests).
"""
from __future__ import annotations

import argparse
import difflib
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from .amroute import Channel, InhibitRule, Route, Routing, RoutingError, group_key, load_routing, sends_resolved
from .model import Alert, Spec
from .spec import SPEC_DIR, environments, load
from .units import format_duration

DEFAULT_ENV = "prod"
DESCRIPTION = ("Explain when and where an alert pages: for each of its severities, the Alertmanager routes it takes "
               "(route keys from the root), the receivers and the channels each reaches, its group key, the time from "
               "the threshold crossing to the first notification (best and worst case), when it repeats, when its "
               "resolution is sent, what can inhibit it, and its runbook. Alert and intervals from rules_src; "
               "routing from the rendered alertmanager.yml and channels.yml, as deployed. Exit 2 on a bad input.")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# Matchers every non-empty value satisfies: a label shown as a placeholder cannot change their outcome.
_ANY_VALUE = {("=~", ".+"), ("=~", ".*"), ("!=", ""), ("!~", "")}


class ExplainError(ValueError):
    """A bad input of `dumont-rules explain`; the message names the flag, alert or file."""


def placeholder(name: str) -> str:
    """What stands for a label the alert carries from its series when no --label gives it."""
    return f"<{name}>"


@dataclass(frozen=True)
class Inputs:
    """What an explanation reads: the environment's spec, the rendered routing and the labels Prometheus adds."""

    spec: Spec
    routing: Routing
    external: dict[str, str]


def parse_labels(items: list[str] | None) -> dict[str, str]:
    """--label NAME=VALUE items as a dict; ExplainError names a malformed one."""
    labels: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep:
            raise ExplainError(f"--label {item!r}: expected NAME=VALUE, e.g. --label machine_id=gpu-7")
        if not _LABEL_NAME.match(name):
            raise ExplainError(f"--label {item!r}: {name!r} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)")
        if not value:
            raise ExplainError(f"--label {item!r}: give a value (Prometheus drops a label whose value is empty)")
        labels[name] = value
    return labels


def load_inputs(env: str, generated: Path, spec_dir: Path = SPEC_DIR) -> Inputs:
    """The Spec of `env` and the routing rendered in `generated`; ExplainError says which is missing or bad."""
    if env not in environments(spec_dir):
        raise ExplainError(f"--env {env}: no such environment (there are: {', '.join(environments(spec_dir))})")
    spec, errors = load(env, spec_dir)
    if spec is None or errors:
        first = str(errors[0]) if errors else "cannot be read"
        raise ExplainError(f"rules_src for {env} is not valid ({len(errors)} error(s); run `dumont-rules validate`): "
                           f"{first}")
    am_file = generated / "alertmanager" / "alertmanager.yml"
    channels_file = generated / "receiver" / "channels.yml"
    for path in (am_file, channels_file):
        if not path.is_file():
            raise ExplainError(f"{path}: not found (run `dumont-rules generate`, or give --generated with a rendered "
                               f"environment directory)")
    try:
        routing = load_routing(am_file, channels_file)
    except RoutingError as exc:
        raise ExplainError(str(exc)) from None
    except (AttributeError, TypeError, KeyError) as exc:  # a hand-edited file of the wrong shape somewhere
        raise ExplainError(f"{am_file} or {channels_file}: not a configuration of the rendered shape ({exc})") from None
    return Inputs(spec, routing, external_labels(generated, spec))


def external_labels(generated: Path, spec: Spec) -> dict[str, str]:
    """What Prometheus adds to every alert it sends: the rendered prometheus.yml's, else the spec's."""
    rendered = generated / "prometheus" / "prometheus.yml"
    try:
        glob = (yaml.safe_load(rendered.read_text(encoding="utf-8")) or {}).get("global") or {}
        return {str(k): str(v) for k, v in (glob.get("external_labels") or {}).items()}
    except (OSError, yaml.YAMLError, AttributeError):
        return dict(spec.external_labels)


def find_alert(spec: Spec, name: str) -> Alert:
    """The alert called `name`; ExplainError suggests the closest names otherwise."""
    names = [a.name for a in spec.alerts]
    if name in names:
        return spec.alerts[names.index(name)]
    folded = {n.lower(): n for n in names}
    close = ([folded[name.lower()]] if name.lower() in folded else
             difflib.get_close_matches(name, names, n=3, cutoff=0.6))
    hint = f" (did you mean {' or '.join(close)}?)" if close else f" (alerts: {', '.join(sorted(names))})"
    raise ExplainError(f"no alert {name!r} in {spec.env}{hint}")


def alert_labels(alert: Alert, severity: str, given: dict[str, str], external: dict[str, str]
                 ) -> tuple[dict[str, str], list[str]]:
    """The labels Alertmanager receives for `alert` at `severity`, and the carried ones shown as placeholders.

    Prometheus builds them as: the series' labels, overridden by the rule's, `alertname`, then the external
    labels wherever the alert has none of that name.
    """
    static = dict(alert.labels)
    for name in given:
        if name in ("alertname", "severity"):
            raise ExplainError(f"--label {name}=...: the rule sets {name}; give the alert's name, or --severity")
        if name in static:
            raise ExplainError(f"--label {name}=...: the rule sets {name} to {static[name]!r} itself")
    missing = [name for name in alert.carries if name not in given]
    labels = {name: placeholder(name) for name in missing}
    labels.update(given)
    labels.update(static)
    labels["alertname"] = alert.name
    labels["severity"] = severity
    for name, value in external.items():
        labels.setdefault(name, value)
    return labels, missing


def _for_of(alert: Alert, severity: str) -> float:
    return next((t.for_ for t in alert.tiers if t.severity == severity), alert.for_)


def _round_up(value: float, step: float) -> float:
    return math.ceil(value / step - 1e-9) * step if step > 0 else value


def repeat_every(repeat: float, interval: float) -> dict:
    """How often a group that fires unchanged is sent again: at the first flush (every group_interval) once
    repeat_interval has passed. On an exact multiple that flush races the notification log, whose timestamp is
    taken after the last send: Alertmanager 0.25 repeats then at repeat_interval or one group_interval later."""
    best = _round_up(repeat, interval)
    exact = interval > 0 and abs(repeat / interval - round(repeat / interval)) < 1e-9
    return {"best": best, "worst": best + interval if exact else best}


def timing(spec: Spec, alert: Alert, severity: str, route: Route) -> dict:
    """Seconds from the threshold crossing to the first notification, its repeats and the resolution, on `route`."""
    scrape = spec.scrape_interval
    evaluation = spec.interval_of(alert.group) or spec.evaluation_interval
    for_ = _for_of(alert, severity)
    # The sample that crosses may come just after a scrape, the rule evaluates it up to an interval later, `for`
    # is checked at evaluations only, and the firing alert reaches Alertmanager after the evaluation that fires it.
    pipeline = scrape + evaluation + _round_up(for_, evaluation) + evaluation
    return {
        "first_notification": {"best": for_ + route.group_wait, "worst": pipeline + route.group_wait},
        "joining_group": {"best": for_, "worst": pipeline + route.group_interval},
        "repeat_every": repeat_every(route.repeat_interval, route.group_interval),
        "resolved": {"best": alert.keep_firing_for,
                     "worst": alert.keep_firing_for + scrape + evaluation + route.group_interval},
    }


def _reach(routing: Routing, receiver: str) -> tuple[list[Channel], list[dict]]:
    """The receiver's channels an Alertmanager receiver posts to (merged over the HA pair), and its own integrations."""
    channels: dict[str, Channel] = {}
    own: list[dict] = []
    for kind, config in routing.integrations.get(receiver, []):
        channel = routing.channel_of(kind, config)
        if channel is None:
            item = {"kind": kind, "detail": _detail(kind, config), "send_resolved": sends_resolved(kind, config)}
            if item not in own:
                own.append(item)
        elif channel.name in channels:
            before = channels[channel.name]
            channels[channel.name] = Channel(channel.name, channel.kind, before.send_resolved or channel.send_resolved,
                                             channel.thread)
        else:
            channels[channel.name] = channel
    return list(channels.values()), own


def _detail(kind: str, config: dict) -> str:
    """What an integration of Alertmanager's own addresses, without its secrets."""
    if kind == "slack":
        return f"channel {config.get('channel', '(its webhook default)')}"
    if kind == "email":
        return f"to {config.get('to', '?')} via {config.get('smarthost', '(global smarthost)')}"
    if kind == "webhook":
        return f"webhook to {urlsplit(str(config.get('url', ''))).hostname or '(url_file)'}"
    return kind


def channel_kind(channel: Channel) -> str:
    """How people read a receiver channel's type."""
    if channel.kind == "slack":
        return "slack, bot token: replies in the alert's thread" if channel.thread else "slack, incoming webhook"
    if channel.kind == "heartbeat":
        return "heartbeat: the dead man's switch notes the time, nothing is sent"
    return channel.kind or "not in the receiver's channels.yml"


def _inhibitions(inputs: Inputs, rules: list[InhibitRule], target: dict[str, str],
                 placeholders: list[str]) -> list[dict]:
    """Each inhibit rule the alert is a target of, with the spec's alerts (and severities) that can be its source."""
    out = []
    for rule in rules:
        sources = []
        for alert in inputs.spec.alerts:
            for severity in alert.severities:
                source, source_placeholders = alert_labels(alert, severity, {}, inputs.external)
                if rule.sources(source) and not (rule.sources(target) and rule.targets(source)) and all(
                        may_equal(name, target, source, placeholders, source_placeholders) for name in rule.equal):
                    sources.append({"alert": alert.name, "severity": severity})
        out.append({"rule": rule.where, "source": [str(m) for m in rule.source],
                    "target": [str(m) for m in rule.target], "equal": list(rule.equal), "alerts": sources})
    return out


def may_equal(name: str, target: dict, source: dict, target_unknown: list[str], source_unknown: list[str]) -> bool:
    """Whether a source and a target alert can agree on label `name` (a missing label equals an empty one)."""
    have_target, have_source = bool(target.get(name)), bool(source.get(name))
    if not (have_target and have_source):
        return have_target == have_source
    return name in target_unknown or name in source_unknown or target[name] == source[name]


def _key_shown(key: str, placeholders: list[str]) -> str:
    for name in placeholders:  # a placeholder is no value Alertmanager would quote
        key = key.replace(f'{name}="{placeholder(name)}"', f"{name}={placeholder(name)}")
    return key


def _depends(routing: Routing, placeholders: list[str]) -> list[str]:
    """Where a label shown as a placeholder could change the outcome: a matcher that reads its value."""
    notes = []
    where = [(route.where, route.matchers) for route in routing.root.walk()]
    where += [(f"{rule.where} (target)", rule.target) for rule in routing.inhibit_rules]
    for place, matchers in where:
        for m in matchers:
            if m.name in placeholders and (m.op, m.value) not in _ANY_VALUE:
                notes.append(f"{place} ({m}) reads {m.name}, which is not given: what is shown holds for a value "
                             f"it does not name; give --label {m.name}=VALUE")
    return notes


def explain_severity(inputs: Inputs, alert: Alert, severity: str, given: dict[str, str]) -> dict:
    """The explanation of one severity of `alert`, as the JSON output holds it."""
    spec, routing = inputs.spec, inputs.routing
    labels, placeholders = alert_labels(alert, severity, given, inputs.external)
    routes = []
    for path in routing.root.match_paths(labels):
        route = path[-1]
        channels, own = _reach(routing, route.receiver)
        routes.append({
            "where": route.where, "key": route.key, "receiver": route.receiver, "continue": route.cont,
            "path": [{"where": node.where, "key": node.key, "matchers": [str(m) for m in node.matchers],
                      "receiver": node.receiver, "continue": node.cont} for node in path],
            "group_by": list(route.group_by),
            "group_key": _key_shown(group_key(route, labels), placeholders),
            "group_wait": route.group_wait, "group_interval": route.group_interval,
            "repeat_interval": route.repeat_interval,
            "channels": [{"name": c.name, "kind": c.kind, "thread": c.thread, "send_resolved": c.send_resolved,
                          "via": "receiver"} for c in channels],
            "integrations": [{**item, "via": "alertmanager"} for item in own],
            **timing(spec, alert, severity, route),
        })
    return {
        "severity": severity,
        "labels": dict(sorted(labels.items())),
        "placeholders": placeholders,
        "for": _for_of(alert, severity),
        "keep_firing_for": alert.keep_firing_for,
        "scrape_interval": spec.scrape_interval,
        "evaluation_interval": spec.interval_of(alert.group) or spec.evaluation_interval,
        "receivers": [route["receiver"] for route in routes],  # one per route taken, as amtool prints them
        "routes": routes,
        "inhibited_by": _inhibitions(inputs, routing.inhibitors(labels), labels, placeholders),
        "notes": _depends(routing, placeholders),
    }


def explain(inputs: Inputs, name: str, given: dict[str, str], severity: str | None = None) -> dict:
    """The whole explanation of alert `name` (every severity, or `severity`), as the JSON output holds it."""
    alert = find_alert(inputs.spec, name)
    if severity is not None and severity not in alert.severities:
        raise ExplainError(f"--severity {severity}: {alert.name} fires with {', '.join(alert.severities)} only")
    return {
        "alert": alert.name,
        "env": inputs.spec.env,
        "alertmanager_file": str(inputs.routing.alertmanager_file),
        "channels_file": str(inputs.routing.channels_file),
        "runbook_url": alert.runbook_url,
        "severities": [explain_severity(inputs, alert, s, given) for s in alert.severities
                       if severity is None or s == severity],
    }


def explain_all(inputs: Inputs) -> dict:
    """One row per alert and severity: where it goes and how soon, as the JSON output of --all holds it."""
    rows = []
    for alert in inputs.spec.alerts:
        for severity in alert.severities:
            one = explain_severity(inputs, alert, severity, {})
            routes = one["routes"]
            rows.append({
                "alert": alert.name, "severity": severity, "labels": one["labels"], "receivers": one["receivers"],
                "channels": list(dict.fromkeys(c["name"] for r in routes for c in r["channels"])),
                "integrations": list(dict.fromkeys(f"{i['kind']} ({i['detail']})" for r in routes
                                                   for i in r["integrations"])),
                "group_wait": max(r["group_wait"] for r in routes),
                "group_interval": max(r["group_interval"] for r in routes),
                "repeat_every": {"best": min(r["repeat_every"]["best"] for r in routes),
                                 "worst": max(r["repeat_every"]["worst"] for r in routes)},
                "first_notification": {"best": min(r["first_notification"]["best"] for r in routes),
                                       "worst": max(r["first_notification"]["worst"] for r in routes)},
            })
    return {"env": inputs.spec.env, "alertmanager_file": str(inputs.routing.alertmanager_file),
            "channels_file": str(inputs.routing.channels_file), "alerts": rows}


# Text output


def _d(seconds: float) -> str:
    return format_duration(seconds)


def _span(best_worst: dict, between: str = " to ") -> str:
    best, worst = best_worst["best"], best_worst["worst"]
    return _d(best) if best == worst else f"{_d(best)}{between}{_d(worst)}"


def _shown(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path


def _table(rows: list[list[str]], indent: str = "") -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def render_text(explained: dict) -> str:
    """The explanation of one alert as people read it: a block per severity, a few aligned lines per section."""
    out = [f"{explained['alert']} in {explained['env']}",
           f"routing read from {_shown(explained['alertmanager_file'])} and {_shown(explained['channels_file'])}"]
    for one in explained["severities"]:
        out += [""] + _severity_text(explained, one)
    return "\n".join(out) + "\n"


def _wrapped(items: list[str], width: int = 88) -> list[str]:
    lines = [""]
    for item in items:
        if lines[-1] and len(lines[-1]) + len(item) + 2 > width:
            lines[-1] += ","
            lines.append("")
        lines[-1] += (", " if lines[-1] else "") + item
    return lines


def _severity_text(explained: dict, one: dict) -> list[str]:
    pad = 16
    lines = [f"severity {one['severity']}"]

    def section(title: str, body: list[str]) -> None:
        for i, text in enumerate(body):
            lines.append(f"  {(title if i == 0 else '').ljust(pad)}{text}".rstrip())

    labels = [f"{k}={v}" if k in one["placeholders"] else f'{k}="{v}"' for k, v in one["labels"].items()]
    section("labels", _wrapped(labels) + (["<name>: carried from the series, not given (--label NAME=VALUE)"]
                                          if one["placeholders"] else []))
    evaluation, scrape = _d(one["evaluation_interval"]), _d(one["scrape_interval"])
    for route in one["routes"]:
        path = []
        for depth, node in enumerate(route["path"]):
            where = "root" if depth == 0 else node["where"]
            note = "; continue: the next routes are tried too" if node["continue"] else ""
            path.append([("  " * depth) + ("└ " if depth else "") + node["key"],
                         f"{where}, receiver {node['receiver']}{note}"])
        section("route", _table(path))
        section("receiver", [f"{route['receiver']} (Alertmanager's)"])
        reach = [[c["name"], channel_kind(_channel(c)), "via the receiver"
                  + ("" if c["send_resolved"] else "; no resolution sent")] for c in route["channels"]]
        reach += [[i["kind"], i["detail"], "Alertmanager's own, around the receiver"
                   + ("" if i["send_resolved"] else "; no resolution sent")] for i in route["integrations"]]
        section("reaches", _table(reach) if reach else ["nothing: the receiver has no integration"])
        grouped = "every label" if "..." in route["group_by"] else ", ".join(route["group_by"]) or "nothing"
        section("group key", [route["group_key"], f"(group_by: {grouped})"])
        wait, interval = _d(route["group_wait"]), _d(route["group_interval"])
        section("timings", [f"group_wait {wait}, group_interval {interval}, "
                            f"repeat_interval {_d(route['repeat_interval'])}"])
        first, join, resolved = route["first_notification"], route["joining_group"], route["resolved"]
        stepped = _d(_round_up(one["for"], one["evaluation_interval"]))
        section("first notified", [
            f"{_d(first['best'])} to {_d(first['worst'])} after the value crosses the threshold",
            f"best:  for {_d(one['for'])} + group_wait {wait}",
            f"worst: scrape {scrape} + evaluation {evaluation} + for {stepped} (in evaluation steps) + evaluation "
            f"{evaluation} + group_wait {wait}",
            f"joining a group that has notified already: {_d(join['best'])} to {_d(join['worst'])},",
            f"at the group's next flush (group_interval {interval} in place of group_wait)"])
        section("repeats", [f"every {_span(route['repeat_every'])} while it fires (repeat_interval "
                            f"{_d(route['repeat_interval'])}, at a flush: every {interval})"])
        quiet = [c["name"] for c in route["channels"] if not c["send_resolved"]] + [
            i["kind"] for i in route["integrations"] if not i["send_resolved"]]
        section("resolved", [
            f"{_d(resolved['best'])} to {_d(resolved['worst'])} after the value is back: keep_firing_for "
            f"{_d(one['keep_firing_for'])}",
            f"+ up to scrape {scrape} + evaluation {evaluation} + group_interval {interval}"]
            + ([f"not sent to {', '.join(quiet)} (send_resolved: false)"] if quiet else []))
    inhibited = []
    for rule in one["inhibited_by"]:
        who = (", ".join(f"{a['alert']} ({a['severity']})" for a in rule["alerts"])
               or "no alert of the spec can be its source")
        inhibited.append(f"{rule['rule']}, equal on {', '.join(rule['equal']) or 'nothing'}: {who}")
    section("inhibited by", inhibited or ["nothing: no inhibit rule targets it"])
    section("runbook", [explained["runbook_url"] or "(none)"])
    for note in one["notes"]:
        section("note", [note])
    return lines


def _channel(item: dict) -> Channel:
    return Channel(item["name"], item["kind"], item["send_resolved"], item["thread"])


def render_all_text(table: dict) -> str:
    """The --all table: one line per alert and severity."""
    rows = [["ALERT", "SEVERITY", "RECEIVERS", "CHANNELS", "WAIT", "INTERVAL", "REPEAT", "FIRST BEST", "FIRST WORST"]]
    for row in table["alerts"]:
        reached = row["channels"] + [f"am:{i.split(' ')[0]}" for i in row["integrations"]]
        rows.append([row["alert"], row["severity"], ",".join(row["receivers"]), ",".join(reached) or "-",
                     _d(row["group_wait"]), _d(row["group_interval"]), _span(row["repeat_every"], "-"),
                     _d(row["first_notification"]["best"]), _d(row["first_notification"]["worst"])])
    head = [f"{table['env']}: routing read from {_shown(table['alertmanager_file'])} and "
            f"{_shown(table['channels_file'])}",
            "am:KIND: an integration of Alertmanager's own, around the receiver",
            "REPEAT: repeat_interval rounded up to group_interval (on an exact multiple, up to one more); FIRST: "
            "from the threshold crossing to the first notification of a new group"]
    return "\n".join(head + [""] + _table(rows)) + "\n"


# Command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `dumont-rules explain`."""
    parser.add_argument("alert", nargs="?", metavar="ALERT", help="the alert to explain")
    parser.add_argument("--all", action="store_true", help="a table of every alert and severity instead")
    parser.add_argument("--label", action="append", metavar="NAME=VALUE",
                        help="a label of the alert's series, e.g. machine_id=gpu-7 (repeatable; labels not given "
                             "are shown as <name>)")
    parser.add_argument("--severity", metavar="NAME", help="this severity only (default: every one the alert has)")
    parser.add_argument("--env", metavar="ENV",
                        help=f"the environment (default: the --generated directory's name when it is one, else "
                             f"{DEFAULT_ENV})")
    parser.add_argument("--generated", type=Path, metavar="DIR",
                        help="a rendered environment directory to read the routing from, e.g. make up's "
                             "run/config/dev (default: generated/<env>/)")
    parser.add_argument("--json", action="store_true", help="print JSON (stable keys, durations in seconds)")


def run(args: argparse.Namespace, generated_root: Path, out=sys.stdout) -> int:
    """Run `dumont-rules explain`; exit 0, or 2 with one error line."""
    try:
        spec_dir = getattr(args, "spec", SPEC_DIR)
        if args.all and args.alert:
            raise ExplainError(f"give an ALERT or --all, not both ({args.alert} and --all)")
        if not args.all and not args.alert:
            raise ExplainError("give an ALERT to explain, or --all for a table of every alert")
        if args.all and (args.label or args.severity):
            raise ExplainError("--label and --severity go with one ALERT, not with --all")
        given = parse_labels(args.label)
        env = args.env or (args.generated.resolve().name if args.generated is not None
                           and args.generated.resolve().name in environments(spec_dir) else DEFAULT_ENV)
        inputs = load_inputs(env, args.generated or generated_root / env, spec_dir)
        result = explain_all(inputs) if args.all else explain(inputs, args.alert, given, args.severity)
    except ExplainError as exc:
        # One line, whatever the cause: a YAML parser's message spans several.
        print(f"dumont-rules explain: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    if args.json:
        out.write(json.dumps(result, indent=2) + "\n")
    else:
        out.write(render_all_text(result) if args.all else render_text(result))
    return 0
