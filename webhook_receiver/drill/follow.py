"""One severity's drill: post a tagged alert to every Alertmanager, follow it hop by hop, resolve it, follow that.

Hops, in order: each Alertmanager accepted it; each routed it to the receivers the routing promises; the
receiver stored it; each promised channel delivered it; then the same for its resolution. The first hop that
breaks ends the drill of that severity, and the alert is resolved all the same, so no drill is left firing.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

from rules_src.amroute import Channel, Promise
from webhook_receiver.drill import ALERTNAME, DRILL_LABEL
from webhook_receiver.drill.apis import Alertmanager, ApiProblem, History, Unauthorized
from webhook_receiver.fingerprint import label_fingerprint

POLL = 0.25  # seconds between two reads of Alertmanager or the history


class Broken(Exception):
    """The hop that broke: `kind` is what the drill says first ("not stored", "channel email-team failed"...)."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail = kind, detail
        self.at = time.monotonic()


@dataclass(frozen=True)
class Timing:
    """How long each hop may take, and the monotonic time the whole drill must end by (None: no such limit)."""

    hop: float
    deadline: float | None = None


Say = Callable[[str, str, float, str], None]  # (severity, hop, seconds since the post, what happened)


def _utc(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SeverityDrill:
    """The drill of one severity: run() returns None when every hop passed, else the Broken hop."""

    def __init__(self, severity: str, promise: Promise, alertmanagers: list[Alertmanager], history: History,
                 run_id: str, timing: Timing, say: Say, stop: threading.Event):
        self.severity = severity
        self.promise = promise
        self.alertmanagers = alertmanagers
        self.history = history
        self.run_id = run_id
        self.timing = timing
        self._say = say
        self.stop = stop
        self.labels = {"alertname": ALERTNAME, "severity": severity, DRILL_LABEL: run_id}
        self.fingerprint = label_fingerprint(self.labels)
        self.starts_at: str | None = None
        self.resolved = False
        self.posted_at = 0.0  # monotonic time of the phase's post: latencies count from it

    def run(self) -> Broken | None:
        """Fire, follow, resolve, follow; None when all passed."""
        try:
            self._post(resolve=False)
            self._routed()
            self._follow("firing")
            self._post(resolve=True)
            self._follow("resolved")
            return None
        except Broken as broken:
            return broken
        finally:
            if self.starts_at is not None and not self.resolved:
                self._clean_up()

    # --- hops -------------------------------------------------------------------------------------
    def _alert(self, resolve: bool) -> dict:
        now = datetime.now(timezone.utc)
        if self.starts_at is None:
            self.starts_at = _utc(now)
        # A firing drill ends by itself once the whole drill's time is over: one interrupted never lingers.
        ends = now if resolve else now + timedelta(seconds=self._linger())
        return {"labels": self.labels, "startsAt": self.starts_at, "endsAt": _utc(ends), "annotations": {
            "summary": f"Fire drill {self.run_id}: a synthetic {self.severity} alert, nothing to do",
            "description": f"Sent by `dumont-receiver drill` to check that Alertmanager, the receiver and every "
                           f"{self.severity} channel work end to end. It resolves within minutes."}}

    def _linger(self) -> float:
        if self.timing.deadline is not None:
            return max(self.timing.deadline - time.monotonic(), 0) + 60
        return 6 * self.timing.hop + 60  # past every hop of both phases

    def _post(self, resolve: bool) -> None:
        hop = "resolution accepted" if resolve else "accepted"
        alert = self._alert(resolve)
        self.posted_at = time.monotonic()
        for am in self.alertmanagers:
            try:
                am.post([alert])
            except ApiProblem as exc:
                raise Broken("Alertmanager refused", str(exc)) from None
            self.say(hop, f"Alertmanager {am.url} took the {'resolution' if resolve else 'alert'}"
                          + ("" if resolve else f" (fingerprint {self.fingerprint})"))
        self.resolved = resolve

    def _routed(self) -> None:
        expected = set(self.promise.receivers)
        for am in self.alertmanagers:
            held = self._wait(lambda: am.alerts(self.labels), "routed")
            if not held.value:
                last_read = f" (last read: {held.problem})" if held.problem is not None else ""
                raise Broken("not routed", f"Alertmanager {am.url} does not hold the alert {held.seconds:.0f} s "
                                           f"after taking it{last_read}")
            alert = held.value[0]
            got = sorted({r.get("name", "") for r in alert.get("receivers") or []})
            if set(got) != expected:
                raise Broken("not routed", f"Alertmanager {am.url} routes it to receiver(s) "
                                           f"{', '.join(got) or '(none)'}; the routing promises "
                                           f"{', '.join(sorted(expected))} ({self._routes()})")
            if alert.get("fingerprint") and alert["fingerprint"] != self.fingerprint:
                self.fingerprint = alert["fingerprint"]  # the receiver stores Alertmanager's
            suppressed = _suppression(alert)
            if suppressed:
                raise Broken("not routed", f"Alertmanager {am.url} routes it to {', '.join(got)} but holds it "
                                           f"{suppressed}")
            self.say("routed", f"Alertmanager {am.url} routes it to receiver(s) {', '.join(got)} ({self._routes()})")

    def _routes(self) -> str:
        return "; ".join(f"route {route.describe()}" for route in self.promise.routes)

    def _follow(self, status: str) -> None:
        """Stored, then delivered by every channel the routing promises (for a resolution: those sending one)."""
        phase = "resolution " if status == "resolved" else ""
        if status == "firing":  # said once: what holds for the alert holds for its resolution
            for note in self.promise.around:
                self.say("not followed", f"{note}: Alertmanager sends that itself, the receiver never sees it "
                                         "(its failures are in Alertmanager's log and "
                                         "alertmanager_notifications_failed_total)")
            for channel in self.promise.channels:
                if channel.kind == "heartbeat":
                    self.say("not followed", f"{channel.name} is a heartbeat channel: the receiver keeps only the "
                                             "time it arrived")
        channels = [c for c in self.promise.followed if status == "firing" or c.send_resolved]
        for channel in self.promise.followed:
            if channel not in channels:
                self.say(f"{phase}not followed", f"{channel.name}: its webhook has send_resolved: false")
        if not channels:  # nothing the history would show
            return
        stored = self._wait(lambda: _entry(self.history.timeline(self.fingerprint), status), f"{phase}stored")
        if stored.value is None:
            raise Broken("not stored", f"{self._not_stored(stored, status)}{self._alertmanager_view()}")
        queued = sorted(d["channel"] for d in stored.value["deliveries"])
        self.say(f"{phase}stored", f"receiver {self.history.url} stored the {status} state change"
                                   f" (queued for {', '.join(queued) or 'no channel yet'})")
        waiting = {c.name: c for c in channels}
        last: dict[str, dict] = {}

        def delivered() -> bool:
            entry = _entry(self.history.timeline(self.fingerprint), status) or {"deliveries": []}
            for delivery in entry["deliveries"]:
                name = delivery["channel"]
                if name not in waiting:
                    continue
                last[name] = delivery
                if delivery["state"] == "delivered":
                    del waiting[name]
                    self.say(f"{phase}delivered", f"{name} delivered it ({_attempts(delivery)})")
                elif delivery["state"] == "failed":
                    raise Broken(f"channel {name} failed", _outbox(delivery))
            return not waiting
        done = self._wait(delivered, f"{phase}delivered")
        if not done.value:
            broken = [self._undelivered(channel, last, status, done) for channel in waiting.values()]
            # A channel whose attempts failed is the clearest news; one never attempted only timed out.
            raise next((b for b in broken if b.kind.startswith("channel ")), broken[0])

    # --- waiting and what a timeout means -----------------------------------------------------------
    def _wait(self, check: Callable, hop: str) -> "_Waited":
        """Call `check` until it returns something truthy, the hop's time is up or the drill's is."""
        started = time.monotonic()
        until = started + self.timing.hop
        overall = self.timing.deadline is not None and self.timing.deadline < until
        until = min(until, self.timing.deadline) if self.timing.deadline is not None else until
        problem = None
        while True:
            if self.stop.is_set():
                raise Broken("interrupted", f"stopped while waiting for hop {hop}")
            try:
                value = check()
                problem = None
            except Unauthorized as exc:
                raise Broken("cannot read the history", str(exc)) from None
            except ApiProblem as exc:
                value, problem = None, exc
            if value:
                return _Waited(value, time.monotonic() - started, problem)
            if time.monotonic() >= until:
                if overall:
                    raise Broken("timed out", f"the drill's --timeout ran out waiting for hop {hop}")
                return _Waited(None, time.monotonic() - started, problem)
            time.sleep(POLL)

    def _not_stored(self, waited: "_Waited", status: str) -> str:
        if waited.problem is not None:  # the receiver did not answer: that is why nothing can be seen stored
            return f"{waited.problem} (for {waited.seconds:.0f} s)"
        return (f"after {waited.seconds:.0f} s the receiver {self.history.url} has no {status} state change of "
                f"fingerprint {self.fingerprint}: Alertmanager's webhook did not reach it")

    def _alertmanager_view(self) -> str:
        """How each Alertmanager holds the alert now: whether it still means to send it."""
        views = []
        for am in self.alertmanagers:
            try:
                held = am.alerts(self.labels)
            except ApiProblem as exc:
                views.append(str(exc))
                continue
            if not held:
                views.append(f"Alertmanager {am.url} no longer holds it")
            else:
                state = (held[0].get("status") or {}).get("state", "?")
                views.append(f"Alertmanager {am.url} holds it {_suppression(held[0]) or state} (its log says "
                             "why a webhook failed)")
        return "; " + "; ".join(views) if views else ""

    def _undelivered(self, channel: Channel, last: dict[str, dict], status: str, waited: "_Waited") -> Broken:
        delivery = last.get(channel.name)
        seconds = f"{waited.seconds:.0f} s"
        if waited.problem is not None and delivery is None:
            return Broken("not stored", f"{waited.problem} (for {seconds})")
        if delivery is None:
            unknown = "" if channel.kind else " (the receiver's channels file has no such channel: it answers 404)"
            return Broken("not stored", f"the receiver {self.history.url} holds the {status} state change but "
                                        f"nothing for channel {channel.name} after {seconds}: Alertmanager's "
                                        f"webhook to /webhook/{channel.name} did not reach it{unknown}"
                                        f"{self._alertmanager_view()}")
        if delivery.get("attempts") or any(not a.get("ok") for a in delivery.get("attempt_log") or []):
            return Broken(f"channel {channel.name} failed", f"{_outbox(delivery)}; still not delivered after "
                                                            f"{seconds}")
        last_read = f"; last read: {waited.problem}" if waited.problem is not None else ""
        return Broken("timed out", f"channel {channel.name} is still {delivery['state']} after {seconds} with no "
                                   f"attempt yet (is the relay running? GET {self.history.url}/api/v1/relay)"
                                   f"{last_read}")

    # --- output and clean-up ------------------------------------------------------------------------
    def say(self, hop: str, text: str) -> None:
        """Report one hop, with the time since this phase's post."""
        self._say(self.severity, hop, time.monotonic() - self.posted_at, text)

    def _clean_up(self) -> None:
        """Resolve the alert in every Alertmanager that may hold it, so a broken drill leaves nothing firing."""
        alert = self._alert(resolve=True)
        for am in self.alertmanagers:
            try:
                am.post([alert])
            except ApiProblem as exc:
                self.say("clean-up", f"could not resolve it: {exc}; it resolves by itself at its endsAt")
            else:
                self.say("clean-up", f"resolved it in Alertmanager {am.url} (not followed)")
        self.resolved = True


@dataclass(frozen=True)
class _Waited:
    value: object
    seconds: float
    problem: ApiProblem | None


def _entry(timeline: list[dict] | None, status: str) -> dict | None:
    """The state change of `status` in an alert's timeline (a drill alert fires and resolves once)."""
    return next((entry for entry in reversed(timeline or []) if entry.get("status") == status), None)


def _suppression(alert: dict) -> str:
    status = alert.get("status") or {}
    if status.get("state") != "suppressed":
        return ""
    why = [f"silenced by {', '.join(status['silencedBy'])}" if status.get("silencedBy") else "",
           f"inhibited by {', '.join(status['inhibitedBy'])}" if status.get("inhibitedBy") else ""]
    return "suppressed (" + "; ".join(w for w in why if w) + ")"


def _attempts(delivery: dict) -> str:
    n = delivery.get("attempts") or 0
    return f"{n} attempt{'s' * (n != 1)}"


def _outbox(delivery: dict) -> str:
    """The outbox row as the history shows it: state, attempts, the last attempt's detail, the next try."""
    log = delivery.get("attempt_log") or []
    detail = delivery.get("detail") or (log[-1].get("detail") if log else "") or "no detail"
    text = f"outbox {delivery['state']} after {_attempts(delivery)}: {detail}"
    if delivery.get("next_attempt_at"):
        text += f" (next attempt at {delivery['next_attempt_at']})"
    return text
