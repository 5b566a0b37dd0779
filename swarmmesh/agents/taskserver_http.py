"""The task server's HTTP/1.x side: one connection, from bytes in to the answer out.

A :class:`Conn` reads requests (keep-alive, pipelining, bodies skipped by
Content-Length), routes them (``/health``, ``/control`` on the control port,
``/admin/state``, anything else: the task's JSON document) and queues the
answers, late in ``slow`` mode.  What it needs of its server (the mode, the
slow delay, the body counter, timers) is the :class:`Server` protocol, which
``swarmmesh.agents.taskserver.TaskServer`` implements.
"""

from __future__ import annotations

import json
import re
import selectors
import socket
from typing import Any, Callable, Protocol
from urllib.parse import parse_qs

from swarmmesh.agents.taskserver_loop import Timer

MAX_HEADER_BYTES = 16384
"""Largest accepted request head (request line + headers)."""

MAX_BUFFERED = 1 << 20
"""Unprocessed input kept per connection before it is dropped."""

STATES = ("healthy", "unhealthy", "slow", "dead")

_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE
_REASONS = {
    200: b"OK",
    400: b"Bad Request",
    405: b"Method Not Allowed",
    431: b"Request Header Fields Too Large",
    501: b"Not Implemented",
    503: b"Service Unavailable",
}
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VERSIONS = (b"HTTP/1.1", b"HTTP/1.0")


def json_line(obj: dict) -> bytes:
    """Encode ``obj`` as one line of JSON terminated by a newline."""
    return (json.dumps(obj) + "\n").encode()


def build_response(status: int, body: bytes, head_only: bool, keep: bool,
                   http10_keep: bool = False, extra: bytes = b"") -> bytes:
    """Serialise a complete HTTP/1.1 response."""
    conn = b"keep-alive" if keep else b"close"
    head = (b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: %s\r\n%s\r\n" % (
                status, _REASONS.get(status, b"Unknown"), len(body), conn, extra))
    return head if head_only else head + body


class Server(Protocol):
    """What a connection uses of the task server it belongs to."""

    sel: selectors.BaseSelector
    conns: set[Conn]
    control_port: int | None
    slow_delay: float
    state: str

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> Timer: ...

    def task_body(self, client: str, client_port: int, port: int) -> bytes: ...

    def set_mode(self, mode: str, keep: Conn | None = None) -> None: ...

    def die(self, conn: Conn) -> None: ...


class Conn:
    """One HTTP/1.x connection: keep-alive, pipelining, body skipping, slow timer."""

    __slots__ = ("srv", "sock", "peer_ip", "peer_port", "lport", "buf", "out",
                 "skip", "busy", "close_after", "eof", "events", "closed",
                 "timer", "on_closed")

    def __init__(self, srv: Server, sock: socket.socket, peer_ip: str,
                 peer_port: int, lport: int) -> None:
        self.srv = srv
        self.sock = sock
        self.peer_ip = peer_ip
        self.peer_port = peer_port
        self.lport = lport
        self.buf = b""
        self.out = b""
        self.skip = 0             # request-body bytes still to discard
        self.busy = False         # a delayed (slow) answer is pending
        self.close_after = False  # close once ``out`` is flushed
        self.eof = False          # peer finished sending
        self.events = 0           # selector interest currently registered
        self.closed = False
        self.timer: Timer | None = None
        self.on_closed: Callable[[], None] | None = None
        srv.conns.add(self)

    # -- socket events ---------------------------------------------------------
    def on_event(self, mask: int) -> None:
        if mask & _WRITE:
            self.flush()
        if mask & _READ and not self.closed:
            self.on_read()

    def on_error(self) -> None:
        self.close()

    def on_read(self) -> None:
        """Read what is available, answer complete requests, flush."""
        try:
            data = self.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            data = None
        except OSError:  # reset by peer etc.
            self.close()
            return
        if data is not None:
            if not data:
                self.eof = True
            elif not self.close_after:
                self.feed(data)
        self.flush()

    def feed(self, data: bytes) -> None:
        """Add input; answer requests unless a delayed answer is pending."""
        if self.skip:
            if len(data) <= self.skip:
                self.skip -= len(data)
                return
            data = data[self.skip:]
            self.skip = 0
        self.buf = self.buf + data if self.buf else data
        if not self.busy:
            try:
                self.process()
            except Exception:
                self.reply(400, json_line({"error": "bad request"}), False, False)
        elif len(self.buf) > MAX_BUFFERED:
            self.close_after = True

    def flush(self) -> None:
        """Send pending output and update selector interest (or close)."""
        if self.closed:
            return
        if self.out:
            try:
                n = self.sock.send(self.out)
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError:
                self.close()
                return
            self.out = self.out[n:]
        if self.out:
            want = _WRITE if (self.eof or self.close_after) else _READ | _WRITE
        elif self.close_after or (self.eof and not self.busy):
            self.close()
            return
        else:
            want = 0 if self.eof else _READ
        if want != self.events:
            sel = self.srv.sel
            if self.events == 0:
                sel.register(self.sock, want, self)
            elif want == 0:
                sel.unregister(self.sock)
            else:
                sel.modify(self.sock, want, self)
            self.events = want

    def close(self) -> None:
        """Close the socket (idempotent) and run the ``on_closed`` hook."""
        if self.closed:
            return
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.events:
            try:
                self.srv.sel.unregister(self.sock)
            except (KeyError, ValueError):
                pass
            self.events = 0
        self.sock.close()
        self.srv.conns.discard(self)
        if self.on_closed is not None:
            self.on_closed()

    # -- HTTP ------------------------------------------------------------------
    def process(self) -> None:
        """Answer every complete request in the buffer (stops while busy)."""
        while not self.busy and not self.close_after and self.buf:
            buf = self.buf
            if buf[0] in (13, 10):  # tolerate empty lines before a request
                buf = self.buf = buf.lstrip(b"\r\n")
                if not buf:
                    return
            end = buf.find(b"\r\n\r\n")
            sep = 4
            lf = buf.find(b"\n\n", 0, end if end >= 0 else len(buf))
            if lf >= 0:  # bare-LF request head ends first
                end, sep = lf, 2
            if end < 0 and len(buf) <= MAX_HEADER_BYTES:
                return  # wait for the rest of the head
            if end < 0 or end > MAX_HEADER_BYTES:
                self.reply(431, json_line({"error": "request head too large"}),
                           False, False)
                return
            self.buf = buf[end + sep:]
            self.handle(buf[:end])

    def handle(self, head: bytes) -> None:
        """Parse one request head, skip its body and dispatch it."""
        lines = head.split(b"\n")
        parts = lines[0].split()
        if (len(parts) != 3 or parts[2] not in _VERSIONS
                or not _TOKEN.fullmatch(parts[0])):
            self.reply(400, json_line({"error": "bad request line"}), False, False)
            return
        method, target, version = parts
        keep = version == b"HTTP/1.1"
        http10_keep = False
        clen = 0
        chunked = False
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not name or name[-1:] in (b" ", b"\t"):
                self.reply(400, json_line({"error": "bad header"}), False, False)
                return
            lname = name.lower()
            if lname == b"connection":
                tokens = {t.strip() for t in value.lower().split(b",")}
                if b"close" in tokens:
                    keep = False
                elif b"keep-alive" in tokens and version == b"HTTP/1.0":
                    keep = http10_keep = True
            elif lname == b"content-length":
                v = value.strip()
                if not v.isdigit():
                    self.reply(400, json_line({"error": "bad content-length"}),
                               False, False)
                    return
                clen = int(v)
            elif lname == b"transfer-encoding":
                chunked = True
        if chunked:  # cannot skip a chunked body without parsing it
            self.reply(501, json_line({"error": "transfer-encoding not supported"}),
                       method == b"HEAD", False)
            return
        if clen:
            if len(self.buf) >= clen:
                self.buf = self.buf[clen:]
            else:
                self.skip = clen - len(self.buf)
                self.buf = b""
        self.dispatch(method, target, keep, http10_keep)

    def dispatch(self, method: bytes, target: bytes, keep: bool,
                 http10_keep: bool) -> None:
        """Route a parsed request and queue the answer."""
        srv = self.srv
        head_only = method == b"HEAD"
        if target[:1] != b"/":  # absolute-form: http://host/path
            i = target.find(b"/", target.find(b"//") + 2) if b"//" in target else -1
            target = target[i:] if i >= 0 else b"/"
        path, _, query = target.partition(b"?")
        private = srv.control_port is None or self.lport == srv.control_port
        if path == b"/control" and private and srv.control_port is not None:
            if method in (b"GET", b"HEAD", b"POST"):
                self.control(query, head_only, keep)
                return
        if not head_only and method != b"GET":
            allow = b"GET, HEAD, POST" if path == b"/control" and private else b"GET, HEAD"
            self.reply(405, json_line({"error": "method not allowed"}), False,
                       keep, b"Allow: " + allow + b"\r\n")
            return
        if path == b"/admin/state" and not private:
            path = b"/"  # an ordinary path on a public port
        delay = srv.slow_delay if srv.state == "slow" else 0.0
        if path == b"/health":
            healthy = srv.state != "unhealthy"
            self.reply(200 if healthy else 503, json_line({"healthy": healthy}),
                       head_only, keep, delay=delay)
        elif path == b"/admin/state":
            self.admin_state(query, head_only, keep)
        else:
            body = srv.task_body(self.peer_ip, self.peer_port, self.lport)
            self.reply(200, body, head_only, keep, delay=delay)

    def admin_state(self, query: bytes, head_only: bool, keep: bool) -> None:
        """``/admin/state?value=...`` (the older interface); ``dead`` exits."""
        srv = self.srv
        values = parse_qs(query.decode("latin-1")).get("value")
        if values is None:
            self.reply(200, json_line({"state": srv.state}), head_only, keep)
        elif values[-1] not in STATES:
            self.reply(400, json_line({"error": "invalid state",
                                       "valid": list(STATES)}), head_only, keep)
        elif values[-1] == "dead":
            srv.state = "dead"
            self.reply(200, json_line({"state": "dead"}), head_only, False)
            srv.die(self)
        else:
            srv.state = values[-1]
            self.reply(200, json_line({"state": srv.state}), head_only, keep)

    def control(self, query: bytes, head_only: bool, keep: bool) -> None:
        """``/control?mode=...&delay_ms=...`` on the control port."""
        srv = self.srv
        args = parse_qs(query.decode("latin-1"))
        mode = args.get("mode", [None])[-1]
        delay = args.get("delay_ms", [None])[-1]
        if mode is not None and mode not in STATES:
            self.reply(400, json_line({"error": "invalid mode", "valid": list(STATES)}),
                       head_only, keep)
            return
        if delay is not None:
            if not delay.isdigit():
                self.reply(400, json_line({"error": "delay_ms must be an integer >= 0"}),
                           head_only, keep)
                return
            srv.slow_delay = int(delay) / 1000.0
        if mode is not None:
            keep = keep and mode != "dead"
            srv.set_mode(mode, keep=self)
        self.reply(200, json_line({"mode": srv.state,
                                   "delay_ms": round(srv.slow_delay * 1000)}),
                   head_only, keep)

    def reply(self, status: int, body: bytes, head_only: bool, keep: bool,
              extra: bytes = b"", delay: float = 0.0) -> None:
        """Queue a response, after ``delay`` seconds if given; close unless keep."""
        data = build_response(status, body, head_only, keep, extra=extra)
        if delay > 0:
            self.busy = True
            self.timer = self.srv.call_later(delay, self._delayed, data, keep)
        else:
            self._queue(data, keep)

    def _queue(self, data: bytes, keep: bool) -> None:
        self.out = self.out + data if self.out else data
        if not keep:
            self.close_after = True
            self.buf = b""

    def _delayed(self, data: bytes, keep: bool) -> None:
        self.timer = None
        self.busy = False
        if self.closed:
            return
        self._queue(data, keep)
        try:
            self.process()
        except Exception:
            self.reply(400, json_line({"error": "bad request"}), False, False)
        self.flush()
