"""Small, fast, single-threaded HTTP/1.1 server run inside each emulated task.

Built directly on :mod:`selectors` and non-blocking sockets (no asyncio
streams, no http.server): a freshly accepted socket is read and answered
immediately, so one core serves well over 10000 new-connection requests per
second on loopback.

Usage::

    python -m swarmmesh.agents.taskserver --task app.1 --node node1 --port 80 \
        [--port 8080 ...] [--control-port 9999] [--bind 0.0.0.0] [--udp]

Once every socket is listening, exactly one line ``ready <port> [<port> ...]``
(the actually bound TCP ports, so ``--port 0`` is usable) is printed to stdout.
SIGTERM/SIGINT make the process exit with code 0.

Every GET/HEAD on any path answers 200 with a one-line JSON body::

    {"task": "app.1", "node": "node1", "client": "10.0.0.5",
     "client_port": 41234, "port": 80, "seq": 17}

``seq`` counts the normal (non ``/health``, non ``/admin``) requests answered
by this process, over TCP and UDP together.  Other methods get 405; request
bodies are skipped according to Content-Length (chunked bodies get 501).

Special paths:

* ``/health`` -> 200 ``{"healthy": true}``, or 503 ``{"healthy": false}``
  while the mode is ``unhealthy`` (on every port; delayed in ``slow`` mode).
* ``/control`` (GET or POST; only on the ``--control-port``, the task's
  private port that is never published) sets the mode for experiments::

      /control?mode=healthy|unhealthy|slow|dead[&delay_ms=N]

  and answers ``{"mode": ..., "delay_ms": N}`` (without ``mode`` it only
  reports; ``delay_ms`` alone changes the slow delay). Modes:

  - ``healthy``: normal.
  - ``unhealthy``: ``/health`` fails (503) while every other request is still
    answered, as an application that is up but failing its check.
  - ``slow``: every answer except ``/control`` ones comes ``delay_ms``
    (default 200) late, ``/health`` included; a loop timer, nothing blocks.
  - ``dead``: as a killed container. After answering, every listening TCP
    socket and UDP responder is closed (new connections are refused) and every
    established connection is closed; the process stays, idle. The control
    port is closed too, so only a signal brings the task back.

  Signals: ``SIGUSR1`` -> ``healthy`` (re-opens every listener on the same
  ports, from any mode); ``SIGUSR2`` -> ``dead``. With ``mnexec``/``kill`` from
  outside the task these need no network access.
* ``/admin/state?value=healthy|unhealthy|slow|dead`` (older interface) sets the
  same modes; here ``dead`` answers, closes every listener and exits the
  process with code 0. Served on every port, or only on the control port
  when ``--control-port`` is given.

On any port other than the control port, ``/control`` is an ordinary path.

With ``--udp`` a UDP responder listens on the same ports and answers every
datagram with the same JSON document (``port`` is the UDP port).
"""

from __future__ import annotations

import argparse
import errno
import heapq
import itertools
import json
import re
import selectors
import signal
import socket
import sys
import time
from typing import Any, Callable
from urllib.parse import parse_qs

SLOW_DELAY = 0.2
"""Delay (seconds) added to every answer in the ``slow`` state."""

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
_ACCEPT_BATCH = 64


def _json_line(obj: dict) -> bytes:
    """Encode ``obj`` as one line of JSON terminated by a newline."""
    return (json.dumps(obj) + "\n").encode()


def _build_response(status: int, body: bytes, head_only: bool, keep: bool,
                    http10_keep: bool = False, extra: bytes = b"") -> bytes:
    """Serialise a complete HTTP/1.1 response."""
    conn = b"keep-alive" if keep else b"close"
    head = (b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: %s\r\n%s\r\n" % (
                status, _REASONS.get(status, b"Unknown"), len(body), conn, extra))
    return head if head_only else head + body


class _Timer:
    """A cancellable one-shot callback scheduled on the server loop."""

    __slots__ = ("fn", "args", "cancelled")

    def __init__(self, fn: Callable[..., Any], args: tuple) -> None:
        self.fn = fn
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        """Prevent the callback from running."""
        self.cancelled = True


class TaskServer:
    """Single-threaded selectors loop: listeners, connections, timers, state."""

    def __init__(self, task: str, node: str, ports: list[int],
                 bind: str = "0.0.0.0", udp: bool = False,
                 slow_delay: float = SLOW_DELAY, control_port: int | None = None) -> None:
        self.task = task
        self.node = node
        # Drop duplicate fixed ports; every "0" asks for its own free port.
        seen: set[int] = set()
        self.ports = [p for p in ports if p == 0 or not (p in seen or seen.add(p))]
        self.control_port = control_port
        if control_port is not None and control_port not in self.ports:
            self.ports.append(control_port)
        self.bind = bind
        self.udp = udp
        self.slow_delay = slow_delay
        self.state = "healthy"
        self.seq = 0
        self.bound_ports: list[int] = []
        self.exit_code = 0
        self._signalled_mode: str | None = None  # set by SIGUSR1/2, applied by the loop
        self.running = True  # cleared by stop(), which may run before serve_forever
        # Pre-encoded '{"task": ..., "node": ..., ' prefix of every body.
        self._prefix = json.dumps({"task": task, "node": node})[:-1].encode() + b", "
        self.sel = selectors.DefaultSelector()
        self._listeners: list[_Listener] = []
        self._udps: list[_UdpResponder] = []
        self.conns: set[_Conn] = set()
        self._timers: list[tuple[float, int, _Timer]] = []
        self._tick = itertools.count()
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> list[int]:
        """Open every listener (raises OSError) and return the bound TCP ports."""
        self.bound_ports = self._open(self.ports)
        return self.bound_ports

    def _open(self, ports: list[int]) -> list[int]:
        """Listen on ``ports`` (TCP, and UDP with ``--udp``); the bound TCP ports."""
        bound: list[int] = []
        try:
            for port in ports:
                family, _, _, _, addr = socket.getaddrinfo(
                    self.bind, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
                ls = socket.socket(family, socket.SOCK_STREAM)
                ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                ls.bind(addr)
                ls.listen(4096)
                ls.setblocking(False)
                actual = ls.getsockname()[1]
                lst = _Listener(self, ls, actual)
                self._listeners.append(lst)
                self.sel.register(ls, _READ, lst)
                bound.append(actual)
                if self.udp:
                    us = socket.socket(family, socket.SOCK_DGRAM)
                    us.bind((addr[0], actual) + tuple(addr[2:]))
                    us.setblocking(False)
                    ur = _UdpResponder(self, us, actual)
                    self._udps.append(ur)
                    self.sel.register(us, _READ, ur)
        except OSError:
            self.close_listeners()
            raise
        return bound

    def install_signal_handlers(self) -> None:
        """Make SIGTERM/SIGINT stop the loop (main thread only)."""
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        self.sel.register(self._wake_r, _READ, _Wakeup(self._wake_r))
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop(0))
        signal.signal(signal.SIGUSR1, lambda *_: setattr(self, "_signalled_mode", "healthy"))
        signal.signal(signal.SIGUSR2, lambda *_: setattr(self, "_signalled_mode", "dead"))

    def stop(self, code: int = 0) -> None:
        """Make :meth:`serve_forever` return ``code``."""
        self.exit_code = code
        self.running = False

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> _Timer:
        """Run ``fn(*args)`` on the loop after ``delay`` seconds."""
        timer = _Timer(fn, args)
        heapq.heappush(self._timers, (time.monotonic() + delay, next(self._tick), timer))
        return timer

    def serve_forever(self) -> int:
        """Run the event loop until :meth:`stop`; tear down; return exit code."""
        select = self.sel.select
        timers = self._timers
        try:
            while self.running:
                timeout = None
                if timers:
                    timeout = max(0.0, timers[0][0] - time.monotonic())
                for key, mask in select(timeout):
                    handler = key.data
                    try:
                        handler.on_event(mask)
                    except Exception:  # a single bad socket must never kill the loop
                        handler.on_error()
                if self._signalled_mode is not None:
                    mode, self._signalled_mode = self._signalled_mode, None
                    self.set_mode(mode)
                if timers:
                    now = time.monotonic()
                    while timers and timers[0][0] <= now:
                        timer = heapq.heappop(timers)[2]
                        if not timer.cancelled:
                            try:
                                timer.fn(*timer.args)
                            except Exception:
                                pass
        finally:
            self.close()
        return self.exit_code

    def close_listeners(self) -> None:
        """Close every listening TCP socket and UDP responder."""
        for obj in self._listeners + self._udps:
            try:
                self.sel.unregister(obj.sock)
            except (KeyError, ValueError):
                pass
            obj.sock.close()
        self._listeners.clear()
        self._udps.clear()

    def close(self) -> None:
        """Release every socket and the selector."""
        self.close_listeners()
        for conn in list(self.conns):
            conn.close()
        if self._wake_r is not None:
            try:
                signal.set_wakeup_fd(-1)
            except ValueError:
                pass
            self._wake_r.close()
            self._wake_w.close()  # type: ignore[union-attr]
            self._wake_r = self._wake_w = None
        self.sel.close()

    def set_mode(self, mode: str, keep: "_Conn | None" = None) -> None:
        """Enter ``mode`` (one of :data:`STATES`); ``dead`` spares ``keep``
        until it has flushed its answer. Leaving ``dead`` re-opens the ports."""
        if mode == "dead":
            if self.state != "dead":
                self.close_listeners()
                for conn in list(self.conns):
                    if conn is not keep:
                        conn.close()
        elif self.state == "dead":
            try:
                self._open(self.bound_ports)
            except OSError as exc:
                print(f"taskserver: cannot listen again: {exc}", file=sys.stderr)
                return
        self.state = mode

    def die(self, conn: "_Conn") -> None:
        """Enter ``dead``: stop listening, exit once ``conn`` flushed its answer."""
        self.close_listeners()
        conn.on_closed = lambda: self.stop(0)
        self.call_later(1.0, self.stop, 0)  # fallback if the answer never drains

    # -- bodies --------------------------------------------------------------
    def task_body(self, client: str, client_port: int, port: int) -> bytes:
        """Count a normal request and return its JSON body."""
        self.seq += 1
        return self._prefix + b'"client": %s, "client_port": %d, "port": %d, "seq": %d}\n' % (
            json.dumps(client).encode(), client_port, port, self.seq)


def _client_ip(addr: tuple) -> str:
    ip = addr[0]
    return ip[7:] if ip.startswith("::ffff:") and "." in ip else ip


class _Wakeup:
    """Drains the signal wake-up socket (signal handlers do the real work)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def on_event(self, mask: int) -> None:
        try:
            while self.sock.recv(512):
                pass
        except OSError:
            pass

    def on_error(self) -> None:
        pass


class _PortHandler:
    """What the selector calls for one listening socket of the server."""

    def __init__(self, srv: TaskServer, sock: socket.socket, port: int) -> None:
        self.srv = srv
        self.sock = sock
        self.port = port

    def on_error(self) -> None:
        pass


class _Listener(_PortHandler):
    """Accepts connections on one TCP port and answers them eagerly."""

    def on_event(self, mask: int) -> None:
        srv = self.srv
        accept = self.sock.accept
        for _ in range(_ACCEPT_BATCH):
            try:
                sock, addr = accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._pause(0.1)  # out of descriptors: back off briefly
                return
            conn = _Conn(srv, sock, _client_ip(addr), addr[1], self.port)
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.on_read()  # the request has usually arrived already
            except Exception:
                conn.close()

    def _pause(self, delay: float) -> None:
        try:
            self.srv.sel.unregister(self.sock)
        except (KeyError, ValueError):
            return
        self.srv.call_later(delay, self._resume)

    def _resume(self) -> None:
        if self.sock.fileno() >= 0:
            try:
                self.srv.sel.register(self.sock, _READ, self)
            except (KeyError, ValueError):
                pass


class _UdpResponder(_PortHandler):
    """Answers every UDP datagram with the task JSON document."""

    def on_event(self, mask: int) -> None:
        srv = self.srv
        for _ in range(_ACCEPT_BATCH):
            try:
                _, addr = self.sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. ICMP port unreachable from a vanished client
                continue
            body = srv.task_body(_client_ip(addr), addr[1], self.port)
            if srv.state == "slow":
                srv.call_later(srv.slow_delay, self._send, body, addr)
            else:
                self._send(body, addr)

    def _send(self, body: bytes, addr: tuple) -> None:
        if self.sock.fileno() >= 0:
            try:
                self.sock.sendto(body, addr)
            except OSError:
                pass


class _Conn:
    """One HTTP/1.x connection: keep-alive, pipelining, body skipping, slow timer."""

    __slots__ = ("srv", "sock", "peer_ip", "peer_port", "lport", "buf", "out",
                 "skip", "busy", "close_after", "eof", "events", "closed",
                 "timer", "on_closed")

    def __init__(self, srv: TaskServer, sock: socket.socket, peer_ip: str,
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
        self.timer: _Timer | None = None
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
                self.reply(400, _json_line({"error": "bad request"}), False, False)
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
                self.reply(431, _json_line({"error": "request head too large"}),
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
            self.reply(400, _json_line({"error": "bad request line"}), False, False)
            return
        method, target, version = parts
        keep = version == b"HTTP/1.1"
        http10_keep = False
        clen = 0
        chunked = False
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not name or name[-1:] in (b" ", b"\t"):
                self.reply(400, _json_line({"error": "bad header"}), False, False)
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
                    self.reply(400, _json_line({"error": "bad content-length"}),
                               False, False)
                    return
                clen = int(v)
            elif lname == b"transfer-encoding":
                chunked = True
        if chunked:  # cannot skip a chunked body without parsing it
            self.reply(501, _json_line({"error": "transfer-encoding not supported"}),
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
            self.reply(405, _json_line({"error": "method not allowed"}), False,
                       keep, b"Allow: " + allow + b"\r\n")
            return
        if path == b"/admin/state" and not private:
            path = b"/"  # an ordinary path on a public port
        delay = srv.slow_delay if srv.state == "slow" else 0.0
        if path == b"/health":
            healthy = srv.state != "unhealthy"
            self.reply(200 if healthy else 503, _json_line({"healthy": healthy}),
                       head_only, keep, delay=delay)
        elif path == b"/admin/state":
            values = parse_qs(query.decode("latin-1")).get("value")
            if values is None:
                self.reply(200, _json_line({"state": srv.state}), head_only, keep)
            elif values[-1] not in STATES:
                self.reply(400, _json_line({"error": "invalid state",
                                            "valid": list(STATES)}), head_only, keep)
            elif values[-1] == "dead":
                srv.state = "dead"
                self.reply(200, _json_line({"state": "dead"}), head_only, False)
                srv.die(self)
            else:
                srv.state = values[-1]
                self.reply(200, _json_line({"state": srv.state}), head_only, keep)
        else:
            body = srv.task_body(self.peer_ip, self.peer_port, self.lport)
            self.reply(200, body, head_only, keep, delay=delay)

    def control(self, query: bytes, head_only: bool, keep: bool) -> None:
        """``/control?mode=...&delay_ms=...`` on the control port."""
        srv = self.srv
        args = parse_qs(query.decode("latin-1"))
        mode = args.get("mode", [None])[-1]
        delay = args.get("delay_ms", [None])[-1]
        if mode is not None and mode not in STATES:
            self.reply(400, _json_line({"error": "invalid mode", "valid": list(STATES)}),
                       head_only, keep)
            return
        if delay is not None:
            if not delay.isdigit():
                self.reply(400, _json_line({"error": "delay_ms must be an integer >= 0"}),
                           head_only, keep)
                return
            srv.slow_delay = int(delay) / 1000.0
        if mode is not None:
            keep = keep and mode != "dead"
            srv.set_mode(mode, keep=self)
        self.reply(200, _json_line({"mode": srv.state,
                                    "delay_ms": round(srv.slow_delay * 1000)}),
                   head_only, keep)

    def reply(self, status: int, body: bytes, head_only: bool, keep: bool,
              extra: bytes = b"", delay: float = 0.0) -> None:
        """Queue a response, after ``delay`` seconds if given; close unless keep."""
        data = _build_response(status, body, head_only, keep, extra=extra)
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
            self.reply(400, _json_line({"error": "bad request"}), False, False)
        self.flush()


def _raise_nofile_limit() -> None:
    """Lift the soft open-file limit to the hard limit (best effort)."""
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(prog="python -m swarmmesh.agents.taskserver",
                                description=__doc__.splitlines()[0])
    p.add_argument("--task", required=True, help="task name, e.g. app.1")
    p.add_argument("--node", required=True, help="node name, e.g. node1")
    p.add_argument("--port", type=int, action="append",
                   help="TCP port to listen on (repeatable; 0 = any free port)")
    p.add_argument("--control-port", type=int, default=None,
                   help="private port that serves /control (also listened on)")
    p.add_argument("--bind", default="0.0.0.0", help="address to bind")
    p.add_argument("--udp", action="store_true",
                   help="also answer UDP datagrams on the same ports")
    p.add_argument("--slow-delay", type=float, default=SLOW_DELAY,
                   help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the process exit code."""
    args = parse_args(argv)
    if args.control_port is not None and not 1 <= args.control_port <= 65535:
        print(f"taskserver: --control-port: must be in 1..65535, got {args.control_port}",
              file=sys.stderr)
        return 2
    _raise_nofile_limit()
    server = TaskServer(args.task, args.node, args.port or [80], bind=args.bind,
                        udp=args.udp, slow_delay=args.slow_delay,
                        control_port=args.control_port)
    server.install_signal_handlers()
    try:
        ports = server.start()
    except OSError as exc:
        print(f"taskserver: cannot listen: {exc}", file=sys.stderr)
        server.close()
        return 1
    sys.stdout.write("ready " + " ".join(map(str, ports)) + "\n")
    sys.stdout.flush()
    return server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
