"""Docker's health state machine of one task, pure: every time is passed in.

It follows Docker's ``daemon/health.go``: a task starts in ``starting``; one passing
check makes it ``healthy`` (from any state, and resets the failing streak); a failing
check counts only if it started after the start period or the task was already
healthy/unhealthy, and ``retries`` consecutive counted failures make it ``unhealthy``.
A check that runs longer than ``timeout`` fails. The next check is due ``interval``
after the previous one *ended* (the first one ``interval`` after the start), or
``start_interval`` while still starting inside the start period, and never later than
the end of the start period.  The probes are :mod:`~swarmmesh.lifecycle.probes`, the
loop that runs many tasks' checks :mod:`~swarmmesh.lifecycle.checker`, the timings
:mod:`~swarmmesh.lifecycle.profiles`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from swarmmesh.model.healthcheck import HealthCheck

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
