"""What real Swarm did during a timed run, as the lifecycle experiments' events (pure).

While an experiment runs on ``--engine docker``, :class:`~swarmmesh.testbed.docker_swarm.
DockerSwarm` reads Swarm on the manager's Engine API every half second (``GET /tasks``:
the tasks ``docker service ps`` lists, as ``inspect`` shows them; ``GET /nodes``): each read
is a :class:`Poll`.  :func:`events` replays the polls into the events the emulated
orchestrator records, under the same names where the meaning is the same, at Swarm's own
times:

- a task entering ``starting``: ``task started`` (its Status.Timestamp).  With a health
  check Swarm keeps a task ``starting`` until its first healthy check;
- a task entering ``running``: ``published`` "<task> running: joins the load balancer"
  (Status.Timestamp): its node activates the task's service binding then;
- a running task whose desired state leaves ``running``: ``weight 0`` (the task's
  UpdatedAt): its node deactivates the binding (weight 0 in IPVS) and stops it 2 s later.
  A task on a node Swarm reports down, or one that never ran, gets ``task to shut down``
  instead (nothing takes it out of a balancer);
- a task ``shutdown`` or ``complete``: ``task removed`` (Status.Timestamp); gone from the
  list before a read saw it stop: ``task removed`` at that read;
- ``failed`` or ``rejected``: ``task failed`` (``health unhealthy`` if its error says so);
- a node's status ``down``: ``node marked down`` (the node's UpdatedAt); ``ready`` again:
  ``node ready``.

:func:`health_events` reads each node's ``GET /events`` (``docker events``) for Docker's
``health_status: unhealthy``: ``health unhealthy`` at Docker's own time, which the task's
states do not show (a task stopped as unhealthy whose process exits 0 ends ``complete``).

Swarm shows no counterpart of the emulated ``published`` "<task> weight 0" or "<node> down"
(the moment every node's balancer has applied a change: Swarm's nodes learn it by gossip
and report nothing), so those marks, *convergence* in the experiments, are absent on real
Swarm.  A Swarm time that falls outside the interval between the read that saw the change
and the one before (± SLACK_S: a clock step, an UpdatedAt from a later change) is replaced
by the read's own time.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Iterable, Sequence

from swarmmesh.testbed.docker_plan import SwarmTask

LIVE = ("assigned", "accepted", "preparing", "ready", "starting", "running")
SLACK_S = 0.5                 # how far a Swarm time may lie outside its read's interval


@dataclass(frozen=True)
class TaskSeen:
    id: str
    name: str                 # <service>.<slot>, the model's task name
    node: str
    state: str
    desired: str
    error: str = ""
    timestamp: str = ""       # Status.Timestamp: when the task entered ``state``
    updated: str = ""         # UpdatedAt: the task object's last change


@dataclass(frozen=True)
class NodeSeen:
    name: str
    status: str               # ready | down | unknown
    updated: str = ""


@dataclass(frozen=True)
class Poll:
    t: float                  # when the read returned, seconds on the run's clock
    tasks: tuple[TaskSeen, ...]
    nodes: tuple[NodeSeen, ...]

    def to_dict(self) -> dict:
        return {"t": self.t, "tasks": [asdict(x) for x in self.tasks],
                "nodes": [asdict(x) for x in self.nodes]}

    @staticmethod
    def from_dict(d: dict) -> "Poll":
        return Poll(float(d["t"]), tuple(TaskSeen(**x) for x in d["tasks"]),
                    tuple(NodeSeen(**x) for x in d["nodes"]))


# -- reading -----------------------------------------------------------------------------
def parse_nodes(inspect_json: str) -> tuple[dict[str, str], tuple[NodeSeen, ...]]:
    """``docker node inspect NAME...``: node ID -> name, and each node's status."""
    ids, out = {}, []
    for n in json.loads(inspect_json or "[]"):
        name = n["Description"]["Hostname"]
        ids[n["ID"]] = name
        out.append(NodeSeen(name, (n.get("Status") or {}).get("State", ""),
                            n.get("UpdatedAt", "")))
    return ids, tuple(out)


def poll_of(t: float, tasks: Iterable[SwarmTask], node_inspect: str) -> Poll:
    """One read: the tasks (``docker_plan.parse_tasks``) and ``node inspect``'s JSON."""
    ids, nodes = parse_nodes(node_inspect)
    return Poll(round(t, 4), tuple(
        TaskSeen(x.id, f"{x.service}.{x.slot}", ids.get(x.node_id, x.node_id[:12]), x.state,
                 x.desired, x.error, x.timestamp, x.updated)
        for x in sorted(tasks, key=lambda x: (x.service, x.slot, x.id))), nodes)


_STAMP = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


def epoch(stamp: str) -> float | None:
    """An RFC 3339 time as Docker prints it (nanoseconds allowed), in seconds since the
    epoch; None for an empty or zero time."""
    m = _STAMP.match(stamp or "")
    if not m or stamp.startswith("0001-"):
        return None
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    base = datetime.fromisoformat(m.group(1) + zone).astimezone(timezone.utc)
    frac = float("0." + m.group(2)) if m.group(2) else 0.0
    return base.timestamp() + frac


def when(stamp: str, epoch0: float, lo: float, hi: float) -> float:
    """A Swarm time on the run's clock (``epoch0``: the wall-clock instant of its zero),
    kept when it lies in the read's interval ``lo``..``hi`` (± SLACK_S), else ``hi``."""
    e = epoch(stamp)
    t = None if e is None else e - epoch0
    return round(t, 4) if t is not None and lo - SLACK_S <= t <= hi + SLACK_S else hi


# -- the replay --------------------------------------------------------------------------
def events(polls: Sequence[Poll], epoch0: float) -> list[tuple[float, str, str]]:
    """(t, event, detail) for what changed from each poll to the next; the first poll is
    the baseline (what ran before is no event).  See the module doc for the mapping."""
    out: list[tuple[float, str, str]] = []
    if not polls:
        return out
    seen = {x.id: x for x in polls[0].tasks}
    nodes = {n.name: n for n in polls[0].nodes}
    for prev, p in zip(polls, polls[1:]):
        down = {n.name for n in p.nodes if n.status == "down"}
        for x in p.tasks:
            out += _task_events(seen.get(x.id), x, epoch0, prev.t, p.t, x.node in down)
        now = {x.id for x in p.tasks}
        out += [(p.t, "task removed", f"{x.name} on {x.node} (Swarm task {x.id[:12]} no "
                                      "longer in service ps)")
                for i, x in seen.items() if i not in now and x.state in LIVE]
        for n in p.nodes:
            was = nodes.get(n.name)
            if was is not None and was.status != n.status:
                out.append(_node_event(n, when(n.updated, epoch0, prev.t, p.t)))
        seen = {x.id: x for x in p.tasks}
        nodes = {n.name: n for n in p.nodes}
    return sorted(out, key=lambda e: e[0])


def _task_events(was: TaskSeen | None, x: TaskSeen, epoch0: float, lo: float, hi: float,
                 node_down: bool) -> list[tuple[float, str, str]]:
    out = []
    ref = f"Swarm task {x.id[:12]}"
    if was is None or was.state != x.state:
        at = when(x.timestamp, epoch0, lo, hi)
        named = _state_event(x, ref)
        if named:
            out.append((at, *named))
    if (was is not None and was.desired == "running" and x.desired != "running"
            and x.state in LIVE):
        at = when(x.updated, epoch0, lo, hi)
        if x.state == "running" and was.state == "running" and not node_down:
            out.append((at, "weight 0", f"{x.name}: desired {x.desired}: {x.node} takes it "
                                        f"out of the load balancer ({ref})"))
        else:       # a node that is down takes nothing out; a task not running is not in
            why = "its node is down" if node_down else "it never joined"
            out.append((at, "task to shut down", f"{x.name} on {x.node}: desired {x.desired} "
                                                 f"({ref}; {why})"))
    return out


def _state_event(x: TaskSeen, ref: str) -> tuple[str, str] | None:
    if x.state == "starting":
        return "task started", f"{x.name} on {x.node} ({ref}, starting)"
    if x.state == "running":
        return "published", f"{x.name} running: joins the load balancer ({ref} on {x.node})"
    if x.state in ("failed", "rejected"):
        name = "health unhealthy" if "unhealthy" in x.error else "task failed"
        return name, f"{x.name} on {x.node}: {x.error or x.state} ({ref})"
    if x.state in ("shutdown", "complete"):
        return "task removed", f"{x.name} on {x.node} ({ref} {x.state})"
    if x.state == "pending" and x.error:
        return "task pending", f"{x.name}: {x.error}"
    return None


def health_events(stream: str, node: str, epoch0: float) -> list[tuple[float, str, str]]:
    """``GET /events`` (one JSON object a line) filtered to ``health_status`` on ``node``:
    ``health unhealthy`` when Docker found a task's container unhealthy, at Docker's own
    time (``timeNano``); a container of no Swarm task is skipped."""
    out = []
    for line in stream.splitlines():
        if not line.strip():
            continue
        e = json.loads(line)
        attrs = (e.get("Actor") or {}).get("Attributes") or {}
        task = attrs.get("com.docker.swarm.task.name", "")
        if e.get("Action") != "health_status: unhealthy" or not task:
            continue
        name, _, tid = task.rpartition(".")
        t = round(int(e["timeNano"]) / 1e9 - epoch0, 4)
        out.append((t, "health unhealthy", f"{name} on {node}: Docker found its container "
                                           f"unhealthy (Swarm task {tid[:12]})"))
    return out


def _node_event(n: NodeSeen, at: float) -> tuple[float, str, str]:
    if n.status == "down":
        return at, "node marked down", f"{n.name}: Swarm reports it down"
    if n.status == "ready":
        return at, "node ready", f"{n.name}: Swarm reports it ready"
    return at, f"node {n.status}", n.name
