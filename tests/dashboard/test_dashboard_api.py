"""The dashboard API against real Prometheus data: savings over 13 months of history to the cent in three time
zones (daylight-saving days and exporter restarts included), the live fleet in every state with its alerts,
component health, and a stopped Prometheus answered with a 503 that names it."""
from __future__ import annotations

import datetime as dt
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from zoneinfo import ZoneInfo

import pytest

from tests.dashboard.history import expected
from tests.e2e.conftest import wait_for

pytestmark = pytest.mark.e2e
BERLIN, SAO_PAULO, UTC = ZoneInfo("Europe/Berlin"), ZoneInfo("America/Sao_Paulo"), ZoneInfo("UTC")


def api(dashboard, path: str, **params) -> tuple[int, dict]:
    """GET a dashboard API path of the stack's receiver: (status, decoded JSON)."""
    url = dashboard.stack.url("receiver") + path + ("?" + urllib.parse.urlencode(params) if params else "")
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def moments(history) -> list[tuple[ZoneInfo, dt.datetime]]:
    """When to read the savings: Berlin's last clock change at 19:00 (today is 23 or 25 hours, with a restart in
    it), the day after the one before, São Paulo ten days before the end, and UTC on the day of a midnight restart."""
    end_day = dt.datetime.fromtimestamp(history.end, dt.timezone.utc).date()
    restart_day = dt.datetime.fromtimestamp(history.restarts[2], dt.timezone.utc).date()
    return [(BERLIN, dt.datetime.combine(history.dst[-1], dt.time(19, 0), BERLIN)),
            (BERLIN, dt.datetime.combine(history.dst[-2] + dt.timedelta(days=1), dt.time(9, 30), BERLIN)),
            (SAO_PAULO, dt.datetime.combine(end_day - dt.timedelta(days=10), dt.time(13, 5), SAO_PAULO)),
            (UTC, dt.datetime.combine(restart_day, dt.time(6, 0), UTC))]


def _usd(figures: dict[str, float]) -> dict[str, float]:
    return {category: round(amount, 2) for category, amount in figures.items()}


def _check_period(period: dict, series, history, what: str) -> bool:
    """A period the hourly tiles cover whole equals the data to the cent; one reaching before them says so."""
    start, end = (dt.datetime.fromisoformat(period[key]).timestamp() for key in ("start", "end"))
    if start < history.start + 3600:
        assert period["hours_missing"] > 0, f"{what}: starts before the history yet claims every hour"
        return False
    assert period["hours_missing"] == 0, f"{what}: {period['hours_missing']} hours missing inside the history"
    truth = _usd(expected(series, start, end))
    assert period["by_category"] == truth, f"{what} {period['start']}..{period['end']}"
    assert period["total"] == round(sum(truth.values()), 2), what
    return True


@pytest.mark.parametrize("case", range(4), ids=["berlin-dst-day", "berlin-after-dst", "sao-paulo", "utc-restart"])
def test_savings_equal_what_the_history_implies_to_the_cent(dashboard, case):
    zone, moment = moments(dashboard.history)[case]
    series = dashboard.history.series()
    status, body = api(dashboard, "/api/dashboard/savings", tz=zone.key, time=moment.isoformat())
    assert status == 200, body
    assert body["timezone"] == zone.key and body["currency"] == "USD"
    assert dt.datetime.fromisoformat(body["today"]["start"]) == dt.datetime.combine(moment.date(), dt.time(0), zone)
    assert dt.datetime.fromisoformat(body["today"]["end"]) == moment
    assert body["month"]["start"][:10] == moment.date().replace(day=1).isoformat()
    assert body["year"]["start"][:10] == moment.date().replace(month=1, day=1).isoformat()
    for name in ("today", "month", "year"):
        assert _check_period(body[name], series, dashboard.history, name), f"{name} should lie inside the history"
    assert len(body["daily"]) == 30 and len(body["monthly"]) == 12
    assert body["daily"][-1]["by_category"] == body["today"]["by_category"]
    assert body["monthly"][-1]["by_category"] == body["month"]["by_category"]
    days = sum(_check_period(day, series, dashboard.history, f"day {day['label']}") for day in body["daily"])
    months = sum(_check_period(month, series, dashboard.history, f"month {month['label']}")
                 for month in body["monthly"])
    assert days == 30  # every moment is chosen 40 days or more into the history
    assert months >= 2  # the months before the history's start say how many hours they miss instead


def test_a_day_with_a_clock_change_is_as_long_as_berlin_lived_it(dashboard):
    zone, moment = moments(dashboard.history)[1]
    status, body = api(dashboard, "/api/dashboard/savings", tz=zone.key, time=moment.isoformat())
    assert status == 200, body
    changed = dashboard.history.dst[-2].isoformat()
    day = next(day for day in body["daily"] if day["label"] == changed)
    hours = (dt.datetime.fromisoformat(day["end"]) - dt.datetime.fromisoformat(day["start"])).total_seconds() / 3600
    assert hours in (23, 25)
    assert day["hours_missing"] == 0


def test_a_restart_of_the_exporter_neither_loses_nor_doubles_the_day(dashboard):
    """The restart on Berlin's last clock change: the day's figure counts each step exactly once."""
    zone, moment = moments(dashboard.history)[0]
    status, body = api(dashboard, "/api/dashboard/savings", tz=zone.key, time=moment.isoformat())
    assert status == 200, body
    series = dashboard.history.series()
    start = dt.datetime.combine(moment.date(), dt.time(0), zone).timestamp()
    before = expected(series, start, dashboard.history.restarts[0] - 150)["transfer"]
    after = expected(series, dashboard.history.restarts[0] + 150, moment.timestamp())["transfer"]
    transfer = body["today"]["by_category"]["transfer"]
    assert before > 0 and after > 0
    assert before + after < transfer < before + after + 0.10  # plus the step the restart fell in, once


def test_the_live_fleet_in_every_state_with_its_alerts(dashboard):
    def fleet():
        status, body = api(dashboard, "/api/dashboard/metrics/realtime")
        assert status == 200, body
        states = {m["machine_id"]: m["state"] for m in body["machines"]}
        disk_alert = [a for m in body["machines"] if m["machine_id"] == "gpu-2" for a in (m["alerts"] or ())
                      if a["alertname"] == "DiskAlmostFull" and a["state"] == "active"]
        wanted = {"gpu-1": "up", "gpu-2": "up", "cpu-1": "down", "cpu-2": "vanished", "gpu-3": "retired"}
        return body if states == wanted and disk_alert else None

    body = wait_for(fleet, 90, "every machine in its state and DiskAlmostFull on gpu-2")
    machines = {m["machine_id"]: m for m in body["machines"]}
    gpu1 = machines["gpu-1"]
    assert gpu1["machine_type"] == "gpu" and gpu1["provider"] == "vast"
    assert gpu1["cpu_percent"] == 30 and gpu1["memory_ratio"] == pytest.approx(0.5)
    assert [d["mount"] for d in gpu1["disks"]] == ["/", "/data"]
    assert gpu1["disks"][0]["ratio"] == pytest.approx(0.4)
    assert gpu1["cost_hourly_usd"] == 0.5 and gpu1["uptime_seconds"] > 0
    assert gpu1["sync_age_seconds"] is not None and 0 <= gpu1["sync_age_seconds"] < 60
    assert machines["cpu-1"]["uptime_seconds"] == 0
    alert = next(a for a in machines["gpu-2"]["alerts"] if a["alertname"] == "DiskAlmostFull")
    assert alert["severity"] == "critical" and alert["url"] == f"/alerts/{alert['fingerprint']}"
    machine_down = [a["alertname"] for a in machines["cpu-1"]["alerts"]]
    assert "MachineDown" in machine_down
    assert machines["gpu-3"]["cpu_percent"] is None and machines["gpu-3"]["uptime_seconds"] is None
    totals = body["totals"]
    assert totals["machines"] == 5
    assert totals["by_state"] == {"up": 2, "down": 1, "vanished": 1, "retired": 1, "unreachable": 0}
    assert totals["cost_hourly_usd_by_provider"] == {"gcp": 0.5, "vast": 1.75}
    assert body["missing"] == []


def test_health_counts_alerts_by_severity_and_reports_the_components(dashboard):
    def healthy():
        status, body = api(dashboard, "/api/dashboard/health")
        assert status == 200, body
        degraded = any(c["component"] == "api" and c["health"] == 0.5 for c in body["components"] or ())
        return body if degraded and (body["alerts"] or {}).get("firing", {}).get("critical", 0) >= 2 else None

    body = wait_for(healthy, 90, "the api component degraded and two critical alerts firing")
    assert body["services"]["prometheus"] == {"url": dashboard.stack.url("prometheus"), "up": True, "error": None}
    assert body["services"]["alertmanagers"] == [{"url": dashboard.stack.url("alertmanager"), "up": True,
                                                  "error": None}]
    assert {c["component"]: c["health"] for c in body["components"]} == {"api": 0.5, "sync": 1.0}
    assert body["deadman"]["channel"] == "watchdog" and body["deadman"]["state"] in ("up", "down")
    assert body["missing"] == []


@pytest.mark.parametrize("params, parameter", [
    ({"tz": "Mars/Olympus_Mons"}, "tz"), ({"tz": "../../etc/passwd"}, "tz"), ({"time": "yesterday"}, "time"),
    ({"time": "2999-01-01T00:00:00Z"}, "time"), ({"timezone": "UTC"}, "timezone")])
def test_bad_parameters_are_refused_naming_the_parameter(dashboard, params, parameter):
    status, body = api(dashboard, "/api/dashboard/savings", **params)
    assert status == 400
    assert body["parameter"] == parameter and body["error"].startswith(f"{parameter}: ")


def test_realtime_takes_no_parameters(dashboard):
    status, body = api(dashboard, "/api/dashboard/metrics/realtime", machine="gpu-1")
    assert (status, body["parameter"]) == (400, "machine")


def test_the_exporter_stopped_leaves_its_machines_listed_as_unreachable(dashboard):
    """Its scrape failing, the exporter's series are gone at once and MachineVanished stays quiet: the table
    still lists every machine it reported within dashboard_lookback, as unreachable (retired stays retired)."""
    dashboard.stack.stop_service("exporter")
    try:
        # cpu-2 too, vanished before: MachineVanished resolves once the scrape fails.
        wanted = {"gpu-1": "unreachable", "gpu-2": "unreachable", "cpu-1": "unreachable", "cpu-2": "unreachable",
                  "gpu-3": "retired"}

        def fleet():
            status, body = api(dashboard, "/api/dashboard/metrics/realtime")
            assert status == 200, body
            return body if {m["machine_id"]: m["state"] for m in body["machines"]} == wanted else None

        body = wait_for(fleet, 30, f"the exporter's machines to be {wanted}")
        machines = {m["machine_id"]: m for m in body["machines"]}
        assert machines["gpu-1"]["machine_type"] == "gpu"
        assert machines["gpu-1"]["uptime_seconds"] is None and machines["gpu-1"]["cpu_percent"] is None
        assert body["totals"]["by_state"] == {"up": 0, "down": 0, "vanished": 0, "retired": 1, "unreachable": 4}
    finally:
        dashboard.stack.start_service("exporter")


def test_prometheus_stopped_answers_503_naming_it(dashboard):
    """Last in the module: it stops the stack's Prometheus (and starts it again for nobody's sake but tidiness)."""
    url = dashboard.stack.url("prometheus")
    dashboard.stack.stop_service("prometheus")
    try:
        for path in ("/api/dashboard/savings", "/api/dashboard/metrics/realtime"):
            started = time.monotonic()
            status, body = api(dashboard, path)
            assert time.monotonic() - started < 30  # never hangs past the request's deadline (dashboard_timeout)
            assert status == 503, body
            assert body["service"] == "prometheus" and body["url"] == url and url in body["error"]
        status, body = api(dashboard, "/api/dashboard/health")
        assert status == 200
        assert body["services"]["prometheus"]["up"] is False and body["components"] is None
        assert body["missing"][0]["service"] == "prometheus"
        assert body["alerts"] is not None  # Alertmanager still answers
    finally:
        dashboard.stack.start_service("prometheus")
