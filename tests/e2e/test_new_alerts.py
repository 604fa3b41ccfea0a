"""The alerts of the new rule shapes, through real Prometheus and Alertmanager on the `fast` environment:
ProviderCostHigh's two tiers, MachineVanished (and what a planned retirement must not page), FailoverStorm,
DiskFillingUp's prediction and guard.

One stack serves the module; each test rewrites the scenario of one fleet (a machine whose definition changes
would be removed, so the fleet never does) and ends with every machine healthy again. A thread samples
Prometheus' /api/v1/alerts every SAMPLE_INTERVAL seconds throughout a test, so the assertions can speak of
every state Prometheus showed, pending ones included, not only the states the waits happened to see.
"""
from __future__ import annotations

import threading
import time
import urllib.parse

import pytest

from exporter.scenario import DEFAULT_MOUNTS
from tests.e2e.conftest import get_json, mentions, scenario, wait_for

CHANNELS_BY_SEVERITY = {"critical": ("slack-oncall", "email-oncall"), "warning": ("slack-alerts", "email-team")}
SAMPLE_INTERVAL = 0.15
TIMEOUT = 45
# The alerts these tests speak of, which a failed wait lists (not the HighCostAnomaly the costs also raise).
BRIEFED = ("ProviderCostHigh", "MachineVanished", "SyncStopped", "MachineDown", "FailoverStorm", "DiskFillingUp",
           "DiskAlmostFull")

# ProviderCostHigh: two machines of one provider add up (30 + 30 = 60 > 50, then 75 + 75 = 150 > 100, while
# each alone stays under 50); another provider at 40 stays quiet, and would push a provider-blind sum to 100.
PROVIDER, OTHER_PROVIDER = "lambda", "runpod"
# MachineVanished: one machine dies without a word, one is retired on purpose.
VANISHES, RETIRES = "gone-1", "retired-1"
# FailoverStorm: two machines of one type fail over fast; another type fails over slowly.
STORM_TYPE, STORM_STANDBY, CALM_TYPE = "a100", "cpu-a", "h100"

FLEET = {
    "spend-1": {"type": "gpu", "provider": PROVIDER},
    "spend-2": {"type": "gpu", "provider": PROVIDER},
    "spend-3": {"type": "gpu", "provider": OTHER_PROVIDER},
    VANISHES: {"type": "gpu", "provider": "vast"},
    RETIRES: {"type": "cpu", "provider": "gcp"},
    "storm-1": {"type": STORM_TYPE, "provider": "vast", "standby_type": STORM_STANDBY},
    "storm-2": {"type": STORM_TYPE, "provider": "vast", "standby_type": STORM_STANDBY},
    "calm-1": {"type": CALM_TYPE, "provider": "vast"},
    "fill-1": {"type": "gpu", "provider": "vast"},
    "fill-2": {"type": "gpu", "provider": "vast"},
}
# DiskFillingUp: two disks grow at the same pace, one from above the 60 % guard and one from below it.
FILLS, GUARDED = "fill-1", "fill-2"


class AlertSampler:
    """Reads Prometheus' alerts every `interval` seconds in a thread and keeps every sample, until closed."""

    def __init__(self, client, interval: float = SAMPLE_INTERVAL):
        self.client = client
        self.interval = interval
        self.samples: list[list[dict]] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alert-sampler", daemon=True)

    def __enter__(self) -> "AlertSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        assert not self._thread.is_alive(), "the sampler thread did not stop"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append(self.client.prometheus_alerts())
            except OSError:  # Prometheus busy for a moment: the next sample will tell
                pass
            except BaseException as exc:  # noqa: BLE001 - kept for the test to report, never lost in a thread
                self.errors.append(exc)
                return
            self._stop.wait(self.interval)

    def mark(self) -> int:
        """The index the next sample will have: samples from here on were taken after this call."""
        return len(self.samples)

    def wait(self, predicate, what: str, timeout: float = TIMEOUT):
        """Wait until `predicate` holds for a sample taken from now on; returns what it returned."""
        seen = self.mark()

        def check():
            nonlocal seen
            assert not self.errors, f"the sampler failed: {self.errors[0]!r}"
            for sample in self.samples[seen:]:
                seen += 1
                found = predicate(sample)
                if found:
                    return found
            return None

        try:
            return wait_for(check, timeout, what, interval=0.05)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; Prometheus' last sample: {brief(self.samples[-1:])}") from None


def brief(samples: list[list[dict]]) -> list[str]:
    """The alerts of BRIEFED names in samples, as `name{labels} state`, for a failure message."""
    return [f"{a['labels']['alertname']}"
            f"{ {k: v for k, v in a['labels'].items() if k not in ('alertname', 'job', 'instance')} } {a['state']}"
            for sample in samples for a in sample if a["labels"]["alertname"] in BRIEFED]


def select(alerts: list[dict], alertname: str, **labels: str) -> list[dict]:
    """The alerts named `alertname` that carry every label given."""
    return [a for a in alerts if a["labels"]["alertname"] == alertname
            and all(a["labels"].get(key) == value for key, value in labels.items())]


def tiers(alerts: list[dict], provider: str = PROVIDER) -> dict[str, str]:
    """ProviderCostHigh's tiers for one provider: severity -> state (pending or firing)."""
    return {a["labels"]["severity"]: a["state"] for a in select(alerts, "ProviderCostHigh", provider=provider)}


def firing_tiers(alerts: list[dict]) -> set[str]:
    return {severity for severity, state in tiers(alerts).items() if state == "firing"}


def query(client, promql: str) -> list[dict]:
    """An instant query's result vector."""
    url = client.stack.url("prometheus") + "/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    return get_json(url)["data"]["result"]


def posts_on(client, channel: str, *words: str) -> list[dict]:
    """Slack posts to `channel` of which one alert mentions every word."""
    return [p for p in client.slack_posts() if p["path"] == f"/services/{channel}" and mentions(p, *words)]


def slack_channels(client, *words: str) -> set[str]:
    """Every Slack channel that got a post of which one alert mentions every word."""
    return {p["path"].removeprefix("/services/") for p in client.slack_posts() if mentions(p, *words)}


def mail_recipients(client, *words: str) -> list[set[str]]:
    """The recipients of each mail of which one alert mentions every word."""
    return [set(m["to"]) for m in client.mails() if mentions(m, *words)]


def recipients_of(client, email_channel: str) -> set[str]:
    return set(client.channels()["channels"][email_channel]["to"])


@pytest.fixture(scope="module")
def fleet(make_stack):
    """One stack for the module, every machine of FLEET reporting and seen by Prometheus."""
    client = make_stack(scenario(FLEET))
    wait_for(lambda: select(client.prometheus_alerts(), "Watchdog"), 30, "Prometheus to evaluate the rules")
    wait_for(lambda: {s["metric"]["machine_id"] for s in query(client, "dumont_machine_uptime_seconds")}
             >= set(FLEET), 30, "Prometheus to scrape every machine of the fleet")
    return client


@pytest.mark.e2e
def test_provider_cost_high_fires_one_tier_at_a_time_and_routes_each_tier(fleet):
    def costs(each: float) -> dict:
        """The provider's two machines at `each` USD/h, the other provider's one at 40."""
        return {"spend-1": {"cost_hourly_usd": each}, "spend-2": {"cost_hourly_usd": each},
                "spend-3": {"cost_hourly_usd": 40}}

    started = time.time()
    with AlertSampler(fleet) as sampler:
        fleet.stack.write_scenario(scenario(FLEET, costs(30)))
        sampler.wait(lambda s: tiers(s) == {"warning": "firing"}, "the warning tier to fire at 60 USD/h")
        # Escalate only once the warning reached its channels, so its FIRING notification is certain.
        wait_for(lambda: posts_on(fleet, "slack-alerts", "ProviderCostHigh", PROVIDER, "threshold 50.00", "FIRING"),
                 TIMEOUT, "the warning tier's FIRING post on slack-alerts")
        escalated = sampler.mark()
        fleet.stack.write_scenario(scenario(FLEET, costs(75)))
        sampler.wait(lambda s: tiers(s) == {"critical": "firing"},
                     "the critical tier to replace the warning at 150 USD/h")
        wait_for(lambda: posts_on(fleet, "slack-oncall", "ProviderCostHigh", PROVIDER, "threshold 100.00", "FIRING"),
                 TIMEOUT, "the critical tier's FIRING post on slack-oncall")
        calmed = sampler.mark()
        fleet.stack.write_scenario(scenario(FLEET))
        sampler.wait(lambda s: not tiers(s), "both tiers to resolve")
        wait_for(lambda: posts_on(fleet, "slack-oncall", "ProviderCostHigh", PROVIDER, "threshold 100.00", "RESOLVED"),
                 TIMEOUT, "the critical tier's RESOLVED post on slack-oncall")
    samples = sampler.samples
    assert not sampler.errors

    # Never both tiers at once. Prometheus evaluates the critical rule, then the warning rule that reads it, so
    # a read landing between the two (well under a millisecond, once per escalation) can show the new critical
    # beside the warning of the evaluation before. A real overlap lasts a whole evaluation (1 s): several samples.
    both = [i for i, s in enumerate(samples) if firing_tiers(s) == {"warning", "critical"}]
    assert not [i for i in both if i + 1 in both], f"both tiers fired together in samples {both}"
    assert len(both) <= 1, f"both tiers fired together in samples {both}"
    firsts = {sev: next((i for i, s in enumerate(samples) if sev in firing_tiers(s)), None)
              for sev in ("warning", "critical")}
    assert None not in firsts.values() and firsts["warning"] < firsts["critical"], firsts
    assert not [s for s in samples[:escalated] if "critical" in tiers(s)], "critical fired (or was pending) at 60"
    assert not [s for s in samples[calmed:] if "warning" in firing_tiers(s)], "the warning came back on the way down"
    assert not tiers(samples[-1])
    # Summed by provider: never for the other provider (40 USD/h), never for the fleet as a whole (100 USD/h).
    assert {a["labels"].get("provider") for s in samples for a in select(s, "ProviderCostHigh")} == {PROVIDER}

    # The same, from the ALERTS series every evaluation writes (one sample per evaluation at each 1 s step):
    # at most one tier was ever firing for the provider.
    window = int(time.time() - started) + 2
    counts = query(fleet, f'max_over_time(count by (provider) '
                          f'(ALERTS{{alertname="ProviderCostHigh",alertstate="firing"}})[{window}s:1s])')
    assert [(c["metric"], c["value"][1]) for c in counts] == [({"provider": PROVIDER}, "1")]

    # Each tier went to its severity's channels only, fired and resolved there, through the receiver.
    for severity, threshold in (("warning", "threshold 50.00"), ("critical", "threshold 100.00")):
        slack, email = CHANNELS_BY_SEVERITY[severity]
        for state in ("FIRING", "RESOLVED"):
            words = ("ProviderCostHigh", PROVIDER, threshold, state)
            wait_for(lambda: posts_on(fleet, slack, *words), TIMEOUT, f"{severity} {state} on {slack}")
            assert slack_channels(fleet, *words) == {slack}
            mails = wait_for(lambda: mail_recipients(fleet, *words), TIMEOUT, f"a {severity} {state} mail")
            assert all(to == recipients_of(fleet, email) for to in mails), mails
        entries = fleet.receiver("/api/v1/history", alertname="ProviderCostHigh", severity=severity,
                                 label=f"provider={PROVIDER}")["entries"]
        assert sorted(e["status"] for e in entries) == ["firing", "resolved"], entries
        wait_for(lambda: all({d["channel"] for d in e["deliveries"] if d["state"] == "delivered"} == {slack, email}
                             for e in fleet.receiver("/api/v1/history", alertname="ProviderCostHigh",
                                                     severity=severity, label=f"provider={PROVIDER}")["entries"]),
                 TIMEOUT, f"the receiver to record the {severity} tier delivered to {slack} and {email} only")


@pytest.mark.e2e
def test_a_silent_machine_vanishes_and_a_retired_one_does_not(fleet):
    watched = ("MachineVanished", "SyncStopped", "MachineDown")
    with AlertSampler(fleet) as sampler:
        fleet.stack.write_scenario(scenario(FLEET, {VANISHES: {"reporting": False}, RETIRES: {"retired": True}}))
        vanished = sampler.wait(lambda s: [a for a in select(s, "MachineVanished", machine_id=VANISHES)
                                           if a["state"] == "firing"], f"MachineVanished for {VANISHES}")
        # Its last success stops moving with its series: past the fast threshold (5 s), SyncStopped fires too,
        # before the 20 s vanish window lets it go. Alertmanager holds it back: MachineVanished inhibits it.
        sampler.wait(lambda s: [a for a in select(s, "SyncStopped", machine_id=VANISHES) if a["state"] == "firing"],
                     f"SyncStopped for {VANISHES}")
        held = wait_for(lambda: [a for a in fleet.alertmanager_alerts(alertname="SyncStopped")
                                 if a["labels"].get("machine_id") == VANISHES
                                 and a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"]],
                        10, f"Alertmanager to inhibit SyncStopped of {VANISHES}")
        assert held
        wait_for(lambda: posts_on(fleet, "slack-oncall", "MachineVanished", VANISHES, "FIRING"), TIMEOUT,
                 "MachineVanished's FIRING post on slack-oncall")
        mails = wait_for(lambda: mail_recipients(fleet, "MachineVanished", VANISHES, "FIRING"), TIMEOUT,
                         "MachineVanished's mail")
        # Both left at the same tick: the retired machine had as long to page as the silent one had.
        assert query(fleet, f'dumont_machine_retired{{machine_id="{RETIRES}"}}'), "the retirement mark is missing"
        assert not query(fleet, f'dumont_machine_uptime_seconds{{machine_id="{RETIRES}"}}'), "it still reports"
        assert fleet.alertmanager_alerts(alertname="MachineVanished") and not [
            a for a in fleet.alertmanager_alerts() if a["labels"].get("machine_id") == RETIRES]
        back = sampler.mark()
        fleet.stack.write_scenario(scenario(FLEET))
        sampler.wait(lambda s: not [a for name in watched[:2] for a in select(s, name, machine_id=VANISHES)],
                     f"{VANISHES}'s alerts to resolve once it reports again")
    samples = sampler.samples
    assert not sampler.errors

    assert len(vanished) == 1
    labels = {k: v for k, v in vanished[0]["labels"].items() if k not in ("job", "instance")}
    assert labels == {"alertname": "MachineVanished", "severity": "critical", "machine_id": VANISHES,
                      "machine_type": FLEET[VANISHES]["type"]}
    # While both were gone: nothing at all for the retired machine, not even pending; no MachineDown.
    assert not [a for s in samples[:back] for name in watched for a in select(s, name, machine_id=RETIRES)]
    assert not [a for s in samples[:back] for a in select(s, "MachineDown", machine_id=VANISHES)]
    # Once back, neither is down either (uptime restarts at 0 for one tick: pending at most).
    assert not [a for s in samples[back:] for a in select(s, "MachineDown") if a["state"] == "firing"]

    assert slack_channels(fleet, "MachineVanished", VANISHES) == {"slack-oncall"}
    assert all(to == recipients_of(fleet, "email-oncall") for to in mails), mails
    assert not slack_channels(fleet, RETIRES) and not mail_recipients(fleet, RETIRES)
    assert not fleet.receiver("/api/v1/history", label=f"machine_id={RETIRES}")["entries"]
    wait_for(lambda: posts_on(fleet, "slack-oncall", "MachineVanished", VANISHES, "RESOLVED"), TIMEOUT,
             "MachineVanished's RESOLVED post on slack-oncall")


@pytest.mark.e2e
def test_failover_storm_fires_for_a_fast_type_and_not_a_slow_one(fleet):
    def failovers(from_type: str) -> float:
        return sum(float(s["value"][1]) for s in query(fleet, f'dumont_failovers_total{{from_type="{from_type}"}}'))

    calm_before = failovers(CALM_TYPE)
    with AlertSampler(fleet) as sampler:
        # 30 a minute each: one a second for the type, ~10 in the 10 s window. 12 a minute: never more than
        # 2 in the window, so it must stay quiet even once its total has passed 3.
        fleet.stack.write_scenario(scenario(FLEET, {"storm-1": {"failovers_per_minute": 30},
                                                    "storm-2": {"failovers_per_minute": 30},
                                                    "calm-1": {"failovers_per_minute": 12}}))
        storm = sampler.wait(lambda s: [a for a in select(s, "FailoverStorm", from_type=STORM_TYPE)
                                        if a["state"] == "firing"], f"FailoverStorm for {STORM_TYPE}")
        wait_for(lambda: posts_on(fleet, "slack-alerts", "FailoverStorm", STORM_TYPE, "FIRING"), TIMEOUT,
                 "FailoverStorm's FIRING post on slack-alerts")
        mails = wait_for(lambda: mail_recipients(fleet, "FailoverStorm", STORM_TYPE, "FIRING"), TIMEOUT,
                         "FailoverStorm's mail")
        wait_for(lambda: failovers(CALM_TYPE) - calm_before >= 4, TIMEOUT,
                 f"Prometheus to count 4 failovers of {CALM_TYPE}")
        fleet.stack.write_scenario(scenario(FLEET))
        sampler.wait(lambda s: not select(s, "FailoverStorm"), "FailoverStorm to resolve once failovers stop")
    samples = sampler.samples
    assert not sampler.errors

    assert len(storm) == 1, "one alert per type, not one per machine"
    assert storm[0]["labels"] == {"alertname": "FailoverStorm", "severity": "warning", "from_type": STORM_TYPE}
    assert {a["labels"]["from_type"] for s in samples for a in select(s, "FailoverStorm")} == {STORM_TYPE}
    # Both machines' failovers land on one series, to their standby type.
    series = query(fleet, f'dumont_failovers_total{{from_type="{STORM_TYPE}"}}')
    assert [(s["metric"]["to_type"], s["metric"]["reason"]) for s in series] == [(STORM_STANDBY, "scenario")]

    assert slack_channels(fleet, "FailoverStorm") == {"slack-alerts"}
    assert all(to == recipients_of(fleet, "email-team") for to in mails), mails
    assert not slack_channels(fleet, "FailoverStorm", CALM_TYPE)
    assert not mail_recipients(fleet, "FailoverStorm", CALM_TYPE)


def filling(seconds: int) -> dict:
    """A scenario whose FILLS disks grow 1 % a second for `seconds` from 62 %, GUARDED's from 44 %, then hold."""
    steady = scenario(FLEET)
    base = steady["phases"][0]
    phases = [{**base, "name": f"fill-{i}", "duration": "1s",
               "machines": {**base["machines"], FILLS: {"disk_used_ratio": 0.62 + i / 100},
                            GUARDED: {"disk_used_ratio": 0.44 + i / 100}}} for i in range(seconds)]
    held = {**base, "name": "held", "machines": {**base["machines"], FILLS: {"disk_used_ratio": 0.62 + seconds / 100},
                                                  GUARDED: {"disk_used_ratio": 0.44 + seconds / 100}}}
    return {**steady, "phases": phases + [held]}


@pytest.mark.e2e
def test_disk_filling_up_fires_on_the_trend_above_the_guard_and_resolves_when_it_stops(fleet):
    # fast: the trend of the last 20 s, 1 min ahead, guard 60 %. 1 % a second is +60 % in a minute: both disks
    # are predicted full, but only the one already above 60 % may fire (the other stays at 58 % at most);
    # neither passes DiskAlmostFull's 80 %.
    with AlertSampler(fleet) as sampler:
        fleet.stack.write_scenario(filling(14))
        firing = sampler.wait(lambda s: (lambda up: up if {a["labels"]["mount"] for a in up} == set(DEFAULT_MOUNTS)
                                         else None)([a for a in select(s, "DiskFillingUp", machine_id=FILLS)
                                                     if a["state"] == "firing"]),
                              f"DiskFillingUp for each mount of {FILLS}")
        wait_for(lambda: posts_on(fleet, "slack-alerts", "DiskFillingUp", FILLS, "FIRING"), TIMEOUT,
                 "DiskFillingUp's FIRING post on slack-alerts")
        # Held still, the trend flattens over its 20 s window and the prediction falls back below full.
        sampler.wait(lambda s: not select(s, "DiskFillingUp"), "DiskFillingUp to resolve once the disk stops growing")
        wait_for(lambda: posts_on(fleet, "slack-alerts", "DiskFillingUp", FILLS, "RESOLVED"), TIMEOUT,
                 "DiskFillingUp's RESOLVED post on slack-alerts")
        fleet.stack.write_scenario(scenario(FLEET))
    samples = sampler.samples
    assert not sampler.errors

    assert all(a["labels"]["severity"] == "warning" and a["labels"]["machine_type"] == "gpu" for a in firing)
    predicted = [float(a["value"]) for a in firing]
    assert predicted and all(value >= 1 for value in predicted), predicted  # $value is the predicted ratio
    assert not [a for s in samples for a in select(s, "DiskFillingUp", machine_id=GUARDED)], \
        "a disk below the 60 % guard must not fire however fast it grows"
    assert not [a for s in samples for a in select(s, "DiskAlmostFull") if a["labels"]["machine_id"] in (FILLS, GUARDED)]
    assert slack_channels(fleet, "DiskFillingUp") == {"slack-alerts"}
    assert all(to == recipients_of(fleet, "email-team") for to in mail_recipients(fleet, "DiskFillingUp", "FIRING"))
