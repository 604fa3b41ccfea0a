"""The collector that serves every catalog family once, merging the API's values with the host's readings."""
from __future__ import annotations

from typing import Callable

from exporter.families import CatalogFamily
from exporter.host_collector import HostCollector
from exporter.store import SeriesStore


class FleetCollector:
    """Yields each catalog family exactly once: the store's series plus, when given, the host's.

    `prune`, when given, runs before each snapshot: it drops series that expire with time (retired marks).
    """

    def __init__(self, store: SeriesStore, host: HostCollector | None = None,
                 prune: Callable[[], None] | None = None):
        self._store = store
        self._host = host
        self._prune = prune

    def describe(self) -> list[CatalogFamily]:
        """Every catalog family, without samples (for the registry's duplicate check)."""
        return [CatalogFamily(spec) for spec in self._store.specs.values()]

    def collect(self) -> list[CatalogFamily]:
        """Fresh families from a snapshot of the store and, if attached, one round of host reads."""
        if self._prune is not None:
            self._prune()
        rows = self._store.snapshot()
        if self._host is not None:
            for name, host_rows in self._host.read_rows().items():
                # A reading of the host replaces a value the API set for the same series: it is fresher,
                # and keeping both would put one series twice in the exposition.
                host_keys = {key for key, _, _ in host_rows}
                rows[name] = [row for row in rows[name] if row[0] not in host_keys] + host_rows
        return [CatalogFamily(spec, rows[spec.name]) for spec in self._store.specs.values()]
