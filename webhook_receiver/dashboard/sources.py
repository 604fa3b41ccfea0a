"""Ask Prometheus and the Alertmanagers in parallel, under one deadline per request."""
from __future__ import annotations

import concurrent.futures
import json
from typing import Any, Callable, Mapping, NamedTuple

import requests

_MAX_BYTES = 64 << 20  # an answer larger than this is refused rather than held


class SourceError(Exception):
    """A service that did not answer usefully; the message names it and its URL."""

    def __init__(self, service: str, url: str, message: str):
        super().__init__(f"{service} at {url}: {message}")
        self.service, self.url, self.reason = service, url, message

    def as_json(self) -> dict:
        """What the API says about a missing part: which service, where, and why."""
        return {"service": self.service, "url": self.url, "error": self.reason}


class Sample(NamedTuple):
    """One series of an instant vector: its labels and value."""

    labels: dict[str, str]
    value: float


class Prometheus:
    """Prometheus's HTTP API (/api/v1/query), read with a timeout; every failure is a SourceError."""

    service = "prometheus"

    def __init__(self, url: str, session: requests.Session, timeout: float):
        self.url = url.rstrip("/")
        self.session = session
        self.timeout = timeout

    def query(self, expr: str, at: float | None = None, stats: bool = False) -> dict:
        """The `data` of an instant query of `expr` at Unix time `at` (now when None)."""
        form = {"query": expr}
        if at is not None:
            form["time"] = f"{at:.3f}"
        if stats:
            form["stats"] = "all"
        # POST: the savings query spans periods as one expression, longer than a URL should be.
        body = self._post("/api/v1/query", form)
        if body.get("status") != "success" or not isinstance(body.get("data"), dict):
            raise SourceError(self.service, self.url, f"answered {str(body.get('error'))[:300]!r}")
        return body["data"]

    def vector(self, expr: str, at: float | None = None) -> list[Sample]:
        """The series of an instant query that yields a vector."""
        data = self.query(expr, at)
        if data.get("resultType") != "vector":
            raise SourceError(self.service, self.url, f"expected a vector for {expr[:80]!r}")
        # Thousands of series per answer for a large fleet: the labels are kept as decoded (JSON gives strings)
        # and each sample is a tuple, a third cheaper to build than a frozen dataclass over copied labels.
        try:
            samples = [Sample(item["metric"], float(item["value"][1])) for item in data["result"]]
        except (KeyError, TypeError, ValueError, IndexError):
            raise SourceError(self.service, self.url, "answered a malformed vector") from None
        if not all(type(sample.labels) is dict for sample in samples):
            raise SourceError(self.service, self.url, "answered a malformed vector")
        return samples

    def ready(self) -> None:
        """Raise SourceError unless /-/ready answers 200."""
        try:
            with self.session.get(self.url + "/-/ready", timeout=self.timeout) as response:
                if response.status_code != 200:
                    raise SourceError(self.service, self.url, f"/-/ready answered HTTP {response.status_code}")
        except requests.RequestException as exc:
            raise SourceError(self.service, self.url, _unreachable(exc, self.timeout)) from None

    def _post(self, path: str, form: Mapping[str, str]) -> Any:
        try:
            with self.session.post(self.url + path, data=form, timeout=self.timeout, stream=True) as response:
                raw = response.raw.read(_MAX_BYTES + 1, decode_content=True)
                status = response.status_code
        except requests.RequestException as exc:
            raise SourceError(self.service, self.url, _unreachable(exc, self.timeout)) from None
        if len(raw) > _MAX_BYTES:
            raise SourceError(self.service, self.url, f"answer larger than {_MAX_BYTES} bytes")
        try:
            body = json.loads(raw)
        except ValueError:
            raise SourceError(self.service, self.url, f"HTTP {status}, not JSON") from None
        if status != 200:  # 400 bad_data, 422 execution, 503 timeout: Prometheus says which in `error`
            raise SourceError(self.service, self.url, f"HTTP {status}: {str(body.get('error'))[:300]}")
        return body


def _unreachable(exc: requests.RequestException, timeout: float) -> str:
    if isinstance(exc, requests.Timeout):
        return f"no answer within {timeout:g}s"
    if isinstance(exc, requests.ConnectionError):
        return "unreachable (connection failed)"
    return type(exc).__name__


class Gatherer:
    """Runs a request's reads at once on a shared pool; a read still running at the deadline is a SourceError."""

    def __init__(self, workers: int = 16):
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dashboard")

    def gather(self, reads: Mapping[str, tuple[Callable[[], Any], SourceError]], timeout: float) -> dict[str, Any]:
        """Each read's result, or the SourceError it raised, or its `late` error when the deadline passed first."""
        futures = {name: self.pool.submit(call) for name, (call, _) in reads.items()}
        concurrent.futures.wait(futures.values(), timeout=timeout)
        results = {}
        for name, future in futures.items():
            if not future.done():
                future.cancel()  # not started yet: never runs; started: its own socket timeout ends it
                results[name] = reads[name][1]
                continue
            try:
                results[name] = future.result()
            except SourceError as exc:
                results[name] = exc
        return results

    def close(self) -> None:
        """Stop taking reads; those running finish on their own timeouts."""
        self.pool.shutdown(wait=False, cancel_futures=True)
