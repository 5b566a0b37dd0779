"""``swarmmesh stack check``: what ``docker stack deploy`` would make of a stack, on
these nodes, without building anything (``docker stack config`` plus a dry run).

A pure function of the model: the nodes, every service (mode, replicas, ports with
their mode, networks, constraints), the tasks per node, the pending tasks with the
scheduler's reason, the warnings, and the keys Swarm has that the testbed ignores.
"""

from __future__ import annotations

from typing import Sequence

from swarmmesh.model import Cluster
from swarmmesh.model.constraints import text as constraints_text
from swarmmesh.ui.shell_format import manager_status, table


def _labels(labels: dict) -> str:
    return ",".join(f"{k}={v}" if v else k for k, v in sorted(labels.items())) or "-"


def nodes_table(cluster: Cluster) -> str:
    rows = [(n.name, n.role, manager_status(cluster, n.name) or "-", n.availability,
             f"{n.os}/{n.arch}", _labels(n.labels), len(cluster.tasks_on(n.name)))
            for n in cluster.nodes]
    return table(("NODE", "ROLE", "MANAGER STATUS", "AVAILABILITY", "PLATFORM", "LABELS",
                  "TASKS"), rows)


def _ports(svc) -> str:
    return ", ".join(f"{p.published}:{p.target}/{p.protocol} {p.mode}" for p in svc.ports) or "-"


def balancing_text(b) -> str:
    """Swarm's ``rr``, or what x-swarmmesh / the flags chose."""
    parts = [b.scheduler]
    if b.weights:
        parts.append("weights " + ",".join(f"{k}:{v}" for k, v in sorted(b.weights.items())))
    if b.affinity:
        parts.append(f"affinity {b.affinity:g}s")
    if b.traffic_policy != "cluster":
        parts.append(f"{b.traffic_policy} traffic")
    return " ".join(parts)


def services_table(cluster: Cluster) -> str:
    rows = []
    for s in cluster.services.values():
        placed, pending = len(cluster.tasks_of(s.name)), len(cluster.pending_of(s.name))
        rows.append((s.name, s.mode, f"{placed}/{placed + pending}", _ports(s),
                     ",".join(s.networks) or "-", s.endpoint_mode,
                     balancing_text(s.balancing) if s.ingress_ports() else "-",
                     constraints_text(s.constraints) or "-",
                     ",".join(f"spread {p}" for p in s.preferences) or "-"))
    return table(("SERVICE", "MODE", "PLACED", "PORTS", "NETWORKS", "ENDPOINT", "BALANCING",
                  "CONSTRAINTS", "PREFERENCES"), rows)


def tasks_per_node(cluster: Cluster) -> str:
    lines = []
    for n in cluster.nodes:
        names = [t.name for t in cluster.tasks_on(n.name)]
        lines.append(f"  {n.name}: {', '.join(names) or '-'}")
    return "\n".join(lines) + "\n"


def render(cluster: Cluster, sources: Sequence[str]) -> str:
    """The whole report; the last line says ok and counts."""
    out = [f"stack: {' + '.join(sources)}\n", "\nnodes:\n", nodes_table(cluster),
           "\nservices:\n", services_table(cluster), "\ntasks per node:\n",
           tasks_per_node(cluster)]
    if cluster.pending:
        out.append("\npending (no node can take them; placed when one can):\n")
        out += [f"  {p.service}.{p.slot}: {p.reason}\n" for p in cluster.pending]
    if cluster.warnings:
        out.append("\nwarnings:\n")
        out += [f"  {w}\n" for w in cluster.warnings]
    if cluster.ignored_keys:
        out.append("\nignored (Swarm has them, the testbed does not emulate them):\n")
        out += [f"  {k}\n" for k in cluster.ignored_keys]
    tasks = len(cluster.tasks)
    out.append(f"\nok: {len(cluster.services)} service(s), {tasks} task(s) placed, "
               f"{len(cluster.pending)} pending, on {len(cluster.nodes)} node(s)\n")
    return "".join(out)
