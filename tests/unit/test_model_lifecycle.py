"""Run-time changes of the model: placing and removing tasks (no root)."""

from __future__ import annotations

import pytest

from swarmmesh.dataplane import rules
from swarmmesh.model import Cluster, InvalidConfigError

STACK = {"networks": {"back": {}}, "services": {
    "app": {"deploy": {"replicas": 2}, "ports": ["8000:80"], "networks": ["back"]},
    "db": {"deploy": {"replicas": 1}, "networks": ["back"]}}}


def every_address(c: Cluster) -> list:
    out = [a for t in c.tasks for a in t.addresses.values()]
    out += [a for n in c.nodes for a in n.lb_ips.values()] + [n.ingress_ip for n in c.nodes]
    out += [v for s in c.services.values() for v in s.vips.values()]
    return out


def test_a_new_task_is_spread_and_gets_fresh_addresses():
    c = Cluster.from_stack(STACK, nodes=3)
    t = c.place_task("app")
    assert t.name == "app.3" and t.state == "starting" and t.host == "t4"
    assert t.node == "node3"                      # the node with no app task yet
    assert set(t.addresses) == {"ingress", "back"}
    addrs = every_address(c)
    assert len(addrs) == len(set(addrs))
    assert "back" in c.node("node3").lb_ips       # its first task there: an LB endpoint
    assert t.macs["back"].startswith("02:42:")


def test_drained_and_down_nodes_take_no_task():
    c = Cluster.from_stack(STACK, nodes=3)
    c.node("node3").availability = "drain"
    c.node("node2").status = "down"
    assert [n.name for n in c.schedulable_nodes("app")] == ["node1"]
    assert c.place_task("app").node == "node1"
    c.node("node1").availability = "drain"
    with pytest.raises(InvalidConfigError, match="no suitable node .3 nodes not available"):
        c.place_task("app")


def test_a_replacement_never_reuses_a_task_name():
    c = Cluster.quick(2, 2)
    gone = c.remove_task("app.1")
    again = c.place_task("app", slot=gone.slot, state="running")
    assert again.name == f"app.1.{again.host}" and again.slot == 1
    assert again.host not in {t.host for t in c.tasks if t is not again}


def test_only_running_tasks_on_live_nodes_are_balanced():
    c = Cluster.quick(3, 3)
    a, b, d = c.tasks_of("app")
    a.state = "starting"
    b.state = "draining"
    assert [t.name for t in rules.ingress_ports(c)[0][1]] == [d.name]
    c.node(d.node).status = "down"
    assert rules.ingress_ports(c)[0][1] == []


def test_lifecycle_fields_survive_serialisation():
    c = Cluster.from_stack(STACK, nodes=3)
    c.place_task("app", version=2)
    c.node("node2").availability = "drain"
    again = Cluster.from_dict(c.to_dict())
    assert again.to_dict() == c.to_dict()
    assert again.task("app.3").version == 2 and again.task("app.3").state == "starting"


def test_bad_state_and_unknown_task_are_named():
    c = Cluster.quick(2, 2)
    with pytest.raises(InvalidConfigError, match="^state: "):
        c.place_task("app", state="sleeping")
    with pytest.raises(InvalidConfigError, match="^tasks.nope: unknown task"):
        c.task("nope")


def test_host_numbers_are_never_reused_even_after_the_highest_task_left():
    c = Cluster.quick(2, 2)
    top = max(c.tasks, key=lambda t: int(t.host[1:]))
    c.remove_task(top.name)
    again = c.place_task("app", slot=top.slot)
    assert again.host != top.host and again.name != top.name
    assert int(again.host[1:]) > int(top.host[1:])
