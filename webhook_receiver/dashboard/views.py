"""The dashboard blueprint: /api/dashboard/{savings,metrics/realtime,health} as JSON, and the /dashboard page."""
from __future__ import annotations

import datetime as dt
import time

import requests
from flask import Blueprint, current_app, jsonify, render_template, request, url_for

from webhook_receiver import deadman
from webhook_receiver.auth import guard_history
from webhook_receiver.config import Config
from webhook_receiver.dashboard import alerts, fleet
from webhook_receiver.dashboard.calendar import calendar_at
from webhook_receiver.dashboard.params import ParamError, check_known, savings_params
from webhook_receiver.dashboard.savings import TILE_RULE, savings_json
from webhook_receiver.dashboard.sources import Gatherer, Prometheus, Sample, SourceError
from webhook_receiver.db import get_store
from webhook_receiver.reconcile.alertmanager import read_peer

bp = Blueprint("dashboard", __name__)
EXTENSION = "dumont.dashboard"


class Sources:
    """What one app reads the dashboard from: Prometheus, the Alertmanagers, a shared pool and HTTP session."""

    def __init__(self, config: Config):
        self.config = config
        self.session = requests.Session()
        # Prometheus gzips what a client accepts: for answers of a few hundred KB across a LAN, compressing and
        # inflating them costs both sides more CPU than the bytes cost to send.
        self.session.headers["Accept-Encoding"] = "identity"
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=16)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.gatherer = Gatherer()
        self.timeout = config.dashboard_timeout
        self.prometheus = Prometheus(config.prometheus_url, self.session, self.timeout) if config.prometheus_url else None

    def late(self, service: str, url: str) -> SourceError:
        """The error of a read still running when the request's deadline passed."""
        return SourceError(service, url, f"no answer within {self.timeout:g}s (dashboard_timeout)")

    def peer_reads(self) -> dict:
        """One read per Alertmanager (its alerts, silences and status), keyed `alertmanager <url>`."""
        return {f"alertmanager {url}": (lambda url=url: read_peer(self.session, url, self.timeout),
                                        self.late("alertmanager", url))
                for url in self.config.alertmanager_urls}


def init_app(app, config: Config) -> None:
    """Give `app` the dashboard's sources (they read nothing until a request asks)."""
    app.extensions[EXTENSION] = Sources(config)
    app.register_blueprint(bp)


def _sources() -> Sources:
    return current_app.extensions[EXTENSION]


@bp.before_request
def _require_token():
    """The history's sign-in: a bearer token, or the cookie (the page's script fetches the API with it)."""
    return guard_history(request, page=request.endpoint == "dashboard.page", allow_cookie=True)


def _error(status: int, message: str, **extra):
    response = jsonify(error=message, **extra)
    response.status_code = status
    return response


@bp.errorhandler(ParamError)
def _bad_parameter(exc: ParamError):
    return _error(400, str(exc), parameter=exc.parameter)


@bp.errorhandler(SourceError)
def _source_failed(exc: SourceError):
    return _error(503, str(exc), service=exc.service, url=exc.url)


def _unset() -> SourceError:
    return SourceError("prometheus", "(none)", "prometheus_url is not set in the receiver's config")


def _prometheus() -> Prometheus:
    prometheus = _sources().prometheus
    if prometheus is None:
        raise _unset()
    return prometheus


def _stamp(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


@bp.get("/api/dashboard/savings")
def api_savings():
    """Savings today, this month and this year, per category and in total, with daily and monthly series."""
    sources = _sources()
    params = savings_params(request.args, time.time(), sources.config.dashboard_timezone)
    prometheus = _prometheus()
    done = sources.gatherer.gather(
        {"savings": (lambda: savings_json(prometheus, calendar_at(params.at, params.zone), params.zone),
                     sources.late("prometheus", prometheus.url))}, sources.timeout)["savings"]
    if isinstance(done, SourceError):
        raise done
    return jsonify(time=_stamp(params.at), timezone=params.zone.key, currency="USD",
                   source={"prometheus": prometheus.url, "rule": TILE_RULE}, **done)


@bp.get("/api/dashboard/metrics/realtime")
def api_realtime():
    """Every machine Prometheus knows with its readings and alerts; fleet totals."""
    check_known(request.args, ())
    sources, prometheus = _sources(), _prometheus()
    late = sources.late("prometheus", prometheus.url)
    reads = {"states": (lambda: prometheus.vector(fleet.state_query()), late),
             "unreachable": (lambda: _unreachable(prometheus, sources.config.dashboard_lookback), late),
             "disks": (lambda: prometheus.vector(fleet.DISKS), late),
             "cost_by_provider": (lambda: prometheus.vector(fleet.COST_BY_PROVIDER), late),
             **{field: (lambda expr=expr: prometheus.vector(expr), late) for field, expr in fleet.READINGS.items()},
             **sources.peer_reads()}
    now = time.time()
    got = sources.gatherer.gather(reads, sources.timeout)
    _raise_first(got, [name for name in reads if not name.startswith("alertmanager ")])
    table = fleet.machines(got["states"] + got["unreachable"], {field: got[field] for field in fleet.READINGS},
                           got["disks"])
    view, missing = _cluster(got, now)
    firing = alerts.by_machine(view, _alert_url) if view is not None else {}
    for machine in table:
        machine["alerts"] = firing.get(machine["machine_id"], []) if view is not None else None
    return jsonify(time=_stamp(now), machines=table, totals=fleet.totals(table, got["cost_by_provider"]),
                   missing=missing)


def _unreachable(prometheus: Prometheus, lookback: float) -> list[Sample]:
    """The machines of the scrape targets that are down (none, and one cheap query, while every target is up)."""
    query = fleet.unreachable_query(prometheus.vector(fleet.TARGETS_DOWN), f"{max(1, round(lookback))}s")
    return prometheus.vector(query) if query else []


@bp.get("/api/dashboard/health")
def api_health():
    """Each component's health, alerts by severity and state, the dead man's switch, and whether the sources answer."""
    check_known(request.args, ())
    sources = _sources()
    reads = dict(sources.peer_reads())
    prometheus = sources.prometheus
    if prometheus is not None:
        reads["components"] = (lambda: prometheus.vector("dumont_health_status"),
                               sources.late("prometheus", prometheus.url))
    now = time.time()
    got = sources.gatherer.gather(reads, sources.timeout)
    view, missing = _cluster(got, now)
    components = got["components"] if prometheus is not None else _unset()
    if isinstance(components, SourceError):
        missing.insert(0, components.as_json())
        components = None
    else:
        components = sorted(({"component": s.labels.get("component", ""), "health": s.value} for s in components),
                            key=lambda c: c["component"])
    errors = {url: _peer_error(got[f"alertmanager {url}"]) for url in sources.config.alertmanager_urls}
    peers = [{"url": url, "up": error is None, "error": error} for url, error in errors.items()]
    return jsonify(
        time=_stamp(now),
        services={"prometheus": {"url": prometheus.url if prometheus else None, "up": components is not None,
                                 "error": None if components is not None else missing[0]["error"]},
                  "alertmanagers": peers},
        components=components,
        alerts=alerts.counts(view) if view is not None else None,
        deadman=_deadman(),
        missing=missing)


@bp.get("/dashboard")
def page():
    """The fleet dashboard: cards, charts and tables its script fills from the API, refreshed every few seconds."""
    config = _sources().config
    return render_template("dashboard.html", refresh_seconds=config.dashboard_refresh,
                           timezone=config.dashboard_timezone, prometheus_url=config.prometheus_url,
                           api={"savings": url_for("dashboard.api_savings"),
                                "realtime": url_for("dashboard.api_realtime"),
                                "health": url_for("dashboard.api_health")})


def _raise_first(got: dict, names: list[str]) -> None:
    for name in names:
        if isinstance(got[name], SourceError):
            raise got[name]


def _peer_error(result) -> str | None:
    if isinstance(result, SourceError):
        return result.reason
    return result.error


def _cluster(got: dict, now: float):
    """The merged Alertmanager view (None when none answered) and what is missing, one entry per silent peer."""
    urls = _sources().config.alertmanager_urls
    if not urls:
        return None, [{"service": "alertmanager", "url": None, "error": "alertmanager_urls is not set"}]
    peers, missing = [], []
    for url in urls:
        result = got[f"alertmanager {url}"]
        if isinstance(result, SourceError) or not result.reachable:
            missing.append({"service": "alertmanager", "url": url, "error": _peer_error(result)})
        else:
            peers.append(result)
    return (alerts.cluster(peers, now) if peers else None), missing


def _alert_url(fingerprint: str) -> str:
    return url_for("history.alert_page", fingerprint=fingerprint)


def _deadman() -> dict | None:
    """The dead man's switch as the relay last recorded it, and when the heartbeat was last heard."""
    config = current_app.extensions["dumont.channels"].deadman
    if config is None:
        return None
    store = get_store()
    marker = store.heartbeat_marker(config.channel)
    raw = store.get_state(deadman.STATE_KEY)
    return {"channel": config.channel, "state": "down" if raw else "up",
            "last_heartbeat": _stamp(marker[0]) if marker else None,
            "timeout_seconds": config.timeout_seconds}
