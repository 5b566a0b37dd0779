"""Every flow each node gets, for the clusters the tests use, against a recorded copy.

The rules are pure functions of the model; this pins their whole output (flows,
the overlay FDB and the node's nftables table, in order) so that a change that was meant to move code and not to
change behaviour cannot change a flow unnoticed.  A change that *means* to change
the rules regenerates the files and shows the difference in review:

    SWARMMESH_REGEN_FLOWS=1 python -m pytest tests/unit/test_flows_golden.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from swarmmesh.dataplane import kernel, rules
from swarmmesh.model import Cluster
from tests.stacks import EASTWEST

GOLDEN = Path(__file__).parent / "fixtures" / "flows"


def _lifecycle() -> Cluster:
    """Tasks in every state the balancer distinguishes: starting, leaving, a down node."""
    c = Cluster.quick(3, 3)
    c.place_task("app", "node2")                       # starting: not in the balancer yet
    c.tasks_of("app")[0].state = "draining"            # leaving: weight 0
    c.node("node3").status = "down"
    return c


CLUSTERS = {
    "quick-3x2": lambda: Cluster.quick(3, 2),
    "quick-4x3": lambda: Cluster.quick(4, 3),
    "quick-1x1": lambda: Cluster.quick(1, 1),
    "eastwest": lambda: Cluster.from_stack(EASTWEST, nodes=3),
    "udp-and-tcp": lambda: Cluster.from_stack({"services": {
        "dns": {"deploy": {"replicas": 2}, "ports": ["53:53/udp", "8053:53/tcp"]},
        "web": {"deploy": {"replicas": 3}, "ports": ["8080:80"]}}}, nodes=3),
    "lifecycle": _lifecycle,
}


def render(cluster: Cluster) -> str:
    out = []
    for node in cluster.nodes:
        out.append(f"## {node.name}")
        out += [repr(f) for f in rules.node_flows(cluster, node.name)]
        out.append(f"## {node.name} overlay fdb")
        out += [repr(e) for e in rules.overlay_fdb(cluster, node.name)]
        out.append(f"## {node.name} kernel")
        out.append(kernel.table(cluster, node.name).rstrip("\n"))
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("name", sorted(CLUSTERS))
def test_flows_are_unchanged(name):
    text = render(CLUSTERS[name]())
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("SWARMMESH_REGEN_FLOWS"):
        path.write_text(text)
    assert path.exists(), f"{path} is missing: SWARMMESH_REGEN_FLOWS=1 writes it"
    assert text == path.read_text(), f"the flows of {name} changed (see the module docstring)"
