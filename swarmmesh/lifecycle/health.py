"""Task health checks: Swarm's timings, Docker's state machine, probes, the checker loop.

Four layers, each usable on its own:

* **Timings.** Swarm's numbers in one place (:data:`SWARM_PROFILE`) and the
  ``fast`` profile's (:data:`FAST_PROFILE`), plus :func:`parse_duration` for
  Docker durations (``"30s"``, ``"1m30s"``, ``"500ms"``).
* **State machine.** :class:`HealthMonitor` is pure (no I/O, the time is
  passed in) and follows Docker's ``daemon/health.go``: a task starts in
  ``starting``; one passing check makes it ``healthy`` (from any state and
  resets the failing streak); a failing check counts only if it started
  after the start period or the task was already healthy/unhealthy, and
  ``retries`` consecutive counted failures make it ``unhealthy``. A check that
  runs longer than ``timeout`` fails. The next check is due ``interval`` after
  the previous one *ended* (the first one ``interval`` after the start), or
  ``start_interval`` while still starting inside the start period, and never
  later than the end of the start period.
* **Probes.** :class:`HttpProbe` (built in: ``GET /health`` from inside the
  task's network namespace, what ``curl -f http://localhost/health`` does
  there) and :class:`CommandProbe` (a command run in the namespace with
  ``mnexec -a PID``). :func:`probe_for` picks one from a stack ``test``;
  :func:`run_probe` runs one, blocking.
* **Checker.** :class:`Checker` runs the checks of many tasks from one
  thread (a selectors loop: sockets, pidfds of probe processes, timers) and
  calls back on every status transition.

Sockets of an :class:`HttpProbe` with ``netns_pid`` are created inside that
process's network namespace (``setns`` on the checker's own thread, then back):
this needs root, as Mininet does; without ``netns_pid`` they are created in the
caller's namespace (what the unit tests use). No namespace file descriptor is
kept open between checks, so a task's namespace vanishes with its host.
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import heapq
import itertools
import logging
import os
import re
import selectors
import shlex
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Union
from urllib.parse import urlsplit

if TYPE_CHECKING:  # model imports this module; only the type is needed here
    from swarmmesh.model import HealthCheck

__all__ = [
    "DEFAULT_INTERVAL", "DEFAULT_TIMEOUT", "DEFAULT_RETRIES", "DEFAULT_START_PERIOD",
    "DEFAULT_START_INTERVAL", "MINIMUM_DURATION", "LB_LEAVE_DELAY",
    "NODE_FAILURE_DETECTION", "NODE_DOWN_AFTER", "IPVS_TCP_TIMEOUT", "IPVS_TCPFIN_TIMEOUT",
    "IPVS_UDP_TIMEOUT", "DEFAULT_TEST", "Profile", "SWARM_PROFILE", "FAST_PROFILE",
    "PROFILES", "profile", "parse_duration", "STARTING", "HEALTHY", "UNHEALTHY",
    "ProbeResult", "Transition", "HealthMonitor", "HttpProbe", "CommandProbe", "Probe",
    "probe_for", "run_probe", "Checker", "replace_timings", "socket_in_netns",
]

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------
# Swarm's timings (seconds)
# --------------------------------------------------------------------------

DEFAULT_INTERVAL = 30.0
"""Docker: time before the first check, and from the end of one check to the next."""
DEFAULT_TIMEOUT = 30.0
"""Docker: a check running longer fails."""
DEFAULT_RETRIES = 3
"""Docker: consecutive counted failures that make a task unhealthy."""
DEFAULT_START_PERIOD = 0.0
"""Docker: failures that start within this time of the task's start do not count."""
DEFAULT_START_INTERVAL = 5.0
"""Docker (API 1.44+): interval between checks while starting inside the start period."""
MINIMUM_DURATION = 0.001
"""Docker rejects a non-zero interval, timeout, start_period or start_interval below 1 ms."""

LB_LEAVE_DELAY = 2.0
"""A leaving task's weight goes to 0 everywhere, then this gossip convergence
delay passes before the task stops and its backend is deleted."""
NODE_FAILURE_DETECTION = (4.0, 24.0)
"""Gossip failure detection of a lost node: between these bounds."""
NODE_DOWN_AFTER = 15.0
"""A manager marks a node down after this long without heartbeats; its tasks
are then rescheduled on other nodes."""
IPVS_TCP_TIMEOUT, IPVS_TCPFIN_TIMEOUT, IPVS_UDP_TIMEOUT = 900.0, 120.0, 300.0
"""IPVS idle timeouts of Swarm's load balancers (established TCP, TCP FIN, UDP)."""

DEFAULT_TEST = ("CMD", "curl", "-f", "http://localhost/health")
"""The check used when a profile must supply one (the task server's endpoint)."""


@dataclass(frozen=True)
class Profile:
    """All lifecycle timings of one mode of the testbed."""

    name: str
    interval: float
    timeout: float
    retries: int
    start_period: float
    start_interval: float
    lb_leave_delay: float
    node_failure_detection: tuple[float, float]
    node_down_after: float

    def detection_window(self, hung: bool = False) -> tuple[float, float]:
        """Bounds (s) from a task's failure to ``unhealthy``, the failure falling
        just before or just after a check, then ``retries`` failed checks.

        Checks that fail at once (refused, HTTP 5xx; their duration ignored):
        ``(retries - 1) x interval`` to ``retries x interval`` (Swarm: 60 to
        90 s). ``hung``, every check runs into its timeout: each cycle is
        ``interval + timeout`` (Swarm: 150 to 180 s)."""
        cycle = self.interval + (self.timeout if hung else 0.0)
        last = self.timeout if hung else 0.0
        return ((self.retries - 1) * cycle + last, self.retries * cycle)


SWARM_PROFILE = Profile(
    name="swarm", interval=DEFAULT_INTERVAL, timeout=DEFAULT_TIMEOUT,
    retries=DEFAULT_RETRIES, start_period=DEFAULT_START_PERIOD,
    start_interval=DEFAULT_START_INTERVAL, lb_leave_delay=LB_LEAVE_DELAY,
    node_failure_detection=NODE_FAILURE_DETECTION, node_down_after=NODE_DOWN_AFTER)
"""Swarm as shipped. With ``--profile swarm`` a stack's own healthcheck values win."""

FAST_PROFILE = Profile(
    name="fast", interval=0.1, timeout=0.2, retries=2, start_period=0.0,
    start_interval=0.1, lb_leave_delay=0.2, node_failure_detection=(0.3, 0.6),
    node_down_after=1.0)
"""How good it could be. Health: a check every 0.1 s, 0.2 s timeout, 2 retries.
A failure that answers at once (refused, HTTP 503) is detected in 0.1 to 0.2 s
(plus one check's duration); a hung task (every check times out) in at most
2 x (0.1 + 0.2) = 0.6 s. Both leave room in the 1 s failover budget for the
weight-0 update, and two retries mean a single check delayed past 0.2 s on a
loaded 2-core host does not evict a healthy task (one retry would). The price
is 10 checks/s per task. Leave delay 0.2 s: the controller programs every node
itself, so no gossip round has to converge. Node loss: 0.1 s heartbeats, 3 to
6 missed, down after 1 s."""

PROFILES = {p.name: p for p in (SWARM_PROFILE, FAST_PROFILE)}


def profile(name: str) -> Profile:
    """The profile called ``name`` (``swarm`` or ``fast``); bad name: InvalidConfigError."""
    try:
        return PROFILES[name]
    except (KeyError, TypeError):
        from swarmmesh.model import InvalidConfigError
        raise InvalidConfigError(
            "profile", f"must be one of {', '.join(PROFILES)}, got {name!r}") from None


# --------------------------------------------------------------------------
# Durations
# --------------------------------------------------------------------------

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0,
          "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: object) -> float:
    """Seconds in a Go/Docker duration string: ``"1m30s"`` -> 90.0.

    Accepts what Go's ``time.ParseDuration`` accepts (units ns, us, ms, s, m,
    h; decimals; a sign; a bare ``"0"``), and the integer 0. Raises
    ValueError with a short reason (``invalid duration '3x'``).
    """
    if isinstance(text, int) and not isinstance(text, bool) and text == 0:
        return 0.0
    if not isinstance(text, str):
        raise ValueError(f"must be a duration string such as '30s', got {text!r}")
    s = text.strip()
    sign = 1.0
    if s[:1] in ("+", "-"):
        sign, s = (-1.0 if s[0] == "-" else 1.0), s[1:]
    if s == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if m is None:
            raise ValueError(f"invalid duration {text!r} (use e.g. '30s', '1m30s', '500ms')")
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos == 0:
        raise ValueError(f"invalid duration {text!r} (use e.g. '30s', '1m30s', '500ms')")
    return sign * total


# --------------------------------------------------------------------------
# The state machine
# --------------------------------------------------------------------------

STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"


@dataclass(frozen=True)
class ProbeResult:
    """One check: ``ok`` if it passed; times are the clock the caller uses."""

    ok: bool
    start: float
    end: float
    exit_code: int = 0          # 0 ok, 1 failed, -1 timed out or could not run (Docker's codes)
    timed_out: bool = False
    output: str = ""

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def outcome(self) -> str:
        """``ok``, ``failed`` or ``timed out``."""
        return "timed out" if self.timed_out else ("ok" if self.ok else "failed")


@dataclass(frozen=True)
class Transition:
    """A task's health status changed at time ``t`` (the end of the check that did it)."""

    task: str
    t: float
    old: str
    new: str
    failing_streak: int
    result: ProbeResult


class HealthMonitor:
    """Docker's health state of one task (pure: every time is passed in)."""

    LOG_ENTRIES = 5

    def __init__(self, hc: "HealthCheck", started_at: float, task: str = "") -> None:
        self.hc = hc
        self.task = task
        self.started_at = started_at
        self.status = STARTING
        self.failing_streak = 0
        self.log: deque[ProbeResult] = deque(maxlen=self.LOG_ENTRIES)

    def next_check_at(self, now: float) -> float:
        """When the next check is due, ``now`` being the start or the end of the last check."""
        hc = self.hc
        elapsed = now - self.started_at
        if elapsed >= hc.start_period:
            return now + hc.interval
        remaining = hc.start_period - elapsed
        if remaining < hc.interval:
            return now + remaining
        return now + (hc.start_interval if self.status == STARTING else hc.interval)

    def first_check_at(self) -> float:
        """When the first check is due."""
        return self.next_check_at(self.started_at)

    def record(self, result: ProbeResult) -> Transition | None:
        """Apply one check's result; return the transition it caused, if any."""
        self.log.append(result)
        old = self.status
        passed = result.ok and not result.timed_out and result.duration <= self.hc.timeout
        if passed:
            self.failing_streak = 0
            self.status = HEALTHY
        elif not (self.status == STARTING
                  and result.start - self.started_at < self.hc.start_period):
            self.failing_streak += 1
            if self.failing_streak >= self.hc.retries:
                self.status = UNHEALTHY
        if self.status == old:
            return None
        return Transition(self.task, result.end, old, self.status, self.failing_streak, result)


# --------------------------------------------------------------------------
# Probes
# --------------------------------------------------------------------------

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def socket_in_netns(pid: int | None, family: int = socket.AF_INET,
                    kind: int = socket.SOCK_STREAM) -> socket.socket:
    """A socket in the network namespace of process ``pid`` (None: our own).

    Switches only the calling thread (``setns`` is per thread) and back.
    """
    if pid is None:
        return socket.socket(family, kind)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
            try:
                return socket.socket(family, kind)
            finally:
                _setns(own)
        finally:
            os.close(target)
    finally:
        os.close(own)


@dataclass(frozen=True)
class HttpProbe:
    """``GET http://host:port/path`` from inside the task's namespace.

    ``fail_on_http_error``: a status >= 400 fails (``curl -f``, ``wget``);
    without it any HTTP answer passes (plain ``curl``).
    """

    port: int = 80
    path: str = "/health"
    host: str = "127.0.0.1"
    fail_on_http_error: bool = True
    netns_pid: int | None = None

    def request(self) -> bytes:
        return (f"GET {self.path} HTTP/1.0\r\nHost: localhost\r\n"
                "User-Agent: swarmmesh-health\r\nConnection: close\r\n\r\n").encode()

    def judge(self, head: bytes) -> tuple[bool, str]:
        """(passed, output) from the start of an answer."""
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split()
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            return False, f"bad answer {line[:60]!r}"
        status = int(parts[1])
        return (status < 400 or not self.fail_on_http_error), f"HTTP {status}"


@dataclass(frozen=True)
class CommandProbe:
    """A command (argv) run in the task's namespace: exit 0 passes."""

    argv: tuple[str, ...]
    netns_pid: int | None = None

    def command(self) -> list[str]:
        """The argv actually executed (through ``mnexec -a`` or ``nsenter``)."""
        if self.netns_pid is None:
            return list(self.argv)
        mnexec = shutil.which("mnexec")
        if mnexec:
            return [mnexec, "-a", str(self.netns_pid), *self.argv]
        return ["nsenter", "-t", str(self.netns_pid), "-n", "--", *self.argv]


Probe = Union[HttpProbe, CommandProbe]

_LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]", "::1")
_SHELL_TAIL = (["||", "exit", "1"], ["||", "false"], ["||", "exit"])


def _http_from_argv(words: list[str]) -> tuple[int, str, bool] | None:
    """(port, path, fail_on_http_error) for a plain curl/wget of a local URL, else None."""
    if not words:
        return None
    for tail in _SHELL_TAIL:
        if words[-len(tail):] == tail:
            words = words[:-len(tail)]
            break
    prog = os.path.basename(words[0]) if words else ""
    if prog not in ("curl", "wget"):
        return None
    urls = [w for w in words[1:] if "://" in w]
    opts = [w for w in words[1:] if "://" not in w]
    if len(urls) != 1:
        return None
    if prog == "curl":
        fail = False
        skip_next = False
        for o in opts:
            if skip_next:
                skip_next = False
                continue
            if o in ("-f", "--fail", "--fail-with-body"):
                fail = True
            elif o in ("-o", "--output", "-m", "--max-time", "--connect-timeout"):
                skip_next = True
            elif re.fullmatch(r"-[sSfLI]+", o):
                fail = fail or "f" in o
            elif o not in ("--silent", "--show-error", "--location", "--head"):
                return None
    else:
        fail = True
        skip_next = False
        for o in opts:
            if skip_next:
                skip_next = False
                continue
            cluster = re.fullmatch(r"-([qS]*)(O(.*))?", o)  # -q, -qO-, -qO FILE
            if o in ("--output-document", "-T", "--timeout", "-t", "--tries"):
                skip_next = True
            elif cluster and o != "-":
                skip_next = cluster.group(2) is not None and cluster.group(3) == ""
            elif not (o in ("--spider", "--quiet")
                      or o.startswith(("--timeout=", "--tries=", "--output-document="))):
                return None
    try:
        url = urlsplit(urls[0])
        port = url.port
    except ValueError:
        return None
    if url.scheme != "http" or url.hostname not in _LOCAL_HOSTS:
        return None
    path = url.path or "/"
    if url.query:
        path += "?" + url.query
    return (port or 80), path, fail


def probe_for(test: tuple[str, ...] | list[str], netns_pid: int | None = None) -> Probe | None:
    """The probe for a stack ``test`` (None for ``NONE`` or an empty test).

    A ``curl``/``wget`` of ``http://localhost[:port]/path`` (CMD or CMD-SHELL,
    with the usual ``-f -s -S``, ``-q --spider``, ``|| exit 1``) becomes the
    built-in :class:`HttpProbe`, which does what that command would do without
    spawning a process per check; anything else a :class:`CommandProbe`
    (CMD-SHELL through ``/bin/sh -c``).
    """
    test = tuple(test)
    if not test or test[0] == "NONE":
        return None
    kind, args = test[0], list(test[1:])
    if kind == "CMD":
        http = _http_from_argv(args)
        argv = tuple(args)
    elif kind == "CMD-SHELL":
        try:
            words = shlex.split(args[0]) if len(args) == 1 else []
        except ValueError:
            words = []
        http = _http_from_argv(words)
        argv = ("/bin/sh", "-c", *args)
    else:
        raise ValueError(f"unknown test type {kind!r} (expected CMD, CMD-SHELL or NONE)")
    if http is not None:
        port, path, fail = http
        return HttpProbe(port=port, path=path, fail_on_http_error=fail, netns_pid=netns_pid)
    return CommandProbe(argv, netns_pid=netns_pid)


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


# --------------------------------------------------------------------------
# The non-blocking machinery shared by run_probe and Checker
# --------------------------------------------------------------------------

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


# --------------------------------------------------------------------------
# The checker
# --------------------------------------------------------------------------


@dataclass
class _Entry:
    task: str
    probe: Probe
    monitor: HealthMonitor
    due: float = 0.0
    check: _Check | None = None
    timer: _Timer | None = None
    checks: int = 0
    removed: bool = False


class Checker:
    """Runs the health checks of many tasks on Docker's schedule, from one thread.

    ``on_transition(Transition)`` is called on the checker's thread for every
    status change (``starting -> healthy``, ``healthy -> unhealthy``, ...); it
    must return quickly (hand the event to a queue or to the controller's own
    thread). ``on_result(task, ProbeResult, status)`` (optional) sees every check.
    An exception in a callback is logged and does not stop the checker.

    Times are ``time.monotonic()`` seconds. Each task's schedule is its own:
    the next check is due ``interval`` after its previous check ended, and a
    slow check of one task never delays another's (checks are non-blocking).
    :meth:`stats` reports how late checks started against their due time.
    """

    def __init__(self, on_transition: Callable[[Transition], None], *,
                 on_result: Callable[[str, ProbeResult, str], None] | None = None,
                 name: str = "swarmmesh-health") -> None:
        self.on_transition = on_transition
        self.on_result = on_result
        self._loop = _Loop(time.monotonic)
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._pending: list[Callable[[], None]] = []
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._loop.sel.register(self._wake_r, _READ, self._on_wake)
        self._running = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._lateness: deque[float] = deque(maxlen=10000)
        self._stats_lock = threading.Lock()
        self._checks = 0

    # -- public API ----------------------------------------------------------
    def add(self, task: str, hc: "HealthCheck", probe: Probe,
            started_at: float | None = None) -> None:
        """Start checking ``task`` (status ``starting``) as a task started at
        ``started_at`` (monotonic; default now). Replaces an existing entry."""
        started = time.monotonic() if started_at is None else started_at
        self._submit(lambda: self._add(task, hc, probe, started))

    def remove(self, task: str) -> None:
        """Stop checking ``task`` (a running check is aborted; no transition)."""
        self._submit(lambda: self._remove(task))

    def status(self, task: str) -> str | None:
        """The task's current status, or None if it is not checked."""
        entry = self._entries.get(task)
        return None if entry is None else entry.monitor.status

    def statuses(self) -> dict[str, str]:
        """Every checked task's status."""
        return {t: e.monitor.status for t, e in list(self._entries.items())}

    def stats(self) -> dict[str, float]:
        """``checks`` run, and the lateness of check starts in ms (mean, p99, max)."""
        with self._stats_lock:
            late = sorted(self._lateness)
        if not late:
            return {"checks": self._checks, "late_mean_ms": 0.0, "late_p99_ms": 0.0,
                    "late_max_ms": 0.0}
        return {"checks": self._checks,
                "late_mean_ms": 1000 * sum(late) / len(late),
                "late_p99_ms": 1000 * late[min(len(late) - 1, int(0.99 * len(late)))],
                "late_max_ms": 1000 * late[-1]}

    def start(self) -> "Checker":
        self._running = True
        self._thread.start()
        return self

    def stop(self) -> None:
        """Abort running checks and join the thread (idempotent)."""
        if not self._thread.is_alive():
            return
        self._running = False
        self._wake()
        self._thread.join(5)

    def __enter__(self) -> "Checker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the thread ------------------------------------------------------------
    def _submit(self, op: Callable[[], None]) -> None:
        with self._lock:
            self._pending.append(op)
        self._wake()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except (BlockingIOError, OSError):
            pass

    def _on_wake(self, mask: int) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def _run(self) -> None:
        try:
            while self._running:
                with self._lock:
                    ops, self._pending = self._pending, []
                for op in ops:
                    op()
                self._loop.run_once(1.0)
        except Exception:  # pragma: no cover - a bug; make it visible
            log.exception("health checker stopped")
            raise
        finally:
            for entry in self._entries.values():
                self._drop(entry)
            self._entries.clear()
            self._loop.close()
            self._wake_r.close()
            self._wake_w.close()

    def _add(self, task: str, hc: "HealthCheck", probe: Probe, started: float) -> None:
        old = self._entries.pop(task, None)
        if old is not None:
            self._drop(old)
        entry = _Entry(task, probe, HealthMonitor(hc, started, task))
        self._entries[task] = entry
        self._schedule(entry, entry.monitor.first_check_at())

    def _remove(self, task: str) -> None:
        entry = self._entries.pop(task, None)
        if entry is not None:
            self._drop(entry)

    def _drop(self, entry: _Entry) -> None:
        entry.removed = True
        if entry.timer is not None:
            entry.timer.cancel()
        if entry.check is not None:
            entry.check.abort()
            entry.check = None

    def _schedule(self, entry: _Entry, when: float) -> None:
        entry.due = when
        entry.timer = self._loop.call_at(when, lambda: self._begin(entry))

    def _begin(self, entry: _Entry) -> None:
        if entry.removed:
            return
        now = time.monotonic()
        with self._stats_lock:
            self._lateness.append(max(0.0, now - entry.due))
        entry.timer = None
        check = self._loop.start_check(
            entry.probe, entry.monitor.hc.timeout, lambda r: self._done(entry, r))
        if not check.finished:  # a check can end at once (connection refused)
            entry.check = check

    def _done(self, entry: _Entry, result: ProbeResult) -> None:
        entry.check = None
        if entry.removed:
            return
        entry.checks += 1
        self._checks += 1
        transition = entry.monitor.record(result)
        for fn, args in ((self.on_result, (entry.task, result, entry.monitor.status)),
                         (self.on_transition if transition else None, (transition,))):
            if fn is not None:
                try:
                    fn(*args)
                except Exception:
                    log.exception("health callback failed for %s", entry.task)
        self._schedule(entry, entry.monitor.next_check_at(result.end))


def replace_timings(hc: "HealthCheck", prof: Profile) -> "HealthCheck":
    """``hc`` with the profile's interval, timeout, retries, start period and interval."""
    return dataclasses.replace(hc, interval=prof.interval, timeout=prof.timeout,
                               retries=prof.retries, start_period=prof.start_period,
                               start_interval=prof.start_interval)
