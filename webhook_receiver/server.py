"""Serve the app under gunicorn (gthread workers) and run exactly one relay process beside it."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading

from gunicorn.app.base import BaseApplication

from webhook_receiver import create_app
from webhook_receiver.config import Config
from webhook_receiver.db import close_store
from webhook_receiver.http_limits import Limits, worker_class
from webhook_receiver.logs import KeyValueFormatter

log = logging.getLogger(__name__)


class RelayProcess:
    """The relay worker as one child of gunicorn's master, so it runs once however many web workers there are.

    A watcher thread restarts it if it dies: webhooks would still be acknowledged and stored, but nothing
    would reach Slack or email until someone noticed.
    """

    RESTART_DELAY = 1.0  # seconds before restarting a relay that died, so a crash loop cannot spin

    def __init__(self, config_path: str):
        self.config_path = config_path
        self.process: subprocess.Popen | None = None
        self._stopping = threading.Event()
        self._spawn_lock = threading.Lock()  # once stop() holds it, no restart can begin
        self._watcher: threading.Thread | None = None

    def start(self) -> None:
        """Start `dumont-receiver relay` with the same config file and environment, and watch it."""
        self._spawn()
        self._watcher = threading.Thread(target=self._watch, name="relay-watcher", daemon=True)
        self._watcher.start()

    def _spawn(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "webhook_receiver", "relay", "--config",
                                         self.config_path, "--parent-pid", str(os.getpid())])
        log.info("serve.relay_started pid=%d", self.process.pid)

    def _watch(self) -> None:
        while not self._stopping.is_set():
            code = self.process.wait()
            if self._stopping.wait(self.RESTART_DELAY):
                return
            with self._spawn_lock:
                if self._stopping.is_set():
                    return
                log.error("serve.relay_died pid=%d code=%d restarting", self.process.pid, code)
                self._spawn()

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, wait, then SIGKILL if it hangs."""
        with self._spawn_lock:
            self._stopping.set()
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.error("serve.relay_killed pid=%d", self.process.pid)
            self.process.kill()
            self.process.wait()


def _count_slow_client(worker, phase: str) -> None:
    """Count a connection cut for slowness in the worker's store (`slow_client` counter, by phase)."""
    app = getattr(worker, "wsgi", None)
    store = getattr(app, "extensions", {}).get("dumont.store")
    if store is not None:  # the benchmark's empty endpoint has none
        store.count("slow_client", phase)


class ReceiverServer(BaseApplication):
    """gunicorn embedded: options come from Config, the app from create_app in each worker."""

    def __init__(self, config: Config, relay: RelayProcess | None = None):
        self.receiver_config = config
        self.relay = relay
        super().__init__()

    def load_config(self) -> None:
        config = self.receiver_config
        options = {
            "bind": [config.listen],
            "workers": config.workers,
            # gthread, with each request read by the event loop before a thread takes it (http_limits.py)
            "worker_class": worker_class(Limits(
                header_timeout=config.header_timeout, body_timeout=config.body_timeout,
                body_min_rate=config.body_min_rate, send_timeout=config.send_timeout,
                prebuffer_bytes=config.max_body_bytes, on_cut=_count_slow_client)),
            "threads": config.threads,
            "worker_connections": config.max_connections // config.workers,
            "keepalive": 30,          # Alertmanager and the benchmark reuse connections
            "timeout": 30,
            "graceful_timeout": 10,
            "accesslog": None,        # the app logs what matters, without Authorization headers
            "errorlog": "-",
            "loglevel": config.log_level,
            "proc_name": "dumont-receiver",
            "control_socket_disable": True,  # one shared ~/.gunicorn socket would clash between instances
            "pre_request": self._pre_request,
            "on_starting": self._on_starting,
            "when_ready": self._when_ready,
            "worker_exit": self._worker_exit,
            "on_exit": self._on_exit,
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self):
        return create_app(self.receiver_config)

    def _pre_request(self, worker, req) -> None:
        # A keep-alive connection stays with the worker that accepted it, so a few busy connections (an
        # Alertmanager in a storm) can pile onto one worker, GIL-bound, while the other idles: the storm
        # benchmark fell from ~950 to ~600 alerts/s in runs where most of its 8 connections landed on one
        # worker. Closing a connection every `keepalive_requests` (like nginx's keepalive_requests) lets
        # the client reconnect to whichever worker accepts first: the one with time to spare.
        if req.req_number % self.receiver_config.keepalive_requests == 0:
            req.must_close = True  # answered with "Connection: close", then closed

    def _on_starting(self, server) -> None:
        # gunicorn's own lines (listening, worker booted or killed) in the receiver's key=value format;
        # a logconfig_dict would do it too, but also turns on per-request access-log work.
        for handler in server.log.error_log.handlers:
            handler.setFormatter(KeyValueFormatter())

    def _when_ready(self, server) -> None:
        if self.relay:
            self.relay.start()

    def _worker_exit(self, server, worker) -> None:
        # A worker that stops writes the counts it still holds in memory (Store.count).
        app = getattr(worker, "wsgi", None)
        if app is not None:
            close_store(app)

    def _on_exit(self, server) -> None:
        if self.relay:
            self.relay.stop()
