"""mesh_overhead / keepalive / l4lb without root: bad input names its field
before anything is built; the nftables ruleset and the address choices."""

from __future__ import annotations


import pytest

from swarmmesh_experiments import keepalive, mesh_overhead
from swarmmesh.runs import experiment
from swarmmesh.testbed import l4lb
from swarmmesh.model import Cluster, InvalidConfigError


def _args(module, *argv):
    return experiment.build_parser(module).parse_args(list(argv))


@pytest.mark.parametrize("argv, field", [
    (["--replicas", "3", "--nodes", "3"], "replicas"),       # no node without a task
    (["--nodes", "1"], "nodes"),
    (["--requests", "5"], "requests"),
    (["--rate", "0"], "rate"),
    (["--ab-requests", "5"], "ab-requests"),
    (["--concurrency", "600"], "concurrency"),
    (["--timeout", "0"], "timeout"),
])
def test_mesh_overhead_bad_input(argv, field):
    with pytest.raises(InvalidConfigError) as e:
        mesh_overhead.validate(_args(mesh_overhead, *argv))
    assert e.value.field == field


def test_mesh_overhead_plan_names_a_busy_and_an_empty_node():
    plan = mesh_overhead.validate(_args(mesh_overhead, "--nodes", "4", "--replicas", "2"))
    c = plan["cluster"]
    assert c.tasks_on(plan["task_node"]) and not c.tasks_on(plan["empty_node"])


@pytest.mark.parametrize("argv, field", [
    (["--replicas", "1"], "replicas"),
    (["--node", "node9"], "node"),
    (["--wrk-seconds", "-1"], "wrk-seconds"),
    (["--rate", "5000"], "rate"),
])
def test_keepalive_bad_input(argv, field):
    with pytest.raises(InvalidConfigError) as e:
        keepalive.validate(_args(keepalive, *argv))
    assert e.value.field == field


def test_keepalive_summary_detects_pinning_and_uneven_split():
    tasks = ["app.1", "app.2"]
    rows = [{"mode": "keepalive", "ok": "True", "task": "app.2", "local_port": "5"}] * 4 + \
           [{"mode": "new_connection", "ok": "True", "task": t, "local_port": str(i)}
            for i, t in enumerate(["app.1", "app.1", "app.1", "app.2"])]
    s = keepalive.summarise(rows, tasks)
    assert s["keepalive_pinned"] and s["connections"]["keepalive"] == 1
    assert s["counts"]["new_connection"] == {"app.1": 3, "app.2": 1}
    assert not s["new_connection_even"] and s["new_connection_max_minus_min"] == 2


def test_nft_ruleset_round_robin_dnat_and_masquerade_only_for_dnat():
    text = l4lb.nft_ruleset("192.168.99.254", 8000, 80, ["10.255.0.5", "10.255.0.6"])
    assert ("ip daddr 192.168.99.254 tcp dport 8000 dnat to numgen inc mod 2 map "
            "{ 0 : 10.255.0.5, 1 : 10.255.0.6 } : 80") in text
    assert 'ct status dnat oifname "be0" masquerade' in text
    with pytest.raises(ValueError):
        l4lb.nft_ruleset("192.168.99.254", 8000, 80, [])


def test_lb_addresses_avoid_the_cluster():
    c = Cluster.quick(nodes=3, replicas=2)
    assert l4lb.free_underlay_ip(c) == "192.168.99.254"
    net = l4lb.backend_network(c)
    assert not any(net.overlaps(n.subnet) for n in c.networks.values())
