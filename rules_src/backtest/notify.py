"""How many notifications Alertmanager would have sent for a set of firing episodes: its routes, aggregation
groups (group_by, group_wait, group_interval), its notification log's dedup and repeat_interval, and inhibition
(dispatch/dispatch.go, notify/notify.go DedupStage.needsUpdate, inhibit/inhibit.go, as of 0.25).

Simplified where the effect is small: an inhibited alert is left out of a flush while an inhibiting alert fires
at that flush; a repeat on an exact multiple of group_interval goes out at the earlier of the two flushes
Alertmanager may take (explain.repeat_every); an emptied group ends at once, where Alertmanager keeps it until
its next maintenance (30 s), which moves a re-fire's first message but not how many go out; silences are not
known to a backtest. tests/e2e/test_backtest_ground_truth.py holds the counts to a real Alertmanager's posts.
"""
from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

from ..amroute import Routing, group_key
from .replay import Interval


@dataclass(frozen=True)
class Notification:
    """One message Alertmanager would have sent to a receiver: when, and which alertnames it held."""

    receiver: str
    at: float
    alertnames: tuple[str, ...]
    resolved_only: bool


def notifications(episodes: list[Interval], sources: list[Interval], routing: Routing,
                  end: float) -> list[Notification]:
    """The notifications `episodes` cause up to `end`; `sources` are every alert's episodes, for inhibition."""
    groups: dict[tuple[str, str, float, float, float], list[Interval]] = {}
    for episode in episodes:
        labels = dict(episode.labels)
        for route in routing.root.match(labels):
            key = (route.receiver, group_key(route, labels), route.group_wait, route.group_interval,
                   route.repeat_interval)
            groups.setdefault(key, []).append(episode)
    inhibition = _Inhibition(routing, sources)
    out: list[Notification] = []
    for (receiver, _, wait, interval, repeat), members in sorted(groups.items()):
        out += _group_flushes(receiver, sorted(members, key=lambda e: e.start), wait, interval, repeat, end,
                              inhibition, routing.sends_resolved(receiver))
    return sorted(out, key=lambda n: n.at)


def _group_flushes(receiver: str, members: list[Interval], wait: float, interval: float, repeat: float,
                   end: float, inhibition: "_Inhibition", send_resolved: bool) -> list[Notification]:
    """One aggregation group's notifications: it lives from its first alert until a flush leaves it empty. A
    receiver that sends no resolutions still logs the all-resolved flush (nothing goes out: RetryStage drops
    resolved alerts), so the next firing is news again."""
    out: list[Notification] = []
    last_firing: frozenset | None = None   # what the notification log holds for this group and receiver
    last_sent = 0.0
    pending = deque(members)
    while pending:
        flush = pending[0].start + wait
        held: list[Interval] = []
        while flush <= end:
            while pending and pending[0].start <= flush:
                held.append(pending.popleft())
            firing = frozenset(e for e in held if (e.end is None or e.end > flush) and not inhibition.muted(e, flush))
            resolved = {e for e in held if e.end is not None and e.end <= flush}
            if _needs_update(last_firing, firing, send_resolved and bool(resolved), last_sent, flush, repeat):
                if firing or send_resolved:
                    names = tuple(sorted({dict(e.labels)["alertname"] for e in held}))
                    out.append(Notification(receiver, flush, names, resolved_only=not firing))
                last_firing, last_sent = firing, flush
            held = [e for e in held if e not in resolved]  # a flushed resolution leaves the group
            if not held:
                break  # the group is gone; a later alert makes a new one, with group_wait again
            flush += interval
        else:
            break
    return out


def _needs_update(last: frozenset | None, firing: frozenset, any_resolved: bool, last_sent: float, now: float,
                  repeat: float) -> bool:
    if last is None:
        return bool(firing)        # never told: only firing alerts are worth a first message
    if not firing <= last:
        return True                # something fires that the last message did not say
    if not firing:
        return bool(last)          # all resolved: said once
    if any_resolved:
        return True                # what ended since, to a receiver that sends resolutions
    return last_sent <= now - repeat


class _Inhibition:
    """Which episodes inhibit which, by the rendered inhibit_rules: per rule, the sources' firing spans by the
    values of its `equal` labels."""

    def __init__(self, routing: Routing, sources: list[Interval]):
        self.rules = []
        for rule in routing.inhibit_rules:
            spans: dict[tuple, list[Interval]] = {}
            for source in sources:
                labels = dict(source.labels)
                if all(m.matches(labels) for m in rule.source):
                    spans.setdefault(tuple(labels.get(n, "") for n in rule.equal), []).append(source)
            self.rules.append((rule, spans))

    def muted(self, episode: Interval, at: float) -> bool:
        """Whether an inhibiting alert fires at `at` with the same values of every `equal` label."""
        labels = dict(episode.labels)
        for rule, spans in self.rules:
            if not all(m.matches(labels) for m in rule.target):
                continue
            for source in spans.get(tuple(labels.get(n, "") for n in rule.equal), ()):
                if source is not episode and source.start <= at and (source.end is None or source.end > at):
                    return True
        return False


def per_alert(sent: list[Notification]) -> Counter:
    """Notifications by alertname (one message naming two alerts counts for each)."""
    return Counter(name for n in sent for name in n.alertnames)
