"""Operations blueprint: /metrics, /-/healthy, /-/ready, /api/v1/relay, and the relay's health for the pages."""
from __future__ import annotations

import time

from flask import Blueprint, Response, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from webhook_receiver.auth import authorized
from webhook_receiver.db import get_store
from webhook_receiver.payload import format_epoch
from webhook_receiver.reconcile.runner import peer_health
from webhook_receiver.relay.health import RelayStatus, read_status
from webhook_receiver.store import migrations
from webhook_receiver.store.base import StorageError, Store

bp = Blueprint("ops", __name__)


class RelayCollector(Collector):
    """The relay's heartbeat and each channel's failing streak, from the store at scrape time."""

    def __init__(self, store: Store, channels, stall_after: float, registry=None):
        self.store = store
        self.channels = sorted(channels)  # the deliverable channels: each always has a series
        self.stall_after = stall_after
        if registry is not None:
            registry.register(self)

    def collect(self):
        try:
            status = read_status(self.store)
        except StorageError:
            return  # only these families go missing
        stalled = GaugeMetricFamily("dumont_receiver_relay_stalled", "1 when the relay, or one channel's delivery"
                                    " in it, has completed no pass for relay_stall_after; else 0.")
        stalled.add_metric([], 1 if status.stalls(time.time(), self.stall_after) else 0)
        yield stalled
        if status.last_pass_at is not None:
            yield GaugeMetricFamily("dumont_receiver_relay_last_pass_timestamp_seconds",
                                    "When the relay last completed a pass (Unix time).", value=status.last_pass_at)
        passes = GaugeMetricFamily("dumont_receiver_relay_channel_last_pass_timestamp_seconds",
                                   "When the relay last completed a delivery pass of the channel (Unix time).",
                                   labels=["channel"])
        failing = GaugeMetricFamily("dumont_receiver_channel_failing", "1 while the channel's latest delivery"
                                    " attempt failed (until one succeeds); a deferral it asked for does not count.",
                                    labels=["channel"])
        streak = GaugeMetricFamily("dumont_receiver_channel_consecutive_failures",
                                   "Failed delivery attempts of the channel since its last success.", labels=["channel"])
        success = GaugeMetricFamily("dumont_receiver_channel_last_success_timestamp_seconds",
                                    "When a delivery through the channel last succeeded (Unix time).", labels=["channel"])
        for name in self.channels:
            health = status.channels.get(name)
            if name in status.channel_pass_at:
                passes.add_metric([name], status.channel_pass_at[name])
            failing.add_metric([name], 1 if health and health.failing else 0)
            streak.add_metric([name], health.consecutive_failures if health else 0)
            if health and health.last_success_at is not None:
                success.add_metric([name], health.last_success_at)
        yield from (passes, failing, streak, success)


@bp.record_once
def _register(state) -> None:
    """Add the relay's families to the app's registry (built before the blueprints are registered)."""
    app = state.app
    deliverable = [name for name, channel in app.extensions["dumont.channels"].channels.items()
                   if channel.type != "heartbeat"]
    RelayCollector(app.extensions["dumont.store"], deliverable, app.config["RECEIVER"].relay_stall_after,
                   registry=app.extensions["dumont.registry"])


def _status() -> RelayStatus:
    return read_status(get_store())


def _deliverable() -> list[str]:
    return [name for name, channel in current_app.extensions["dumont.channels"].channels.items()
            if channel.type != "heartbeat"]


@bp.app_context_processor
def _relay_problems():
    """`relay_problems()` for the pages' banner: a sentence per stalled relay or failing channel."""
    def relay_problems() -> list[str]:
        token = current_app.extensions["dumont.tokens"].history
        if token is not None and not authorized(request, token, allow_cookie=True):
            return []  # the sign-in page tells strangers nothing
        try:
            status = _status()
        except StorageError:
            return []
        config = current_app.config["RECEIVER"]
        return (status.stalls(time.time(), config.relay_stall_after) + status.failing(_deliverable())
                + _unreachable_alertmanagers(config.alertmanager_urls))
    return {"relay_problems": relay_problems}


def _unreachable_alertmanagers(urls) -> list[str]:
    """A sentence per configured Alertmanager that reconciliation could not read on its last pass."""
    if not urls:
        return []
    health = peer_health(get_store())
    down = [health[url] for url in urls if url in health and not health[url].up]
    consequence = ("reconciliation goes on with the others" if len(down) < len(urls) else
                   "no Alertmanager answers, so reconciliation resolves nothing until one does")
    return [f"Alertmanager {peer.url} unreachable since {format_epoch(peer.since)[:19]}Z ({peer.error}):"
            f" {consequence}" for peer in down]


@bp.get("/metrics")
def metrics():
    """Prometheus text exposition of the receiver's metrics."""
    return Response(generate_latest(current_app.extensions["dumont.registry"]), content_type=CONTENT_TYPE_LATEST)


@bp.get("/-/healthy")
def healthy():
    """The process answers."""
    return Response("ok\n", content_type="text/plain")


@bp.get("/-/ready")
def ready():
    """The database is reachable and carries the schema this code expects, and the relay is not stalled."""
    try:
        version = get_store().schema_version()
        status = _status() if version == migrations.latest() else None
    except StorageError as exc:
        return Response(f"database unreachable: {exc}\n", status=503, content_type="text/plain")
    if status is None:
        return Response(f"database schema is version {version}, expected {migrations.latest()}:"
                        " run `dumont-receiver init-db`\n", status=503, content_type="text/plain")
    stalls = status.stalls(time.time(), current_app.config["RECEIVER"].relay_stall_after)
    if stalls:
        return Response("".join(f"{problem}\n" for problem in stalls), status=503, content_type="text/plain")
    return Response("ready\n", content_type="text/plain")


@bp.get("/api/v1/relay")
def relay():
    """The relay's heartbeat and each channel's health, as JSON (the history token applies)."""
    token = current_app.extensions["dumont.tokens"].history
    if token is not None and not authorized(request, token):
        response = jsonify(error="missing or wrong bearer token")
        response.status_code, response.headers["WWW-Authenticate"] = 401, "Bearer"
        return response
    try:
        status = _status()
    except StorageError:
        response = jsonify(error="storage unavailable, retry later")
        response.status_code = 503
        return response
    stall_after = current_app.config["RECEIVER"].relay_stall_after
    return jsonify(
        last_pass_at=status.last_pass_at, channel_pass_at=status.channel_pass_at,
        stalled=status.stalls(time.time(), stall_after), relay_stall_after=stall_after,
        channels={name: {"failing": (h := status.channels.get(name)) is not None and h.failing,
                         "consecutive_failures": h.consecutive_failures if h else 0,
                         "failing_since": h.failing_since if h else None,
                         "last_success_at": h.last_success_at if h else None,
                         "last_failure_at": h.last_failure_at if h else None,
                         "detail": h.detail if h else ""} for name in sorted(_deliverable())},
        problems=status.stalls(time.time(), stall_after) + status.failing(_deliverable()))
