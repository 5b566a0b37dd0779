"""The driver between the pure machine and the world: it keeps the clock and the timers,
runs continuations, records events, and hands the rest of the effects to an engine.

:class:`Runner` has no thread of its own. The threaded orchestrator
(:mod:`swarmmesh.lifecycle.orchestrator`) wakes it when a timer is due; a unit test
drives it with a clock it moves by hand (:meth:`Runner.advance`), so a whole timeline
(a failover, a rolling update, a node loss) replays in milliseconds with no switch.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from dataclasses import dataclass
from typing import Callable, Protocol

from swarmmesh.lifecycle import effects as fx
from swarmmesh.lifecycle.machine import Machine
from swarmmesh.model import HealthCheck, Task

LOG = logging.getLogger("swarmmesh.lifecycle.orchestrator")


@dataclass(frozen=True)
class Event:
    """One line of ``events.csv``: ``t`` in seconds from the clock's origin."""
    t: float
    event: str
    detail: str


class Health(Protocol):
    """Where health checks run: the checker thread, or a test's list."""
    def watch(self, task: Task, hc: HealthCheck) -> None: ...
    def unwatch(self, task: str) -> None: ...


class Runner:
    """Steps ``machine`` and carries its effects out on ``engine``, in order.

    ``clock()`` gives the time (``time.monotonic`` in a run); ``t0`` is the origin of the
    recorded events. ``lock`` guards the model (the machine's steps and each publish);
    ``build_lock`` makes the engine's changes one at a time."""

    def __init__(self, machine: Machine, engine: fx.Engine, health: Health,
                 clock: Callable[[], float], t0: float = 0.0) -> None:
        self.machine, self.engine, self.health = machine, engine, health
        self.clock, self.t0 = clock, t0
        self.events: list[Event] = []
        self.timers: list[tuple[float, int, fx.Event]] = []
        self._seq = itertools.count()
        self.lock = threading.RLock()
        self.build_lock = threading.RLock()

    def now(self) -> float:
        return self.clock() - self.t0

    # -- feeding the machine -----------------------------------------------------------------
    def feed(self, event: fx.Event) -> None:
        """Step the machine with ``event`` now and carry out what it asks, continuations
        included. An invalid event raises before anything changes."""
        with self.lock:
            out = self.machine.step(self.now(), event)
        self.carry(out)

    def carry(self, out: list[fx.Effect]) -> None:
        thens = []
        for effect in out:
            if isinstance(effect, fx.Then):
                thens.append(effect.event)
            elif isinstance(effect, fx.Timer):
                self.schedule(effect.delay, effect.event)
            elif isinstance(effect, fx.Record):
                self.record(effect.event, effect.detail, effect.t)
            elif isinstance(effect, fx.Publish):
                self.publish(effect.why)
            elif isinstance(effect, fx.WatchHealth):
                self.health.watch(effect.task, effect.hc)
            elif isinstance(effect, fx.UnwatchHealth):
                self.health.unwatch(effect.task)
            else:
                with self.build_lock:            # one change of the network at a time
                    fx.carry_out(self.engine, effect)
        for event in thens:
            self.feed(event)

    # -- effects the driver itself carries out -----------------------------------------------
    def record(self, event: str, detail: str = "", t: float | None = None) -> None:
        e = Event(round(self.now() if t is None else t - self.t0, 4), event, detail)
        with self.lock:
            self.events.append(e)
        LOG.info("%.3f %s %s", e.t, event, detail)

    def publish(self, why: str) -> int:
        with self.lock:
            rev = self.engine.publish()
        applied = self.engine.wait_applied(rev)       # the switches have it (barrier)
        self.record("published", f"revision {rev}: {why} (switches in step after "
                                 f"{applied * 1000:.0f} ms)")
        return rev

    # -- timers --------------------------------------------------------------------------------
    def schedule(self, delay: float, event: fx.Event) -> None:
        with self.lock:
            heapq.heappush(self.timers, (self.clock() + delay, next(self._seq), event))

    def next_due(self) -> float | None:
        with self.lock:
            return self.timers[0][0] if self.timers else None

    def pop_due(self) -> fx.Event | None:
        """The earliest timer's event if its time has come (removed), else None."""
        with self.lock:
            if self.timers and self.timers[0][0] <= self.clock():
                return heapq.heappop(self.timers)[2]
        return None

    def run_timer(self, event: fx.Event) -> None:
        """A timer's step; a failure is logged and recorded, and the timeline goes on."""
        try:
            self.feed(event)
        except Exception:                                  # noqa: BLE001
            what = event.what if isinstance(event, fx.Internal) else type(event).__name__
            LOG.exception("orchestrator step %s failed", what)
            self.record("error", f"{what} failed; see the log")
