"""Alertmanager 0.25's routing, read from the files that are deployed: where an alert goes, in which group, how
often, and what inhibits it.

Alertmanager runs the rendered `alertmanager/alertmanager.yml` and the receiver the `receiver/channels.yml` beside
it (`generated/<env>/`, or `make up`'s `run/config/<env>/`), so what is promised comes from them rather than from
rules_src's model: an overlay (ports, hosts, the stand-ins) is already in them. The route tree is walked as
Alertmanager 0.25 walks it (dispatch/route.go: first matching child unless `continue`, inherited receiver,
group_by and timings), its matchers parsed as it parses them (pkg/labels/parse.go), its route and group keys
written as it writes them (Route.Key, aggrGroup.GroupKey) and its inhibit rules read as inhibit/inhibit.go reads
them. `dumont-rules explain` and the fire drill (`dumont-receiver drill`) both read the routing through here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from exporter.durations import parse_duration as _prometheus_duration

# Alertmanager's defaults for a route that sets none (dispatch/route.go DefaultRouteOpts).
DEFAULT_GROUP_WAIT = 30.0
DEFAULT_GROUP_INTERVAL = 300.0
DEFAULT_REPEAT_INTERVAL = 4 * 3600.0
GROUP_BY_ALL = "..."  # group_by: ['...'] groups by every label of the alert
# Matchers sort by name, value, then type, in MatchType's order (pkg/labels/matcher.go).
_OP_ORDER = {"=": 0, "!=": 1, "=~": 2, "!~": 3}
# How Go's %q writes a label value in a group key (strconv.Quote), and openMetricsEscape a matcher's value.
_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
               '"': '\\"', "\\": "\\\\"}
_OPENMETRICS_ESCAPES = {"\\": "\\\\", "\n": "\\n", '"': '\\"'}
_MATCHER = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(=~|=|!=|!~)\s*((?s:.*?))\s*$")
_WEBHOOK_PATH = re.compile(r"/webhook/([^/]+)$")


class RoutingError(ValueError):
    """A routing or channels file that cannot be read; the message names the file and the field."""


def parse_duration(value) -> float:
    """Seconds in a duration of alertmanager.yml (`30s`, `1h30m`) or a plain number; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 30s or 5m, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    seconds = _prometheus_duration(str(value).strip())
    if seconds is None:
        raise ValueError(f"expected a duration like 30s or 5m, got {value!r}")
    return seconds


def sends_resolved(kind: str, config: dict) -> bool:
    """Whether an integration of `kind` sends resolutions: its send_resolved, else Alertmanager 0.25's default
    (config/notifiers.go: email, Slack and WeChat send none unless asked)."""
    return bool(config.get("send_resolved", kind not in ("email", "slack", "wechat")))


@dataclass(frozen=True)
class Matcher:
    """One label matcher: name, operator (=, !=, =~, !~) and value."""

    name: str
    op: str
    value: str

    def matches(self, labels: dict[str, str]) -> bool:
        """Whether `labels` satisfy it (a missing label is the empty string, as in Alertmanager)."""
        have = labels.get(self.name, "")
        if self.op in ("=", "!="):
            return (have == self.value) == (self.op == "=")
        return (re.fullmatch(self.value, have) is not None) == (self.op == "=~")

    def __str__(self) -> str:
        return f'{self.name}{self.op}"{"".join(_OPENMETRICS_ESCAPES.get(c, c) for c in self.value)}"'


def matchers_key(matchers) -> str:
    """Matchers as Alertmanager's Matchers.String() writes them in a route key: sorted, `{a="b",c=~"d"}`."""
    ordered = sorted(matchers, key=lambda m: (m.name, m.value, _OP_ORDER[m.op]))
    return "{" + ",".join(str(m) for m in ordered) + "}"


def go_quote(value: str) -> str:
    """`value` quoted as Go's %q quotes it (strconv.Quote): how a group key writes a label's value."""
    out = []
    for char in value:
        if char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif char.isprintable():  # Python's printable set is Go's unicode.IsPrint: letters to symbols, and space
            out.append(char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


def parse_matchers(text: str) -> list[Matcher]:
    """The matchers of one `matchers:` item: `a="b"`, `a=~"b|c", d!=e` or `{a="b"}`."""
    body = text.strip()
    body = body[1:] if body.startswith("{") else body
    body = body[:-1] if body.endswith("}") else body
    tokens, token, quoted, escaped = [], [], False, False
    for char in body:  # split at commas outside quotes, as Alertmanager does
        if char == "," and not quoted:
            tokens.append("".join(token))
            token = []
            continue
        if char == '"':
            quoted = quoted if escaped else not quoted
            escaped = False
        elif char == "\\":
            escaped = not escaped
        else:
            escaped = False
        token.append(char)
    if "".join(token).strip():
        tokens.append("".join(token))
    return [_matcher(item) for item in tokens]


def _matcher(text: str) -> Matcher:
    found = _MATCHER.match(text)
    if found is None:
        raise ValueError(f"bad matcher format: {text!r}")
    name, op, raw = found.groups()
    quoted = raw.startswith('"')
    raw = raw[1:] if quoted else raw
    value, escaped = [], False
    for i, char in enumerate(raw):
        if escaped:
            escaped = False
            value.append({"n": "\n", '"': '"', "\\": "\\"}.get(char, "\\" + char))
        elif char == "\\" and i < len(raw) - 1:
            escaped = True
        elif char == '"':
            if not quoted or i < len(raw) - 1:
                raise ValueError(f"matcher value contains an unescaped double quote: {text!r}")
            quoted = False
        else:
            value.append(char)
    if quoted:
        raise ValueError(f"matcher value lacks its closing double quote: {text!r}")
    return _regex(name, "".join(value), op) if op in ("=~", "!~") else Matcher(name, op, "".join(value))


def _legacy_regex(name: str, value: str) -> Matcher:
    """A `match_re` entry: Alertmanager keeps its value anchored, as config.Regexp compiled it, so route keys show
    `env=~"^(?:prod|dev)$"` where `matchers` would show `env=~"prod|dev"`."""
    _regex(name, value)
    return Matcher(name, "=~", f"^(?:{value})$")


def _regex(name: str, value: str, op: str = "=~") -> Matcher:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"bad regular expression {value!r} for {name}: {exc}") from None
    return Matcher(name, op, value)


@dataclass(frozen=True)
class Route:
    """One node of Alertmanager's route tree, its inherited settings resolved."""

    where: str                  # e.g. route.routes[2], for messages
    matchers: tuple[Matcher, ...]
    receiver: str
    group_wait: float
    group_interval: float
    cont: bool
    children: tuple["Route", ...] = ()
    group_by: tuple[str, ...] = ()          # ("...",): every label of the alert
    repeat_interval: float = DEFAULT_REPEAT_INTERVAL
    key: str = "{}"                         # Alertmanager's Route.Key(): the parent's key, "/", its matchers

    def match(self, labels: dict[str, str]) -> list["Route"]:
        """The routes an alert with `labels` takes from this node (Alertmanager's Route.Match)."""
        return [path[-1] for path in self.match_paths(labels)]

    def match_paths(self, labels: dict[str, str]) -> list[tuple["Route", ...]]:
        """Each route `match` returns, with the nodes from this one down to it."""
        if not all(m.matches(labels) for m in self.matchers):
            return []
        taken: list[tuple[Route, ...]] = []
        for child in self.children:
            found = child.match_paths(labels)
            taken += [(self, *path) for path in found]
            if found and not child.cont:
                break
        return taken or [(self,)]

    @property
    def groups_all(self) -> bool:
        """Whether it groups by every label (`group_by: ['...']`)."""
        return GROUP_BY_ALL in self.group_by

    def walk(self):
        """This node and every node under it, depth first."""
        yield self
        for child in self.children:
            yield from child.walk()

    def describe(self) -> str:
        """Its matchers as written, or where it is when it has none (the root)."""
        return ", ".join(str(m) for m in self.matchers) or self.where


def group_key(route: Route, labels: dict[str, str]) -> str:
    """Alertmanager's aggregation group key of an alert with `labels` on `route` (aggrGroup.GroupKey()):
    the route's key, ":", and the alert's group_by labels as model.LabelSet.String() writes them."""
    pairs = sorted(f"{name}={go_quote(value)}" for name, value in labels.items()
                   if route.groups_all or name in route.group_by)
    return f"{route.key}:{{{', '.join(pairs)}}}"


@dataclass(frozen=True)
class InhibitRule:
    """One of `inhibit_rules`: a firing alert matching `source` mutes an alert matching `target` when the two
    agree on every `equal` label (inhibit/inhibit.go)."""

    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]
    where: str = ""             # e.g. inhibit_rules[0], for messages

    def targets(self, labels: dict[str, str]) -> bool:
        """Whether an alert with `labels` is on its target side."""
        return all(m.matches(labels) for m in self.target)

    def sources(self, labels: dict[str, str]) -> bool:
        """Whether an alert with `labels` is on its source side."""
        return all(m.matches(labels) for m in self.source)

    def mutes(self, target: dict[str, str], source: dict[str, str]) -> bool:
        """Whether a firing alert with labels `source` mutes one with labels `target` (Inhibitor.Mutes)."""
        if not (self.targets(target) and self.sources(source)):
            return False
        if any(source.get(name, "") != target.get(name, "") for name in self.equal):
            return False
        # An alert on both sides is muted only by sources that are not targets themselves (hasEqual).
        return not (self.sources(target) and self.targets(source))


@dataclass(frozen=True)
class Channel:
    """A channel of the receiver an Alertmanager webhook posts to (`/webhook/<name>`)."""

    name: str
    kind: str | None            # slack, email, heartbeat; None: not in the receiver's channels file
    send_resolved: bool
    thread: bool = False        # a Slack channel with a bot token: the receiver replies in the alert's thread


@dataclass(frozen=True)
class Promise:
    """Where the routing sends an alert with given labels, and how long Alertmanager may take."""

    routes: tuple[Route, ...]
    receivers: tuple[str, ...]        # Alertmanager receiver names
    channels: tuple[Channel, ...]     # the receiver's channels: what the drill follows
    around: tuple[str, ...]           # what Alertmanager reaches itself: the drill cannot follow those
    group_wait: float
    group_interval: float

    @property
    def followed(self) -> tuple[Channel, ...]:
        """The channels whose deliveries the receiver's history shows (heartbeat channels keep only a time)."""
        return tuple(c for c in self.channels if c.kind != "heartbeat")


@dataclass
class Routing:
    """The rendered routing and the receiver's channels, and what they promise."""

    alertmanager_file: Path
    channels_file: Path
    root: Route
    integrations: dict[str, list[tuple[str, dict]]]    # receiver name -> (kind, its config) per integration
    channel_kinds: dict[str, str | None]
    receiver_urls: list[str] = field(default_factory=list)  # base URLs the webhooks post to
    inhibit_rules: tuple[InhibitRule, ...] = ()
    channel_specs: dict[str, dict] = field(default_factory=dict)  # channel name -> its fields in channels.yml

    def severities(self) -> list[str]:
        """Every severity a route matches by name (`severity="critical"`, `match: {severity: ...}`), in order."""
        found = [m.value for route in self.root.walk() for m in route.matchers if m.name == "severity" and m.op == "="]
        return list(dict.fromkeys(found))

    def promise(self, labels: dict[str, str]) -> Promise:
        """Where an alert with `labels` goes: its routes, receivers, the receiver's channels, and the rest."""
        routes = self.root.match(labels)
        receivers = tuple(dict.fromkeys(route.receiver for route in routes))
        channels: dict[str, Channel] = {}
        around: list[str] = []
        for receiver in receivers:
            for kind, config in self.integrations.get(receiver, []):
                channel = self.channel_of(kind, config)
                if channel is None:
                    around.append(f"{kind} of Alertmanager receiver {receiver}")
                elif channel.name in channels:  # the same channel on a second receiver (the HA pair)
                    previous = channels[channel.name]
                    channels[channel.name] = Channel(channel.name, channel.kind,
                                                     previous.send_resolved or channel.send_resolved, channel.thread)
                else:
                    channels[channel.name] = channel
        return Promise(tuple(routes), receivers, tuple(channels.values()), tuple(dict.fromkeys(around)),
                       max(route.group_wait for route in routes), max(route.group_interval for route in routes))

    def inhibitors(self, labels: dict[str, str]) -> list[InhibitRule]:
        """The inhibit rules whose target side an alert with `labels` is on: what may mute it."""
        return [rule for rule in self.inhibit_rules if rule.targets(labels)]

    def sends_resolved(self, receiver: str) -> bool:
        """Whether any integration of `receiver` sends resolutions."""
        return any(sends_resolved(kind, config) for kind, config in self.integrations.get(receiver, []))

    def channel_of(self, kind: str, config: dict) -> Channel | None:
        """The receiver's channel an integration of kind `kind` posts to; None for Alertmanager's own ones."""
        if kind != "webhook":
            return None
        found = _WEBHOOK_PATH.search(urlsplit(str(config.get("url", ""))).path)
        if found is None:
            return None
        name = found.group(1)
        spec = self.channel_specs.get(name) or {}
        thread = self.channel_kinds.get(name) == "slack" and any(key.startswith("bot_token") for key in spec)
        return Channel(name, self.channel_kinds.get(name), sends_resolved(kind, config), thread)

    def around_routes(self) -> list[tuple[Route, list[str]]]:
        """Routes whose receiver reaches only Alertmanager's own integrations (the `direct` route), with them."""
        out = []
        for route in self.root.walk():
            if route is self.root:
                continue
            integrations = self.integrations.get(route.receiver, [])
            if integrations and all(self.channel_of(kind, config) is None for kind, config in integrations):
                out.append((route, list(dict.fromkeys(kind for kind, _ in integrations))))
        return out


def load_routing(alertmanager_file: str | Path, channels_file: str | Path) -> Routing:
    """Read the rendered alertmanager.yml and the receiver's channels.yml; RoutingError names what is wrong."""
    am_path, channels_path = Path(alertmanager_file), Path(channels_file)
    config = _yaml(am_path)
    channels = _yaml(channels_path).get("channels")
    if not isinstance(channels, dict):
        raise RoutingError(f"{channels_path}: channels: expected a mapping of channel names")
    kinds = {str(name): (spec.get("type") if isinstance(spec, dict) else None) for name, spec in channels.items()}
    integrations: dict[str, list[tuple[str, dict]]] = {}
    urls: list[str] = []
    for i, receiver in enumerate(config.get("receivers") or []):
        if not isinstance(receiver, dict) or "name" not in receiver:
            raise RoutingError(f"{am_path}: receivers[{i}]: expected a mapping with a name")
        listed = integrations.setdefault(str(receiver["name"]), [])
        for key, items in receiver.items():
            if key.endswith("_configs"):
                for item in items or []:
                    listed.append((key[: -len("_configs")], item if isinstance(item, dict) else {}))
                    url = str((item or {}).get("url", "")) if key == "webhook_configs" else ""
                    if _WEBHOOK_PATH.search(urlsplit(url).path):
                        urls.append(url[: url.rindex("/webhook/")])
    if not isinstance(config.get("route"), dict):
        raise RoutingError(f"{am_path}: route: missing")
    root = _route(config["route"], "route", None, am_path)
    for route in root.walk():
        if route.receiver not in integrations:
            raise RoutingError(f"{am_path}: {route.where}: receiver {route.receiver!r} is not defined")
    rules = tuple(_inhibit_rule(rule, f"inhibit_rules[{i}]", am_path)
                  for i, rule in enumerate(config.get("inhibit_rules") or []))
    specs = {str(name): dict(spec) for name, spec in channels.items() if isinstance(spec, dict)}
    return Routing(am_path, channels_path, root, integrations, kinds, list(dict.fromkeys(urls)), rules, specs)


def _matchers(spec: dict, prefix: str) -> list[Matcher]:
    """The legacy `<prefix>match` and `<prefix>match_re` maps, then `<prefix>matchers`, in Alertmanager's order."""
    matchers = [Matcher(str(k), "=", str(v)) for k, v in (spec.get(f"{prefix}match") or {}).items()]
    matchers += [_legacy_regex(str(k), str(v)) for k, v in (spec.get(f"{prefix}match_re") or {}).items()]
    return matchers + [m for text in spec.get(f"{prefix}matchers") or [] for m in parse_matchers(str(text))]


def _inhibit_rule(spec, where: str, path: Path) -> InhibitRule:
    if not isinstance(spec, dict):
        raise RoutingError(f"{path}: {where}: expected a mapping")
    try:
        return InhibitRule(tuple(_matchers(spec, "source_")), tuple(_matchers(spec, "target_")),
                           tuple(str(name) for name in spec.get("equal") or []), where)
    except ValueError as exc:
        raise RoutingError(f"{path}: {where}: {exc}") from None


def _route(spec: dict, where: str, parent: Route | None, path: Path) -> Route:
    try:
        matchers = [m for text in spec.get("matchers") or [] for m in parse_matchers(str(text))]
        matchers += [Matcher(str(k), "=", str(v)) for k, v in (spec.get("match") or {}).items()]
        matchers += [_legacy_regex(str(k), str(v)) for k, v in (spec.get("match_re") or {}).items()]
        group_wait = _inherited(spec, "group_wait", parent, DEFAULT_GROUP_WAIT)
        group_interval = _inherited(spec, "group_interval", parent, DEFAULT_GROUP_INTERVAL)
        repeat_interval = _inherited(spec, "repeat_interval", parent, DEFAULT_REPEAT_INTERVAL)
        group_by = _group_by(spec.get("group_by"), parent)
    except ValueError as exc:
        raise RoutingError(f"{path}: {where}: {exc}") from None
    receiver = spec.get("receiver") or (parent.receiver if parent else None)
    if receiver is None:
        raise RoutingError(f"{path}: {where}: receiver: missing")
    key = (f"{parent.key}/" if parent else "") + matchers_key(matchers)
    node = Route(where, tuple(matchers), str(receiver), group_wait, group_interval, bool(spec.get("continue")),
                 (), group_by, repeat_interval, key)
    children = tuple(_route(child, f"{where}.routes[{i}]", node, path)
                     for i, child in enumerate(spec.get("routes") or []))
    return Route(node.where, node.matchers, node.receiver, group_wait, group_interval, node.cont, children,
                 group_by, repeat_interval, key)


def _inherited(spec: dict, name: str, parent: Route | None, default: float) -> float:
    value = spec.get(name)
    if value is not None:
        return parse_duration(value)
    return getattr(parent, name) if parent else default


def _group_by(value, parent: Route | None) -> tuple[str, ...]:
    if value is None:
        return parent.group_by if parent else ()
    if not isinstance(value, list):
        raise ValueError("group_by: expected a list of label names")
    names = tuple(str(name) for name in value)
    if GROUP_BY_ALL in names and len(names) > 1:
        raise ValueError("group_by: cannot have wildcard group_by (`...`) and other labels at the same time")
    return names


def _yaml(path: Path) -> dict:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RoutingError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise RoutingError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(loaded, dict):
        raise RoutingError(f"{path}: expected a mapping")
    return loaded


def generated_dir_of(channels_file: str | Path) -> Path:
    """The rendered environment a receiver's channels file belongs to (`<env>/receiver/channels.yml` -> `<env>`)."""
    return Path(channels_file).resolve().parent.parent


def alertmanager_urls(prometheus_file: str | Path) -> list[str]:
    """The Alertmanagers Prometheus sends to (`alerting.alertmanagers[].static_configs[].targets`), as URLs."""
    path = Path(prometheus_file)
    urls = []
    for entry in ((_yaml(path).get("alerting") or {}).get("alertmanagers") or []):
        scheme = entry.get("scheme", "http")
        prefix = str(entry.get("path_prefix", "")).rstrip("/")
        for static in entry.get("static_configs") or []:
            urls += [f"{scheme}://{target}{prefix}" for target in static.get("targets") or []]
    return urls
