"""Prometheus's query_range, split into chunks Prometheus accepts: each error names the alert and the query."""
from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass

import requests

MAX_POINTS = 11000        # Prometheus refuses a range query with more points per series than this
CHUNK_POINTS = 10000      # what one request asks for at most
_MIN_CHUNK = 16           # points: below this a query that still times out is reported, not split again


class BacktestError(Exception):
    """What stops the backtest; the message names the alert, the query or the service."""


@dataclass(frozen=True)
class Grid:
    """Evaluation times start, start + step, ..., up to end (Unix seconds)."""

    start: float
    end: float
    step: float

    @property
    def count(self) -> int:
        """How many evaluations the range holds."""
        return int(math.floor((self.end - self.start) / self.step + 1e-9)) + 1

    def at(self, index: int) -> float:
        """The time of evaluation `index`."""
        return self.start + index * self.step

    def index(self, at: float) -> int:
        """The evaluation nearest `at`."""
        return int(round((at - self.start) / self.step))


class Prometheus:
    """The HTTP API of one Prometheus, read-only."""

    def __init__(self, url: str, timeout: float = 120.0, progress=None):
        self.url = url.rstrip("/")
        self.session = requests.Session()
        self.timeout = timeout
        self.progress = progress  # callable(text) or None
        self.queries = 0          # requests made, for the benchmark's baseline
        self.seconds = 0.0        # time spent waiting on Prometheus

    def instant(self, expr: str, at: float, what: str) -> list[dict]:
        """An instant vector's series ({metric, value})."""
        try:
            data = self._get("/api/v1/query", {"query": expr, "time": f"{at:.3f}"}, what)
        except _Retry:  # one point: nothing to split
            raise BacktestError(f"{what}: Prometheus at {self.url} times out on {expr!r}") from None
        return data.get("result", [])

    def series_over(self, expr: str, grid: Grid, what: str) -> dict[tuple, list[int]]:
        """Every series `expr` yields on the grid, by its sorted labels, with the grid indexes where it has a value."""
        out: dict[tuple, list[int]] = {}
        first, chunk = 0, CHUNK_POINTS
        chunks = max(1, math.ceil(grid.count / chunk))
        done = 0
        while first < grid.count:
            last = min(grid.count - 1, first + chunk - 1)
            try:
                result = self._get("/api/v1/query_range", {
                    "query": expr, "start": f"{grid.at(first):.3f}", "end": f"{grid.at(last):.3f}",
                    "step": f"{grid.step:g}"}, what)
            except _Retry:
                if chunk <= _MIN_CHUNK:
                    raise BacktestError(f"{what}: Prometheus at {self.url} times out even on {chunk} points of"
                                        f" {expr!r}") from None
                chunk //= 2
                chunks = done + math.ceil((grid.count - first) / chunk)
                continue
            for item in result.get("result", []):
                key = tuple(sorted((k, v) for k, v in item["metric"].items() if k != "__name__"))
                points = out.setdefault(key, [])
                points += [grid.index(float(t)) for t, _ in item["values"]]
            first = last + 1
            done += 1
            if self.progress and chunks > 1:
                self.progress(f"{what}: {done}/{chunks} chunks")
        return out

    def _get(self, path: str, params: dict, what: str) -> dict:
        started = time.monotonic()
        try:
            response = self.session.post(self.url + path, data=params, timeout=self.timeout)
        except requests.Timeout:
            raise _Retry() from None
        except requests.RequestException as exc:
            raise BacktestError(f"{what}: Prometheus at {self.url} is unreachable ({type(exc).__name__})") from None
        finally:
            self.queries += 1
            self.seconds += time.monotonic() - started
        try:
            body = response.json()
        except json.JSONDecodeError:
            raise BacktestError(f"{what}: Prometheus at {self.url} answered HTTP {response.status_code}, not JSON"
                                f" (is it Prometheus?)") from None
        error = str(body.get("error", ""))
        # Too long a chunk for the step, or for --query.max-samples (50M by default: the output matrix counts, so
        # a 10,000-point chunk over a few thousand series is refused): ask again with half as many points.
        if response.status_code == 503 or body.get("errorType") == "timeout" or \
                "exceeded maximum resolution" in error or "too many samples" in error:
            raise _Retry()
        if body.get("status") != "success":
            raise BacktestError(f"{what}: Prometheus rejected {params.get('query')!r}: {body.get('error')}")
        return body["data"]


class _Retry(Exception):
    """Prometheus timed out, or found the chunk too long or holding too many samples: ask again with half as many
    points."""


def stderr_progress(text: str) -> None:
    """One updating line on a terminal."""
    print(f"\r\033[K{text}", end="", file=sys.stderr, flush=True)
