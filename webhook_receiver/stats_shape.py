"""GET /api/v1/stats's JSON from the store's figures (store/stats_facts.py); the shape: webhook_receiver/README.md."""
from __future__ import annotations

from datetime import datetime, timezone

from webhook_receiver.payload import format_epoch
from webhook_receiver.stats_params import StatsRequest
from webhook_receiver.store.stats_facts import DAY_MS, MACHINE_LABEL, ChannelFigures, GroupFigures, StatsFacts


def stats_json(request: StatsRequest, facts: StatsFacts) -> dict:
    """The answer of GET /api/v1/stats: the window, totals, per alert name, per machine, per day, per channel."""
    query = request.query
    alerts = _ranked(facts.alertnames, "alertname")
    machines = _ranked(facts.machines, MACHINE_LABEL)
    return {
        "window": {"since": format_epoch(query.since), "until": format_epoch(query.until),
                   "flap_seconds": query.flap, "alertname": query.alertname,
                   "labels": [{"name": name, "value": value} for name, value in query.labels]},
        "totals": _group(facts.total),
        "alerts": alerts,
        "machines": machines,
        "noisiest": {"alerts": alerts[:request.top], "machines": machines[:request.top]},
        "daily": [{"day": datetime.fromtimestamp(day * DAY_MS / 1000, tz=timezone.utc).strftime("%Y-%m-%d"),
                   "episodes": episodes} for day, episodes in sorted(facts.days.items())],
        "channels": [_channel(figures) for figures in sorted(facts.channels, key=lambda figures: figures.channel)],
    }


def _ranked(groups, key_name: str) -> list[dict]:
    """Groups as JSON, most episodes first (then most time firing, then by name): the first are the noisiest."""
    ordered = sorted(groups, key=lambda group: (-group.episodes, -group.firing_ms, group.key))
    return [{key_name: group.key, **_group(group)} for group in ordered]


def _group(figures: GroupFigures) -> dict:
    return {
        "episodes": figures.episodes,
        "firing_seconds": _seconds(figures.firing_ms),
        "resolved": figures.resolved,
        "time_to_resolve_seconds": {
            "mean": _seconds(figures.resolve_ms_total / figures.resolved) if figures.resolved else None,
            "p95": _seconds(figures.resolve_ms_p95)},
        "flapping": figures.flapping,
        "suppressed": figures.suppressed,
        "suppressed_share": round(figures.suppressed / figures.episodes, 4) if figures.episodes else None,
    }


def _channel(figures: ChannelFigures) -> dict:
    return {
        "channel": figures.channel, "delivered": figures.delivered, "failed": figures.failed,
        "pending": figures.pending, "retried": figures.retried,
        "time_to_delivery_seconds": {"count": figures.latency_count, "p50": _seconds(figures.latency_ms_p50),
                                     "p95": _seconds(figures.latency_ms_p95)},
    }


def _seconds(milliseconds: float | None) -> float | None:
    """Milliseconds as seconds, to the millisecond."""
    return None if milliseconds is None else round(milliseconds / 1000, 3)
