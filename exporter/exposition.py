"""Renders a registry in the Prometheus text format, catalog families through their fast path."""
from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.registry import Collector

from exporter.families import CatalogFamily

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _OneFamily:
    """A collector holding one already collected family, so generate_latest can render it alone."""

    def __init__(self, family):
        self.family = family

    def collect(self):
        return [self.family]


def render(registry: Collector) -> bytes:
    """The text exposition of everything `registry` collects, as generate_latest would write it."""
    out: list[str] = []
    for family in registry.collect():
        if isinstance(family, CatalogFamily):
            family.render_into(out)
        else:
            # Families from other collectors (process, platform...) keep prometheus_client's renderer.
            out.append(generate_latest(_OneFamily(family)).decode("utf-8"))
    return "".join(out).encode("utf-8")
