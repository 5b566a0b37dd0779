"""The CLI's background operations (:mod:`swarmmesh.ui.shell`): a scale, an update
or a kill runs in the orchestrator; these tests say when each is done, as
pure functions of the model and the event log.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from swarmmesh.model import Cluster, Task
from swarmmesh.ui.shell_format import desired_replicas

OP_TIMEOUT = 600.0          # a background operation not done by then is reported as stuck


@dataclass
class Op:
    """A background operation started from the CLI and its completion test."""
    what: str
    check: Callable[[], str | None]     # None: not yet; else the line to print
    started: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)
    result: str = ""
    superseded: str | None = None       # a later operation on the same service replaced it


def scale_done(cluster: Cluster, service: str, replicas: int) -> str | None:
    """Done when exactly ``replicas`` tasks exist (placed or pending) and every placed
    one is in the balancer."""
    tasks, pending = cluster.tasks_of(service), cluster.pending_of(service)
    if len(tasks) + len(pending) == replicas and all(cluster.in_balancer(t) for t in tasks):
        extra = f", {len(pending)} pending: {pending[0].reason}" if pending else ""
        return f"{service} scaled to {replicas} ({len(tasks)}/{replicas} running{extra})"
    return None


def replaced(cluster: Cluster, task: Task) -> str | None:
    """Done when the killed task is gone and its service is back to its
    desired count, all in the balancer."""
    if task in cluster.tasks:
        return None
    tasks = cluster.tasks_of(task.service)
    want = desired_replicas(cluster, task.service)
    if len(tasks) != want or not all(cluster.in_balancer(t) for t in tasks):
        return None
    return (f"{task.name} detected, removed and replaced "
            f"({task.service} {want}/{want} running)")


def unconverged(cluster: Cluster) -> str | None:
    """Why the cluster is not at rest (a task starting or leaving, a
    replicated service off its count), or None."""
    moving = [f"{t.name} {t.state}" for t in cluster.tasks if t.state != "running"]
    off = [f"{s.name} {len(cluster.tasks_of(s.name))}/{s.replicas}"
           for s in cluster.services.values() if s.mode != "global"
           and len(cluster.tasks_of(s.name)) + len(cluster.pending_of(s.name)) != s.replicas]
    return ", ".join(moving + off) or None


def settled(cluster: Cluster) -> str | None:
    """Done once the cluster is at rest: what is still pending, or None while moving."""
    if unconverged(cluster):
        return None
    left = [f"{p.service}.{p.slot}" for p in cluster.pending]
    return (f"converged; pending: {', '.join(left)}" if left
            else "converged; no task pending")


def errors_since(events: Sequence, index: int) -> list:
    return [e for e in list(events)[index:] if e.event == "error"]


def update_done(events: Sequence, index: int, service: str) -> str | None:
    """Done when the orchestrator records ``update done`` for ``service``
    (after event ``index``), or the update failed."""
    for e in list(events)[index:]:
        if e.event == "update done" and e.detail.split(" ")[0] == service:
            return f"{service} updated ({e.detail.split(' ', 1)[1]})"
        if e.event == "error" and e.detail.startswith("update failed"):
            return f"{service} update FAILED: {e.detail}"
    return None
