"""East-west in the node's kernel, on a real network: a VIP's new connections are picked
and NATed by the client's node (nftables on its ``lb-n<j>`` leg), exactly per node under
concurrency, with every scheduler and ClientIP affinity; the pick follows the tasks as
they come and go; the bridge keeps no conntrack for it.

3 nodes, network ``front``; one client per node, and one 3-task service per option."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from swarmmesh.model import Cluster
from swarmmesh.testbed import lc

from .conftest import wait_all_running

OPTIONS = {"web": {}, "wrr": {"scheduler": "wrr", "weights": {1: 2, 2: 1, 3: 1}},
           "sh": {"scheduler": "sh"}, "maglev": {"scheduler": "maglev"},
           "aff": {"affinity": "1h"}, "lcs": {"scheduler": "lc"}}
STACK = {"version": "3.8", "networks": {"front": {}}, "services": {
    **{name: {"deploy": {"replicas": 3}, "networks": ["front"],
              **({"x-swarmmesh": opts} if opts else {})} for name, opts in OPTIONS.items()},
    "client": {"deploy": {"replicas": 3, "placement": {"max_replicas_per_node": 1}},
               "networks": ["front"]}}}

# 120 connections started at once from one task: threads wait at a barrier, then each
# opens its own connection to the VIP and asks who answered.
BURST = r"""
import http.client, json, sys, threading
host, n = sys.argv[1], int(sys.argv[2])
gate, out, lock = threading.Barrier(n), [], threading.Lock()
def one():
    gate.wait()
    c = http.client.HTTPConnection(host, 80, timeout=10)
    try:
        c.request("GET", "/"); body = json.loads(c.getresponse().read())
        got = (body["task"], body["client"])
    except Exception as e:
        got = ("FAILED " + type(e).__name__, "")
    with lock:
        out.append(got)
ts = [threading.Thread(target=one) for _ in range(n)]
[t.start() for t in ts]; [t.join() for t in ts]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def tb(testbed_factory):
    return testbed_factory(Cluster.from_stack(STACK, nodes=3))


def clients(tb) -> list:
    return tb.cluster.tasks_of("client")


def vip(tb, service: str) -> str:
    """The service's VIP (on its one network)."""
    [address] = tb.cluster.service(service).vips.values()
    return str(address)


def sequential(tb, client, service: str, count: int) -> list[str]:
    out = tb.run_in(client.host, ["-m", "swarmmesh.agents.nameclient", service, "80",
                                  "--count", str(count)], timeout=count * 3 + 20)
    recs = [json.loads(line) for line in out.splitlines()]
    assert all(r["ok"] for r in recs), recs
    assert {r["used"] for r in recs} == {vip(tb, service)}
    return [r["body"]["task"] for r in recs]


def burst(tb, client, service: str, n: int) -> list[tuple[str, str]]:
    out = tb.run_in(client.host, ["-c", BURST, vip(tb, service), str(n)], timeout=60)
    return [tuple(x) for x in json.loads(out.splitlines()[-1])]


def test_120_connections_at_once_split_exactly_per_node(tb):
    web = {t.name for t in tb.cluster.tasks_of("web")}
    for client in clients(tb):
        got = burst(tb, client, "web", 120)
        assert Counter(task for task, _ in got) == {name: 40 for name in web}, client.node
        lb = str(tb.cluster.node(client.node).lb_ips["front"])
        assert {seen for _, seen in got} == {lb}               # SNAT to the node's LB
    # the pick and the NAT are the kernel's: no bridge flow tracks or learns anything
    # (on the kernel datapath dpctl/dump-conntrack is the node's own conntrack: not a test)
    for node in tb.cluster.nodes:
        flows = tb.host(node.name).ofctl("dump-flows")
        assert "ct(" not in flows and "learn(" not in flows, node.name


def test_wrr_splits_by_weight(tb):
    web = tb.cluster.tasks_of("wrr")
    for client in clients(tb):
        got = Counter(sequential(tb, client, "wrr", 40))
        assert got == {web[0].name: 20, web[1].name: 10, web[2].name: 10}, client.node


@pytest.mark.parametrize("service", ["sh", "maglev", "aff"])
def test_a_client_stays_on_one_task(tb, service):
    every = set()
    for client in clients(tb):
        got = set(sequential(tb, client, service, 6))
        assert len(got) == 1, (client.node, got)
        every |= got
    assert every <= {t.name for t in tb.cluster.tasks_of(service)}


def test_lc_weights_come_from_the_vips_live_connections(tb):
    sequential(tb, clients(tb)[0], "lcs", 3)
    with lc.LeastConnections(tb, interval=0.2) as loop:
        loop.once()
    node = tb.host(clients(tb)[0].node)
    assert node.lc_weights is not None
    assert {t.name for t in tb.cluster.tasks_of("lcs")} <= set(node.lc_weights)
    assert Counter(sequential(tb, clients(tb)[0], "lcs", 6)).keys() <= {
        t.name for t in tb.cluster.tasks_of("lcs")}


def test_a_vip_is_not_reachable_from_another_network_or_the_node(tb):
    node = tb.host("node1")
    out = node.cmd(f"timeout 3 python3 -c \"import socket; socket.create_connection("
                   f"('{vip(tb, 'web')}', 80), timeout=1)\" 2>&1; echo rc=$?")
    assert "rc=0" not in out, out                  # the node itself reaches no VIP


def test_the_nodes_pick_follows_tasks_that_join_and_leave(living):
    t, orch = living(Cluster.from_stack({"networks": {"back": {}}, "services": {
        "db": {"deploy": {"replicas": 2}, "networks": ["back"]},
        "client": {"networks": ["back"]}}}, nodes=3))
    wait_all_running(t, orch)
    client = t.cluster.tasks_of("client")[0]
    node = t.host(client.node)

    def split(n: int) -> Counter:
        got = burst(t, client, "db", n)
        return Counter(task for task, _ in got)

    def in_map() -> set[str]:
        text = node.cmd("nft list table ip swarmmesh")
        return {str(x.addresses["back"]) for x in t.cluster.tasks_of("db")
                if str(x.addresses["back"]) in text}

    assert split(40) == {x.name: 20 for x in t.cluster.tasks_of("db")}
    orch.scale("db", 4)
    orch.settle()
    wait_all_running(t, orch)
    assert len(in_map()) == 4
    assert split(40) == {x.name: 10 for x in t.cluster.tasks_of("db")}
    orch.scale("db", 1)
    orch.settle()
    wait_all_running(t, orch)
    [last] = t.cluster.tasks_of("db")
    assert in_map() == {str(last.addresses["back"])}
    assert split(12) == {last.name: 12}
    assert vip(t, "db") in node.cmd("nft list table ip swarmmesh")
