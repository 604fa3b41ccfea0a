"""Logs as key=value lines: `ts=... level=... event=<first word> key=value ...`; never secrets."""
from __future__ import annotations

import logging
import time


class KeyValueFormatter(logging.Formatter):
    """Formats `log.info("ingest.stored channel=%s", ...)` as one key=value line."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line = (f"ts={stamp}.{int(record.msecs):03d}Z level={record.levelname.lower()} "
                f"logger={record.name} event={record.getMessage()}")
        if record.exc_info:
            line += " exc=" + repr(self.formatException(record.exc_info))
        return line


def configure(level: str) -> None:
    """Send the receiver's logs to stderr as key=value lines at `level`."""
    handler = logging.StreamHandler()
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger("webhook_receiver")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
