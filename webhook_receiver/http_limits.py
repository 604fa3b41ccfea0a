"""gunicorn's gthread worker with bounded reads: a request reaches a thread only once it has arrived.

gthread hands a connection to a thread as soon as it is readable, and that thread then blocks in recv()
until the request line, headers and body are in, with no deadline: two dozen clients trickling a byte every
few seconds held every thread, and webhooks waited for as long as they lasted. Here the worker's event loop
reads each request itself, without blocking, until its head and body (by Content-Length or chunked, up to
`prebuffer_bytes`; it answers `Expect: 100-continue` itself) have arrived, and only then gives it to a thread,
which parses it from memory. A slow or idle connection costs a buffer, never a thread; past its deadline it
is answered 408 and closed, and counted. What a thread still reads from the socket (a body past
`prebuffer_bytes`, or one the event loop could not frame) is read under the same body deadline, and answers
are written under `send_timeout`.
gunicorn's `worker_connections` caps the connections a worker holds; past it, new ones wait in the kernel's
listen backlog. Plain HTTP/1.x only: the receiver configures neither TLS nor HTTP/2.
"""
from __future__ import annotations

import errno
import logging
import re
import selectors
import socket
import time
from dataclasses import dataclass
from functools import partial
from typing import Callable

from gunicorn.http.unreader import SocketUnreader
from gunicorn.workers.gthread import ThreadWorker, TConn
from werkzeug.exceptions import RequestTimeout

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 64 * 1024  # request line and headers; Alertmanager sends well under 1 KiB
LINGER = 2.0                # seconds a closing connection may take to send its FIN (gunicorn's close_graceful)
RECV_BYTES = 64 * 1024
_TIMEOUT_ANSWER = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
_HEAD_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n"
                   b"Content-Length: 0\r\n\r\n")
# The fields that decide whether the body can be awaited here (the parser validates them all again).
_MAX_CHUNK_LINE = 1024
_HEX_DIGITS = b"0123456789abcdefABCDEF"
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_BODY_FIELDS = re.compile(rb"\r\n(content-length|transfer-encoding|expect)[ \t]*:[ \t]*([^\r\n]*)", re.I)


@dataclass(frozen=True)
class Limits:
    """Deadlines and sizes of one worker; `on_cut(worker, phase)` counts a connection cut for slowness."""

    header_timeout: float       # from accepting (or a kept-alive request's first byte) to the end of its head
    body_timeout: float         # for the body, plus a second per `body_min_rate` bytes received
    body_min_rate: int
    send_timeout: float         # for writing one answer
    prebuffer_bytes: int        # body bytes the event loop waits for before a thread gets the request
    on_cut: Callable[[object, str], None] | None = None


class SlowClient(RequestTimeout, TimeoutError):
    """A read past its deadline: Flask answers it 408 (RequestTimeout); gunicorn's drain sees a TimeoutError."""

    def __init__(self, phase: str):
        super().__init__(f"request {phase} not received in time")
        self.phase = phase


@dataclass(frozen=True)
class Framing:
    """How a request's body ends, from its head: `length` bytes, or chunked; `expects` 100-continue."""

    length: int = 0
    chunked: bool = False
    expects: bool = False


def framing(head: bytes) -> Framing | None:
    """The body framing a head announces, or None when it is unusual (the parser decides, in a thread)."""
    length, chunked, expects = None, False, False
    for name, value in _BODY_FIELDS.findall(head):
        name, value = name.lower(), value.strip().lower()
        if name == b"content-length" and length is None and value.isdigit():
            length = int(value)
        elif name == b"transfer-encoding" and not chunked and value == b"chunked":
            chunked = True
        elif name == b"expect" and not expects and value == b"100-continue":
            expects = True
        else:
            return None  # repeated, malformed or another coding: the parser answers it (400, 417, 501)
    if chunked and length is not None:
        return None  # both: refused by the parser (a smuggling attempt)
    return Framing(length or 0, chunked, expects and head.split(b"\r\n", 1)[0].endswith(b" HTTP/1.1"))


def bare_lf(buf: bytes | bytearray, start: int) -> bool:
    """Whether a line feed at or after `start` has no carriage return before it (RFC 9112 wants CRLF)."""
    at = buf.find(b"\n", start)
    while at >= 0:
        if at == 0 or buf[at - 1] != 13:
            return True
        at = buf.find(b"\n", at + 1)
    return False


def chunked_scan(buf: bytes | bytearray, pos: int) -> tuple[int, bool | None]:
    """Walk the complete chunks of a chunked body from `pos`: where the next chunk starts, and True once the
    last chunk and trailers are in, False while more is needed, None when malformed."""
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return pos, False if len(buf) - pos <= _MAX_CHUNK_LINE else None
        size = bytes(buf[pos:eol]).split(b";", 1)[0].strip()
        if not size or len(size) > 16 or size.strip(_HEX_DIGITS):
            return pos, None
        size = int(size, 16)
        if size == 0:  # the last chunk: then trailers, if any, and an empty line
            return pos, buf.find(b"\r\n\r\n", eol) >= 0
        end = eol + 2 + size + 2
        if len(buf) < end:
            return pos, False
        pos = end


class DeadlineUnreader(SocketUnreader):
    """gunicorn's socket reader with each recv() bounded by the request's header or body deadline."""

    def __init__(self, sock, conn: BoundedConn):
        super().__init__(sock)
        self.conn = conn
        self.req = None          # the request whose body is read, once its head is parsed
        self.body_started = 0.0
        self.received = 0

    def begin_body(self, req) -> None:
        """The head is parsed: reads from now on are `req`'s body, with a fresh body allowance."""
        self.req, self.body_started, self.received = req, time.monotonic(), 0

    def deadline(self) -> float:
        """When the current read must have completed."""
        if self.req is None:
            return self.conn.header_deadline
        limits = self.conn.limits
        return self.body_started + limits.body_timeout + self.received / limits.body_min_rate

    def chunk(self, size_hint=None):
        phase = "header" if self.req is None else "body"
        remaining = self.deadline() - time.monotonic()
        if remaining <= 0:
            raise self._cut(phase)
        self.sock.settimeout(remaining)
        try:
            data = super().chunk(size_hint)
        except socket.timeout:
            raise self._cut(phase) from None
        finally:
            self.sock.settimeout(self.conn.limits.send_timeout)  # the answer is written under its own bound
        self.received += len(data)
        return data

    def _cut(self, phase: str) -> SlowClient:
        if self.req is not None:
            self.req.must_close = True  # the 408 says "Connection: close": the rest of the body is not read
        if not self.conn.cut_counted:
            self.conn.cut_counted = True
            self.conn.report(self.conn, phase)
        return SlowClient(phase)


class BoundedConn(TConn):
    """A connection with the bytes received so far of its next request, and its deadlines."""

    def __init__(self, cfg, sock, client, server, limits: Limits, report):
        super().__init__(cfg, sock, client, server)
        self.limits = limits
        self.report = report            # report(conn, phase): count and log a cut
        self.buf = bytearray()
        self.scanned = 0                # bytes of buf searched for the end of the head
        self.head_end = -1              # offset of the body in buf once the head is in
        self.framing: Framing | None = None
        self.chunk_pos = 0              # where the next chunk of a chunked body starts in buf
        self.continued = False          # "100 Continue" sent by the event loop
        self.header_deadline = time.monotonic() + limits.header_timeout
        self.body_started = 0.0
        self.linger_deadline = None     # set once closing: the FIN is awaited until then
        self.prefix = b""               # what the event loop read, for the parser a thread creates
        self.watched = False            # registered with the worker's poller by this module
        self.cut_counted = False

    def init(self):
        fresh = not self.initialized
        super().init()
        if fresh and not self.is_http2:
            self.parser.unreader = DeadlineUnreader(self.sock, self)
        if self.prefix:
            self.parser.unreader.unread(self.prefix)
            self.prefix = b""

    def deadline(self) -> float:
        """When this waiting connection is cut (or, closing, dropped)."""
        if self.linger_deadline is not None:
            return self.linger_deadline
        if self.head_end < 0:
            return self.header_deadline
        received = len(self.buf) - self.head_end
        return self.body_started + self.limits.body_timeout + received / self.limits.body_min_rate

    def phase(self) -> str:
        """What a cut now would be counted as: idle (nothing sent), header or body."""
        if self.head_end >= 0:
            return "body"
        return "header" if self.buf else "idle"


class BoundedThreadWorker(ThreadWorker):
    """ThreadWorker whose event loop reads each request before a thread takes it; see the module's docstring."""

    limits: Limits  # set by worker_class()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.waiting: dict[BoundedConn, None] = {}  # receiving a request, or lingering before the close
        self.next_deadline = float("inf")            # no waiting connection expires before this

    # -- the event loop: accept, receive, dispatch
    def accept(self, listener):
        try:
            client_sock, client_addr = listener.accept()
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                return  # another worker took it, or the client gave up: as gthread's accept()
            raise
        self.nr_conns += 1
        conn = BoundedConn(self.cfg, client_sock, client_addr, listener.getsockname(), self.limits, self.report)
        self.await_request(conn)

    def on_client_socket_readable(self, conn, client):
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self.await_request(conn)

    def await_request(self, conn: BoundedConn, received: bytes = b"") -> None:
        """Receive `conn`'s next request in the event loop; a thread gets it once it is in."""
        conn.sock.setblocking(False)
        conn.buf, conn.scanned, conn.head_end = bytearray(received), 0, -1
        conn.continued = conn.cut_counted = False
        if conn.initialized:  # a kept-alive connection: the clock starts with its next request
            conn.header_deadline = time.monotonic() + self.limits.header_timeout
        self.waiting[conn] = None
        self.next_deadline = min(self.next_deadline, conn.header_deadline)
        # Most requests are in already: read first, and watch the socket only if more is to come (two
        # epoll_ctl calls fewer per request under a storm).
        if received:
            self.progress(conn)
        else:
            self.on_request_readable(conn, None)
        if conn in self.waiting and not conn.watched:
            conn.watched = True
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_request_readable, conn))

    def on_request_readable(self, conn: BoundedConn, _fileobj) -> None:
        """Take what the client sent, without blocking."""
        try:
            data = conn.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client left (or reset): nothing to answer
            self.forget(conn)
            self.close(conn)
            return
        conn.buf += data
        self.progress(conn)

    def progress(self, conn: BoundedConn) -> None:
        """Dispatch `conn` once its head and body are in (the body up to prebuffer_bytes); refuse a huge head."""
        if conn.head_end < 0:
            # Only what is new is searched: a client sending its head a byte per packet must not cost
            # a scan of everything before it each time.
            end = conn.buf.find(b"\r\n\r\n", max(conn.scanned - 3, 0))
            if end < 0:
                if len(conn.buf) > MAX_HEAD_BYTES:
                    self.forget(conn)
                    self.answer_and_close(conn, _HEAD_TOO_LARGE)
                elif bare_lf(conn.buf, conn.scanned):
                    self.dispatch(conn)  # the head can never end: the parser answers 400
                else:
                    conn.scanned = len(conn.buf)
                return
            conn.head_end, conn.body_started = end + 4, time.monotonic()
            conn.framing = framing(bytes(conn.buf[:end]))
            if conn.framing is None:
                self.dispatch(conn)
                return
            conn.chunk_pos = conn.head_end
            if conn.framing.expects and (conn.framing.length or conn.framing.chunked):
                # The client waits for this before sending the body; gunicorn would send it from the thread.
                conn.continued = True
                if len(conn.buf) == conn.head_end:
                    try:
                        conn.sock.send(_CONTINUE)
                    except OSError:
                        pass
        received = len(conn.buf) - conn.head_end
        if conn.framing.chunked:
            conn.chunk_pos, done = chunked_scan(conn.buf, conn.chunk_pos)
            done = done is not False  # malformed (None): the parser answers it
        else:
            done = received >= conn.framing.length
        if done or received >= self.limits.prebuffer_bytes:  # past it, a thread reads the rest, under deadline
            self.dispatch(conn)

    def dispatch(self, conn: BoundedConn) -> None:
        """Give `conn`, its request received, to a thread (which parses it from memory)."""
        self.forget(conn)
        received, conn.buf = bytes(conn.buf), bytearray()
        if conn.initialized:
            conn.parser.unreader.unread(received)
            conn.parser.unreader.req = None
        else:
            conn.prefix = received
        conn.data_ready = True  # gthread's handle() must not wait for data again
        self.enqueue_req(conn)

    def forget(self, conn: BoundedConn) -> None:
        """Stop watching `conn` in the event loop."""
        self.waiting.pop(conn, None)
        if conn.watched:
            conn.watched = False
            try:
                self.poller.unregister(conn.sock)
            except (KeyError, ValueError, OSError):
                pass

    def murder_pending(self):
        """Cut requests past their deadline and drop lingering closes past theirs (once a loop pass)."""
        now = time.monotonic()
        if now < self.next_deadline and self.alive:
            return
        self.next_deadline = float("inf")
        for conn in list(self.waiting):
            if conn.linger_deadline is None and not self.alive and not conn.buf:
                self.forget(conn)  # stopping: an idle connection is not waited for
                self.close(conn)
                continue
            deadline = conn.deadline()
            if deadline > now:
                self.next_deadline = min(self.next_deadline, deadline)
            elif conn.linger_deadline is not None:
                self.forget(conn)
                self.close(conn)
            else:
                self.cut(conn)

    def cut(self, conn: BoundedConn) -> None:
        """Close a connection past its deadline: 408 when it started a request, counted either way."""
        phase = conn.phase()
        self.forget(conn)
        self.report(conn, phase)
        if phase == "idle":
            self.close(conn)  # it asked nothing: no answer (as nginx does)
        else:
            self.answer_and_close(conn, _TIMEOUT_ANSWER)

    # -- closing, without blocking the event loop
    def answer_and_close(self, conn: BoundedConn, answer: bytes) -> None:
        """Send a short answer if the socket takes it at once, then close."""
        try:
            conn.sock.send(answer)
        except OSError:
            pass
        self.linger(conn)

    def linger(self, conn: BoundedConn) -> None:
        """Half-close and wait (in the event loop, at most LINGER) for the client's FIN, then close.

        gunicorn's close_graceful does this by blocking for up to 2 s in the thread that calls it, which for
        gthread is the event loop: a client that never closes would stall every connection of the worker.
        Closing with unread bytes in the kernel's buffer would send a RST, which can destroy the answer.
        """
        try:
            conn.sock.setblocking(False)
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close(conn)
            return
        conn.linger_deadline = time.monotonic() + LINGER
        self.next_deadline = min(self.next_deadline, conn.linger_deadline)
        self.waiting[conn] = None
        conn.watched = True
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_linger_readable, conn))

    def on_linger_readable(self, conn: BoundedConn, _fileobj) -> None:
        try:
            if conn.sock.recv(RECV_BYTES):
                return  # still draining what the client sent
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self.forget(conn)
        self.close(conn)

    def close(self, conn: BoundedConn) -> None:
        """Close `conn` for good and free its slot."""
        self.nr_conns -= 1
        conn.close()

    # -- back from a thread
    def finish_request(self, conn, fs):
        try:
            keep = (not fs.cancelled()) and fs.result()
            if keep and not conn.is_http2:
                received = conn.parser.unreader.take_buffered()
                if received:  # pipelined: the next request started arriving with this one
                    self.await_request(conn, received)
                    return
                conn.sock.setblocking(False)
                conn.set_timeout()
                if not self.alive:
                    conn.timeout = min(conn.timeout, time.monotonic() + 2.0)  # as gthread's STOP_KEEPALIVE_LINGER
                self.keepalived_conns.append(conn)
                self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_client_socket_readable, conn))
            else:
                self.linger(conn)
        except Exception:
            self.forget(conn)
            self.close(conn)

    # -- in a thread
    def handle_request(self, req, conn):
        reader = conn.parser.unreader
        if isinstance(reader, DeadlineUnreader):
            reader.begin_body(req)
        if conn.continued:
            req._expected_100_continue = False  # already sent by the event loop (gunicorn would send another)
        conn.sock.settimeout(self.limits.send_timeout)
        try:
            return super().handle_request(req, conn)
        except TimeoutError as exc:
            if not isinstance(exc, SlowClient) and not conn.cut_counted:
                conn.cut_counted = True
                self.report(conn, "send")  # the client did not take the answer in send_timeout
            raise StopIteration() from None  # gthread's handle() then closes it quietly

    def report(self, conn: BoundedConn, phase: str) -> None:
        """Log and count a connection cut in `phase` (idle, header, body or send); never raises."""
        log.info("http.slow_client phase=%s remote=%s", phase, conn.client[0] if conn.client else "-")
        if self.limits.on_cut is not None:
            try:
                self.limits.on_cut(self, phase)
            except Exception:  # counting must never take the connection handling down with it
                log.exception("http.slow_client_count_failed phase=%s", phase)


def worker_class(limits: Limits) -> type[BoundedThreadWorker]:
    """A BoundedThreadWorker class bound to `limits` (gunicorn instantiates the class it is given)."""
    return type("BoundedThreadWorker", (BoundedThreadWorker,), {"limits": limits})
