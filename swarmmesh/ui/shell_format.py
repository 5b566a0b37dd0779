"""Docker's tables for the interactive CLI (:mod:`swarmmesh.ui.shell`): ``service
ls``, ``service ps``, ``node ls`` and the event log, as far as the model has
their columns; pure functions of the model, no root, no Mininet.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from swarmmesh.model import Cluster, Task


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Left-aligned columns three spaces apart, as docker's tabwriter."""
    rows = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    lines = ["   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
             for r in [list(headers), *rows]]
    return "\n".join(lines) + "\n"


def ports_text(ports) -> str:
    return ", ".join(f"*:{p.published}->{p.target}/{p.protocol}" for p in ports)


def desired_replicas(cluster: Cluster, service: str) -> int:
    svc = cluster.service(service)
    if svc.mode == "global":
        return len(cluster.schedulable_nodes(service))
    return svc.replicas


def running_count(cluster: Cluster, service: str) -> int:
    return sum(1 for t in cluster.tasks_of(service) if cluster.in_balancer(t))


def service_ls(cluster: Cluster) -> str:
    """``docker service ls``: NAME MODE REPLICAS (running/desired) PORTS.
    (The model has no service IDs or images.)"""
    rows = [(s.name, s.mode, f"{running_count(cluster, s.name)}/{desired_replicas(cluster, s.name)}",
             ports_text(s.ingress_ports())) for s in cluster.services.values()]
    return table(("NAME", "MODE", "REPLICAS", "PORTS"), rows)


def task_states(task: Task, node_status: str, health: str | None) -> tuple[str, str]:
    """DESIRED STATE and CURRENT STATE of a task, in docker's words."""
    if task.state == "draining":               # weight 0, removal pending
        return "Shutdown", "Running (weight 0, leaving)"
    current = {"starting": "Starting", "running": "Running"}.get(task.state, task.state)
    notes = []
    if health is not None:
        notes.append(health)
    if node_status != "ready":
        notes.append(f"node {node_status}")
    return "Running", current + (f" ({', '.join(notes)})" if notes else "")


def service_ps(cluster: Cluster, service: str, health: dict[str, str] | None = None) -> str:
    """``docker service ps SVC``: ID (the task's host) NAME VERSION NODE
    DESIRED STATE CURRENT STATE PORTS (host-mode ports)."""
    svc = cluster.service(service)
    health = health or {}
    rows = []
    for t in sorted(cluster.tasks_of(service), key=lambda t: (t.slot, t.name)):
        desired, current = task_states(t, cluster.node(t.node).status, health.get(t.name))
        rows.append((t.host, t.name, t.version, t.node, desired, current, "",
                     ports_text(svc.host_ports())))
    for p in cluster.pending_of(service):
        rows.append(("-", f"{service}.{p.slot}", p.version, "", "Running", "Pending",
                     f'"{p.reason}"', ""))
    return table(("ID", "NAME", "VERSION", "NODE", "DESIRED STATE", "CURRENT STATE", "ERROR",
                  "PORTS"), rows)


def manager_status(cluster: Cluster, name: str) -> str:
    """docker's MANAGER STATUS: Leader (the first manager), Reachable, or empty."""
    managers = [n.name for n in cluster.nodes if n.role == "manager"]
    if name not in managers:
        return ""
    return "Leader" if name == managers[0] else "Reachable"


def node_ls(cluster: Cluster) -> str:
    """``docker node ls``: ID HOSTNAME STATUS AVAILABILITY MANAGER STATUS, plus the
    node's labels and the tasks on it."""
    rows = [(n.id, n.name, n.status.capitalize(), n.availability.capitalize(),
             manager_status(cluster, n.name),
             ",".join(f"{k}={v}" if v else k for k, v in sorted(n.labels.items())) or "-",
             len(cluster.tasks_on(n.name))) for n in cluster.nodes]
    return table(("ID", "HOSTNAME", "STATUS", "AVAILABILITY", "MANAGER STATUS", "LABELS",
                  "TASKS"), rows)


def events_text(events: Sequence, last: int | None = None) -> str:
    """The orchestrator's event log: T (s from its start), EVENT, DETAIL."""
    shown = list(events)[-last:] if last else list(events)
    return table(("T", "EVENT", "DETAIL"), [(f"{e.t:.3f}", e.event, e.detail) for e in shown])
