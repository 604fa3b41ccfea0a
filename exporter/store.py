"""The values behind every catalog family, keyed by label values, with their label text rendered once."""
from __future__ import annotations

import threading
from bisect import bisect_left

from prometheus_client.utils import floatToGoString

from exporter.catalog import CATALOG, HISTOGRAM, MetricSpec


def label_text(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    """The `{name="value",...}` part of a sample line, escaped as the text format requires."""
    if not names:
        return ""
    pairs = ",".join(f'{name}="{_escape(value)}"' for name, value in zip(names, values))
    return "{" + pairs + "}"


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


class Series:
    """One gauge or counter series: its rendered labels and its value."""

    __slots__ = ("text", "value")

    def __init__(self, text: str):
        self.text = text
        self.value = 0.0


class HistogramSeries:
    """One histogram series: per-bucket counts (not cumulative, +Inf last) and the sum."""

    __slots__ = ("text", "counts", "sum")

    def __init__(self, text: str, bucket_count: int):
        self.text = text
        self.counts = [0] * (bucket_count + 1)
        self.sum = 0.0


class SeriesStore:
    """Every catalog family's series; callers hold `lock` so one API call's updates land together."""

    def __init__(self, catalog: tuple[MetricSpec, ...] = CATALOG):
        self.lock = threading.Lock()
        self.specs = {spec.name: spec for spec in catalog}
        self._series: dict[str, dict[tuple[str, ...], Series | HistogramSeries]] = {
            spec.name: {} for spec in catalog}

    def _get(self, name: str, key: tuple[str, ...]):
        family = self._series[name]
        series = family.get(key)
        if series is None:
            spec = self.specs[name]
            text = label_text(spec.labels, key)
            series = HistogramSeries(text, len(spec.buckets)) if spec.type == HISTOGRAM else Series(text)
            family[key] = series
        return series

    def set(self, name: str, key: tuple[str, ...], value: float) -> None:
        """Set a gauge series (caller holds the lock)."""
        self._get(name, key).value = float(value)

    def set_if_absent(self, name: str, key: tuple[str, ...], value: float) -> None:
        """Create a gauge series at `value`; an existing one keeps its value (caller holds the lock)."""
        if key not in self._series[name]:
            self._get(name, key).value = float(value)

    def inc(self, name: str, key: tuple[str, ...], amount: float) -> None:
        """Add to a counter series, creating it at 0 first (caller holds the lock)."""
        self._get(name, key).value += amount

    def observe(self, name: str, key: tuple[str, ...], amount: float) -> None:
        """Count one observation in a histogram series (caller holds the lock)."""
        series = self._get(name, key)
        # bisect_left finds the first bound >= amount: buckets are "less than or equal".
        series.counts[bisect_left(self.specs[name].buckets, amount)] += 1
        series.sum += amount

    def discard(self, name: str, key: tuple[str, ...]) -> None:
        """Drop one series if it exists (caller holds the lock)."""
        self._series[name].pop(key, None)

    def remove_where(self, label: str, value: str, keep: frozenset[str] = frozenset()) -> None:
        """Drop every series whose `label` equals `value`, but in the families `keep` names (caller holds the lock)."""
        for name, family in self._series.items():
            if name in keep:
                continue
            labels = self.specs[name].labels
            if label in labels:
                position = labels.index(label)
                for key in [key for key in family if key[position] == value]:
                    del family[key]

    def snapshot(self) -> dict[str, list[tuple]]:
        """A copy of every family's rows, taken under the lock, so rendering happens outside it.

        Gauge and counter rows are (label values, label text, value); histogram rows are
        (label values, label text, cumulative bucket counts, sum).
        """
        rows: dict[str, list[tuple]] = {}
        with self.lock:
            for name, family in self._series.items():
                if self.specs[name].type == HISTOGRAM:
                    rows[name] = [(key, s.text, list(s.counts), s.sum) for key, s in family.items()]
                else:
                    rows[name] = [(key, s.text, s.value) for key, s in family.items()]
        for name, family_rows in rows.items():
            if self.specs[name].type == HISTOGRAM:
                for _, _, counts, _ in family_rows:
                    _accumulate(counts)
        return rows


def _accumulate(counts: list[int]) -> None:
    running = 0
    for index, count in enumerate(counts):
        running += count
        counts[index] = running


def bucket_bounds(spec: MetricSpec) -> list[str]:
    """The `le` values of a histogram's buckets as the text format writes them, +Inf last."""
    return [floatToGoString(bound) for bound in spec.buckets] + ["+Inf"]
