"""Running probes without blocking: one selectors loop of sockets, probe processes'
pidfds and timers, shared by :func:`run_probe` (one check, blocking) and the checker."""

from __future__ import annotations

import errno
import heapq
import itertools
import logging
import os
import selectors
import signal
import socket
import subprocess
import time
from typing import Callable

from swarmmesh.lifecycle.health import ProbeResult
from swarmmesh.lifecycle.probes import CommandProbe, HttpProbe, Probe, socket_in_netns

log = logging.getLogger(__name__)

def run_probe(probe: Probe, timeout: float,
              clock: Callable[[], float] = time.monotonic) -> ProbeResult:
    """Run one check now, blocking at most about ``timeout`` seconds."""
    done: list[ProbeResult] = []
    loop = _Loop(clock)
    loop.start_check(probe, timeout, done.append)
    while not done:
        loop.run_once(None)
    loop.close()
    return done[0]


_READ, _WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE
_MAX_OUTPUT = 4096


class _Check:
    """One running check: a socket or a process, with a deadline."""

    def __init__(self, loop: "_Loop", probe: Probe, timeout: float,
                 done: Callable[[ProbeResult], None]) -> None:
        self.loop, self.probe, self.timeout, self.done = loop, probe, timeout, done
        self.start = loop.clock()
        self.finished = False
        self.sock: socket.socket | None = None
        self.proc: subprocess.Popen | None = None
        self.pidfd = -1
        self.buf = b""
        self.sent = False
        self.timer = loop.call_at(self.start + timeout, self._expire)
        try:
            if isinstance(probe, HttpProbe):
                self._connect(probe)
            else:
                self._spawn(probe)
        except OSError as exc:
            self.finish(False, -1, f"cannot run check: {exc}")

    # -- HTTP ----------------------------------------------------------------
    def _connect(self, probe: HttpProbe) -> None:
        family = socket.AF_INET6 if ":" in probe.host else socket.AF_INET
        self.sock = socket_in_netns(probe.netns_pid, family, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        err = self.sock.connect_ex((probe.host.strip("[]"), probe.port))
        if err not in (0, errno.EINPROGRESS):
            self.finish(False, 1, f"connect: {os.strerror(err)}")
            return
        self.loop.sel.register(self.sock, _WRITE, self._on_sock)

    def _on_sock(self, mask: int) -> None:
        sock = self.sock
        if sock is None:                 # already ended (a timeout in the same round)
            return
        if not self.sent:
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self.finish(False, 1, f"connect: {os.strerror(err)}")
                return
            try:
                sock.send(self.probe.request())  # type: ignore[union-attr]
            except OSError as exc:
                self.finish(False, 1, f"send: {exc.strerror or exc}")
                return
            self.sent = True
            self.loop.sel.modify(sock, _READ, self._on_sock)
            return
        try:
            data = sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.finish(False, 1, f"read: {exc.strerror or exc}")
            return
        self.buf += data
        if b"\r\n" in self.buf or not data:
            if not self.buf:
                self.finish(False, 1, "read: connection closed without an answer")
                return
            ok, out = self.probe.judge(self.buf)  # type: ignore[union-attr]
            self.finish(ok, 0 if ok else 1, out)

    # -- command -------------------------------------------------------------
    def _spawn(self, probe: CommandProbe) -> None:
        self.proc = subprocess.Popen(
            probe.command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
        self.pidfd = os.pidfd_open(self.proc.pid)
        os.set_blocking(self.proc.stdout.fileno(), False)  # type: ignore[union-attr]
        self.loop.sel.register(self.proc.stdout, _READ, self._on_output)  # type: ignore[arg-type]
        self.loop.sel.register(self.pidfd, _READ, self._on_exit)

    def _drain(self) -> None:
        out = self.proc.stdout  # type: ignore[union-attr]
        try:
            while True:
                data = os.read(out.fileno(), 65536)
                if not data:
                    break
                if len(self.buf) < _MAX_OUTPUT:
                    self.buf += data[:_MAX_OUTPUT - len(self.buf)]
        except (BlockingIOError, InterruptedError):
            pass

    def _on_output(self, mask: int) -> None:
        if self.proc is not None:        # the exit, in the same select round, may have ended it
            self._drain()

    def _on_exit(self, mask: int) -> None:
        if self.proc is None:
            return
        code = self.proc.wait()  # type: ignore[union-attr]
        self._drain()
        self.finish(code == 0, code, self.buf.decode(errors="replace"))

    # -- end -----------------------------------------------------------------
    def _expire(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # our own child's session
            except ProcessLookupError:
                pass
            self.proc.wait()
        self.finish(False, -1, f"Health check exceeded timeout ({self.timeout:g}s)",
                    timed_out=True)

    def finish(self, ok: bool, code: int, output: str, timed_out: bool = False) -> None:
        if self.finished:
            return
        self.finished = True
        end = self.loop.clock()
        self.timer.cancel()
        self.abort()
        self.done(ProbeResult(ok, self.start, end, code, timed_out, output))

    def abort(self) -> None:
        """Release the socket or the process (killed if still running)."""
        sel = self.loop.sel
        if self.sock is not None:
            try:
                sel.unregister(self.sock)
            except (KeyError, ValueError):
                pass
            self.sock.close()
            self.sock = None
        if self.proc is not None:
            for obj in (self.proc.stdout, self.pidfd):
                try:
                    sel.unregister(obj)  # type: ignore[arg-type]
                except (KeyError, ValueError):
                    pass
            if self.proc.poll() is None:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
            self.proc.stdout.close()  # type: ignore[union-attr]
            os.close(self.pidfd)
            self.proc = None
        self.finished = True


class _Timer:
    __slots__ = ("fn", "cancelled")

    def __init__(self, fn: Callable[[], None]) -> None:
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class _Loop:
    """A selector plus a timer heap, driven by whoever owns it."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.sel = selectors.DefaultSelector()
        self.timers: list[tuple[float, int, _Timer]] = []
        self._seq = itertools.count()

    def call_at(self, when: float, fn: Callable[[], None]) -> _Timer:
        timer = _Timer(fn)
        heapq.heappush(self.timers, (when, next(self._seq), timer))
        return timer

    def start_check(self, probe: Probe, timeout: float,
                    done: Callable[[ProbeResult], None]) -> _Check:
        return _Check(self, probe, timeout, done)

    def run_once(self, max_wait: float | None) -> None:
        """Wait for I/O or the next timer (at most ``max_wait``), then run what is due."""
        timers = self.timers
        while timers and timers[0][2].cancelled:
            heapq.heappop(timers)
        wait = max_wait
        if timers:
            until = max(0.0, timers[0][0] - self.clock())
            wait = until if wait is None else min(wait, until)
        for key, mask in self.sel.select(wait):
            key.data(mask)
        now = self.clock()
        while timers and timers[0][0] <= now:
            timer = heapq.heappop(timers)[2]
            if not timer.cancelled:
                timer.fn()

    def close(self) -> None:
        self.sel.close()
