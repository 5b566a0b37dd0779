"""Every scheduler and option as the node's kernel runs it, from its nftables text alone
(FakeKernel): the spread, that sh, Maglev and affinity keep one client on one task on
every node, the share of clients that change task when one of N tasks leaves (rr and
sh most of them, Maglev about 1/N), local traffic to local tasks only, and Swarm's rr
unchanged when no option is set."""

from __future__ import annotations

from collections import Counter

import pytest

from swarmmesh.dataplane import kernel, layout
from swarmmesh.model import Cluster
from tests.doubles.fakeswitch import FakeKernel

CLIENTS = [f"198.18.{i // 250}.{i % 250 + 1}" for i in range(3000)]


def cluster(options: dict | None = None, replicas: int = 5, nodes: int = 3) -> Cluster:
    svc = {"deploy": {"replicas": replicas}, "ports": ["8000:80"]}
    if options is not None:
        svc["x-swarmmesh"] = options
    return Cluster.from_stack({"version": "3.8", "services": {"web": svc}}, nodes=nodes,
                              implicit_network=False)


def picks(c: Cluster, node: str, clients=CLIENTS, fk: FakeKernel | None = None) -> list[str]:
    """The task each client's new connection to ``node`` gets (one connection each)."""
    fk = fk or FakeKernel(kernel.table(c, node))
    by_addr = {str(t.addresses["ingress"]): t.name for t in c.tasks}
    by_addr.update({str(layout.task_gw_ip(t)): t.name for t in c.tasks})
    addr = str(c.node(node).underlay_ip)
    out = []
    for i, client in enumerate(clients):
        conn = fk.nat("tcp", client, 40000 + i % 20000, addr, 8000)
        out.append(by_addr[conn.dst[0]] if conn else "")
    return out


def test_no_option_is_swarms_rr_text_unchanged():
    plain, explicit = cluster(), cluster({"scheduler": "rr"})
    for n in plain.nodes:
        assert kernel.table(plain, n.name) == kernel.table(explicit, n.name)
        assert "numgen inc mod 5 map" in kernel.table(plain, n.name)
        assert "jhash" not in kernel.table(plain, n.name)


def test_wrr_splits_by_the_weights():
    c = cluster({"scheduler": "wrr", "weights": {1: 3, 2: 1, 3: 0, 4: 1, 5: 1}})
    got = Counter(picks(c, "node1", CLIENTS[:600]))
    assert got == {"web.1": 300, "web.2": 100, "web.4": 100, "web.5": 100}


@pytest.mark.parametrize("scheduler", ["sh", "maglev"])
def test_hashing_keeps_a_client_on_one_task_on_every_node(scheduler):
    c = cluster({"scheduler": scheduler})
    seen = [picks(c, n.name, CLIENTS[:500]) for n in c.nodes]
    assert seen[0] == seen[1] == seen[2]                      # the same task via any node
    again = picks(c, "node1", CLIENTS[:500])
    assert again == seen[0]                                    # and on a new connection
    counts = Counter(seen[0])
    assert len(counts) == 5 and max(counts.values()) / (500 / 5) < 1.4, counts


def _leave(c: Cluster, name: str) -> Cluster:
    d = c.to_dict()
    d["tasks"] = [t for t in d["tasks"] if t["name"] != name]
    return Cluster.from_dict(d)


@pytest.mark.parametrize("scheduler, low, high", [
    ("maglev", 0.15, 1.5 / 5), ("sh", 0.6, 1.0), ("rr", 0.6, 1.0)])
def test_remap_share_when_one_of_five_tasks_leaves(scheduler, low, high):
    c = cluster({"scheduler": scheduler})
    before = picks(c, "node1")
    after = picks(_leave(c, "web.3"), "node1")
    moved = sum(1 for a, b in zip(before, after) if a != b) / len(CLIENTS)
    assert low <= moved <= high, (scheduler, moved)
    assert "web.3" not in after


def test_affinity_sticks_a_client_to_its_task_through_a_reload():
    c = cluster({"affinity": "1h"})
    fk = FakeKernel(kernel.table(c, "node1"))
    first = picks(c, "node1", CLIENTS[:10], fk)
    assert first == [f"web.{i % 5 + 1}" for i in range(10)]  # new clients: rr
    assert picks(c, "node1", CLIENTS[:10], fk) == first       # back to their tasks
    fk.load(kernel.table(_leave(c, "web.5"), "node1"))       # a reload keeps the sets
    again = picks(c, "node1", CLIENTS[:10], fk)
    assert [a for a, b in zip(again, first) if b != "web.5"] == \
        [b for b in first if b != "web.5"]
    assert "timeout 3600s" in kernel.table(c, "node1")


def test_local_policy_goes_to_local_tasks_only_without_snat_and_empty_nodes_refuse():
    c = cluster({"traffic_policy": "local"}, replicas=2, nodes=3)
    on = {t.node for t in c.tasks}
    for n in c.nodes:
        text = kernel.table(c, n.name)
        if n.name in on:
            got = set(picks(c, n.name, CLIENTS[:6]))
            assert got == {t.name for t in c.tasks if t.node == n.name}
            assert all(layout.has_gw_leg(t, c) for t in c.tasks)
            assert str(layout.task_gw_ip(c.tasks_on(n.name)[0])) in text
        else:
            assert "dport 8000" not in text.split("chain prerouting")[0]   # nothing: RST
            assert picks(c, n.name, CLIENTS[:1]) == [""]


def test_lc_weights_come_from_the_nodes_live_connections():
    c = cluster({"scheduler": "lc"}, replicas=3)
    text = kernel.table(c, "node1", lc={"web.1": 10, "web.2": 1, "web.3": 1})
    got = Counter(picks(c, "node1", CLIENTS[:120], FakeKernel(text)))
    assert got["web.1"] == 10 * got["web.2"] == 10 * got["web.3"]


def test_lc_loop_counts_established_connections_by_the_reply_source():
    from swarmmesh.testbed import lc
    text = ("tcp      6 431999 ESTABLISHED src=192.168.99.201 dst=192.168.99.1 sport=40000 "
            "dport=8000 src=10.0.0.6 dst=10.0.0.2 sport=80 dport=40000 [ASSURED] use=1\n"
            "tcp      6 431999 ESTABLISHED src=192.168.99.201 dst=192.168.99.1 sport=40001 "
            "dport=8000 src=10.0.0.6 dst=10.0.0.2 sport=80 dport=40001 [ASSURED] use=1\n"
            "tcp      6 118 TIME_WAIT src=192.168.99.201 dst=192.168.99.1 sport=40002 "
            "dport=8000 src=10.0.0.7 dst=10.0.0.2 sport=80 dport=40002 [ASSURED] use=1\n")
    counts = lc.parse_counts(text, {"10.0.0.6": "web.1", "10.0.0.7": "web.2"})
    assert counts == {"web.1": 2, "web.2": 0}
    c = cluster({"scheduler": "lc"}, replicas=2)
    w = lc.weights(c, counts)
    assert w["web.2"] > w["web.1"] >= 1
    assert lc.lc_services(c) == ["web"] and lc.lc_services(cluster()) == []


def test_the_experiments_pure_parts():
    from swarmmesh_experiments import schedulers as exp
    assert exp.moved({"a": "t1", "b": "t2"}, {"a": "t1", "b": "t3", "c": "t1"}) == 0.5
    spread = [{"option": "rr", "pass": p, "src_ip": s, "task": t, "ok": "True"}
              for p, rows in (("before", [("a", "t1"), ("b", "t2")]),
                              ("after leave", [("a", "t1"), ("b", "t1")]),
                              ("after join", [("a", "t2"), ("b", "t1")]))
              for s, t in rows]
    f = exp.facts("rr", spread, [], 2)
    assert f["moved_leave"] == 0.5 and f["moved_join"] == 0.5 and f["jain"] == 1.0
    args = type("A", (), {"options": "rr,nope", "replicas": 3, "sources": 100,
                          "requests": 1, "nodes": 2, "rate": 10.0})()
    with pytest.raises(Exception) as e:
        exp.validate(args)
    assert getattr(e.value, "field", "") == "options"
    args.options = "maglev,local"
    chosen, clusters = exp.validate(args)
    assert chosen == ["maglev", "local"]
    assert clusters["local"].service("web").balancing.traffic_policy == "local"
