"""Measuring HTTP/1.1 client for the task servers (stdlib only).

All timings use :func:`time.perf_counter` and are in milliseconds measured
from the start of the attempt (just before ``connect``, or before sending on a
reused keep-alive connection):

* ``connect_ms`` - TCP handshake (``None`` when a keep-alive connection was
  reused, or when connecting failed),
* ``ttfb_ms`` - until the first response byte arrived,
* ``total_ms`` - until the complete response (headers + body) was read.

Network errors never raise: they give ``ok=False`` with ``error`` set to
``"<phase>: <ExceptionName>: <message>"`` (phase is resolve, connect, send or
read), e.g. ``"connect: ConnectionRefusedError: [Errno 111] Connection refused"``.
A complete response with a non-2xx status gives ``ok=False`` and
``error="HTTP <status>"``.

CLI (one JSON object per line on stdout, nothing else)::

    python -m swarmmesh.agents.httpclient HOST PORT --count K [--keepalive] [--timeout S]
        [--path P] [--interval S]
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import sys
import time
from dataclasses import asdict, dataclass

__all__ = ["Result", "get", "KeepAliveClient", "run_many", "main"]

_MAX_HEAD = 65536
_USER_AGENT = "swarmmesh-httpclient"


@dataclass
class Result:
    """Outcome and timings of one HTTP request."""

    ok: bool
    status: int | None = None
    connect_ms: float | None = None
    ttfb_ms: float | None = None
    total_ms: float | None = None
    body: dict | None = None
    error: str | None = None
    local_port: int | None = None
    ts: float | None = None
    """Wall-clock time (``time.time()``) at which the request started."""


class _Failure(Exception):
    """A failed request phase; ``received`` counts response bytes seen."""

    def __init__(self, phase: str, exc: BaseException | str, received: int = 0) -> None:
        if isinstance(exc, BaseException):
            text = f"{phase}: {type(exc).__name__}: {exc}"
        else:
            text = f"{phase}: {exc}"
        super().__init__(text)
        self.phase = phase
        self.received = received


@dataclass
class _Response:
    status: int
    headers: dict[str, str]
    body: bytes
    t_first: float
    t_end: float
    server_closes: bool  # the server will close (or has closed) the connection


def _remaining(deadline: float) -> float:
    left = deadline - time.perf_counter()
    if left <= 0:
        raise socket.timeout("timed out")
    return left


def _recv(sock: socket.socket, deadline: float, received: int) -> bytes:
    try:
        sock.settimeout(_remaining(deadline))
        return sock.recv(65536)
    except OSError as exc:
        raise _Failure("read", exc, received) from None


def _read_response(sock: socket.socket, deadline: float, head_only: bool = False) -> _Response:
    """Read one complete HTTP/1.x response from ``sock``."""
    buf = b""
    t_first = 0.0
    while True:
        data = _recv(sock, deadline, len(buf))
        if not data:
            raise _Failure("read", "connection closed before a complete response"
                           if buf else "connection closed without response", len(buf))
        if not buf:
            t_first = time.perf_counter()
        buf += data
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            break
        if len(buf) > _MAX_HEAD:
            raise _Failure("read", "response head too large", len(buf))
    lines = buf[:end].decode("latin-1").split("\r\n")
    parts = lines[0].split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise _Failure("read", f"bad status line {lines[0][:80]!r}", len(buf))
    status = int(parts[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    conn = headers.get("connection", "").lower()
    server_closes = "close" in conn or (parts[0] == "HTTP/1.0" and "keep-alive" not in conn)
    body = buf[end + 4:]
    received = len(buf)
    if head_only or status in (204, 304) or 100 <= status < 200:
        body = b""
    elif "content-length" in headers:
        try:
            length = int(headers["content-length"])
        except ValueError:
            raise _Failure("read", "bad Content-Length", received) from None
        while len(body) < length:
            data = _recv(sock, deadline, received)
            if not data:
                raise _Failure("read", "connection closed mid-body", received)
            body += data
            received += len(data)
        body = body[:length]
    else:  # no length (or chunked, unsupported): read until the server closes
        server_closes = True
        while True:
            data = _recv(sock, deadline, received)
            if not data:
                break
            body += data
            received += len(data)
    return _Response(status, headers, body, t_first, time.perf_counter(), server_closes)


def _resolve(host: str, port: int) -> tuple:
    """Return (family, proto, sockaddr) for host:port (TCP)."""
    try:
        family, _, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (OSError, UnicodeError) as exc:
        raise _Failure("resolve", exc) from None
    return family, proto, addr


def _open(family: int, proto: int, addr: tuple, deadline: float,
          source: tuple[str, int] | None) -> socket.socket:
    """Create and connect a TCP socket (raises :class:`_Failure`)."""
    sock = socket.socket(family, socket.SOCK_STREAM, proto)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if source is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(source)
        sock.settimeout(_remaining(deadline))
        sock.connect(addr)
    except OSError as exc:
        sock.close()
        raise _Failure("connect", exc) from None
    return sock


def _request(host: str, port: int, path: str, keepalive: bool) -> bytes:
    hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    conn = "keep-alive" if keepalive else "close"
    return (f"GET {path} HTTP/1.1\r\nHost: {hostport}\r\nUser-Agent: {_USER_AGENT}\r\n"
            f"Accept: application/json\r\nConnection: {conn}\r\n\r\n").encode("latin-1")


def _parse_body(raw: bytes) -> dict | None:
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _result(resp: _Response, t0: float, t_conn: float | None, local_port: int | None,
            ts: float) -> Result:
    ok = 200 <= resp.status < 300
    return Result(
        ok=ok, status=resp.status,
        connect_ms=None if t_conn is None else (t_conn - t0) * 1000.0,
        ttfb_ms=(resp.t_first - t0) * 1000.0, total_ms=(resp.t_end - t0) * 1000.0,
        body=_parse_body(resp.body), error=None if ok else f"HTTP {resp.status}",
        local_port=local_port, ts=ts)


def _local_port(sock: socket.socket) -> int | None:
    try:
        return sock.getsockname()[1]
    except OSError:
        return None


def get(host: str, port: int, path: str = "/", timeout: float = 2.0,
        source: tuple[str, int] | None = None) -> Result:
    """One GET on a new TCP connection (``Connection: close``); never raises
    for network errors. ``timeout`` bounds the whole request."""
    ts = time.time()
    sock: socket.socket | None = None
    t_conn: float | None = None
    local_port: int | None = None
    t0 = time.perf_counter()
    try:
        family, proto, addr = _resolve(host, port)
        t0 = time.perf_counter()
        deadline = t0 + timeout
        sock = _open(family, proto, addr, deadline, source)
        t_conn = time.perf_counter()
        local_port = _local_port(sock)
        try:
            sock.settimeout(_remaining(deadline))
            sock.sendall(_request(host, port, path, keepalive=False))
        except OSError as exc:
            raise _Failure("send", exc) from None
        resp = _read_response(sock, deadline)
        _drain_until_close(sock, deadline)
        return _result(resp, t0, t_conn, local_port, ts)
    except _Failure as exc:
        return Result(ok=False, connect_ms=None if t_conn is None else (t_conn - t0) * 1000.0,
                      error=str(exc), local_port=local_port, ts=ts)
    finally:
        if sock is not None:
            sock.close()


def _drain_until_close(sock: socket.socket, deadline: float, cap: float = 0.2) -> None:
    """Wait briefly for the server's FIN so that the server, not us, ends up
    in TIME_WAIT (keeps client ports reusable in long experiments)."""
    try:
        sock.settimeout(max(0.0, min(cap, deadline - time.perf_counter())))
        while sock.recv(4096):
            pass
    except OSError:
        pass


class KeepAliveClient:
    """Sends sequential GETs over one persistent connection, reconnecting when
    the server closed it. Use as a context manager or call :meth:`close`."""

    def __init__(self, host: str, port: int, timeout: float = 2.0,
                 source: tuple[str, int] | None = None) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.source = source
        self._sock: socket.socket | None = None
        self._addr: tuple | None = None
        self.connections = 0
        """Number of TCP connections opened so far."""

    def __enter__(self) -> "KeepAliveClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the current connection, if any."""
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def _stale(self) -> bool:
        """True if the idle connection was closed (or has unexpected data)."""
        sock = self._sock
        if sock is None:
            return True
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)  # EOF, RST or stray bytes: start afresh

    def get(self, path: str = "/") -> Result:
        """GET ``path`` on the persistent connection; never raises for network errors."""
        ts = time.time()
        for attempt in range(2):
            t0 = time.perf_counter()
            t_conn: float | None = None
            local_port: int | None = None
            reused = False
            try:
                if self._addr is None:
                    self._addr = _resolve(self.host, self.port)
                    t0 = time.perf_counter()
                deadline = t0 + self.timeout
                if self._stale():
                    self.close()
                    family, proto, addr = self._addr
                    self._sock = _open(family, proto, addr, deadline, self.source)
                    self.connections += 1
                    t_conn = time.perf_counter()
                else:
                    reused = True
                sock = self._sock
                assert sock is not None
                local_port = _local_port(sock)
                try:
                    sock.settimeout(_remaining(deadline))
                    sock.sendall(_request(self.host, self.port, path, keepalive=True))
                except OSError as exc:
                    raise _Failure("send", exc) from None
                resp = _read_response(sock, deadline)
                if resp.server_closes:
                    self.close()
                return _result(resp, t0, t_conn, local_port, ts)
            except _Failure as exc:
                self.close()
                # A reused connection that died before any response byte was
                # most likely closed by the server meanwhile: retry once.
                if reused and attempt == 0 and exc.received == 0 \
                        and exc.phase in ("send", "read") and "timed out" not in str(exc):
                    continue
                return Result(ok=False,
                              connect_ms=None if t_conn is None else (t_conn - t0) * 1000.0,
                              error=str(exc), local_port=local_port, ts=ts)
        raise AssertionError("unreachable")


def run_many(host: str, port: int, count: int, path: str = "/",
             timeout: float = 2.0) -> list[Result]:
    """``count`` sequential requests, each on a new connection."""
    return [get(host, port, path, timeout) for _ in range(count)]


def _iter_results(args: argparse.Namespace):
    if args.keepalive:
        with KeepAliveClient(args.host, args.port, args.timeout) as client:
            for i in range(args.count):
                if i and args.interval > 0:
                    time.sleep(args.interval)
                yield client.get(args.path)
    else:
        for i in range(args.count):
            if i and args.interval > 0:
                time.sleep(args.interval)
            yield get(args.host, args.port, args.path, args.timeout)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: print one JSON object per result on stdout."""
    p = argparse.ArgumentParser(prog="python -m swarmmesh.agents.httpclient",
                                description="Measure HTTP GETs; one JSON line per request.")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--count", type=int, default=1, help="number of requests (default 1)")
    p.add_argument("--keepalive", action="store_true",
                   help="reuse one connection instead of a new one per request")
    p.add_argument("--timeout", type=float, default=2.0, help="per-request timeout, seconds")
    p.add_argument("--path", default="/", help="request path (default /)")
    p.add_argument("--interval", type=float, default=0.0,
                   help="pause between requests, seconds (default 0)")
    args = p.parse_args(argv)
    out = sys.stdout
    try:
        for res in _iter_results(args):
            out.write(json.dumps(asdict(res)) + "\n")
            out.flush()
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # reader went away (e.g. piped into head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
