"""``swarmmesh cli --engine docker``, the pure part: what real Swarm reports, as the CLI
shows it, and when a background operation on it is done.

A :class:`Snapshot` is one read of Swarm (``docker service inspect``, ``service ps`` +
task ``inspect``, ``node inspect``, all on the manager); from it come the docker-style
tables (the emulated CLI's columns, :mod:`swarmmesh.ui.shell_format`), the events (what
Swarm did between two snapshots), the completion tests of scale, kill, drain and update,
and why the swarm has not converged.  What ``--engine docker`` refuses on the CLI is here
too.  No I/O: :mod:`swarmmesh.ui.shell_docker` takes the snapshots.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Callable

from swarmmesh.model import Cluster, InvalidConfigError
from swarmmesh.testbed.docker_plan import SwarmTask
from swarmmesh.ui.shell_format import table

ACTIVE = ("new", "pending", "assigned", "accepted", "preparing", "ready", "starting",
          "running")          # task states before it ends (swarmkit's order)


@dataclass(frozen=True)
class SwarmService:
    name: str
    mode: str                   # replicated | global
    replicas: int | None        # desired (replicated only)
    ports: str                  # *:8000->80/tcp, ...
    version: int = 1            # ForceUpdate + 1
    update: tuple[str, str, str] = ("", "", "")   # UpdateStatus: State, StartedAt, Message


@dataclass(frozen=True)
class SwarmNode:
    id: str
    name: str
    status: str                 # ready | down | unknown
    availability: str           # active | drain | pause
    role: str
    manager: str                # Leader | Reachable | Unreachable | ''
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Snapshot:
    services: dict[str, SwarmService]
    tasks: tuple[SwarmTask, ...]
    nodes: tuple[SwarmNode, ...]

    def node_name(self, node_id: str) -> str:
        return next((n.name for n in self.nodes if n.id == node_id), node_id[:12])

    def live(self, service: str | None = None) -> list[SwarmTask]:
        """Tasks Swarm wants running (``desired running``), of one service or all."""
        return [t for t in self.tasks if t.desired == "running"
                and (service is None or t.service == service)]

    def running(self, service: str | None = None) -> list[SwarmTask]:
        return [t for t in self.live(service) if t.state == "running"]

    def desired(self, service: str) -> int:
        s = self.services[service]
        return len(self.live(service)) if s.replicas is None else s.replicas


# -- reading ---------------------------------------------------------------------------
def parse_services(inspect_json: str) -> dict[str, SwarmService]:
    """``docker service inspect NAME...`` (a JSON list)."""
    out = {}
    for s in json.loads(inspect_json):
        spec = s["Spec"]
        replicated = (spec.get("Mode") or {}).get("Replicated")
        ports = [p for p in (spec.get("EndpointSpec") or {}).get("Ports") or []
                 if p.get("PublishMode", "ingress") == "ingress"]
        us = s.get("UpdateStatus") or {}
        out[spec["Name"]] = SwarmService(
            spec["Name"], "replicated" if replicated is not None else "global",
            int(replicated.get("Replicas") or 0) if replicated is not None else None,
            ", ".join(f"*:{p['PublishedPort']}->{p['TargetPort']}/{p.get('Protocol', 'tcp')}"
                      for p in ports),
            int((spec.get("TaskTemplate") or {}).get("ForceUpdate") or 0) + 1,
            (us.get("State", ""), us.get("StartedAt", ""), us.get("Message", "")))
    return out


def parse_nodes(inspect_json: str) -> tuple[SwarmNode, ...]:
    """``docker node inspect NAME...`` (a JSON list)."""
    out = []
    for n in json.loads(inspect_json):
        ms = n.get("ManagerStatus")
        manager = "" if not ms else ("Leader" if ms.get("Leader") else
                                     ms.get("Reachability", "").capitalize())
        out.append(SwarmNode(n["ID"], n["Description"]["Hostname"], n["Status"]["State"],
                             n["Spec"].get("Availability", "active"), n["Spec"].get("Role", ""),
                             manager, dict(n["Spec"].get("Labels") or {})))
    return tuple(out)


# -- tables (the emulated CLI's columns) -------------------------------------------------
def service_ls(snap: Snapshot) -> str:
    """``docker service ls``: NAME MODE REPLICAS (running/desired) PORTS."""
    rows = [(s.name, s.mode, f"{len(snap.running(s.name))}/{snap.desired(s.name)}", s.ports)
            for s in snap.services.values()]
    return table(("NAME", "MODE", "REPLICAS", "PORTS"), rows)


def service_ps(snap: Snapshot, service: str) -> str:
    """``docker service ps SVC``: every task Swarm keeps, each slot's newest first and its
    history below it (``\\_ app.1``), as docker prints them."""
    if service not in snap.services:
        raise InvalidConfigError("service", f"no service {service!r} in Swarm")
    tasks = sorted((t for t in snap.tasks if t.service == service),
                   key=lambda t: (t.slot, t.desired != "running", _neg(t.timestamp)))
    rows, prev = [], None
    for t in tasks:
        name = f"{t.service}.{t.slot}"
        rows.append((t.id[:12], name if name != prev else f"\\_ {name}", t.version,
                     snap.node_name(t.node_id), t.desired.capitalize(), t.state.capitalize(),
                     f'"{t.error}"' if t.error else "", ""))
        prev = name
    return table(("ID", "NAME", "VERSION", "NODE", "DESIRED STATE", "CURRENT STATE", "ERROR",
                  "PORTS"), rows)


def _neg(timestamp: str) -> tuple[int, ...]:
    """Newest first: an RFC 3339 time sorts as text; invert its characters."""
    return tuple(-ord(c) for c in timestamp)


def node_ls(snap: Snapshot) -> str:
    """``docker node ls`` plus the node's labels and its running tasks."""
    rows = [(n.id[:25], n.name, n.status.capitalize(), n.availability.capitalize(), n.manager,
             ",".join(f"{k}={v}" if v else k for k, v in sorted(n.labels.items())) or "-",
             sum(1 for t in snap.running() if t.node_id == n.id)) for n in snap.nodes]
    return table(("ID", "HOSTNAME", "STATUS", "AVAILABILITY", "MANAGER STATUS", "LABELS",
                  "TASKS"), rows)


# -- what Swarm did ------------------------------------------------------------------------
def changes(before: Snapshot, after: Snapshot) -> list[tuple[str, str]]:
    """(event, detail) for what changed between two snapshots: each task's new state
    (``task running``: ``app.3 2f9c... on node2``), a node's status or availability, a
    rolling update done (``update done``: ``app at version 2``, the line the CLI's update
    waits for) or stopped (``error``: ``update failed: ...``)."""
    out = []
    old = {t.id: t for t in before.tasks}
    for t in sorted(after.tasks, key=lambda t: t.timestamp):
        if t.id in old and old[t.id].state == t.state:
            continue
        detail = f"{t.service}.{t.slot} {t.id[:12]} on {after.node_name(t.node_id)}"
        out.append((f"task {t.state}", detail + (f": {t.error}" if t.error else "")))
    nodes = {n.id: n for n in before.nodes}
    for n in after.nodes:
        was = nodes.get(n.id)
        if was is not None and was.status != n.status:
            out.append((f"node {n.status}", n.name))
        if was is not None and was.availability != n.availability:
            out.append((f"node {n.availability}", n.name))
    for s in after.services.values():
        was = before.services.get(s.name)
        if was is None or was.update == s.update or not s.update[0]:
            continue
        state, _, message = s.update
        if state == "completed":
            out.append(("update done", f"{s.name} at version {s.version}"))
        elif state in ("paused", "rollback_started", "rollback_paused", "rollback_completed"):
            out.append(("error", f"update failed: {s.name} {state}: {message}"))
        else:
            out.append((f"update {state}", s.name))
    return out


# -- when done ----------------------------------------------------------------------------
def waiting(snap: Snapshot) -> list[SwarmTask]:
    """Tasks Swarm cannot place (pending, with its reason): at rest, not converging."""
    return [t for t in snap.live() if t.state == "pending" and t.error]


def unconverged(snap: Snapshot) -> str | None:
    """Why Swarm is not at rest (a task starting or stopping, a service off its count;
    a task pending with a reason is at rest), or None."""
    moving = [f"{t.service}.{t.slot} {t.state}" for t in snap.live()
              if t.state != "running" and t not in waiting(snap)]
    moving += [f"{t.service}.{t.slot} {t.state} (to {t.desired})" for t in snap.tasks
               if t.desired != "running" and t.state in ACTIVE]
    off = [f"{s} {len(snap.running(s))}/{snap.desired(s)}" for s in snap.services
           if len(snap.running(s)) + len([t for t in waiting(snap) if t.service == s])
           != snap.desired(s)]
    return ", ".join(moving + off) or None


def scale_done(snap: Snapshot, service: str, replicas: int) -> str | None:
    """Done when Swarm runs ``replicas`` tasks (or cannot place the rest) and nothing of
    the service is still starting or stopping."""
    if service not in snap.services or snap.desired(service) != replicas:
        return None
    mine = Snapshot({service: snap.services[service]},
                    tuple(t for t in snap.tasks if t.service == service), snap.nodes)
    if unconverged(mine):
        return None
    left = waiting(mine)
    extra = f", {len(left)} pending: {left[0].error}" if left else ""
    return f"{service} scaled to {replicas} ({len(mine.running())}/{replicas} running{extra})"


def replaced(snap: Snapshot, service: str, slot: int, old_id: str) -> str | None:
    """Done when the slot's task ``old_id`` has ended and a new task runs in the slot."""
    if any(t.id == old_id and t.state in ACTIVE for t in snap.tasks):
        return None
    new = [t for t in snap.running(service) if t.slot == slot and t.id != old_id]
    if not new or service not in snap.services:
        return None
    n, want = len(snap.running(service)), snap.desired(service)
    return (f"{service}.{slot} replaced by task {new[0].id[:12]} on "
            f"{snap.node_name(new[0].node_id)} ({service} {n}/{want} running)")


def drained(snap: Snapshot, node: str) -> str | None:
    """Done when no task runs on ``node`` and Swarm is at rest."""
    ids = [n.id for n in snap.nodes if n.name == node]
    left = [t for t in snap.tasks if t.node_id in ids and t.state in ACTIVE]
    if left or unconverged(snap):
        return None
    return f"{node} drained: its tasks run elsewhere ({len(snap.running())} running)"


def at_rest(snap: Snapshot) -> str | None:
    """``settled`` of the emulated CLI, for Swarm: done once at rest."""
    if unconverged(snap):
        return None
    left = [f"{t.service}.{t.slot}" for t in waiting(snap)]
    return (f"converged; pending: {', '.join(left)}" if left
            else "converged; no task pending")


# -- the model, read back ----------------------------------------------------------------
def model(cluster: Cluster, snap: Snapshot,
          read_back: Callable[..., Cluster]) -> Cluster:
    """``cluster`` as Swarm has it now: the running tasks where Swarm placed them
    (``read_back``: :func:`docker_plan.read_back`), each service's desired replicas, each
    node's status, availability, role and labels."""
    ingress = cluster.networks.get("ingress")
    out = read_back(cluster, list(snap.tasks), {n.id: n.name for n in snap.nodes},
                    str(ingress.subnet) if ingress is not None else "", {})
    nodes = {n.name: n for n in snap.nodes}
    services = {k: replace(s, replicas=snap.services[k].replicas)
                if k in snap.services and snap.services[k].replicas is not None else s
                for k, s in out.services.items()}
    return replace(out, services=services, nodes=[
        replace(n, status=nodes[n.name].status, availability=nodes[n.name].availability,
                role=nodes[n.name].role, labels=dict(nodes[n.name].labels))
        if n.name in nodes else n for n in out.nodes])


# -- what --engine docker refuses on the CLI -----------------------------------------------
def publishes(cluster: Cluster) -> bool:
    """Does a service publish a port through the routing mesh (then dockerd needs ip_vs)?"""
    return any(s.ingress_ports() for s in cluster.services.values())


def refuse(args, cluster: Cluster, machine: str | None) -> None:
    """InvalidConfigError naming the flag for what the CLI's ``--engine docker`` cannot do
    (the experiments' refusals are :func:`swarmmesh.runs.engineargs.check`'s); ``machine``:
    why dockerd nodes cannot run here (``dockerd.engine_missing``), ip_vs needed only when
    a port is published."""
    if getattr(args, "profile", "swarm") != "swarm":
        raise InvalidConfigError("profile", "--engine docker: the lifecycle timings are "
                                            "Swarm's own")
    if getattr(args, "datapath", "auto") != "auto":
        raise InvalidConfigError("datapath", "--engine docker: no Open vSwitch on the nodes")
    if getattr(args, "build_timeout", None) is not None and args.build_timeout <= 0:
        raise InvalidConfigError("build-timeout", "must be > 0 seconds")
    if machine and (publishes(cluster) or "ip_vs" not in machine):
        raise InvalidConfigError("engine", f"docker: {machine}")

