"""A living cluster: Swarm's manager and node agents, on a running engine.

The decisions are :class:`swarmmesh.lifecycle.machine.Machine`'s, a pure state machine
(``step(now, event) -> effects``); :class:`swarmmesh.lifecycle.runner.Runner` carries the
effects out on the engine (the emulated ``Testbed``: anything with the methods of
:class:`swarmmesh.lifecycle.effects.Engine`). This module adds the threads: one that runs
the timers, and the health checker's. It follows Swarm's lifecycle:

* **joining**: a new task starts ``starting`` (out of the load balancer) and becomes
  ``running`` after its first passing health check, or at once if its service has none;
* **leaving** (scale down, update, drain, a failed health check): the task's weight goes
  to 0 everywhere (``draining``: no new connection, the established ones go on),
  ``lb_leave_delay`` later (Swarm: 2 s) it is stopped and removed;
* **failure**: ``retries`` failed checks make a task ``unhealthy``; it leaves as above
  and a replacement is scheduled (restart policy ``any``); a killed container is out of
  every balancer ``exit_detect`` after its process exits and is replaced
  ``restart_delay`` later;
* **pending**: a task no node can take (constraints, host-mode ports,
  ``max_replicas_per_node``, nodes drained or down) waits with the scheduler's reason,
  and is placed when a node changes so that it can; a task whose constraints stop holding
  on its node is replaced where they hold (swarmkit's constraint enforcer);
* **node loss**: a node that goes down stops answering at once; after the profile's
  detection delay (Swarm: node marked down after 15 s) its tasks leave every load
  balancer and are rescheduled on the other nodes.

Timings come from a profile (``swarm``: Swarm's own; ``fast``: how good it could be), see
:mod:`swarmmesh.lifecycle.profiles`. Every step is recorded as an event ``(t, event,
detail)`` with ``t`` in seconds from the orchestrator's start (or a given clock origin),
for ``events.csv``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Sequence

from swarmmesh.lifecycle import effects as fx
from swarmmesh.lifecycle import health, probes, profiles
from swarmmesh.lifecycle.checker import Checker
from swarmmesh.lifecycle.machine import Machine
from swarmmesh.lifecycle.runner import Event, Runner
from swarmmesh.model import Cluster, HealthCheck, Task

__all__ = ["Event", "Orchestrator"]
LOG = logging.getLogger("swarmmesh.lifecycle.orchestrator")


class _CheckerHealth:
    """Health checks on the checker thread, each probe in its task's network namespace."""

    def __init__(self, checker: Checker | None, engine: fx.Engine) -> None:
        self.checker, self.engine = checker, engine

    def watch(self, task: Task, hc: HealthCheck) -> None:
        probe = probes.probe_for(hc.test, netns_pid=self.engine.task_netns_pid(task))
        if self.checker is not None and probe is not None:
            self.checker.add(task.name, hc, probe)

    def unwatch(self, task: str) -> None:
        if self.checker is not None:
            self.checker.remove(task)


class Orchestrator:
    """Runs the lifecycle of ``tb.cluster`` (a started engine: the Testbed).

    Use as a context manager; operations may be called from any thread. An operation
    checks its arguments and raises (naming the field) before anything changes; what it
    sets in motion runs on the orchestrator's thread (see :meth:`settle`)."""

    def __init__(self, tb: fx.Engine, profile: str = "swarm", t0: float | None = None,
                 health_checks: bool = True) -> None:
        self.tb = tb
        self.profile = profiles.profile(profile)
        self.machine = Machine(tb.cluster, self.profile, health_checks=health_checks)
        self.checker = Checker(self._on_transition) if health_checks else None
        self.runner = Runner(self.machine, tb, _CheckerHealth(self.checker, tb),
                             time.monotonic, time.monotonic() if t0 is None else t0)
        self.lock, self.build_lock = self.runner.lock, self.runner.build_lock
        self.work = threading.Condition(self.lock)
        self.stopping = False
        self.running = 0                       # timer steps in flight
        self.thread = threading.Thread(target=self._loop, name="orchestrator", daemon=True)
        self.runner.schedule = self._schedule  # type: ignore[method-assign]

    # -- the orchestrator itself ---------------------------------------------------------------
    def __enter__(self) -> "Orchestrator":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self.thread.start()
        if self.checker is not None:
            self.checker.start()
            with self.lock:
                out = self.machine.watch_all()
            self.runner.carry(out)

    def stop(self) -> None:
        with self.lock:
            self.stopping = True
            self.work.notify_all()
        if self.checker is not None:
            self.checker.stop()
        self.thread.join(timeout=5)

    @property
    def t0(self) -> float:
        return self.runner.t0

    @property
    def events(self) -> list[Event]:
        return self.runner.events

    @property
    def cluster(self) -> Cluster:
        return self.machine.cluster

    @property
    def busy(self) -> int:
        """Steps pending: timers not yet run, steps running, an update in flight."""
        with self.lock:
            return len(self.runner.timers) + self.running + int(self.machine.busy())

    def now(self) -> float:
        return self.runner.now()

    def record(self, event: str, detail: str = "", t: float | None = None) -> None:
        self.runner.record(event, detail, t)

    def publish(self, why: str) -> int:
        return self.runner.publish(why)

    def healthcheck_of(self, task: Task) -> HealthCheck | None:
        """The task's check with this profile's timings (None: it has none)."""
        return self.machine.healthcheck(task.service)

    def settle(self, timeout: float = 60.0) -> None:
        """Until no step is pending (every timer run, every build done, updates over)."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while self.busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"orchestrator still busy after {timeout:.0f}s "
                                       f"({self.busy} steps)")
                self.work.wait(min(left, 0.1))

    # -- the thread ----------------------------------------------------------------------------
    def _schedule(self, delay: float, event: fx.Event) -> None:
        with self.lock:
            Runner.schedule(self.runner, delay, event)
            self.work.notify_all()

    def _loop(self) -> None:
        while True:
            with self.lock:
                while not self.stopping and (event := self.runner.pop_due()) is None:
                    due = self.runner.next_due()
                    self.work.wait(None if due is None else max(0.0, due - time.monotonic()))
                if self.stopping:
                    return
                self.running += 1
            try:
                self.runner.run_timer(event)
            finally:
                with self.lock:
                    self.running -= 1
                    self.work.notify_all()

    def _on_transition(self, tr: health.Transition) -> None:
        """From the health checker's thread: hand over to the orchestrator's."""
        self._schedule(0.0, fx.HealthChanged(tr.task, tr.new, tr.t, tr.failing_streak))

    # -- operations (the CLI's and the experiments') --------------------------------------------
    def scale(self, service: str, replicas: int) -> None:
        """``docker service scale SERVICE=N``: start or retire tasks (highest slots go)."""
        self.runner.feed(fx.Scale(service, replicas))

    def update(self, service: str, parallelism: int = 1, delay: float = 0.0,
               order: str = "stop-first") -> None:
        """``docker service update``: replace every task by one of the next version,
        ``parallelism`` at a time, ``delay`` s between batches, ``order`` start-first or
        stop-first."""
        self.runner.feed(fx.Update(service, parallelism, delay, order))

    def kill_task(self, name: str, how: str = "hang") -> Task:
        """The task's application dies inside its container (not the container): it stops
        answering at once, and only its health check can tell. ``how``: ``hang``
        (connections refused, the task server closes every socket) or ``unhealthy`` (still
        answers, fails its check)."""
        task = self.cluster.task(name)
        self.runner.feed(fx.KillApp(name, how))
        return task

    def kill_container(self, name: str) -> Task:
        """``docker kill`` of the task's container: its process exits, so Swarm knows at
        once; it leaves every balancer and is replaced (see the profile's timings)."""
        task = self.cluster.task(name)
        self.runner.feed(fx.KillContainer(name))
        return task

    def node_down(self, name: str) -> None:
        """The node loses power: it stops answering at once; the cluster notices after the
        profile's delay, then reschedules its tasks elsewhere."""
        self.runner.feed(fx.NodeDown(name))

    def node_up(self, name: str) -> None:
        """The node's link comes back: it is ready again; pending and global tasks are
        placed (Swarm does not move running tasks back)."""
        self.runner.feed(fx.NodeUp(name))

    def node_update(self, name: str, label_add: Sequence[tuple[str, str]] = (),
                    label_rm: Sequence[str] = (), role: str | None = None,
                    availability: str | None = None) -> None:
        """``docker node update``: labels, role, availability; then Swarm reconciles."""
        self.runner.feed(fx.NodeUpdate(name, tuple(label_add), tuple(label_rm), role,
                                       availability))

    def node_drain(self, name: str) -> None:
        """``docker node update --availability drain``: its tasks move away."""
        self.runner.feed(fx.Drain(name))

    def node_activate(self, name: str) -> None:
        self.runner.feed(fx.Activate(name))

    def restart_controller(self) -> None:
        """The controller crashes and a new one starts; what changed meanwhile is
        published once it is back."""
        self.runner.feed(fx.ControllerDown())
        self.runner.feed(fx.ControllerUp())
