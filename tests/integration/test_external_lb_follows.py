"""The external HAProxy's direct pool follows the tasks (server-template + DNS discovery of
tasks.app from the external DNS), on real Mininet/OVS with a real HAProxy: a node goes
down, its task is removed and leaves the pool, its replacement joins it and answers
through it."""

from __future__ import annotations

import time
from collections import Counter

from swarmmesh.dataplane import extlb as lbplan
from swarmmesh.lifecycle.orchestrator import Orchestrator
from swarmmesh.model import Cluster
from swarmmesh.testbed import extlb
from swarmmesh.testbed.testbed import Testbed

from .conftest import http, ours_left

STACK = {"services": {"app": {"deploy": {"replicas": 2},
                              "ports": [{"target": 80, "published": 8000}]}}}


def _direct_answers(tb, lb, count: int) -> Counter:
    port = lb.pool("direct").port
    return Counter(a["body"]["task"] if a["ok"] else "FAILED"
                   for a in http(tb, "c1", lb.address, port, count=count, timeout=1.0))


def _up(lb) -> set[str]:
    return {s for (p, s), v in extlb.servers(lb).items() if p == "direct" and v["status"] == "UP"}


def test_a_replacement_task_joins_the_direct_pool_and_the_removed_one_leaves(tmp_path):
    cluster = Cluster.from_stack(STACK, nodes=3, implicit_network=False)
    with Testbed(cluster, tmp_path / "run") as tb, Orchestrator(tb, profile="fast") as orch:
        lb = extlb.build(tb, cluster, "app", checks=lbplan.Checks(0.2, 2, 2))
        assert "server-template slot 8 tasks.app.swarm.example:80" in lb.config
        first = {t.name for t in cluster.tasks_of("app")}
        extlb.wait_up(lb, {"direct": first})
        assert set(_direct_answers(tb, lb, 8)) == first
        victim = cluster.tasks_of("app")[0]
        orch.node_down(victim.node)
        orch.settle()
        now = {t.name for t in cluster.tasks_of("app")}
        (new,) = now - first
        assert victim.name not in now and new.startswith(f"{victim.name}.t")
        t0 = time.monotonic()
        try:
            st = extlb.wait_up(lb, {"direct": now}, timeout=15)
        except extlb.ExtLBError:
            print(extlb.admin(lb, "show servers state direct"), lb.zone, lb.addresses)
            raise
        joined = time.monotonic() - t0
        # the removed task holds no slot any more; the new one holds one, UP
        assert victim.name not in {s for (p, s) in st if p == "direct"}, st
        assert victim.name not in lb.addresses and len(lb.ever) == 3   # no address given twice
        assert st[("direct", new)]["slot"].startswith("slot")
        answers = _direct_answers(tb, lb, 8)
        assert set(answers) == now, answers
        assert set(lb.addresses) == now
        assert lb.zone["tasks.app.swarm.example"] == [lb.addresses[t] for t in sorted(now)]
        print(f"replacement UP in the direct pool {joined:.1f} s after the cluster settled")
    assert ours_left() == []
