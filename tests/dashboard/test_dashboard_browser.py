"""The /dashboard page in a real browser: Debian's chromium, headless, driven by selenium through chromium-driver,
against the dashboard stack (tests/dashboard/conftest.py). What it shows must be what the API says: the savings
to the cent, every machine in its state, the alerts linked to their timeline; it must fit a phone's width, and
say plainly when Prometheus is gone rather than show stale figures.

Screenshots (laptop, phone, Prometheus down) go to $DUMONT_ARTIFACTS when set, else the test's tmp_path.
"""
from __future__ import annotations

import base64
import os
import time
import urllib.parse
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from tests.e2e.conftest import get_json, wait_for

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
LAPTOP = (1366, 900)
PHONE = (390, 844)
DASH = "\u2013"
FLEET = {"gpu-1": "up", "gpu-2": "up", "cpu-1": "down", "cpu-2": "vanished", "gpu-3": "retired"}
# The page refreshes every 2 s (conftest's dashboard_refresh); an API read waits at most dashboard_timeout (5 s).
REFRESH_AND_TIMEOUT = 2 + 5
# What the page shows, read in one script run so that no refresh lands in the middle of it.
READ_SAVINGS = """
const out = {time: document.getElementById('savings').dataset.time || null, cards: {}, charts: {}};
for (const period of ['today', 'month', 'year']) {
  const card = document.getElementById('card-' + period);
  const categories = {};
  card.querySelectorAll('.by-category li').forEach(li => {
    categories[li.dataset.category] = li.querySelector('.value').textContent;
  });
  out.cards[period] = {total: card.querySelector('.total').textContent, by_category: categories,
                       state: card.dataset.state || null};
}
for (const id of ['chart-daily', 'chart-monthly']) {
  const chart = document.getElementById(id);
  out.charts[id] = {points: chart.dataset.points || null, canvas: chart.querySelector('canvas') !== null};
}
return out;
"""
READ_ALERT_LINK = """
const row = document.querySelector(`#machines tbody tr[data-machine="${arguments[0]}"]`);
const link = row && row.querySelector(`td.alerts a[data-alertname="${arguments[1]}"]`);
return link && {href: link.href, fingerprint: link.dataset.fingerprint, class: link.className,
                row: row.className, badge: row.querySelector('td.state span').className};
"""
READ_MACHINES = """
return Array.from(document.querySelectorAll('#machines tbody tr[data-machine]'))
  .map(row => [row.dataset.machine, row.dataset.state]);
"""


def money(value: float) -> str:
    """USD as dashboard.js's money() writes it: "$13,593.66"."""
    return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"


@pytest.fixture
def artifacts(tmp_path) -> Path:
    """Where the screenshots go: $DUMONT_ARTIFACTS (kept by CI) or this test's tmp_path."""
    base = os.environ.get("DUMONT_ARTIFACTS")
    folder = Path(base) / "dashboard" if base else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def browser():
    """Headless chromium at a laptop's size, quit even when the test fails; missing chromium is a failure."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            pytest.fail(f"{path} is missing: the dashboard's browser test needs Debian's {package} "
                        f"(make setup installs it, or apt-get install chromium chromium-driver)", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--window-size={LAPTOP[0]},{LAPTOP[1]}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    except WebDriverException as exc:
        pytest.fail(f"chromium did not start through {CHROMEDRIVER}: {exc}", pytrace=False)
    try:
        driver.set_script_timeout(10)
        yield driver
    finally:
        driver.quit()


def receiver(dashboard) -> str:
    """The stack's receiver, http://127.0.0.1:<port>."""
    return dashboard.stack.url("receiver")


def open_page(browser, dashboard, query: str = "") -> None:
    """Open /dashboard and wait for its first refresh to finish."""
    browser.get(receiver(dashboard) + "/dashboard" + query)
    wait_for(lambda: browser.find_element(By.ID, "refreshed").get_attribute("data-count"), 30,
             "the dashboard's first refresh")


def refresh_count(browser) -> int:
    """How many refreshes the page has finished (#refreshed's data-count)."""
    return int(browser.find_element(By.ID, "refreshed").get_attribute("data-count") or 0)


def next_refresh(browser, timeout: float = 30) -> None:
    """Wait until the page has fetched and drawn everything once more (after what happened before the call)."""
    start = refresh_count(browser)
    # Two more: the one running now may have fetched before the call
    wait_for(lambda: refresh_count(browser) >= start + 2, timeout, "two more refreshes of the page")


def screenshot(browser, artifacts: Path, name: str) -> Path:
    """The whole page, below the fold too, as one PNG (Chrome's DevTools capture: a headless window is no taller
    than its screen)."""
    size = browser.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = browser.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
    path = artifacts / f"dashboard-{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    print(f"screenshot: {path}")
    return path


def api_savings(dashboard, **params: str) -> dict:
    """GET /api/dashboard/savings with `params`."""
    query = ("?" + urllib.parse.urlencode(params)) if params else ""
    return get_json(receiver(dashboard) + "/api/dashboard/savings" + query)


def expected_cards(api: dict) -> dict:
    """The cards as the page must write the API's answer."""
    return {period: {"total": money(api[period]["total"]),
                     "by_category": {c: money(v) for c, v in api[period]["by_category"].items()},
                     "state": "ok"}
            for period in ("today", "month", "year")}


def severe_console_errors(browser) -> list[str]:
    """The page's own script errors and CSP violations (a 503 the page reports in its banner is expected)."""
    return [entry["message"] for entry in browser.get_log("browser")
            if entry["level"] == "SEVERE" and "Failed to load resource" not in entry["message"]]


def test_the_cards_show_the_savings_the_api_gives(dashboard, browser):
    # Pinned to a moment half a minute back, whose samples are all in: the page and the API ask Prometheus the
    # very same question, so every card must match the API to the cent.
    at = str(int(time.time()) - 30)
    open_page(browser, dashboard, "?" + urllib.parse.urlencode({"time": at}))
    shown = browser.execute_script(READ_SAVINGS)
    api = api_savings(dashboard, time=at)
    assert api["year"]["total"] > 1000, "the stack's 13 months of history are missing from the year"
    assert shown["cards"] == expected_cards(api)
    assert shown["time"] == api["time"]
    assert shown["charts"] == {"chart-daily": {"points": str(len(api["daily"])), "canvas": True},
                               "chart-monthly": {"points": str(len(api["monthly"])), "canvas": True}}
    assert (len(api["daily"]), len(api["monthly"])) == (30, 12)
    assert severe_console_errors(browser) == []


def test_the_live_cards_follow_the_api(dashboard, browser):
    # Live, today grows with the exporter's savings (5.20 USD an hour): the page's figures are the API's at its
    # `time`, which the API gives to the second while it asked Prometheus a fraction of a second later. Within
    # that fraction (under 0.2 cent) a figure can round to the next cent, never more.
    open_page(browser, dashboard)
    next_refresh(browser)
    shown = browser.execute_script(READ_SAVINGS)
    assert shown["time"], "the page drew no savings"
    api = api_savings(dashboard, time=shown["time"])
    for period in ("today", "month", "year"):
        card, figure = shown["cards"][period], api[period]
        assert card["state"] == "ok"
        amounts = {"total": card["total"], **card["by_category"]}
        wanted = {"total": figure["total"], **figure["by_category"]}
        assert amounts.keys() == wanted.keys(), period
        for name, text in amounts.items():
            value = float(text.replace("$", "").replace(",", ""))
            assert abs(value - wanted[name]) <= 0.01 + 1e-9, (period, name, text, wanted[name])
            assert text == money(value)
    totals = {p: float(shown["cards"][p]["total"].strip("$").replace(",", "")) for p in ("today", "month", "year")}
    assert totals["today"] <= totals["month"] <= totals["year"]


def test_the_machine_table_shows_every_state_and_links_the_alerts(dashboard, browser, artifacts):
    open_page(browser, dashboard)
    # cpu-2 vanishes once Prometheus misses it; MachineDown and DiskAlmostFull fire after their `for`
    wait_for(lambda: dict(browser.execute_script(READ_MACHINES)) == FLEET, 90,
             f"the machine table to list {FLEET}")
    # Rows are drawn afresh on every refresh: read them in one script run, never hold on to an element
    link = wait_for(lambda: browser.execute_script(READ_ALERT_LINK, "gpu-2", "DiskAlmostFull"), 90,
                    "gpu-2's DiskAlmostFull link")
    realtime = get_json(receiver(dashboard) + "/api/dashboard/metrics/realtime")
    gpu2 = next(m for m in realtime["machines"] if m["machine_id"] == "gpu-2")
    alert = next(a for a in gpu2["alerts"] if a["alertname"] == "DiskAlmostFull")
    assert alert["url"] == f"/alerts/{alert['fingerprint']}"
    assert link["href"] == receiver(dashboard) + alert["url"]
    assert link["fingerprint"] == alert["fingerprint"]
    assert "sev-critical" in link["class"]
    assert "badge state-up" in link["badge"]
    cpu1 = browser.execute_script(READ_ALERT_LINK, "cpu-1", "MachineDown")
    assert cpu1 and cpu1["row"] == "state-down" and "badge state-down" in cpu1["badge"]
    cost = browser.execute_script(
        "return document.querySelector('#machines tr[data-machine=\"gpu-3\"] td:nth-child(9)').textContent")
    assert cost == DASH  # retired: no cost at all, not $0.00

    # Sorting by state: up first, ties by machine; again: the other way round, ties still by machine
    browser.find_element(By.CSS_SELECTOR, '#machines th[data-sort="state"] button').click()
    assert [m for m, _ in browser.execute_script(READ_MACHINES)] == ["gpu-1", "gpu-2", "cpu-1", "cpu-2", "gpu-3"]
    browser.find_element(By.CSS_SELECTOR, '#machines th[data-sort="state"] button').click()
    assert [m for m, _ in browser.execute_script(READ_MACHINES)] == ["gpu-3", "cpu-2", "cpu-1", "gpu-1", "gpu-2"]
    next_refresh(browser)  # a refresh keeps the order chosen
    assert [m for m, _ in browser.execute_script(READ_MACHINES)] == ["gpu-3", "cpu-2", "cpu-1", "gpu-1", "gpu-2"]
    assert browser.find_element(By.CSS_SELECTOR, '#machines th[data-sort="state"]').get_attribute(
        "aria-sort") == "descending"

    # Cost per hour by provider, component health, alerts by severity, the sources: as the API says now
    def panels_match():
        realtime = get_json(receiver(dashboard) + "/api/dashboard/metrics/realtime")
        health = get_json(receiver(dashboard) + "/api/dashboard/health")
        shown = browser.execute_script("""
          const rows = sel => Array.from(document.querySelectorAll(sel)).map(
            tr => Array.from(tr.children).map(td => td.textContent.trim()));
          return {cost: rows('#cost-by-provider tbody tr'),
                  total: document.querySelector('#cost-by-provider tfoot .total').textContent,
                  components: rows('#components tbody tr'), alerts: rows('#alert-status tbody tr'),
                  deadman: document.getElementById('deadman').dataset.state,
                  prometheus: document.getElementById('service-prometheus').dataset.up,
                  alertmanagers: Array.from(document.querySelectorAll('#service-alertmanagers tr')).map(
                    tr => [tr.dataset.url, tr.dataset.up])};
        """)
        by_provider = realtime["totals"]["cost_hourly_usd_by_provider"]
        counts = health["alerts"]
        severities = sorted({s for state in counts.values() for s in state},
                            key=lambda s: (["critical", "warning", "info", "none"] + [s]).index(s))
        wanted = {
            "cost": [[p, money(v)] for p, v in sorted(by_provider.items())],
            "total": money(realtime["totals"]["cost_hourly_usd"]),
            "components": [[c["component"], f"{c['health']:.2f}"] for c in health["components"]],
            "alerts": [[s] + [str(counts[state].get(s, 0)) for state in ("firing", "silenced", "inhibited")]
                       for s in severities],
            "deadman": health["deadman"]["state"],
            "prometheus": "true",
            "alertmanagers": [[a["url"], "true"] for a in health["services"]["alertmanagers"]],
        }
        return shown if shown == wanted else False

    shown = wait_for(panels_match, 30, "the cost, health and alert panels to show what the API says")
    assert shown["components"] == [["api", "0.50"], ["sync", "1.00"]]
    assert shown["cost"] == [["gcp", "$0.50"], ["vast", "$1.75"]]  # cpu-2 (aws) is gone, gpu-3 retired
    assert int(dict((r[0], r[1]) for r in shown["alerts"])["critical"]) >= 2  # MachineDown, DiskAlmostFull

    # The link leads to the alert's timeline in the history (once the receiver has the notification)
    href = link["href"]
    screenshot(browser, artifacts, "laptop")
    browser.get(href)

    def timeline_shows_it():
        browser.refresh()
        return "DiskAlmostFull" in browser.find_element(By.TAG_NAME, "h1").text

    wait_for(timeline_shows_it, 30, f"the timeline {href} to show DiskAlmostFull", interval=1)
    assert severe_console_errors(browser) == []


def test_a_phone_sized_window_scrolls_the_table_not_the_page(dashboard, browser, artifacts):
    browser.set_window_size(*PHONE)
    open_page(browser, dashboard)
    wait_for(lambda: len(browser.execute_script(READ_MACHINES)) == len(FLEET), 60, "the machine rows")
    layout = browser.execute_script("""
      const root = document.documentElement, scroller = document.querySelector('.table-scroll');
      const overflowing = Array.from(document.body.querySelectorAll('*'))
        .filter(e => !scroller.contains(e) && e.getBoundingClientRect().right > root.clientWidth + 0.5)
        .map(e => e.tagName + (e.id ? '#' + e.id : '') + (e.className && e.className.baseVal === undefined
                                                          ? '.' + e.className : ''));
      return {viewport: root.clientWidth, page: root.scrollWidth, overflowing: overflowing,
              table: scroller.scrollWidth, box: scroller.clientWidth,
              box_right: scroller.getBoundingClientRect().right,
              cards: Array.from(document.querySelectorAll('.card')).map(c => c.getBoundingClientRect().right)};
    """)
    assert layout["viewport"] <= PHONE[0]
    assert layout["page"] <= layout["viewport"], f"the page scrolls sideways: {layout}"
    assert layout["overflowing"] == [], layout
    assert layout["table"] > layout["box"], "the machine table fits a phone? then this test checks nothing"
    assert layout["box_right"] <= layout["viewport"]
    assert all(right <= layout["viewport"] for right in layout["cards"])
    screenshot(browser, artifacts, "phone")


def test_prometheus_down_says_so_and_shows_no_figures(dashboard, browser, artifacts):
    open_page(browser, dashboard)
    wait_for(lambda: browser.find_element(By.CSS_SELECTOR, "#card-year .total").text.startswith("$"), 30,
             "the year's savings")
    assert not browser.find_element(By.ID, "banner").is_displayed()
    prometheus_url = dashboard.stack.url("prometheus")
    dashboard.stack.stop_service("prometheus")
    try:
        banner = browser.find_element(By.ID, "banner")
        wait_for(lambda: banner.is_displayed() and prometheus_url in banner.text, REFRESH_AND_TIMEOUT + 10,
                 "the banner to name Prometheus")
        assert f"Prometheus at {prometheus_url} is unreachable" in banner.text
        next_refresh(browser)  # all three APIs asked since: none of their figures may remain
        for period in ("today", "month", "year"):
            card = browser.find_element(By.ID, f"card-{period}")
            assert card.find_element(By.CSS_SELECTOR, ".total").text == DASH
            assert {li.text.split()[-1] for li in card.find_elements(By.CSS_SELECTOR, ".by-category li")} <= {DASH}
        assert browser.execute_script(READ_MACHINES) == []
        assert browser.find_element(By.CSS_SELECTOR, "#cost-by-provider tfoot .total").text == DASH
        assert browser.find_element(By.ID, "service-prometheus").get_attribute("data-up") == "false"
        assert browser.find_element(By.ID, "refreshed").get_attribute("data-state") == "partial"
        screenshot(browser, artifacts, "prometheus-down")
    finally:
        dashboard.stack.start_service("prometheus")
    # Back: the banner goes and the figures return without reloading the page
    wait_for(lambda: not browser.find_element(By.ID, "banner").is_displayed()
             and browser.find_element(By.CSS_SELECTOR, "#card-year .total").text.startswith("$"),
             REFRESH_AND_TIMEOUT + 20, "the page to recover once Prometheus is back")
