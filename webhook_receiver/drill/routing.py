"""What the routing promises a drill alert of each severity, read from the files that are deployed.

Alertmanager runs the rendered `alertmanager/alertmanager.yml` and the receiver the `receiver/channels.yml` beside
it (`generated/<env>/`, or `make up`'s `run/config/<env>/`), so the promise comes from them rather than from
rules_src's model: an overlay (ports, hosts, the stand-ins) is already in them. The route tree is walked as
Alertmanager 0.25 walks it (dispatch/route.go: first matching child unless `continue`, inherited receiver and
timings) and its matchers parsed as it parses them (pkg/labels/parse.go).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from webhook_receiver.config import parse_duration

# Alertmanager's defaults for a route that sets none (config/config.go).
DEFAULT_GROUP_WAIT = 30.0
DEFAULT_GROUP_INTERVAL = 300.0
_MATCHER = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(=~|=|!=|!~)\s*((?s:.*?))\s*$")
_WEBHOOK_PATH = re.compile(r"/webhook/([^/]+)$")


class RoutingError(ValueError):
    """A routing or channels file the drill cannot read; the message names the file and the field."""


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
        return f'{self.name}{self.op}"{self.value}"'


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

    def match(self, labels: dict[str, str]) -> list["Route"]:
        """The routes an alert with `labels` takes from this node (Alertmanager's Route.Match)."""
        if not all(m.matches(labels) for m in self.matchers):
            return []
        taken: list[Route] = []
        for child in self.children:
            found = child.match(labels)
            taken += found
            if found and not child.cont:
                break
        return taken or [self]

    def walk(self):
        """This node and every node under it, depth first."""
        yield self
        for child in self.children:
            yield from child.walk()

    def describe(self) -> str:
        """Its matchers as written, or where it is when it has none (the root)."""
        return ", ".join(str(m) for m in self.matchers) or self.where


@dataclass(frozen=True)
class Channel:
    """A channel of the receiver an Alertmanager webhook posts to (`/webhook/<name>`)."""

    name: str
    kind: str | None            # slack, email, heartbeat; None: not in the receiver's channels file
    send_resolved: bool


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
                channel = self._channel(kind, config)
                if channel is None:
                    around.append(f"{kind} of Alertmanager receiver {receiver}")
                elif channel.name in channels:  # the same channel on a second receiver (the HA pair)
                    previous = channels[channel.name]
                    channels[channel.name] = Channel(channel.name, channel.kind,
                                                     previous.send_resolved or channel.send_resolved)
                else:
                    channels[channel.name] = channel
        return Promise(tuple(routes), receivers, tuple(channels.values()), tuple(dict.fromkeys(around)),
                       max(route.group_wait for route in routes), max(route.group_interval for route in routes))

    def _channel(self, kind: str, config: dict) -> Channel | None:
        if kind != "webhook":
            return None
        found = _WEBHOOK_PATH.search(urlsplit(str(config.get("url", ""))).path)
        if found is None:
            return None
        name = found.group(1)
        return Channel(name, self.channel_kinds.get(name), bool(config.get("send_resolved", True)))

    def around_routes(self) -> list[tuple[Route, list[str]]]:
        """Routes whose receiver reaches only Alertmanager's own integrations (the `direct` route), with them."""
        out = []
        for route in self.root.walk():
            if route is self.root:
                continue
            integrations = self.integrations.get(route.receiver, [])
            if integrations and all(self._channel(kind, config) is None for kind, config in integrations):
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
    return Routing(am_path, channels_path, root, integrations, kinds, list(dict.fromkeys(urls)))


def _route(spec: dict, where: str, parent: Route | None, path: Path) -> Route:
    try:
        matchers = [m for text in spec.get("matchers") or [] for m in parse_matchers(str(text))]
        matchers += [Matcher(str(k), "=", str(v)) for k, v in (spec.get("match") or {}).items()]
        matchers += [_regex(str(k), str(v)) for k, v in (spec.get("match_re") or {}).items()]
        wait = spec.get("group_wait")
        interval = spec.get("group_interval")
        group_wait = parse_duration(wait) if wait is not None else (parent.group_wait if parent else DEFAULT_GROUP_WAIT)
        group_interval = parse_duration(interval) if interval is not None else (
            parent.group_interval if parent else DEFAULT_GROUP_INTERVAL)
    except ValueError as exc:
        raise RoutingError(f"{path}: {where}: {exc}") from None
    receiver = spec.get("receiver") or (parent.receiver if parent else None)
    if receiver is None:
        raise RoutingError(f"{path}: {where}: receiver: missing")
    node = Route(where, tuple(matchers), str(receiver), group_wait, group_interval, bool(spec.get("continue")))
    children = tuple(_route(child, f"{where}.routes[{i}]", node, path)
                     for i, child in enumerate(spec.get("routes") or []))
    return Route(node.where, node.matchers, node.receiver, group_wait, group_interval, node.cont, children)


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
