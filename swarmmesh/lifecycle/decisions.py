"""The orchestrator's decisions, as pure functions of the model (model in, plan out).

Like the flow rules, nothing here does I/O: each function reads a :class:`Cluster`
and says what Swarm's manager would do (which tasks to start or retire, in which
order, which to reschedule), or raises :class:`InvalidConfigError` naming the field.
:mod:`swarmmesh.lifecycle.orchestrator` carries the plans out on a running testbed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from swarmmesh.lifecycle.health import HEALTHY, UNHEALTHY
from swarmmesh.model import Cluster, InvalidConfigError, Task
from swarmmesh.model.constraints import satisfies
from swarmmesh.model.objects import NODE_AVAILABILITIES, NODE_ROLES, Node, Pending

UPDATE_ORDERS = ("stop-first", "start-first")
KILL_MODES = ("hang", "unhealthy")       # the app stops answering, or fails its check


def live_tasks(cluster: Cluster, service: str) -> list[Task]:
    """The service's tasks that count against its desired count (leaving ones do not)."""
    return [t for t in cluster.tasks_of(service) if t.state != "draining"]


def missing(cluster: Cluster, service: str) -> int:
    """Tasks the service lacks against its desired count (negative: too many); a pending
    task counts as there: it is placed when a node can take it."""
    return (cluster.service(service).replicas - len(live_tasks(cluster, service))
            - len(cluster.pending_of(service)))


@dataclass(frozen=True)
class ScalePlan:
    start: int                    # new tasks to start
    retire: tuple[Task, ...]      # tasks to take out (the highest slots)
    drop_pending: tuple[int, ...] = ()   # pending tasks no longer wanted (their slots)


def plan_scale(cluster: Cluster, service: str, replicas: int) -> ScalePlan:
    """``docker service scale SERVICE=N``: start what is missing, retire the highest slots
    (pending tasks first: see :func:`pending_to_drop`)."""
    svc = cluster.service(service)
    if replicas < 0:
        raise InvalidConfigError("replicas", f"must be >= 0, got {replicas}")
    if svc.mode == "global":
        raise InvalidConfigError(f"services.{service}.deploy.mode",
                                 "a global service cannot be scaled")
    live = sorted(live_tasks(cluster, service), key=lambda t: t.slot)
    keep = max(0, replicas - len(live))              # pending tasks that stay wanted
    return ScalePlan(max(0, replicas - len(live) - len(cluster.pending_of(service))),
                     tuple(live[replicas:]), pending_to_drop(cluster, service, keep))


def pending_to_drop(cluster: Cluster, service: str, keep: int) -> tuple[int, ...]:
    """Slots of the pending tasks a scale-down removes (the highest, beyond ``keep``)."""
    slots = sorted(p.slot for p in cluster.pending_of(service))
    return tuple(slots[keep:])


@dataclass(frozen=True)
class UpdatePlan:
    version: int                           # the version every new task runs
    batches: tuple[tuple[Task, ...], ...]  # old tasks, ``parallelism`` at a time, by slot
    order: str                             # stop-first | start-first


def plan_update(cluster: Cluster, service: str, parallelism: int = 1, delay: float = 0.0,
                order: str = "stop-first") -> UpdatePlan:
    """``docker service update``: every live task replaced by one of the next version."""
    cluster.service(service)
    if parallelism < 1:
        raise InvalidConfigError("parallelism", f"must be >= 1, got {parallelism}")
    if delay < 0:
        raise InvalidConfigError("delay", f"must be >= 0, got {delay}")
    if order not in UPDATE_ORDERS:
        raise InvalidConfigError("order", f"must be one of {', '.join(UPDATE_ORDERS)}, "
                                          f"got {order!r}")
    old = sorted(live_tasks(cluster, service), key=lambda t: t.slot)
    batches = tuple(tuple(old[i:i + parallelism]) for i in range(0, len(old), parallelism))
    return UpdatePlan(cluster.service_version(service) + 1, batches, order)


def batch_steps(order: str) -> tuple[str, ...]:
    """What one update batch does, in order: start the new tasks and wait for them to be
    healthy, make the old ones leave and wait until they are gone (start-first), or the
    other way round (stop-first: for a moment the batch's slots have no task)."""
    start, leave = ("start", "wait running"), ("leave", "wait gone")
    return start + leave if order == "start-first" else leave + start


def check_kill(how: str) -> None:
    if how not in KILL_MODES:
        raise InvalidConfigError("how", f"must be {' or '.join(KILL_MODES)}, got {how!r}")


def on_health(task: Task, new_status: str) -> str | None:
    """What a health transition means for the task: ``admit`` (its first passing check:
    it joins the balancer), ``leave`` (unhealthy: out, and replaced) or nothing."""
    if new_status == HEALTHY and task.state == "starting":
        return "admit"
    if new_status == UNHEALTHY and task.state != "draining":
        return "leave"
    return None


def replace_after_removal(cluster: Cluster, task: Task) -> bool:
    """Start a replacement for a removed task? Only up to the desired count."""
    return missing(cluster, task.service) > 0


def reschedule(cluster: Cluster, gone: list[Task]) -> list[Task]:
    """Of the tasks a lost node took with it (already removed from ``cluster``), those to
    start again elsewhere: replicated services only, never above the desired count."""
    lacking = {s: missing(cluster, s) for s in {t.service for t in gone}}
    out = []
    for t in gone:
        if cluster.service(t.service).mode != "global" and lacking[t.service] > 0:
            lacking[t.service] -= 1
            out.append(t)
    return out


def plan_drain(cluster: Cluster, node: str) -> list[tuple[Task, bool]]:
    """``docker node update --availability drain``: each live task on the node, and whether
    a replacement starts elsewhere (a global service's task just stops)."""
    return [(t, cluster.service(t.service).mode != "global")
            for t in cluster.tasks_on(node) if t.state != "draining"]


# --- node changes: constraints, pending tasks, global services ---------------------------


def violations(cluster: Cluster, node: str) -> list[Task]:
    """Live tasks on the node whose service's constraints no longer hold there (a label
    removed, a role changed): swarmkit's constraint enforcer stops them, and the
    orchestrator starts replacements where the constraints hold."""
    n = cluster.node(node)
    return [t for t in cluster.tasks_on(node) if t.state != "draining"
            and not satisfies(cluster.service(t.service).constraints, n)]


def placeable(cluster: Cluster) -> list[Pending]:
    """Pending tasks some node can take now, in creation order."""
    return [p for p in cluster.pending if cluster.candidates(p.service)[0]]


def global_gaps(cluster: Cluster) -> list[tuple[str, str]]:
    """(service, node): a global service's missing task on a node that can take one."""
    out = []
    for svc in cluster.services.values():
        if svc.mode != "global":
            continue
        have = {t.node for t in live_tasks(cluster, svc.name)}
        out += [(svc.name, n.name) for n in cluster.schedulable_nodes(svc.name)
                if n.name not in have]
    return out


def plan_node_update(node: Node, label_add: Sequence[tuple[str, str]] = (),
                     label_rm: Sequence[str] = (), role: str | None = None,
                     availability: str | None = None, managers: int = 1) -> str:
    """``docker node update``: check it (errors name the flag, as docker's do) and say
    what changes.  ``managers``: how many managers the swarm has now."""
    path = f"nodes.{node.name}"
    for key in label_rm:
        if key not in node.labels and key not in dict(label_add):
            raise InvalidConfigError(f"{path}.labels.{key}",
                                     "key doesn't exist in node's labels (--label-rm)")
    if role is not None and role not in NODE_ROLES:
        raise InvalidConfigError("--role", f"must be one of {', '.join(NODE_ROLES)}, "
                                           f"got {role!r}")
    if role == "worker" and node.role == "manager" and managers <= 1:
        raise InvalidConfigError("--role", f"{node.name} is the last manager of the swarm: "
                                           "it cannot be demoted")
    if availability is not None and availability not in NODE_AVAILABILITIES:
        raise InvalidConfigError("--availability",
                                 f"must be one of {', '.join(NODE_AVAILABILITIES)}, "
                                 f"got {availability!r}")
    parts = [f"label {k}={v}" for k, v in label_add] + [f"label -{k}" for k in label_rm]
    if role is not None and role != node.role:
        parts.append(f"role {role}")
    if availability is not None and availability != node.availability:
        parts.append(f"availability {availability}")
    return ", ".join(parts) or "no change"
