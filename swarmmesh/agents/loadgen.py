"""The lifecycle experiments' load generator, run inside the client host as
``python -m swarmmesh.agents.loadgen``.

An open-loop stream of HTTP GETs, ``--rate`` per second, each on a new TCP
connection, spread round-robin over every node's published port.  One
thread and non-blocking sockets (epoll): a slow or dead target never delays
the next start, and the generator's own cost is a few tens of microseconds
per request.  Request ``i`` is due at ``t0 + i / rate``; ``t0`` is a
``time.monotonic()`` value given by the caller, the same origin as the
orchestrator's events (CLOCK_MONOTONIC is one clock for every process of
the machine; network namespaces do not change it).  A client on another server
(``--servers``) gets the same instant as a wall-clock time (``--t0-epoch``) instead,
and its rows are then as close to the events as the servers' clocks are to each other.  One CSV row per request
(:data:`LOAD_COLUMNS`); a JSON line of statistics (achieved rate, lateness)
on stdout at the end.

A request's ``latency_ms`` is from ``connect()`` to the complete answer; for a
failed request it is the time until it failed (a refused connection fails
in about a millisecond, a dead node only at the timeout).  ``error`` is
``refused``, ``reset``, ``timeout (connect)``, ``timeout (read)``, ``closed``
(the connection ended before a complete answer), ``HTTP <status>``, or
``<errno name>``.

The root side (starting it in a host, reading its CSV) is
:class:`swarmmesh.runs.timeline.Load`.
"""

from __future__ import annotations

import argparse
import collections
import csv
import errno
import json
import resource
import selectors
import socket
import sys
import time
from typing import Callable, Sequence

LOAD_COLUMNS = ["seq", "t_send", "ingress_node", "task", "task_node", "ok", "latency_ms",
                "error", "late_ms", "client_port"]

_REQUEST = b"GET / HTTP/1.1\r\nHost: swarmmesh\r\nUser-Agent: swarmmesh-timeline\r\n" \
           b"Connection: close\r\n\r\n"


# -- one request, and reading its answer ---------------------------------------------

class _Req:
    __slots__ = ("seq", "node", "sock", "t_send", "late", "deadline", "buf", "sent",
                 "t_done", "done", "port")

    def __init__(self, seq: int, node: str, t_send: float, late: float, deadline: float):
        self.seq, self.node, self.t_send, self.late = seq, node, t_send, late
        self.deadline = deadline
        self.sock: socket.socket | None = None
        self.buf = b""
        self.sent = False
        self.t_done: float | None = None
        self.done = False
        self.port = 0


def parse_answer(buf: bytes) -> tuple[bool, int | None, dict | None]:
    """(complete, status, JSON body) of an HTTP/1.x answer read so far."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return False, None, None
    head = buf[:end].decode("latin-1").split("\r\n")
    parts = head[0].split(None, 2)
    status = int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None
    length = None
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length" and value.strip().isdigit():
            length = int(value.strip())
    body = buf[end + 4:]
    if length is None or len(body) < length:
        return False, status, None
    try:
        doc = json.loads(body[:length])
    except (ValueError, UnicodeDecodeError):
        doc = None
    return True, status, doc if isinstance(doc, dict) else None


def _errname(code: int) -> str:
    return {errno.ECONNREFUSED: "refused", errno.ECONNRESET: "reset",
            errno.ETIMEDOUT: "timeout (connect)", errno.EHOSTUNREACH: "unreachable",
            errno.ENETUNREACH: "unreachable"}.get(code, errno.errorcode.get(code, str(code)))


def _verdict(status: int | None) -> str:
    """The error of a complete answer: none for 200."""
    return "" if status == 200 else f"HTTP {status}"


# -- the generator -------------------------------------------------------------------

class _Run:
    """One call of :func:`generate`: the schedule, the requests in flight (in
    order of their deadlines, which is their order of start), the statistics."""

    def __init__(self, targets: Sequence[tuple[str, str]], port: int, rate: float,
                 duration: float, t0: float, timeout: float, emit: Callable[[dict], None]):
        self.targets, self.port, self.t0, self.timeout, self.emit = \
            targets, port, t0, timeout, emit
        self.count = max(1, int(round(rate * duration)))
        self.interval = 1.0 / rate
        self.sel = selectors.EpollSelector()
        self.inflight: collections.deque[_Req] = collections.deque()
        self.stats = {"requests": self.count, "ok": 0, "failed": 0, "max_in_flight": 0}
        self.lates: list[float] = []
        self.sends: list[float] = []
        self.n_open = 0
        self.next = 0                   # the next request to start

    def run(self) -> dict:
        while self.next < self.count or self.inflight:
            now = self.start_due()
            self.stats["max_in_flight"] = max(self.stats["max_in_flight"], self.n_open)
            self.expire(now)
            wait = self.wait_time()
            if wait is None:
                break
            for key, _mask in self.sel.select(wait):
                self.on_event(key.data)
        self.sel.close()
        self.stats.update(send_stats(self.t0, self.sends, self.lates))
        return self.stats

    def due(self, i: int) -> float:
        return self.t0 + i * self.interval

    def wait_time(self) -> float | None:
        """Until the next start or the next deadline; None: nothing left."""
        wake = [self.due(self.next)] if self.next < self.count else []
        if self.inflight:
            wake.append(self.inflight[0].deadline)
        if not wake:
            return None
        return max(0.0, min(wake) - time.monotonic())

    # -- starting ------------------------------------------------------------------
    def start_due(self) -> float:
        """Start every request due by now; the time after the last start."""
        now = time.monotonic()
        while self.next < self.count and self.due(self.next) <= now:
            self.start(self.next)
            self.next += 1
            now = time.monotonic()
        return now

    def start(self, i: int) -> None:
        due = self.due(i)
        node, addr = self.targets[i % len(self.targets)]
        t_send = time.monotonic()
        req = _Req(i, node, t_send, t_send - due, t_send + self.timeout)
        self.lates.append(t_send - due)
        self.sends.append(t_send)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        req.sock = s
        self.n_open += 1
        self.inflight.append(req)
        err = s.connect_ex((addr, self.port))
        if err in (0, errno.EINPROGRESS):
            req.port = s.getsockname()[1]
            self.sel.register(s, selectors.EVENT_WRITE, req)
        else:
            self.finish(req, t_send, _errname(err))

    # -- socket events -------------------------------------------------------------
    def on_event(self, req: _Req) -> None:
        now = time.monotonic()
        if not req.sent:
            self.on_connected(req, now)
        else:
            self.on_readable(req, now)

    def on_connected(self, req: _Req, now: float) -> None:
        """Writable: the connection is made (or failed); send the request."""
        err = req.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self.finish(req, now, _errname(err))
            return
        try:
            req.sock.send(_REQUEST)
        except OSError as exc:
            self.finish(req, now, _errname(exc.errno or 0))
            return
        req.sent = True
        self.sel.modify(req.sock, selectors.EVENT_READ, req)

    def on_readable(self, req: _Req, now: float) -> None:
        try:
            data = req.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            if req.t_done is not None:          # the answer was complete: a late RST
                self.finish_answered(req, now)
            else:
                self.finish(req, now, _errname(exc.errno or 0))
            return
        if data:
            req.buf += data
            if req.t_done is None and parse_answer(req.buf)[0]:
                req.t_done = now                # complete; wait for the server's FIN
            return
        complete, status, doc = parse_answer(req.buf)
        self.finish(req, now, _verdict(status) if complete else "closed", doc)

    # -- ending ----------------------------------------------------------------------
    def expire(self, now: float) -> None:
        """End the requests at the head of the queue that are done or past their deadline."""
        while self.inflight and (self.inflight[0].done or self.inflight[0].deadline <= now):
            req = self.inflight.popleft()
            if req.done:
                continue
            if req.t_done is not None:          # answered; the FIN never came
                self.finish_answered(req, now)
            else:
                self.finish(req, now, "timeout (read)" if req.sent else "timeout (connect)")

    def finish_answered(self, req: _Req, now: float) -> None:
        _complete, status, doc = parse_answer(req.buf)
        self.finish(req, now, _verdict(status), doc)

    def finish(self, req: _Req, now: float, error: str = "", doc: dict | None = None) -> None:
        if req.done:
            return
        req.done = True
        self.close(req)
        ok = not error
        end = req.t_done if req.t_done is not None else now
        self.stats["ok" if ok else "failed"] += 1
        self.emit({"seq": req.seq, "t_send": round(req.t_send - self.t0, 6),
                   "ingress_node": req.node,
                   "task": (doc or {}).get("task", "") if ok else "",
                   "task_node": (doc or {}).get("node", "") if ok else "",
                   "ok": ok, "latency_ms": round((end - req.t_send) * 1000.0, 3),
                   "error": error, "late_ms": round(req.late * 1000.0, 3),
                   "client_port": req.port})

    def close(self, req: _Req) -> None:
        if req.sock is None:
            return
        try:
            self.sel.unregister(req.sock)
        except (KeyError, ValueError):
            pass
        req.sock.close()
        req.sock = None
        self.n_open -= 1


def send_stats(t0: float, sends: list[float], lates: list[float]) -> dict:
    """First and last start (s from ``t0``), the achieved rate, and how late
    the starts were against the schedule (median, p99, max; ms)."""
    lates = sorted(lates)
    span = sends[-1] - sends[0] if len(sends) > 1 else 0.0
    return {
        "first_send_s": round(sends[0] - t0, 6) if sends else None,
        "last_send_s": round(sends[-1] - t0, 6) if sends else None,
        "achieved_rps": round((len(sends) - 1) / span, 2) if span > 0 else None,
        "late_median_ms": round(lates[len(lates) // 2] * 1000, 3) if lates else None,
        "late_p99_ms": round(lates[min(len(lates) - 1, int(0.99 * len(lates)))] * 1000, 3)
        if lates else None,
        "late_max_ms": round(lates[-1] * 1000, 3) if lates else None,
    }


def generate(targets: Sequence[tuple[str, str]], port: int, rate: float, duration: float,
             t0: float, timeout: float, emit: Callable[[dict], None]) -> dict:
    """Send ``round(rate * duration)`` requests, request ``i`` due at
    ``t0 + i / rate`` to ``targets[i % len(targets)]`` (``(node, address)``);
    ``emit(row)`` for each as it ends.  Returns the statistics."""
    return _Run(targets, port, rate, duration, t0, timeout, emit).run()


# -- the command line ------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m swarmmesh.agents.loadgen",
                                 description="Open-loop HTTP load over every node; one CSV "
                                             "row per request, statistics as JSON on stdout.")
    ap.add_argument("--target", action="append", required=True, metavar="NODE=ADDRESS",
                    help="a node and its published address (repeat for every node)")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--rate", type=float, required=True, help="requests started per second")
    ap.add_argument("--duration", type=float, required=True, help="seconds of load")
    start = ap.add_mutually_exclusive_group(required=True)
    start.add_argument("--t0", type=float,
                       help="time.monotonic() of the first request (the events' origin), "
                            "from a process of this machine")
    start.add_argument("--t0-epoch", type=float,
                       help="the same instant as a time.time() value, from another machine "
                            "whose clock is in step with this one's (--servers)")
    ap.add_argument("--timeout", type=float, default=3.0, help="per-request timeout, seconds")
    ap.add_argument("--csv", required=True, help="where to write the rows")
    return ap


def _targets(ap: argparse.ArgumentParser, items: Sequence[str]) -> list[tuple[str, str]]:
    targets = []
    for item in items:
        node, sep, addr = item.partition("=")
        if not sep or not node or not addr:
            ap.error(f"--target wants NODE=ADDRESS, got {item!r}")
        targets.append((node, addr))
    return targets


def monotonic_of_epoch(epoch: float, now_epoch: float, now_monotonic: float) -> float:
    """This machine's ``time.monotonic()`` value of the instant ``epoch`` (wall clock)."""
    return now_monotonic + (epoch - now_epoch)


def start_of(a: argparse.Namespace) -> float:
    """The first request's due time on this process's monotonic clock: ``--t0`` as given
    (one machine: CLOCK_MONOTONIC is shared), or ``--t0-epoch`` through the wall clock (a
    monotonic value means nothing on another machine, whose boot is its own origin)."""
    if a.t0 is not None:
        return a.t0
    return monotonic_of_epoch(a.t0_epoch, time.time(), time.monotonic())


def flushing(emit: Callable[[dict], None], f, every: float = 0.5,
             clock: Callable[[], float] = time.monotonic) -> Callable[[dict], None]:
    """``emit``, with ``f`` flushed at most every ``every`` s: a run stopped from outside
    (Ctrl-C, a failure: the file is fetched from another server before the generator is
    killed there) finds the rows of all but the last moments in the file."""
    last = [clock()]

    def out(row: dict) -> None:
        emit(row)
        now = clock()
        if now - last[0] >= every:
            f.flush()
            last[0] = now
    return out


def main(argv: list[str] | None = None) -> int:
    ap = _parser()
    a = ap.parse_args(argv)
    for name in ("rate", "duration", "timeout"):
        if getattr(a, name) <= 0:
            ap.error(f"--{name} must be > 0")
    targets = _targets(ap, a.target)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with open(a.csv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=LOAD_COLUMNS)
        w.writeheader()
        try:
            stats = generate(targets, a.port, a.rate, a.duration, start_of(a), a.timeout,
                             flushing(w.writerow, f))
        except KeyboardInterrupt:
            return 130
    stats["targets"] = [f"{n}={addr}" for n, addr in targets]
    print(json.dumps(stats), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
