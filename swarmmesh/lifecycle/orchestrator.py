"""A living cluster: Swarm's manager and node agents, on a running Testbed.

The orchestrator owns the cluster model at run time.  Every decision it
takes is a change of the model followed by ``Testbed.publish()``: the
controller brings the switches to the new model by difference, and the
nodes' embedded DNS re-reads it.  It follows Swarm's lifecycle:

* **joining**: a new task starts ``starting`` (out of the load balancer)
  and becomes ``running`` after its first passing health check, or at once
  if its service has none;
* **leaving** (scale down, update, drain, a failed health check): the task's
  weight goes to 0 everywhere (``draining``: no new connection, the
  established ones go on), ``lb_leave_delay`` later (Swarm: 2 s) it is
  stopped and removed;
* **failure**: ``retries`` failed checks make a task ``unhealthy``; it
  leaves as above and a replacement is scheduled (restart policy ``any``);
* **pending**: a task no node can take (constraints, host-mode ports,
  ``max_replicas_per_node``, nodes drained or down) waits with the scheduler's
  reason, and is placed when a node changes so that it can (``node_update``:
  a label added, a node activated); a task whose constraints stop holding
  on its node is replaced where they hold (swarmkit's constraint enforcer);
* **node loss**: a node that goes down stops answering at once; after the
  profile's detection delay (Swarm: node marked down after 15 s) its tasks
  leave every load balancer and are rescheduled on the other nodes.

Timings come from a profile (``swarm``: Swarm's own; ``fast``: how good it
could be), see ``swarmmesh.lifecycle.health``.  Every step is recorded as an event
``(t, event, detail)`` with ``t`` in seconds from the orchestrator's start
(or a given clock origin), for ``events.csv``.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from dataclasses import dataclass
from typing import Sequence

from swarmmesh.lifecycle import decisions, health, probes, profiles
from swarmmesh.lifecycle.checker import Checker
from swarmmesh.model import Cluster, HealthCheck, Task
from swarmmesh.model.objects import Pending

LOG = logging.getLogger("swarmmesh.lifecycle.orchestrator")


@dataclass(frozen=True)
class Event:
    t: float
    event: str
    detail: str


class Orchestrator:
    """Runs the lifecycle of ``tb.cluster`` (a started Testbed).

    Use as a context manager; operations may be called from any thread.
    """

    def __init__(self, tb, profile: str = "swarm", t0: float | None = None,
                 health_checks: bool = True) -> None:
        self.tb = tb
        self.profile = profiles.profile(profile)
        self.t0 = time.monotonic() if t0 is None else t0
        self.events: list[Event] = []
        self.lock = threading.RLock()
        self.work = threading.Condition(self.lock)
        self.timers: list[tuple[float, int, object]] = []
        self._seq = itertools.count()
        self.stopping = False
        self.checker = Checker(self._on_transition) if health_checks else None
        self.thread = threading.Thread(target=self._loop, name="orchestrator", daemon=True)
        self.busy = 0                  # steps in flight (building, waiting on delays)
        self.build_lock = threading.RLock()  # one Mininet change at a time (the CLI nests it)

    # -- lifecycle of the orchestrator itself --------------------------------
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
                for t in self.tb.cluster.tasks:
                    self._watch_health(t)

    def stop(self) -> None:
        with self.lock:
            self.stopping = True
            self.work.notify_all()
        if self.checker is not None:
            self.checker.stop()
        self.thread.join(timeout=5)

    # -- events and timers --------------------------------------------------
    def now(self) -> float:
        return time.monotonic() - self.t0

    def record(self, event: str, detail: str = "", t: float | None = None) -> None:
        e = Event(round(self.now() if t is None else t - self.t0, 4), event, detail)
        with self.lock:
            self.events.append(e)
        LOG.info("%.3f %s %s", e.t, event, detail)

    def after(self, delay: float, fn, *args) -> None:
        """Run ``fn(*args)`` on the orchestrator thread ``delay`` s from now."""
        with self.lock:
            self.busy += 1
            heapq.heappush(self.timers, (time.monotonic() + delay, next(self._seq), (fn, args)))
            self.work.notify_all()

    def _loop(self) -> None:
        while True:
            with self.lock:
                while not self.stopping and (not self.timers
                                             or self.timers[0][0] > time.monotonic()):
                    wait = self.timers[0][0] - time.monotonic() if self.timers else None
                    self.work.wait(wait)
                if self.stopping:
                    return
                _, _, (fn, args) = heapq.heappop(self.timers)
            try:
                fn(*args)
            except Exception:                              # noqa: BLE001
                LOG.exception("orchestrator step %s failed", getattr(fn, "__name__", fn))
                self.record("error", f"{getattr(fn, '__name__', fn)} failed; see the log")
            finally:
                with self.lock:
                    self.busy -= 1
                    self.work.notify_all()

    def settle(self, timeout: float = 60.0) -> None:
        """Until no step is pending (every timer run, every build done)."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while self.busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"orchestrator still busy after {timeout:.0f}s "
                                       f"({self.busy} steps)")
                self.work.wait(min(left, 0.1))

    # -- the model, published -------------------------------------------------
    @property
    def cluster(self) -> Cluster:
        return self.tb.cluster

    def publish(self, why: str) -> int:
        with self.lock:
            rev = self.tb.publish()
        applied = self.tb.wait_applied(rev)       # the switches have it (barrier)
        self.record("published", f"revision {rev}: {why} (switches in step after "
                                 f"{applied * 1000:.0f} ms)")
        return rev

    def healthcheck_of(self, task: Task) -> HealthCheck | None:
        """The task's check with this profile's timings (None: it has none)."""
        return self._healthcheck(task.service)

    def _healthcheck(self, service: str) -> HealthCheck | None:
        hc = self.cluster.service(service).healthcheck
        if hc is None or not hc.active:
            return None
        return profiles.check_for(self.profile.name, hc)

    def _watch_health(self, task: Task) -> None:
        hc = self.healthcheck_of(task)
        if self.checker is None or hc is None:
            return
        host = self.tb.net.get(task.host)
        probe = probes.probe_for(hc.test, netns_pid=host.pid)
        if probe is not None:
            self.checker.add(task.name, hc, probe)

    # -- tasks ------------------------------------------------------------------
    def _start_task(self, service: str, node: str | None = None, version: int | None = None,
                    slot: int | None = None) -> Task | None:
        """Schedule, build and (health permitting) admit a new task; with no node to
        take it, the task is pending (None), as in Swarm, until one appears."""
        with self.lock:
            probe_first = self._healthcheck(service) is not None
            if node is None and self._pend(service, version, slot):
                return None
            task = self.cluster.place_task(service, node=node, version=version, slot=slot,
                                           state="starting" if probe_first else "running")
        with self.build_lock:
            self.tb.start_task(task)
        self.record("task started", f"{task.name} on {task.node} ({task.host}, version "
                                    f"{task.version}, {task.state})")
        self.publish(f"{task.name} {'starting' if probe_first else 'joins'}")
        if probe_first:
            self._watch_health(task)
        return task

    def _pend(self, service: str, version: int | None, slot: int | None) -> bool:
        """No node can take a new task of the service: record it pending."""
        nodes, why = self.cluster.candidates(service)
        if nodes:
            return False
        if slot is None:
            taken = [t.slot for t in self.cluster.tasks_of(service)]
            slot = max(taken + [p.slot for p in self.cluster.pending_of(service)], default=0) + 1
        version = self.cluster.service_version(service) if version is None else version
        self.cluster.pending.append(Pending(service, slot, why, version))
        self.record("task pending", f"{service}.{slot}: {why}")
        self.publish(f"{service}.{slot} pending")
        return True

    def reconcile(self) -> None:
        """After a node change: stop the tasks whose constraints no longer hold there
        (they are replaced where they do), place the pending tasks a node can now take,
        and start a global service's task on every node newly eligible."""
        with self.lock:
            gone = [t for n in self.cluster.nodes for t in decisions.violations(self.cluster,
                                                                                 n.name)]
        for t in gone:
            self._leave(t, f"constraints no longer hold on {t.node}", replace=True)
        while True:
            with self.lock:
                ready = decisions.placeable(self.cluster)
                if not ready:
                    break
                p = ready[0]
                self.cluster.pending.remove(p)
            self.record("task placed", f"{p.service}.{p.slot} (was pending: {p.reason})")
            self._start_task(p.service, version=p.version, slot=p.slot)
        with self.lock:
            gaps = decisions.global_gaps(self.cluster)
        for service, node in gaps:
            self._start_task(service, node=node)

    def node_update(self, name: str, label_add: Sequence[tuple[str, str]] = (),
                    label_rm: Sequence[str] = (), role: str | None = None,
                    availability: str | None = None) -> None:
        """``docker node update``: labels, role, availability; then Swarm reconciles."""
        with self.lock:
            node = self.cluster.node(name)
            managers = sum(1 for n in self.cluster.nodes if n.role == "manager")
            change = decisions.plan_node_update(node, label_add, label_rm, role, availability,
                                                managers)
            for key, value in label_add:
                node.labels[key] = value
            for key in label_rm:
                node.labels.pop(key, None)
            node.role = role or node.role
        self.record("node update", f"{name}: {change}")
        self.publish(f"{name} updated")
        if availability == "drain":
            self.node_drain(name)
        elif availability is not None:
            with self.lock:
                node.availability = availability
            self.busy_call(self.reconcile)
        else:
            self.busy_call(self.reconcile)

    def _leave(self, task: Task, why: str, replace: bool = False) -> None:
        """Weight 0 now, removal after the convergence delay (Swarm's 2 s)."""
        with self.lock:
            if task not in self.cluster.tasks or task.state == "draining":
                return
            task.state = "draining"
        self.record("weight 0", f"{task.name}: {why}")
        self.publish(f"{task.name} weight 0")
        self.after(self.profile.lb_leave_delay, self._remove, task, replace)

    def _remove(self, task: Task, replace: bool) -> None:
        if self.checker is not None:
            self.checker.remove(task.name)
        with self.lock:
            if task not in self.cluster.tasks:
                return
            self.cluster.remove_task(task.name)
        with self.build_lock:
            self.tb.stop_task(task)
            self.tb.sync_fdb()
        self.record("task removed", task.name)
        self.publish(f"{task.name} removed")
        with self.build_lock:
            self.tb.flush_conntrack(task)   # IPVS expire_nodest_conn
        if replace and decisions.replace_after_removal(self.cluster, task):
            self._start_task(task.service, version=task.version, slot=task.slot)

    def _on_transition(self, tr: "health.Transition") -> None:
        """From the health checker's thread: hand over to the orchestrator's."""
        with self.lock:
            task = next((t for t in self.cluster.tasks if t.name == tr.task), None)
        if task is None:
            return
        self.record(f"health {tr.new}", f"{task.name} (after {tr.failing_streak} failed checks)"
                    if tr.new == health.UNHEALTHY else task.name, t=tr.t)
        action = decisions.on_health(task, tr.new)
        if action == "admit":
            self.busy_call(self._admit, task)
        elif action == "leave":
            self.busy_call(self._leave, task, "unhealthy", True)

    def busy_call(self, fn, *args) -> None:
        self.after(0.0, fn, *args)

    def _admit(self, task: Task) -> None:
        with self.lock:
            if task not in self.cluster.tasks or task.state != "starting":
                return
            task.state = "running"
        self.publish(f"{task.name} healthy: joins the load balancer")

    # -- operations (the CLI's and the experiments') ------------------------------
    def scale(self, service: str, replicas: int) -> None:
        """``docker service scale SERVICE=N``: start or retire tasks (highest slots go)."""
        with self.lock:
            before = len(decisions.live_tasks(self.cluster, service))
            plan = decisions.plan_scale(self.cluster, service, replicas)
            self.cluster.service(service).replicas = replicas
        self.record("scale", f"{service}: {before} -> {replicas}")
        with self.lock:
            self.cluster.pending[:] = [p for p in self.cluster.pending if not (
                p.service == service and p.slot in plan.drop_pending)]
        for _ in range(plan.start):
            self.busy_call(self._start_task, service)
        for t in plan.retire:
            self.busy_call(self._leave, t, "scaled down")

    def update(self, service: str, parallelism: int = 1, delay: float = 0.0,
               order: str = "stop-first") -> None:
        """``docker service update``: replace every task by one of the next
        version, ``parallelism`` at a time, ``delay`` s between batches."""
        with self.lock:
            plan = decisions.plan_update(self.cluster, service, parallelism, delay, order)
        self.record("update", f"{service}: version {plan.version}, parallelism {parallelism}, "
                              f"delay {delay}s, {order}")
        # Its own thread: a batch waits for health checks, which the
        # orchestrator thread must stay free to act on.
        with self.lock:
            self.busy += 1
        threading.Thread(target=self._update_thread, name="update", daemon=True,
                         args=(service, plan, delay)).start()

    def _update_thread(self, *args) -> None:
        try:
            self._update_batches(*args)
        except Exception:                                  # noqa: BLE001
            LOG.exception("update failed")
            self.record("error", "update failed; see the log")
        finally:
            with self.lock:
                self.busy -= 1
                self.work.notify_all()

    def _update_batches(self, service: str, plan: "decisions.UpdatePlan", delay: float) -> None:
        for i, batch in enumerate(plan.batches):
            new: list[Task] = []
            for step in decisions.batch_steps(plan.order):
                if step == "start":
                    started = [self._start_task(service, version=plan.version, slot=t.slot)
                               for t in batch]
                    new = [t for t in started if t is not None]     # None: pending
                elif step == "wait running":
                    self._wait_running(new)
                elif step == "leave":
                    for t in batch:
                        self._leave(t, f"replaced by version {plan.version}")
                else:
                    self._wait_gone(list(batch))
            self.record("update batch done", ", ".join(t.name for t in batch))
            if delay and i + 1 < len(plan.batches):
                time.sleep(delay)
        self.record("update done", f"{service} at version {plan.version}")

    def _wait_running(self, tasks: list[Task], timeout: float = 600.0) -> None:
        deadline = time.monotonic() + timeout
        while any(t.state != "running" and t in self.cluster.tasks for t in tasks):
            if time.monotonic() > deadline:
                raise TimeoutError(f"tasks not healthy after {timeout:.0f}s: {tasks}")
            time.sleep(0.02)

    def _wait_gone(self, tasks: list[Task], timeout: float = 600.0) -> None:
        deadline = time.monotonic() + timeout
        while any(t in self.cluster.tasks for t in tasks):
            if time.monotonic() > deadline:
                raise TimeoutError(f"tasks not removed after {timeout:.0f}s")
            time.sleep(0.02)

    def kill_task(self, name: str, how: str = "hang") -> Task:
        """The task's application dies inside its container (``docker kill``
        of the app, not of the container): it stops answering at once, and
        only its health check can tell.  ``how``: ``hang`` (connections
        refused, the task server closes every socket) or ``unhealthy``
        (still answers, fails its check)."""
        task = self.cluster.task(name)
        decisions.check_kill(how)
        with self.build_lock:                     # one command at a time in a host's shell
            self.tb.kill_app(task, how)
        self.record("task killed", f"{task.name} on {task.node} ({how})")
        if self.healthcheck_of(task) is None:      # nothing will ever notice: say so
            self.record("note", f"{task.service} has no health check: {task.name} stays in "
                                "the load balancer, as in Swarm")
        return task

    def kill_container(self, name: str) -> Task:
        """``docker kill`` of the task's container: its process exits, so Swarm knows at
        once (no health check involved): connections are refused from now, the task
        leaves every load balancer (weight 0, removal after the convergence delay) and a
        replacement starts in its slot after the restart delay (Swarm: 5 s)."""
        task = self.cluster.task(name)
        with self.build_lock:
            self.tb.kill_app(task, "hang")
        self.record("task killed", f"{task.name} on {task.node} (container)")
        self.busy_call(self._leave, task, "container exited")
        self.after(self.profile.restart_delay, self._restart, task)
        return task

    def _restart(self, task: Task) -> None:
        """The restart policy: a replacement in the failed task's slot, if still missing."""
        if decisions.missing(self.cluster, task.service) > 0:
            self._start_task(task.service, version=task.version, slot=task.slot)

    def node_down(self, name: str) -> None:
        """The node loses power: it stops answering at once; the cluster notices
        after the profile's delay, then reschedules its tasks elsewhere."""
        node = self.cluster.node(name)
        with self.build_lock:
            self.tb.cut_node(name)
        self.record("node down", f"{name} (link down: it answers nothing)")
        self.after(self.profile.node_down_after, self._node_lost, node.name)

    def _node_lost(self, name: str) -> None:
        with self.lock:
            node = self.cluster.node(name)
            node.status = "down"
            gone = [t for t in self.cluster.tasks_on(name)]
        self.record("node marked down", f"{name}: {len(gone)} tasks to reschedule")
        self.publish(f"{name} down: its tasks leave every load balancer")
        for t in gone:
            if self.checker is not None:
                self.checker.remove(t.name)
            with self.lock:
                self.cluster.remove_task(t.name)
            with self.build_lock:
                self.tb.stop_task(t)
        with self.build_lock:
            self.tb.sync_fdb()
        self.publish(f"{name}'s tasks removed")
        with self.build_lock:
            for t in gone:
                self.tb.flush_conntrack(t)
        for t in decisions.reschedule(self.cluster, gone):
            self._start_task(t.service, version=t.version, slot=t.slot)

    def node_drain(self, name: str) -> None:
        """``docker node update --availability drain``: its tasks move away."""
        with self.lock:
            self.cluster.node(name).availability = "drain"
            plan = decisions.plan_drain(self.cluster, name)
        self.record("node drain", f"{name}: {len(plan)} tasks move")
        for t, replace in plan:
            if replace:
                self.busy_call(self._start_task, t.service, None, t.version, t.slot)
            self.busy_call(self._leave, t, f"{name} drained")

    def node_activate(self, name: str) -> None:
        with self.lock:
            self.cluster.node(name).availability = "active"
        self.record("node active", name)
        self.busy_call(self.reconcile)
