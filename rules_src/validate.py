"""Semantic checks of a merged spec and the Spec model built from it; every problem is collected."""
from __future__ import annotations

import re

from exporter import catalog

from . import promql, units
from .alert_spec import alerts as alert_models
from .links import receiver_external_url
from .loader import Marks, SpecError
from .model import Spec
from .recording import check_recording, recording_model
from .routing import check_channels, check_reference, routing_model
from .sizing import check_post_size

RESERVED = {"threshold", "for", "keep_firing_for", "selector", "alert", "env", "receiver_external_url"}


class Checker:
    """Collects errors while it reads one merged spec, skipping values the shape check found broken."""

    def __init__(self, data: dict, marks: Marks, errors=(), broken: frozenset = frozenset()):
        self.data, self.marks, self.errors, self.broken_paths = data, marks, list(errors), broken

    def fail(self, path: tuple, message: str) -> None:
        """Record one error at `path`."""
        self.errors.append(self.marks.error(path, message))

    def broken(self, path: tuple) -> bool:
        """Whether the value at `path`, or a value holding it, does not have the shape the schema wants."""
        return any(path[:len(b)] == b for b in self.broken_paths)

    def clean(self, *paths: tuple) -> bool:
        """Whether no shape error lies at, above or under any of `paths`: a check may read them whole."""
        return not any(p[:len(b)] == b or b[:len(p)] == p for p in paths for b in self.broken_paths)

    def get(self, path: tuple, default=None):
        """The value at `path`; `default` when it is absent, null, or broken (its shape error is reported)."""
        if self.broken(path):
            return default
        node = self.data
        for part in path:
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                return default
        return default if node is None else node

    def duration(self, path: tuple, text, default: float | None = None) -> float:
        """Seconds of the duration at `path`; `default` when absent."""
        if self.broken(path):
            return default or 0.0
        if text is None and default is not None:
            return default
        seconds = units.parse_duration(text)
        if seconds is None:
            self.fail(path, f"bad duration {text!r} (use Prometheus notation such as 30s, 5m, 1h)")
            return 0.0
        return seconds

    def promql(self, path: tuple, text: str, values: dict[str, str], records: set[str]) -> str:
        """`text` with its parameters filled in, after checking every name it reads exists."""
        out, missing = promql.substitute(text, values)
        for name in missing:
            self.fail(path, f"unknown parameter ${{{name}}}")
        dumont, recorded = promql.names_read(out)
        for name in sorted(dumont - catalog.exposed_names()):
            self.fail(path, f"unknown metric {name} (not in exporter.catalog)")
        for name in sorted(recorded - records):
            self.fail(path, f"reads {name}, which no recording rule defines")
        return out


def build(env: str, data: dict, marks: Marks, sources: tuple[str, ...], digest: str,
          errors=(), broken: frozenset = frozenset()) -> tuple[Spec | None, list[SpecError]]:
    """The Spec of environment `env` from its merged data, or None and every error found."""
    # `errors`: what loading and the shape check found already; `broken`: the paths of wrong shape,
    # which no check here reads.
    c = Checker(data, marks, errors, broken)
    params = _params(c)
    scrape = _interval(c, "scrape_interval")
    evaluation = _interval(c, "evaluation_interval")
    endpoints = _endpoints(c)
    recording, records = recording_model(c, params, evaluation)
    alerts = alert_models(c, env, params, records, receiver_external_url(c, endpoints))
    check_recording(c, recording)
    check_channels(c)
    check_reference(c, ("receiver_token_file",))
    routing = routing_model(c, alerts)
    if c.errors:
        return None, sorted(set(c.errors))
    spec = Spec(env=env, sources=sources, source_hash=digest, scrape_interval=scrape, evaluation_interval=evaluation,
                external_labels=tuple(sorted(c.get(("prometheus", "external_labels"), {}).items())),
                endpoints=endpoints, receiver_token_file=data["receiver_token_file"],
                recording=recording, alerts=alerts, channels=data["channels"], deadman=data["deadman"], **routing)
    check_post_size(c, spec)  # measured on the rendered rules, so only once the spec is whole
    if c.errors:
        return None, sorted(set(c.errors))
    return spec, []


def _endpoints(c: Checker) -> dict:
    """host:port of each service; alertmanager and receiver as lists (one or more)."""
    out = {}
    for name, endpoint in c.get(("endpoints",), {}).items():
        if c.broken(("endpoints", name)):
            continue
        listed = isinstance(endpoint, list)
        for i, one in enumerate(endpoint if listed else [endpoint]):
            if not re.fullmatch(r"[^\s:/]+:\d+", str(one)):
                c.fail(("endpoints", name) + ((i,) if listed else ()), "must be host:port")
        # Only alertmanager and receiver may be lists (the schema says so): those are always lists here.
        out[name] = list(endpoint) if listed else ([endpoint] if name in ("alertmanager", "receiver") else endpoint)
        if listed and len(set(endpoint)) != len(endpoint):
            c.fail(("endpoints", name), "lists an endpoint twice")
    return out


def _params(c: Checker) -> dict[str, str]:
    params = {str(k): units.number(v) if isinstance(v, (int, float)) else str(v)
              for k, v in c.get(("params",), {}).items()}
    for name in sorted(RESERVED & set(params)):
        c.fail(("params", name), "reserved name: alerts define it themselves")
    return params


def _interval(c: Checker, key: str) -> float:
    """A scrape or evaluation interval; the generated tests step by it, so it must not be 0."""
    at = ("prometheus", key)
    if units.parse_duration(c.get(at)) == 0:
        c.fail(at, "must be longer than 0s")
    return c.duration(at, c.get(at))
