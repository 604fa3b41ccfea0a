"""The outbound heartbeat: the relay pings an outside check (healthchecks.io, Dead Man's Snitch) while it works.

Why: the dead man's switch runs inside the receiver, so when the whole site is dark (host down, every receiver
dead) nothing inside can say so. An outside service that expects a ping every few minutes pages when they stop.
The relay offers a ping after each pass of its main loop that completed (heartbeat stored), and pings only when
every relay thread is alive and no channel's delivery is stalled (RelayStatus.stalls, as /-/ready): a stuck
relay goes quiet as a dead one does. The GET runs in a thread of its own, one at a time, at most every
heartbeat_interval, so an endpoint that hangs delays only the next ping: never delivery, the dead man's switch
or pruning.

The URL is a secret (whoever holds it can keep the check quiet for ever): it is read from its file or variable
at every ping, as the Slack channel reads its webhook, and only its host is ever logged.
"""
from __future__ import annotations

import json
import logging
import math
import threading
import time
from typing import Callable, Mapping, Sequence
from urllib.parse import urlsplit

import requests

from webhook_receiver.channels.secrets import SecretError, read_secret
from webhook_receiver.channels.http_answer import hide_request_paths, reason
from webhook_receiver.config import Config
from webhook_receiver.relay.health import PING_KEY, RelayStatus
from webhook_receiver.store.base import StorageError, Store

log = logging.getLogger(__name__)
COUNTER = "heartbeat_ping"  # the store's counter behind dumont_receiver_heartbeat_pings_total{outcome}
OK, FAILED = "ok", "failed"
CLOSE_WAIT = 1.0  # seconds close() gives a ping under way; a later outcome is dropped, never written
USER_AGENT = "dumont-receiver"


class Pinger:
    """Pings the configured URL from a thread of its own when offered a healthy, completed relay pass."""

    def __init__(self, config: Config, store: Store, get: Callable[..., requests.Response] = requests.get,
                 monotonic: Callable[[], float] = time.monotonic, clock: Callable[[], float] = time.time):
        self.url_file, self.url_env = config.heartbeat_url_file, config.heartbeat_url_env
        self.source = f"file {self.url_file}" if self.url_file else f"variable {self.url_env}"
        self.interval, self.timeout = config.heartbeat_interval, config.heartbeat_timeout
        self.stall_after = config.relay_stall_after
        self.store, self.get, self.monotonic, self.clock = store, get, monotonic, clock
        self._lock = threading.Lock()         # the flags below; never held across I/O
        self._record_lock = threading.Lock()  # an outcome being written, so close() can wait for it
        self._due = threading.Event()
        self._closed = self._busy = self._withheld = False
        self._last = -math.inf                # monotonic start of the last ping
        self._failures = 0
        self._thread: threading.Thread | None = None
        hide_request_paths()  # urllib3 logs request paths at DEBUG; this one's path is the secret

    @classmethod
    def from_config(cls, config: Config, store: Store) -> Pinger | None:
        """A pinger when receiver.yml names where the URL is, else None."""
        return cls(config, store) if config.heartbeat_url_file or config.heartbeat_url_env else None

    def start(self) -> None:
        """Say where the pings go (the host) and start the ping thread."""
        try:  # both series exist from the start, so a rule sees 0, not nothing
            self.store.count(COUNTER, OK, 0)
            self.store.count(COUNTER, FAILED, 0)
        except StorageError:
            pass  # the first outcome creates them
        target = self._target()
        if isinstance(target, str):  # unusable now; read again at every ping, so fixing the file suffices
            log.error("relay.heartbeat_ping_unusable error=%r", target)
        else:
            log.info("relay.heartbeat_ping_enabled host=%s interval=%gs", target[1], self.interval)
        self._thread = threading.Thread(target=self._run, name="relay-heartbeat-ping", daemon=True)
        self._thread.start()

    def offer(self, now: float, channel_pass_at: Mapping[str, float], threads: Sequence[threading.Thread]) -> bool:
        """After a completed relay pass at `now` (wall clock): start a ping if one is due and the relay works."""
        problems = RelayStatus(now, dict(channel_pass_at)).stalls(now, self.stall_after)
        problems += [f"the relay's thread {t.name} has ended" for t in threads if not t.is_alive()]
        if bool(problems) != self._withheld:  # said once per change, not every pass
            self._withheld = bool(problems)
            if problems:
                log.warning("relay.heartbeat_withheld reason=%r", "; ".join(problems))
            else:
                log.info("relay.heartbeat_resumed")
        if problems:
            return False
        with self._lock:
            if self._closed or self._busy or self.monotonic() - self._last < self.interval:
                return False
            self._busy, self._last = True, self.monotonic()
        self._due.set()
        return True

    def close(self) -> None:
        """Stop pinging; once this returns, nothing more is written to the store."""
        with self._lock:
            self._closed = True
        self._due.set()
        if self._thread is not None:
            self._thread.join(CLOSE_WAIT)  # a hung GET ends within heartbeat_timeout, on its own (daemon)
        with self._record_lock:  # an outcome being written finishes first; later ones see _closed
            pass

    def ping(self) -> tuple[bool, str, str]:
        """One GET of the URL: whether it answered 2xx, its host (for logs) and what happened."""
        target = self._target()
        if isinstance(target, str):
            return False, "-", target
        url, host = target
        try:
            # healthchecks.io's convention: a plain GET of the check's URL is a success signal. No redirects:
            # a check URL that redirects is misconfigured, and the pings must not quietly go elsewhere.
            with self.get(url, timeout=(self.timeout, self.timeout), allow_redirects=False, stream=True,
                          headers={"User-Agent": USER_AGENT}) as response:
                status = response.status_code
        except requests.Timeout:
            return False, host, f"timed out after {self.timeout:g}s"
        except requests.RequestException as exc:  # str(exc) would quote the URL
            return False, host, f"connection failed: {reason(exc)}"
        return 200 <= status < 300, host, f"HTTP {status}"

    def _target(self) -> tuple[str, str] | str:
        """(url, host) read now, or why it cannot be used (which never quotes the URL)."""
        try:
            url = read_secret(self.url_file, self.url_env).strip()
        except SecretError as exc:
            return str(exc)
        unusable = f"the URL from {self.source} is not an http(s) URL with a host"
        try:
            parts = urlsplit(url)
            host = parts.hostname
            host = f"{host}:{parts.port}" if host and parts.port else host
        except ValueError:  # a bad port or IPv6 literal
            return unusable
        if parts.scheme not in ("http", "https") or not host:
            return unusable
        return url, host

    def _run(self) -> None:
        while True:
            self._due.wait()
            self._due.clear()
            with self._lock:
                if self._closed:
                    return
            try:
                ok, host, detail = self.ping()
            except Exception as exc:  # a bug here must not end the pings for good; the text may hold the URL
                ok, host, detail = False, "-", f"the ping raised {type(exc).__name__}"
            try:
                self._record(ok, host, detail)
            except Exception:  # noqa: BLE001 - a store bug: the next ping records again
                log.exception("relay.heartbeat_ping_unrecorded")
            with self._lock:
                self._busy = False

    def _record(self, ok: bool, host: str, detail: str) -> None:
        with self._record_lock:
            if self._closed:  # the relay stopped and may have closed the store
                return
            if not ok:
                self._failures += 1
                log.warning("relay.heartbeat_ping_failed host=%s error=%r failures=%d", host, detail, self._failures)
            elif self._failures:
                log.info("relay.heartbeat_ping_ok host=%s after_failures=%d", host, self._failures)
                self._failures = 0
            try:
                self.store.count(COUNTER, OK if ok else FAILED)
                if ok:
                    self.store.set_state({PING_KEY: json.dumps({"last_ok_at": self.clock()})})
            except StorageError as exc:  # the ping happened; only /metrics misses it
                log.error("relay.heartbeat_ping_unrecorded error=%r", str(exc))
