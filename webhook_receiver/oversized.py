"""Read a webhook body larger than max_body_bytes in bounded memory: keep its first alerts, count the rest.

Alertmanager never retries a 4xx, so answering 413 would lose the whole group. Instead the body is read
chunk by chunk and only its structure is scanned (strings end, brackets match): the members other than
`alerts` and the first alerts that fit within the budget are kept as raw bytes, the other alerts are only
counted. Go writes `alerts` before `groupLabels`, `commonLabels`, `commonAnnotations`, `externalURL`,
`version`, `groupKey` and `truncatedAlerts`, so the members after it are read too; should one the receiver
stores not fit, the alerts kept last are cut to make room; commonLabels and commonAnnotations (derived from
the alerts, not stored) become {} instead. What is held at any time is about the budget plus CHECK_MAX.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from webhook_receiver.payload import PayloadError, decode_json

CHUNK = 64 * 1024  # bytes read from the request at a time
CHECK_MAX = 4 * CHUNK  # a cut alert up to this size is decoded to check it, then dropped
# Members the receiver stores: room is made for them by cutting the alerts kept last.
NEEDED = frozenset(("receiver", "status", "externalURL", "version", "groupKey", "truncatedAlerts", "groupLabels"))
# Maps derived from the group's alerts (or its route): one too large to hold becomes {}. Only groupLabels is
# stored, and it is needed too: it becomes {} only when it does not fit on its own.
DERIVED = frozenset(("groupLabels", "commonLabels", "commonAnnotations"))
_NOT_WS = re.compile(rb"[^ \t\n\r]")
_IN_STRING = re.compile(rb'["\\]')
_STRUCTURE = re.compile(rb'["{}\[\]]')
_SCALAR_END = re.compile(rb"[^-+.0-9a-zA-Z]")
_CLOSER = {ord("{"): ord("}"), ord("["): ord("]")}
MAX_DEPTH = 512     # brackets open at once: a body of nothing but "[" must not grow a list with the read
NAME_MAX = 256      # bytes of a member name held; a longer one names no member the parser reads
_KINDS = {ord('"'): "string", ord("{"): "object", ord("["): "array", ord("t"): "boolean", ord("f"): "boolean",
          ord("n"): "null"}


class TooLarge(Exception):
    """The body passes max_read_bytes, or a part the receiver cannot do without is larger than the budget."""


@dataclass(frozen=True)
class Kept:
    """What was kept of an oversized body: the decoded members with the first alerts, and what was not."""

    body: dict
    cut: int          # alerts counted but not kept
    body_bytes: int   # the body's whole size


def _kind(byte: int | None) -> str:
    return "nothing" if byte is None else _KINDS.get(byte, "number")


class _Reader:
    """A byte cursor over the body's chunks that drops what is behind it, unless a value is being held."""

    def __init__(self, chunks: Iterable[bytes], read_limit: int):
        self._chunks: Iterator[bytes] = iter(chunks)
        self._read_limit = read_limit
        self.buf = bytearray()
        self.pos = 0
        self.dropped = 0   # bytes already removed from the front of buf
        self.read = 0
        self.mark: int | None = None  # where the held value starts in buf
        self.cap = 0                  # how long the held value may grow before on_overflow decides
        self.on_overflow: Callable[[int], int | None] = lambda held: None

    def error(self, problem: str) -> PayloadError:
        """A malformed-JSON error saying where in the body it is."""
        return PayloadError(f"malformed JSON: {problem} at byte {self.dropped + self.pos}")

    def more(self) -> bool:
        """Append the next chunk to buf; False at the end of the body."""
        if self.mark is not None and self.pos - self.mark > self.cap:
            cap = self.on_overflow(self.pos - self.mark)
            if cap is None:
                self.mark = None  # given up: the rest of the value is only scanned
            else:
                self.cap = cap
        start = self.pos if self.mark is None else self.mark
        if start:
            del self.buf[:start]
            self.dropped += start
            self.pos -= start
            if self.mark is not None:
                self.mark -= start
        chunk = next(self._chunks, b"")
        if not chunk:
            return False
        self.read += len(chunk)
        if self.read > self._read_limit:
            raise TooLarge(f"body larger than {self._read_limit} bytes (max_read_bytes)")
        self.buf += chunk
        return True

    def peek(self) -> int | None:
        """The next byte that is not whitespace, not consumed; None at the end of the body."""
        while True:
            found = _NOT_WS.search(self.buf, self.pos)
            if found:
                self.pos = found.start()
                return self.buf[self.pos]
            self.pos = len(self.buf)
            if not self.more():
                return None

    def expect(self, char: bytes) -> None:
        """Consume `char` (after whitespace), or fail saying what came instead."""
        byte = self.peek()
        if byte != char[0]:
            raise self.error(f"expected {char.decode()!r}, got "
                             + ("the end of the body" if byte is None else repr(chr(byte))))
        self.pos += 1

    def value(self) -> None:
        """Consume one JSON value, checking only its structure."""
        byte = self.peek()
        if byte is None:
            raise self.error("unexpected end of the body")
        if byte == ord('"'):
            self._string()
        elif byte in _CLOSER:
            self._nested()
        else:
            self._scalar()

    def held(self, cap: int, on_overflow: Callable[[int], int | None]) -> bytearray | None:
        """Consume one value and return its bytes, or None when on_overflow gave up holding it."""
        self.peek()
        self.mark, self.cap, self.on_overflow = self.pos, cap, on_overflow
        try:
            self.value()
            if self.mark is None or self.pos - self.mark > self.cap and on_overflow(self.pos - self.mark) is None:
                return None
            return self.buf[self.mark:self.pos]  # one copy; json.loads takes a bytearray
        finally:
            self.mark = None

    def _string(self) -> None:
        self.pos += 1
        while True:
            found = _IN_STRING.search(self.buf, self.pos)
            if found is None or (found.group() == b"\\" and found.end() == len(self.buf)):
                # At the end of buf, or an escape whose next byte has not arrived: read on from there.
                self.pos = len(self.buf) if found is None else found.start()
                if not self.more():
                    raise self.error("unterminated string")
                continue
            if found.group() == b'"':
                self.pos = found.end()
                return
            self.pos = found.end() + 1  # the escaped byte, whatever it is, cannot end the string

    def _nested(self) -> None:
        closers = []
        while True:
            found = _STRUCTURE.search(self.buf, self.pos)
            if found is None:
                self.pos = len(self.buf)
                if not self.more():
                    raise self.error("unexpected end of the body")
                continue
            self.pos = found.start()
            byte = self.buf[self.pos]
            if byte == ord('"'):
                self._string()
                continue
            if byte in _CLOSER:
                closers.append(_CLOSER[byte])
                if len(closers) > MAX_DEPTH:
                    raise self.error("nested too deeply")
            elif not closers or closers.pop() != byte:
                raise self.error(f"unexpected {chr(byte)!r}")
            self.pos += 1
            if not closers:
                return

    def _scalar(self) -> None:
        start = self.dropped + self.pos
        while True:
            found = _SCALAR_END.search(self.buf, self.pos)
            if found:
                self.pos = found.start()
                break
            self.pos = len(self.buf)
            if not self.more():
                break
        if self.dropped + self.pos == start:
            raise self.error(f"unexpected {chr(self.buf[self.pos])!r}")


class _Body:
    """The top-level object, member by member, within `budget` bytes of what is kept."""

    def __init__(self, reader: _Reader, budget: int):
        self.r = reader
        self.budget = budget
        self.used = 0                     # bytes kept: members and alerts
        self.members: dict[str, bytearray] = {}
        self.alerts: list[bytearray] | None = None
        self.cut = 0

    def read(self) -> dict:
        """The decoded members kept, alerts included; the body must end with the object."""
        r = self.r
        byte = r.peek()
        if byte != ord("{"):
            if byte is None or not (byte in _KINDS or chr(byte) in "-0123456789"):
                raise r.error("expected a JSON object")
            raise PayloadError(f"body: expected a JSON object, got {_kind(byte)}")
        r.pos += 1
        if r.peek() == ord("}"):
            r.pos += 1
        else:
            while True:
                self._member()
                byte = r.peek()
                if byte == ord("}"):
                    r.pos += 1
                    break
                r.expect(b",")
        if r.peek() is not None:
            raise r.error("extra data after the object")
        return self._decoded()

    def _room(self) -> int:
        return max(0, self.budget - self.used)

    def _member(self) -> None:
        r = self.r
        if r.peek() != ord('"'):
            raise r.error("expected a member name")
        raw_name = r.held(NAME_MAX, lambda held: None)
        name = decode_json(raw_name) if raw_name is not None else None
        r.expect(b":")
        if name == "alerts":
            if self.alerts is not None:
                raise PayloadError("alerts: given more than once")
            self._alerts()
        elif name in NEEDED or name in DERIVED:
            kind = r.peek()
            raw = r.held(self._room(), self._give_back_alerts if name in NEEDED else lambda held: None)
            if raw is None:
                if name not in DERIVED:
                    raise TooLarge(f"{name}: larger than {self.budget} bytes (max_body_bytes) on its own")
                if kind != ord("{"):
                    raise PayloadError(f"{name}: expected an object, got {_kind(kind)}")
                raw = b"{}"
            self._keep(name, raw)
        else:
            r.value()  # ignored by the parser whatever it holds: not kept

    def _keep(self, name: str, raw: bytes | bytearray) -> None:
        self.used += len(raw) + len(name) + 4 - len(self.members.get(name, b""))
        self.members[name] = raw

    def _give_back_alerts(self, held: int) -> int | None:
        """Room for a member the parser needs: the alerts kept last are cut instead, but the first one."""
        while held > self._room() and self.alerts and len(self.alerts) > 1:
            self.used -= len(self.alerts.pop()) + 1
            self.cut += 1
        return self._room() if held <= self._room() else None

    def _alerts(self) -> None:
        r = self.r
        self.alerts = []
        kind = r.peek()
        if kind != ord("["):
            raise PayloadError(f"alerts: expected an array, got {_kind(kind)}")
        r.pos += 1
        if r.peek() == ord("]"):
            r.pos += 1
            return
        index, cutting = 0, False
        while True:
            kind = r.peek()
            if kind != ord("{"):
                if kind is None:
                    raise r.error("unexpected end of the body")
                raise PayloadError(f"alerts[{index}]: expected an object, got {_kind(kind)}")
            # Held up to the room left, or once cutting, up to CHECK_MAX so that even a cut alert is checked.
            raw = r.held(CHECK_MAX if cutting else max(self._room(), CHECK_MAX), lambda held: None)
            if not cutting and raw is not None and len(raw) + 1 <= self._room():
                self.alerts.append(raw)
                self.used += len(raw) + 1
            else:
                # Only the first alerts that fit are kept: the history keeps Alertmanager's order.
                cutting = True
                self.cut += 1
                if raw is not None:
                    decode_json(raw, f"alerts[{index}]")  # a malformed alert is an error even when cut
            index += 1
            if r.peek() == ord("]"):
                r.pos += 1
                return
            r.expect(b",")

    def _decoded(self) -> dict:
        body = {name: decode_json(raw, name) for name, raw in self.members.items()}
        if self.alerts is not None:
            if not self.alerts and self.cut:
                raise TooLarge(f"alerts[0]: one alert larger than {self.budget} bytes (max_body_bytes)")
            body["alerts"] = [decode_json(raw, f"alerts[{i}]") for i, raw in enumerate(self.alerts)]
        return body


def read_oversized(chunks: Iterable[bytes], budget: int, read_limit: int) -> Kept:
    """The members and first alerts of the body in `chunks` that fit in `budget` bytes, and the alerts cut.

    PayloadError when the body is malformed, TooLarge past `read_limit` bytes or when not even one alert
    (or a member the parser needs) fits.
    """
    reader = _Reader(chunks, read_limit)
    body = _Body(reader, budget)
    decoded = body.read()
    return Kept(decoded, body.cut, reader.read)
