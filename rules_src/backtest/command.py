"""`dumont-rules backtest`: the command line, from arguments to the report."""
from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path

from .. import promql, units
from ..amroute import Routing, RoutingError, load_routing
from ..explain import alert_labels, external_labels, may_equal
from ..model import Alert, Spec
from ..render import alert_rules
from ..spec import load
from .fetch import BacktestError, Grid, Prometheus, stderr_progress
from .notify import notifications
from .plan import Variant, inline, parse_setting, rules_of, variants
from .replay import replay
from .report import Outcome, report_json, report_text


def add_parser(sub, default_generated: Path) -> None:
    """The `backtest` subcommand's arguments."""
    p = sub.add_parser("backtest", help="replay alerts over real history: how often each would have paged",
                       description=__doc__)
    p.set_defaults(func=lambda args: run(args, default_generated))
    p.add_argument("--prometheus", required=True, help="base URL of the Prometheus holding the history")
    p.add_argument("--env", default="prod", help="the environment whose rules and routing to replay (default prod)")
    p.add_argument("--range", default=None, help="how far back from --end (default 7d)")
    p.add_argument("--start", help="RFC 3339 or Unix time; with --end instead of --range")
    p.add_argument("--end", help="RFC 3339 or Unix time (default now)")
    p.add_argument("--alert", action="append", default=[], help="an alert to replay (repeatable; default all)")
    p.add_argument("--set", action="append", default=[], dest="settings", metavar="ALERT[.SEVERITY].FIELD=VALUE",
                   help="replay a changed threshold, for or keep_firing_for beside the current one (repeatable);"
                        " ALERT[.SEVERITY].override.NAME.threshold=VALUE changes an override's threshold")
    p.add_argument("--generated", type=Path, help="the rendered environment to read routing from "
                                                  "(default generated/<env>)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args, default_generated: Path) -> int:
    """Run the backtest; 2 with one line naming the problem when it cannot."""
    try:
        outcomes, meta = backtest(args, default_generated)
    except (BacktestError, RoutingError) as exc:
        print(f"dumont-rules backtest: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report_json(outcomes, meta), indent=1) if args.json else report_text(outcomes, meta), end="")
    return 0


def _window(args) -> tuple[float, float]:
    end = _time("--end", args.end) if args.end else time.time()
    if args.start:
        if args.range:
            raise BacktestError("give --range or --start, not both")
        start = _time("--start", args.start)
    else:
        span = units.parse_duration(args.range or "7d")
        if not span:
            raise BacktestError(f"--range {args.range}: expected a duration such as 7d or 12h")
        start = end - span
    if start >= end:
        raise BacktestError("the range is empty: --start must be before --end")
    return start, end


def _time(flag: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(text)
        if moment.tzinfo is None:
            raise ValueError("no offset")
        return moment.timestamp()
    except ValueError:
        raise BacktestError(f"{flag} {text}: expected RFC 3339 (2026-12-01T00:00:00Z) or Unix seconds") from None


def backtest(args, default_generated: Path) -> tuple[list[list[Outcome]], dict]:
    """Replay the chosen alerts and variants; the outcomes per alert, and what the report says of the run."""
    spec, errors = load(args.env)
    if spec is None or errors:
        raise BacktestError(f"--env {args.env}: " + ("; ".join(str(e) for e in errors[:3]) or "cannot load"))
    generated = args.generated or default_generated / args.env
    routing = load_routing(generated / "alertmanager" / "alertmanager.yml", generated / "receiver" / "channels.yml")
    settings = [parse_setting(text, spec) for text in args.settings]
    chosen = variants(spec, args.alert, settings)
    start, end = _window(args)
    progress = stderr_progress if sys.stderr.isatty() else None
    prometheus = Prometheus(args.prometheus, progress=progress)
    inhibiting = _inhibiting(spec, routing, [group[0].alert for group in chosen], external_labels(generated, spec))
    records = {r.name: r.expr for g in spec.recording for r in g.records}
    missing = _records_without_history(prometheus, [group[0].alert for group in chosen] + inhibiting, records, start)

    def grid_of(alert: Alert) -> Grid:
        return Grid(start, end, spec.interval_of(alert.group) or spec.evaluation_interval)
    outcomes = [[_replay_variant(prometheus, variant, grid_of(variant.alert), missing) for variant in group]
                for group in chosen]
    # Not reported, but replayed as they are: what they fire mutes the chosen alerts' notifications.
    muting = [_replay_variant(prometheus, Variant(alert, "current", rules_of(alert)), grid_of(alert), missing)
              for alert in inhibiting]
    if progress:
        print("\r\033[K", end="", file=sys.stderr)
    # Alerts that read no series (Watchdog's vector(1)) "have data" anywhere: they cannot tell an empty range.
    reading = [outcome for outcome, group in zip(outcomes, chosen) if _series_read(group[0], missing)]
    if reading and not any(group[0].has_data for group in reading):
        raise BacktestError(f"no data between {start:.0f} and {end:.0f}: none of {len(reading)} alert(s) found"
                            f" a series of what it reads at {args.prometheus}")
    current = [e for group in outcomes for e in group[0].episodes] + [e for outcome in muting for e in outcome.episodes]
    for group in outcomes:
        for outcome in group:
            sources = [e for e in current if dict(e.labels)["alertname"] != outcome.alert] + outcome.episodes
            outcome.sent = notifications(outcome.episodes, sources, routing, end)
    meta = {"env": args.env, "prometheus": args.prometheus,
            "range": {"start": start, "end": end, "step_seconds": spec.evaluation_interval},
            "queries": prometheus.queries, "prometheus_seconds": round(prometheus.seconds, 3)}
    return outcomes, meta


def _inhibiting(spec: Spec, routing: Routing, chosen: list[Alert], external: dict[str, str]) -> list[Alert]:
    """The spec's alerts not chosen that an inhibit rule lets mute a chosen one: on its source side while a
    chosen one is on its target side, the two able to agree on its `equal` labels (a label carried from the
    series agreeing with any value)."""
    def labelled(alert: Alert) -> list[tuple[dict[str, str], list[str]]]:
        return [alert_labels(alert, severity, {}, external) for severity in alert.severities]
    targets = [one for alert in chosen for one in labelled(alert)]

    def mutes(alert: Alert) -> bool:
        return any(rule.sources(source) and rule.targets(target) and all(
            may_equal(name, target, source, target_carried, source_carried) for name in rule.equal)
            for rule in routing.inhibit_rules for source, source_carried in labelled(alert)
            for target, target_carried in targets)
    names = {a.name for a in chosen}
    return [alert for alert in spec.alerts if alert.name not in names and mutes(alert)]


def _records_without_history(prometheus: Prometheus, alerts: list[Alert], records: dict[str, str],
                             start: float) -> dict:
    """The recording rules `alerts` read with no sample at the range's start, by name: those the replay inlines."""
    read = {name for a in alerts for rule in alert_rules(a) for name in promql.names_read(rule["expr"])[1]}
    missing = {}
    for name in sorted(read & set(records)):
        if not prometheus.instant(f"count({name})", start, f"recording rule {name}"):
            missing[name] = records[name]
    return missing


def _replay_variant(prometheus: Prometheus, variant: Variant, grid: Grid, missing: dict[str, str]) -> Outcome:
    present, inlined = [], set()
    for rule in variant.rules:
        expr = rule.expr
        used = promql.names_read(expr)[1] & set(missing)
        if used:
            expr = inline(expr, missing, grid.step)
            inlined |= used
        present.append(prometheus.series_over(expr, grid, f"{variant.alert.name} ({variant.name}): {expr}"))
    episodes = replay(variant.rules, present, grid)
    has_data = bool(episodes) or _has_data(prometheus, variant, grid, missing)
    return Outcome(variant.alert.name, variant.name, episodes, [], grid.end, has_data, sorted(inlined))


def _series_read(variant: Variant, missing: dict[str, str]) -> list[str]:
    """The series names the alert's rules read, a recording rule without history counted as what it reads;
    none for a fixed alert, whose own expression (vector(1), absent()) has a value without data."""
    if variant.alert.shape == "fixed":
        return []
    names: set[str] = set()
    exprs = [rule.expr for rule in variant.rules]
    seen: set[str] = set()
    while exprs:
        raw, records = promql.names_read(exprs.pop())
        names |= raw
        for record in records - seen:
            seen.add(record)
            if record in missing:
                exprs.append(missing[record])
            else:
                names.add(record)
    return sorted(names)


def _has_data(prometheus: Prometheus, variant: Variant, grid: Grid, missing: dict[str, str]) -> bool:
    """Whether any series the alert reads exists in the range (checked at a hundred points, not every sample)."""
    names = _series_read(variant, missing)
    if not names:
        return True
    sparse = Grid(grid.start, grid.end, max(grid.step, (grid.end - grid.start) / 100))
    probe = " or ".join(f"count({name})" for name in names)
    return bool(prometheus.series_over(probe, sparse, f"{variant.alert.name}: data in range: {probe}"))

