"""Flow-table sync: only the difference is sent (no switch, no root)."""

from __future__ import annotations

from swarmmesh.dataplane import rules, sync
from swarmmesh.dataplane.flows import COOKIE, COOKIE_MASK
from swarmmesh.model import Cluster


def installed(flows, cookie=None):
    return [sync.Installed(f.table, f.priority, f.match,
                           cookie if cookie is not None else sync.flow_cookie(f)) for f in flows]


def test_cookies_are_distinct_stable_and_tagged():
    c = Cluster.quick(4, 3)
    flows = rules.node_flows(c, "node1")
    cookies = [sync.flow_cookie(f) for f in flows]
    assert len(set(cookies)) == len(flows)
    assert all(k & COOKIE_MASK == COOKIE for k in cookies)
    assert cookies == [sync.flow_cookie(f) for f in rules.node_flows(Cluster.quick(4, 3), "node1")]


def test_empty_switch_gets_everything():
    flows = rules.node_flows(Cluster.quick(3, 2), "node2")
    plan = sync.plan_sync(flows, [])
    assert plan.add == flows and plan.delete == []


def test_a_switch_in_sync_is_left_alone():
    flows = rules.node_flows(Cluster.quick(3, 2), "node2")
    assert sync.plan_sync(flows, installed(flows)).empty


def test_flows_that_are_not_ours_are_left_alone():
    flows = rules.node_flows(Cluster.quick(3, 2), "node1")
    foreign = sync.Installed(0, 1, (("in_port", 7),), 0xABC)
    assert sync.plan_sync(flows, installed(flows) + [foreign]).empty


def test_stale_and_changed_flows():
    old = rules.node_flows(Cluster.quick(3, 3), "node1")
    new = rules.node_flows(Cluster.quick(3, 2), "node1")
    plan = sync.plan_sync(new, installed(old))
    new_keys = {sync.flow_key(f) for f in new}
    old_keys = {sync.flow_key(f) for f in old}
    assert {i.key for i in plan.delete} == old_keys - new_keys
    assert all(sync.flow_key(f) in new_keys for f in plan.add)
    # what is added is exactly the flows whose content differs or is new
    old_cookies = {sync.flow_cookie(f) for f in old}
    assert {sync.flow_cookie(f) for f in plan.add} == {sync.flow_cookie(f) for f in new} - old_cookies
    assert len(plan.add) < len(new)


def test_scaling_a_vip_service_changes_only_the_flows_of_the_new_task():
    c = Cluster.from_stack({"networks": {"front": {}}, "services": {
        "web": {"deploy": {"replicas": 2}, "networks": ["front"]}}}, nodes=3)
    old = rules.node_flows(c, "node1")
    t = c.place_task("web", state="running")
    new = rules.node_flows(c, "node1")
    plan = sync.plan_update(old, new)
    assert plan.add and not plan.delete                # the pick is the kernel's
    new_addresses = {str(t.addresses["front"]), str(c.node(t.node).lb_ips["front"])}
    assert all({f.match_dict.get("ipv4_dst"), f.match_dict.get("arp_tpa")} & new_addresses
               for f in plan.add)
