"""The ingress path's cost against a host-mode port, on one running engine (root).

Scenario ``ingress_overhead``: the service ``edge`` (one task, the same image as the
service under test) publishes its port 80 twice, ``8001`` through the routing mesh
(ingress) and ``8002`` in host mode (the node that runs the task DNATs it straight to
the task: no sandbox, no IPVS, no overlay), which is what a user weighs when choosing
between the two.  From the external client, closed-loop new connections (one after
another, each a new TCP connection) in rounds alternating three paths to that one task:

* ``direct``: the host-mode port of the task's node;
* ``with``: the ingress port of the same node (the mesh, the task local);
* ``without``: the ingress port of a node without the task (the mesh and the overlay's
  VXLAN hop to the task's node).

Each engine's figures are ratios against its own ``direct`` path of the same run.
"""

from __future__ import annotations

import json

from swarmmesh.runs import conformance as conf
from swarmmesh.runs import conformance_ew as ew
from swarmmesh.runs import runfolder
from swarmmesh.runs.conformance_scenarios import Live

SCENARIO = "ingress_overhead"
EDGE, TARGET, MESH_PORT, HOST_PORT = "edge", 80, 8001, 8002
PATHS = {"with": "ingress {what} against host mode, entry node with the task",
         "without": "ingress {what} against host mode, entry node without the task"}


def extend_stack(spec: dict, chosen: tuple[str, ...]) -> dict:
    """The stack with ``edge`` (one replica, an ingress and a host-mode port to the same
    target) when the scenario is chosen; the others' cluster stays as it was."""
    if SCENARIO not in chosen:
        return spec
    edge = {"image": "swarmmesh/task", "deploy": {"replicas": 1},
            "ports": [{"target": TARGET, "published": MESH_PORT},
                      {"target": TARGET, "published": HOST_PORT, "mode": "host"}]}
    return {**spec, "services": {**spec["services"], EDGE: edge}}


def _requests(live: Live, address: str, port: int, count: int) -> list[dict]:
    """``count`` closed-loop new connections from the external client: each one's total
    time (ms, None where it failed) and the task that answered."""
    out = live.tb.run_in(live.client(), [
        "-m", "swarmmesh.agents.httpclient", address, str(port), "--count", str(count),
        "--timeout", "2"], timeout=count * 3 + 30)
    return [{"ms": r.get("total_ms") if r.get("ok") else None,
             "task": (r.get("body") or {}).get("task", "")}
            for r in map(json.loads, out.splitlines())]


def ingress_overhead(live: Live, rounds: int = 3, requests: int = 40) -> dict[str, conf.Figure]:
    [task] = live.cluster.tasks_of(EDGE)
    others = [n for n in live.up() if n != task.node]
    targets = {"direct": (task.node, HOST_PORT), "with": (task.node, MESH_PORT)}
    if others:
        targets["without"] = (others[0], MESH_PORT)
    for node, port in targets.values():                 # warm-up: ARP, first lookups
        _requests(live, live.address(node), port, 2)
    ms: dict[str, list] = {p: [] for p in targets}
    answered: dict[str, set] = {p: set() for p in targets}
    for path in ew.alternating(rounds, list(targets)):
        node, port = targets[path]
        got = _requests(live, live.address(node), port, requests)
        ms[path] += [r["ms"] for r in got]
        answered[path] |= {r["task"] for r in got if r["ms"] is not None}
    stats = {p: {**ew.path_stats(v), "tasks": sorted(answered[p])} for p, v in ms.items()}
    live.raw[SCENARIO] = {"task": task.name, "paths": {p: f"{n}:{port}" for p, (n, port)
                                                       in targets.items()}, **stats}
    runfolder.write_json(live.out / f"{SCENARIO}.json", {"task": task.name, "targets": {
        p: [n, port] for p, (n, port) in targets.items()}, "total_ms": ms, "stats": stats})
    figures = ew.against_direct(stats, "direct", {p: PATHS[p] for p in targets if p in PATHS},
                                against="host mode")
    if not others:
        why = "no other node up"
        figures.update({PATHS["without"].format(what=w): conf.Figure.not_run(why)
                        for w in ("latency", "new connections/s")})
    return figures


SCENARIOS = {SCENARIO: ingress_overhead}
