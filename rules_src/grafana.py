"""The Grafana dashboard of one environment (grafana/dumont-fleet.json): the receiver's /dashboard figures as
panels over the recording rules, every panel's PromQL checked against the spec as the rules' own is."""
from __future__ import annotations

import json
import re

from exporter import catalog

from . import promql, units
from .model import Spec

PATH = "grafana/dumont-fleet.json"
SCHEMA_VERSION = 36  # Grafana 9.x; newer versions migrate it on import
# Every panel and query names the template variable, never a datasource uid: the uid differs per Grafana.
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
TILE = "category:dumont_savings_usd:increase1h"
ROLLING_DAY = "category:dumont_savings_usd:increase1d"
_UID_MAX = 40  # Grafana refuses longer dashboard uids


class DashboardError(ValueError):
    """A panel reads a metric or recording rule the spec lacks, or reads a tile as an instant vector."""


def _target(expr: str, legend: str = "", instant: bool = False, table: bool = False) -> dict:
    return {"datasource": DATASOURCE, "editorMode": "code", "expr": expr, "legendFormat": legend,
            "instant": instant, "range": not instant, "format": "table" if table else "time_series"}


def _panel(kind: str, title: str, description: str, grid: tuple[int, int, int, int], targets: list[dict],
           unit: str, defaults: dict | None = None, overrides: list[dict] | None = None, **extra) -> dict:
    x, y, w, h = grid
    for index, target in enumerate(targets):
        target["refId"] = chr(ord("A") + index)
    return {"type": kind, "title": title, "description": description, "datasource": DATASOURCE,
            "gridPos": {"x": x, "y": y, "w": w, "h": h}, "targets": targets,
            "fieldConfig": {"defaults": {"unit": unit, **(defaults or {})}, "overrides": overrides or []}, **extra}


_STAT_OPTIONS = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                 "textMode": "value_and_name", "colorMode": "none", "graphMode": "none",
                 "justifyMode": "auto", "orientation": "auto"}
_LEGEND = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
           "tooltip": {"mode": "multi", "sort": "none"}}
_BARS = {"drawStyle": "bars", "fillOpacity": 80, "lineWidth": 1, "stacking": {"group": "A", "mode": "normal"}}
# Red only at 0 (down): any degraded level shows, however slight.
_HEALTH = {"mode": "absolute", "steps": [{"color": "red", "value": None}, {"color": "orange", "value": 0.001},
                                         {"color": "green", "value": 1}]}


def _period(title: str, time_from: str, x: int) -> dict:
    """A calendar period's savings by category and in total, from the hourly tiles it holds."""
    # $__range spans the panel's relative time (now/d: local midnight to now), so the sum holds the tiles
    # stamped within the period. Each tile holds the hour before its stamp: the figure starts up to an hour
    # before the period and leaves out the part-hour since the last tile (the receiver's /dashboard adds the
    # raw counter at those edges; Grafana cannot know where the tiles' hours fall).
    summed = f"sum_over_time({TILE}[$__range])"
    return _panel("stat", title, "Money saved in the period, by category and in total, from the hourly tiles "
                                 f"({TILE}); accurate to the hour at its edges.", (x, 0, 6, 5),
                  [_target(f"sum by (category) ({summed})", "{{category}}", instant=True),
                   _target(f"sum({summed})", "total", instant=True)],
                  "currencyUSD", options=_STAT_OPTIONS, timeFrom=time_from)


def _bars(title: str, description: str, window: str, time_from: str, x: int) -> dict:
    """Savings per `window`, stacked by category: each bar adds up the tiles of the `window` before it."""
    # The step is `window` too, so the bars tile time; Grafana aligns a range query's steps to multiples of the
    # step since the epoch, so a bar is a UTC day (or a 30-day stretch), not a day of the browser's zone.
    return _panel("timeseries", title, description, (x, 5, 12, 8),
                  [_target(f"sum by (category) (sum_over_time({TILE}[{window}]))", "{{category}}")],
                  "currencyUSD", {"custom": _BARS}, options=_LEGEND, interval=window, timeFrom=time_from)


# One row per machine: each query keeps machine_id alone, so Grafana's merge joins the seven into one row
# (job, instance, mount and provider would split it); a machine's fullest mount stands for its disks.
_MACHINE_COLUMNS = (
    ("Uptime", "s", "max by (machine_id) (dumont_machine_uptime_seconds)"),
    ("CPU", "percent", "max by (machine_id) (dumont_cpu_usage_percent)"),
    ("Memory", "percentunit", "max by (machine_id) (machine:dumont_memory_usage:ratio)"),
    ("Fullest disk", "percentunit", "max by (machine_id) (machine_mount:dumont_disk_usage:ratio)"),
    ("Cost per hour", "currencyUSD", "sum by (machine_id) (dumont_cost_hourly_usd)"),
    ("Since last sync", "s", "max by (machine_id) (time() - dumont_sync_last_success_timestamp)"),
    ("Sync p95", "s", "max by (machine_id) (machine:dumont_sync_latency_seconds:p95)"),
)


def _machines() -> dict:
    targets = [_target(expr, instant=True, table=True) for _, _, expr in _MACHINE_COLUMNS]
    refs = [chr(ord("A") + i) for i in range(len(_MACHINE_COLUMNS))]
    rename = {"machine_id": "Machine", **{f"Value #{ref}": name for ref, (name, _, _) in zip(refs, _MACHINE_COLUMNS)}}
    order = {"machine_id": 0, **{f"Value #{ref}": i + 1 for i, ref in enumerate(refs)}}
    overrides = [{"matcher": {"id": "byName", "options": name}, "properties": [{"id": "unit", "value": unit}]}
                 for name, unit, _ in _MACHINE_COLUMNS]
    return _panel("table", "Machines", "Every machine reporting now: uptime (0 while down), CPU, memory, its fullest "
                                       "mount, cost, time since its last successful sync, p95 sync latency.",
                  (0, 13, 24, 9), targets, "none", overrides=overrides,
                  options={"showHeader": True, "sortBy": [{"displayName": "Machine", "desc": False}]},
                  transformations=[{"id": "merge", "options": {}},
                                   {"id": "organize", "options": {"excludeByName": {"Time": True},
                                                                  "indexByName": order, "renameByName": rename}}])


def panels() -> list[dict]:
    """Every panel in layout order, with ids 1, 2, ... in that order (stable across renders)."""
    out = [
        _period("Savings today", "now/d", 0),
        _period("Savings this month", "now/M", 6),
        _period("Savings this year", "now/y", 12),
        _panel("stat", "Savings in the last 24 h", f"Rolling 24 hours by category and in total ({ROLLING_DAY}, "
                                                   "recorded every few minutes).", (18, 0, 6, 5),
               [_target(ROLLING_DAY, "{{category}}", instant=True),
                _target(f"sum({ROLLING_DAY})", "total", instant=True)],
               "currencyUSD", options=_STAT_OPTIONS),
        _bars("Savings per day", "The last 30 days, stacked by category; a bar is one UTC day of hourly tiles.",
              "1d", "30d", 0),
        # Prometheus has no calendar months: a bar is 30 days of tiles, 12 of them for the last year. The
        # calendar month so far is the "Savings this month" stat.
        _bars("Savings per 30 days", "The last year in 30-day bars, stacked by category (not calendar months: "
                                     "see Savings this month).", "30d", "1y", 12),
        _machines(),
        _panel("timeseries", "Cost per hour by provider", "What the fleet costs per hour, by provider.",
               (0, 22, 12, 8), [_target("provider:dumont_cost_hourly_usd:sum", "{{provider}}")], "currencyUSD",
               options=_LEGEND),
        _panel("stat", "Component health", "1 healthy, 0 down, in between degraded.", (12, 22, 6, 8),
               [_target("dumont_health_status", "{{component}}", instant=True)], "percentunit",
               {"min": 0, "max": 1, "thresholds": _HEALTH}, options={**_STAT_OPTIONS, "colorMode": "background"}),
        _panel("stat", "Alerts firing by severity", "Alerts Prometheus holds as firing, Watchdog included.",
               (18, 22, 6, 8), [_target('count by (severity) (ALERTS{alertstate="firing"})', "{{severity}}",
                                        instant=True)],
               "none", {"noValue": "0"}, options=_STAT_OPTIONS),
    ]
    for number, panel in enumerate(out, start=1):
        panel["id"] = number
    return out


def _summed_tile(name: str) -> re.Pattern:
    return re.compile(rf"sum_over_time\(\s*{re.escape(name)}\s*(?:\{{[^}}]*\}})?\s*\[[^\]]+\]\s*\)")


def problems(spec: Spec, dashboard_panels: list[dict]) -> list[str]:
    """What the panels read that the spec lacks, and every tile read other than summed over a range."""
    records = {r.name for g in spec.recording for r in g.records}
    tiles = {r.name: g.interval for g in spec.recording if g.tiles for r in g.records}
    errors = []
    for panel in dashboard_panels:
        for target in panel["targets"]:
            where = f'{spec.env}/{PATH}: panel "{panel["title"]}" query {target["refId"]}'
            dumont, recorded = promql.names_read(target["expr"])
            errors += [f"{where} reads unknown metric {name} (not in exporter.catalog)"
                       for name in sorted(dumont - catalog.exposed_names())]
            errors += [f"{where} reads {name}, which no recording rule defines (renamed in rules_src/recording.yaml?)"
                       for name in sorted(recorded - records)]
            for name in sorted(recorded & set(tiles)):
                if name in promql.names_read(_summed_tile(name).sub("0", target["expr"]))[1]:
                    errors.append(f"{where} reads {name} as an instant vector: a tile is recorded once per "
                                  f"{units.format_duration(tiles[name])}, so read it only as "
                                  f"sum_over_time({name}[range])")
    return errors


def dashboard(spec: Spec, notice: str) -> dict:
    """The dashboard of `spec`'s environment; `notice` (generated, do not edit) goes in its description."""
    uid = f"dumont-fleet-{spec.env}"
    dashboard_panels = panels()
    errors = problems(spec, dashboard_panels)
    if len(uid) > _UID_MAX:
        errors.append(f"{spec.env}/{PATH}: uid {uid} is longer than Grafana's {_UID_MAX} characters")
    if errors:
        raise DashboardError("\n".join(errors))
    variable = {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
                "current": {}, "hide": 0, "includeAll": False, "multi": False, "options": [], "refresh": 1,
                "regex": "", "skipUrlSync": False}
    return {"id": None, "uid": uid, "title": f"Dumont fleet ({spec.env})", "description": notice,
            "tags": ["dumont", spec.env], "timezone": "browser", "schemaVersion": SCHEMA_VERSION, "version": 1,
            "editable": True, "graphTooltip": 1, "refresh": "1m", "time": {"from": "now-24h", "to": "now"},
            "timepicker": {}, "links": [], "annotations": {"list": []}, "templating": {"list": [variable]},
            "panels": dashboard_panels}


def dashboard_json(spec: Spec, notice: str) -> str:
    """The dashboard as the file Grafana imports: sorted keys, two-space indent, a final newline."""
    return json.dumps(dashboard(spec, notice), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
