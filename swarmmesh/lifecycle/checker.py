"""The checker: the health checks of many tasks on Docker's schedule, from one thread."""

from __future__ import annotations

import gc
import logging
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

from swarmmesh.lifecycle.health import HealthMonitor, ProbeResult, Transition
from swarmmesh.lifecycle.probeloop import _READ, _Check, _Loop, _Timer
from swarmmesh.lifecycle.probes import Probe
from swarmmesh.model.healthcheck import HealthCheck

log = logging.getLogger(__name__)

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


_heap_lock = threading.Lock()
_heap_users = 0


def _freeze_heap() -> None:
    """Out of the collector's reach, what the process holds when the first checker
    starts (the built testbed, which lives as long as the run). A collection of the
    oldest generation scans the whole heap and holds the GIL while it does: about
    100 ms at 250,000 objects, and every check due meanwhile starts that late (170 ms
    p99 once, in the test runner's process after its integration tier)."""
    global _heap_users
    with _heap_lock:
        _heap_users += 1
        if _heap_users == 1:
            gc.collect()
            gc.freeze()


def _unfreeze_heap() -> None:
    global _heap_users
    with _heap_lock:
        _heap_users -= 1
        if _heap_users == 0:
            gc.unfreeze()


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
        self._gc_started = 0.0
        self._gc_max = 0.0
        self._frozen = False

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
        """``checks`` run, the lateness of check starts in ms (mean, p99, max), and the
        longest garbage collection of the process while the checker ran (``gc_max_ms``:
        a check due during one starts that late)."""
        with self._stats_lock:
            late = sorted(self._lateness)
        gc_max = {"gc_max_ms": 1000 * self._gc_max}
        if not late:
            return {"checks": self._checks, "late_mean_ms": 0.0, "late_p99_ms": 0.0,
                    "late_max_ms": 0.0, **gc_max}
        return {"checks": self._checks,
                "late_mean_ms": 1000 * sum(late) / len(late),
                "late_p99_ms": 1000 * late[min(len(late) - 1, int(0.99 * len(late)))],
                "late_max_ms": 1000 * late[-1], **gc_max}

    def start(self) -> "Checker":
        _freeze_heap()
        self._frozen = True
        gc.callbacks.append(self._on_gc)
        self._running = True
        self._thread.start()
        return self

    def stop(self) -> None:
        """Abort running checks and join the thread (idempotent)."""
        if self._frozen:
            self._frozen = False
            gc.callbacks.remove(self._on_gc)
            _unfreeze_heap()
        if not self._thread.is_alive():
            return
        self._running = False
        self._wake()
        self._thread.join(5)

    def _on_gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self._gc_max = max(self._gc_max, time.perf_counter() - self._gc_started)

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
