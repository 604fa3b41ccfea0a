"""A small HTTP server for /metrics on a background thread, which stops cleanly and frees its port."""
from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client.registry import Collector

from exporter.exposition import CONTENT_TYPE, render

INDEX_PAGE = b'<html><body><h1>dumont exporter</h1><a href="/metrics">/metrics</a></body></html>\n'


class _Server(ThreadingHTTPServer):
    daemon_threads = True


def _handler_for(registry: Collector) -> type[BaseHTTPRequestHandler]:
    class MetricsHandler(BaseHTTPRequestHandler):
        """Answers GET /metrics with the registry's exposition and GET / with a link to it."""

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._answer(200, CONTENT_TYPE, render(registry))
            elif path == "/":
                self._answer(200, "text/html; charset=utf-8", INDEX_PAGE)
            else:
                self._answer(404, "text/plain; charset=utf-8", b"not found\n")

        def _answer(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:  # noqa: A002
            # One line per scrape would drown the events that matter on stderr.
            pass

    return MetricsHandler


class MetricsServer:
    """Serves `registry` on host:port (port 0 picks a free one) until `close()`."""

    def __init__(self, registry: Collector, port: int, host: str = "0.0.0.0"):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server_class = type("MetricsHTTPServer", (_Server,), {"address_family": family})
        self._httpd = server_class((host, port), _handler_for(registry))
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="dumont-metrics-http",
                                        daemon=True)
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        """The host and port actually bound."""
        host, port = self._httpd.server_address[:2]
        return host, port

    def close(self) -> None:
        """Stop serving, wait for the serving thread and close the socket."""
        self._httpd.shutdown()
        self._thread.join()
        self._httpd.server_close()

    def __enter__(self) -> "MetricsServer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
