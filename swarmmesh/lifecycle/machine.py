"""Swarm's manager as a pure state machine: ``Machine.step(now, event) -> effects``.

The machine owns the cluster model at run time and changes it; everything else it wants
done comes back as effects (:mod:`swarmmesh.lifecycle.effects`): build or stop a task,
publish the model, cut a node's link, run a health check, step me again in ``d`` seconds.
It reads no clock and does no I/O, so whole timelines replay in unit tests with no switch
(:class:`swarmmesh.lifecycle.runner.Runner`), and the threaded shell
(:class:`swarmmesh.lifecycle.orchestrator.Orchestrator`) carries the same effects out on a
running testbed.

One rule keeps the effects honest: a step changes the model first and then asks for
effects, so an effect sees the model as the step left it. Where a change must wait for
an effect (a replacement task placed only once the old one is removed and published),
the step ends with :class:`~swarmmesh.lifecycle.effects.Then`, a continuation the driver
runs at once, before any other event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import count

from swarmmesh.lifecycle import decisions, health, profiles
from swarmmesh.lifecycle import effects as fx
from swarmmesh.model import Cluster, HealthCheck, Task
from swarmmesh.model.objects import Pending


@dataclass
class UpdateJob:
    """A rolling update in flight: which batch, which of its steps (see
    :func:`decisions.batch_steps`), and whether it waits for a timer."""
    id: int
    service: str
    plan: decisions.UpdatePlan
    delay: float
    batch: int = 0
    step: int = 0
    parked: bool = True            # waiting for its next Internal("update") event

    def steps(self) -> tuple[str, ...]:
        return decisions.batch_steps(self.plan.order)


@dataclass
class Machine:
    """The manager's state: the model, the profile's timings, updates in flight, whether
    the controller is there to take a published model."""
    cluster: Cluster
    profile: profiles.Profile = profiles.SWARM_PROFILE
    health_checks: bool = True
    controller_up: bool = True
    cut: set[str] = field(default_factory=set)        # nodes whose link is down
    unpublished: list[str] = field(default_factory=list)
    updates: dict[int, UpdateJob] = field(default_factory=dict)
    _ids: count = field(default_factory=count)

    # -- the one entry point ---------------------------------------------------------------
    def step(self, now: float, event: fx.Event) -> list[fx.Effect]:
        """Take one event at clock time ``now``; return what must happen, in order. Raises
        :class:`InvalidConfigError` (naming the field) before changing anything."""
        handler = getattr(self, "_on_" + _name(event))
        out = handler(now, event)
        out += self._updates_ready()
        return self._through_controller(out)

    def busy(self) -> bool:
        """An update is in flight (it has steps left)."""
        return bool(self.updates)

    def healthcheck(self, service: str) -> HealthCheck | None:
        """The service's check with this profile's timings (None: it has none)."""
        hc = self.cluster.service(service).healthcheck
        if hc is None or not hc.active:
            return None
        return profiles.check_for(self.profile.name, hc)

    def watch_all(self) -> list[fx.Effect]:
        """Health checks for every task there is (the orchestrator's start)."""
        return [e for t in self.cluster.tasks for e in self._watch(t)]

    # -- operations --------------------------------------------------------------------------
    def _on_scale(self, now: float, ev: fx.Scale) -> list[fx.Effect]:
        before = len(decisions.live_tasks(self.cluster, ev.service))
        plan = decisions.plan_scale(self.cluster, ev.service, ev.replicas)
        self.cluster.service(ev.service).replicas = ev.replicas
        self.cluster.pending[:] = [p for p in self.cluster.pending if not (
            p.service == ev.service and p.slot in plan.drop_pending)]
        return ([fx.Record("scale", f"{ev.service}: {before} -> {ev.replicas}")]
                + [fx.Timer(0.0, _start(ev.service)) for _ in range(plan.start)]
                + [fx.Timer(0.0, _leave(t, "scaled down")) for t in plan.retire])

    def _on_update(self, now: float, ev: fx.Update) -> list[fx.Effect]:
        plan = decisions.plan_update(self.cluster, ev.service, ev.parallelism, ev.delay,
                                     ev.order)
        job = UpdateJob(next(self._ids), ev.service, plan, ev.delay)
        self.updates[job.id] = job
        return [fx.Record("update", f"{ev.service}: version {plan.version}, parallelism "
                                    f"{ev.parallelism}, delay {ev.delay}s, {ev.order}"),
                fx.Timer(0.0, fx.Internal("update", (job.id,)))]

    def _on_killapp(self, now: float, ev: fx.KillApp) -> list[fx.Effect]:
        decisions.check_kill(ev.how)
        task = self.cluster.task(ev.task)
        out: list[fx.Effect] = [fx.KillAppIn(task, ev.how),
                                fx.Record("task killed", f"{task.name} on {task.node} "
                                                         f"({ev.how})")]
        if self.healthcheck(task.service) is None:       # nothing will ever notice: say so
            out.append(fx.Record("note", f"{task.service} has no health check: {task.name} "
                                         "stays in the load balancer, as in Swarm"))
        return out

    def _on_killcontainer(self, now: float, ev: fx.KillContainer) -> list[fx.Effect]:
        """The container's process exits: it refuses at once; its node's agent reports the
        task failed, it leaves every balancer after the profile's ``exit_detect``, and a
        replacement starts ``restart_delay`` later (restart policy ``any``)."""
        task = self.cluster.task(ev.task)
        return [fx.KillAppIn(task, "hang"),
                fx.Record("container killed", f"{task.name} on {task.node}"),
                fx.Timer(self.profile.exit_detect, fx.Internal("exited", (task,)))]

    def _on_nodedown(self, now: float, ev: fx.NodeDown) -> list[fx.Effect]:
        node = self.cluster.node(ev.node)
        self.cut.add(node.name)
        return [fx.CutNode(node.name),
                fx.Record("node down", f"{node.name} (link down: it answers nothing)"),
                fx.Timer(self.profile.node_down_after, fx.Internal("lost", (node.name,)))]

    def _on_nodeup(self, now: float, ev: fx.NodeUp) -> list[fx.Effect]:
        node = self.cluster.node(ev.node)
        was = node.status
        self.cut.discard(node.name)
        node.status = "ready"
        return [fx.RestoreNode(node.name),
                fx.Record("node up", f"{node.name} (link up; was {was})"),
                fx.Publish(f"{node.name} ready"), fx.Then(fx.Internal("reconcile"))]

    def _on_drain(self, now: float, ev: fx.Drain) -> list[fx.Effect]:
        self.cluster.node(ev.node).availability = "drain"
        plan = decisions.plan_drain(self.cluster, ev.node)
        out: list[fx.Effect] = [fx.Record("node drain", f"{ev.node}: {len(plan)} tasks move")]
        for t, replace in plan:
            if replace:
                out.append(fx.Timer(0.0, _start(t.service, None, t.version, t.slot)))
            out.append(fx.Timer(0.0, _leave(t, f"{ev.node} drained")))
        return out

    def _on_activate(self, now: float, ev: fx.Activate) -> list[fx.Effect]:
        self.cluster.node(ev.node).availability = "active"
        return [fx.Record("node active", ev.node), fx.Timer(0.0, fx.Internal("reconcile"))]

    def _on_nodeupdate(self, now: float, ev: fx.NodeUpdate) -> list[fx.Effect]:
        node = self.cluster.node(ev.node)
        managers = sum(1 for n in self.cluster.nodes if n.role == "manager")
        change = decisions.plan_node_update(node, ev.label_add, ev.label_rm, ev.role,
                                            ev.availability, managers)
        for key, value in ev.label_add:
            node.labels[key] = value
        for key in ev.label_rm:
            node.labels.pop(key, None)
        node.role = ev.role or node.role
        out: list[fx.Effect] = [fx.Record("node update", f"{ev.node}: {change}"),
                                fx.Publish(f"{ev.node} updated")]
        if ev.availability == "drain":
            return out + [fx.Then(fx.Drain(ev.node))]
        if ev.availability is not None:
            out.append(fx.Then(fx.Internal("availability", (ev.node, ev.availability))))
        return out + [fx.Timer(0.0, fx.Internal("reconcile"))]

    def _on_controllerdown(self, now: float, ev: fx.ControllerDown) -> list[fx.Effect]:
        self.controller_up = False
        return [fx.KillController(), fx.Record("controller down", "the switches keep their "
                                                                  "flows")]

    def _on_controllerup(self, now: float, ev: fx.ControllerUp) -> list[fx.Effect]:
        self.controller_up = True
        missed, self.unpublished = self.unpublished, []
        out: list[fx.Effect] = [fx.RestartController(),
                                fx.Record("controller up", f"{len(missed)} changes waited")]
        if missed:
            out.append(fx.Publish("while the controller was down: " + "; ".join(missed)))
        return out

    def _on_healthchanged(self, now: float, ev: fx.HealthChanged) -> list[fx.Effect]:
        task = next((t for t in self.cluster.tasks if t.name == ev.task), None)
        if task is None:
            return []
        detail = (f"{task.name} (after {ev.failing_streak} failed checks)"
                  if ev.status == health.UNHEALTHY else task.name)
        out: list[fx.Effect] = [fx.Record(f"health {ev.status}", detail, t=ev.t)]
        action = decisions.on_health(task, ev.status)
        if action == "admit":
            out.append(fx.Timer(0.0, fx.Internal("admit", (task,))))
        elif action == "leave":
            out.append(fx.Timer(0.0, _leave(task, "unhealthy", True)))
        return out

    # -- the machine's own steps ------------------------------------------------------------
    def _on_internal(self, now: float, ev: fx.Internal) -> list[fx.Effect]:
        return getattr(self, "_do_" + ev.what)(*ev.args)

    def _do_start(self, service: str, node: str | None, version: int | None,
                  slot: int | None) -> list[fx.Effect]:
        """Schedule, build and (health permitting) admit a new task; with no node to take
        it, the task is pending, as in Swarm, until one appears."""
        probe_first = self.healthcheck(service) is not None
        if node is None and not self.cluster.candidates(service)[0]:
            return self._pend(service, version, slot)
        task = self.cluster.place_task(service, node=node, version=version, slot=slot,
                                       state="starting" if probe_first else "running")
        return [fx.StartTask(task),
                fx.Record("task started", f"{task.name} on {task.node} ({task.host}, version "
                                          f"{task.version}, {task.state})"),
                fx.Publish(f"{task.name} {'starting' if probe_first else 'joins'}"),
                *self._watch(task)]

    def _pend(self, service: str, version: int | None, slot: int | None) -> list[fx.Effect]:
        _, why = self.cluster.candidates(service)
        if slot is None:
            taken = [t.slot for t in self.cluster.tasks_of(service)]
            slot = max(taken + [p.slot for p in self.cluster.pending_of(service)], default=0) + 1
        version = self.cluster.service_version(service) if version is None else version
        self.cluster.pending.append(Pending(service, slot, why, version))
        return [fx.Record("task pending", f"{service}.{slot}: {why}"),
                fx.Publish(f"{service}.{slot} pending")]

    def _do_admit(self, task: Task) -> list[fx.Effect]:
        if task not in self.cluster.tasks or task.state != "starting":
            return []
        task.state = "running"
        return [fx.Publish(f"{task.name} healthy: joins the load balancer")]

    def _do_leave(self, task: Task, why: str, replace: bool = False) -> list[fx.Effect]:
        """Weight 0 now, removal after the convergence delay (Swarm's 2 s)."""
        if task not in self.cluster.tasks or task.state == "draining":
            return []
        task.state = "draining"
        return [fx.Record("weight 0", f"{task.name}: {why}"),
                fx.Publish(f"{task.name} weight 0"),
                fx.Timer(self.profile.lb_leave_delay, fx.Internal("remove", (task, replace)))]

    def _do_remove(self, task: Task, replace: bool) -> list[fx.Effect]:
        if task not in self.cluster.tasks:
            return [fx.UnwatchHealth(task.name)]
        self.cluster.remove_task(task.name)
        out: list[fx.Effect] = [fx.UnwatchHealth(task.name), fx.StopTask(task), fx.SyncFdb(),
                                fx.Record("task removed", task.name),
                                fx.Publish(f"{task.name} removed"), fx.FlushConntrack(task)]
        if replace and decisions.replace_after_removal(self.cluster, task):
            out.append(fx.Then(_start(task.service, None, task.version, task.slot)))
        return out

    def _do_exited(self, task: Task) -> list[fx.Effect]:
        """A killed container's task is failed: out of every balancer and stopped at once
        (nothing is left to drain), replaced after the restart delay."""
        if task not in self.cluster.tasks:
            return []
        self.cluster.remove_task(task.name)
        out: list[fx.Effect] = [fx.UnwatchHealth(task.name),
                                fx.Record("task failed", f"{task.name}: its container exited"),
                                fx.Publish(f"{task.name} failed: out of every load balancer"),
                                fx.StopTask(task), fx.SyncFdb(), fx.FlushConntrack(task)]
        if decisions.replace_after_removal(self.cluster, task):
            out.append(fx.Timer(self.profile.restart_delay,
                                _start(task.service, None, task.version, task.slot)))
        return out

    def _do_lost(self, name: str) -> list[fx.Effect]:
        node = self.cluster.node(name)
        if name not in self.cut or node.status != "ready":
            return []                                   # back before it was marked down
        node.status = "down"
        gone = self.cluster.tasks_on(name)
        return [fx.Record("node marked down", f"{name}: {len(gone)} tasks to reschedule"),
                fx.Publish(f"{name} down: its tasks leave every load balancer"),
                fx.Then(fx.Internal("drop_tasks", (name,)))]

    def _do_drop_tasks(self, name: str) -> list[fx.Effect]:
        gone = self.cluster.tasks_on(name)
        for t in gone:
            self.cluster.remove_task(t.name)
        return ([fx.UnwatchHealth(t.name) for t in gone] + [fx.StopTask(t) for t in gone]
                + [fx.SyncFdb(), fx.Publish(f"{name}'s tasks removed")]
                + [fx.FlushConntrack(t) for t in gone]
                + [fx.Then(_start(t.service, None, t.version, t.slot))
                   for t in decisions.reschedule(self.cluster, gone)])

    def _do_availability(self, name: str, availability: str) -> list[fx.Effect]:
        self.cluster.node(name).availability = availability
        return []

    def _do_reconcile(self) -> list[fx.Effect]:
        """After a node change: stop the tasks whose constraints no longer hold there (they
        are replaced where they do), place the pending tasks a node can now take, and start
        a global service's task on every node newly eligible."""
        gone = [t for n in self.cluster.nodes for t in decisions.violations(self.cluster,
                                                                             n.name)]
        return ([fx.Then(_leave(t, f"constraints no longer hold on {t.node}", True))
                 for t in gone] + [fx.Then(fx.Internal("place_pending"))])

    def _do_place_pending(self) -> list[fx.Effect]:
        ready = decisions.placeable(self.cluster)
        if not ready:
            return [fx.Then(_start(s, n)) for s, n in decisions.global_gaps(self.cluster)]
        p = ready[0]
        self.cluster.pending.remove(p)
        return [fx.Record("task placed", f"{p.service}.{p.slot} (was pending: {p.reason})"),
                fx.Then(_start(p.service, None, p.version, p.slot)),
                fx.Then(fx.Internal("place_pending"))]

    # -- rolling updates ----------------------------------------------------------------------
    def _do_update(self, job_id: int) -> list[fx.Effect]:
        """The update's next step: start a batch's new tasks, make its old ones leave, or
        move on to the next batch; the waits are conditions :meth:`_updates_ready` checks
        after every step."""
        job = self.updates.get(job_id)
        if job is None:
            return []
        job.parked = False
        if job.step == len(job.steps()):
            return self._batch_done(job)
        what = job.steps()[job.step]
        batch = job.plan.batches[job.batch]
        if what == "start":
            job.step += 1
            job.parked = True
            return ([fx.Then(_start(job.service, None, job.plan.version, t.slot)) for t in batch]
                    + [fx.Then(fx.Internal("update", (job.id,)))])
        if what == "leave":
            job.step += 1
            return [fx.Then(_leave(t, f"replaced by version {job.plan.version}"))
                    for t in batch]
        return []                                      # a wait: _updates_ready moves it on

    def _batch_done(self, job: UpdateJob) -> list[fx.Effect]:
        batch = job.plan.batches[job.batch]
        out: list[fx.Effect] = [fx.Record("update batch done", ", ".join(t.name for t in batch))]
        job.batch, job.step = job.batch + 1, 0
        if job.batch == len(job.plan.batches):
            del self.updates[job.id]
            return out + [fx.Record("update done", f"{job.service} at version "
                                                   f"{job.plan.version}")]
        job.parked = True
        return out + [fx.Timer(job.delay, fx.Internal("update", (job.id,)))]

    def _updates_ready(self) -> list[fx.Effect]:
        """Updates whose wait is over (their new tasks running, or their old ones gone)
        take their next step."""
        out: list[fx.Effect] = []
        for job in self.updates.values():
            if job.parked or job.step == len(job.steps()):
                continue
            if self._wait_over(job, job.steps()[job.step]):
                job.step += 1
                job.parked = True
                out.append(fx.Then(fx.Internal("update", (job.id,))))
        return out

    def _wait_over(self, job: UpdateJob, what: str) -> bool:
        batch = job.plan.batches[job.batch]
        if what == "wait running":
            slots = {t.slot for t in batch}
            new = [t for t in self.cluster.tasks_of(job.service)
                   if t.version == job.plan.version and t.slot in slots]
            return all(t.state == "running" for t in new)
        if what == "wait gone":
            return not any(t in self.cluster.tasks for t in batch)
        return False

    # -- helpers ------------------------------------------------------------------------------
    def _watch(self, task: Task) -> list[fx.Effect]:
        hc = self.healthcheck(task.service)
        return [fx.WatchHealth(task, hc)] if self.health_checks and hc is not None else []

    def _through_controller(self, out: list[fx.Effect]) -> list[fx.Effect]:
        """With the controller down, a published model reaches no switch: remember why, and
        publish once when it is back."""
        if self.controller_up:
            return out
        self.unpublished += [e.why for e in out if isinstance(e, fx.Publish)]
        return [e for e in out if not isinstance(e, fx.Publish)]


def _name(event: fx.Event) -> str:
    return type(event).__name__.lower()


def _start(service: str, node: str | None = None, version: int | None = None,
           slot: int | None = None) -> fx.Internal:
    return fx.Internal("start", (service, node, version, slot))


def _leave(task: Task, why: str, replace: bool = False) -> fx.Internal:
    return fx.Internal("leave", (task, why, replace))
