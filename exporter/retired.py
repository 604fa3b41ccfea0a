"""The `dumont_machine_retired` marks: which machines left the fleet on purpose, kept for a while, then forgotten.

The rules page for a machine whose series stopped within their vanish window (1 h) unless the machine carries
this mark; so a mark must outlast that window, or the machine's last reports would still be in it when the
mark goes, and it would page.
"""
from __future__ import annotations

from exporter.catalog import BY_NAME
from exporter.store import SeriesStore

RETIRED = BY_NAME["dumont_machine_retired"]
DEFAULT_RETIRED_TTL_SECONDS = 2 * 3600.0   # the rules' vanish window (1 h) plus a margin as long again


class RetiredMarks:
    """One mark per retired machine in `store`, its value the retirement time; every method needs the store's lock."""

    def __init__(self, store: SeriesStore, ttl: float = DEFAULT_RETIRED_TTL_SECONDS):
        self._store = store
        self.ttl = ttl
        # machine_id -> (store key, retired at): a machine that reports again is cleared without a scan.
        self._marks: dict[str, tuple[tuple[str, ...], float]] = {}

    def __len__(self) -> int:
        return len(self._marks)

    def mark(self, machine_id: str, machine_type: str, now: float) -> None:
        """Mark a machine retired at `now`, replacing any mark it had."""
        self.clear(machine_id)
        labels = {"machine_id": machine_id, "machine_type": machine_type}
        key = tuple(labels[name] for name in RETIRED.labels)
        self._store.set(RETIRED.name, key, now)
        self._marks[machine_id] = (key, now)
        # Expiring here too bounds the marks by the retirements of one ttl even if nothing ever scrapes.
        self.expire(now)

    def clear(self, machine_id: str) -> None:
        """Forget a machine's mark, if it has one (it reports again)."""
        mark = self._marks.pop(machine_id, None)
        if mark is not None:
            self._store.discard(RETIRED.name, mark[0])

    def expire(self, now: float) -> None:
        """Forget every mark at least `ttl` seconds old."""
        for machine_id in [machine_id for machine_id, (_, at) in self._marks.items() if now - at >= self.ttl]:
            self.clear(machine_id)
