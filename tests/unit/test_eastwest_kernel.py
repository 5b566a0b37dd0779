"""East-west in the node's kernel: the VIPs' nftables rules (pure text), the node's legs to
its kernel, and the split they give on the fake cluster."""

from __future__ import annotations

from collections import Counter

import pytest

from swarmmesh.dataplane import eastwest, kernel, layout, nodeplan, picks
from swarmmesh.dataplane.mtu import SWARM
from swarmmesh.model import Cluster
from tests.doubles.fakeswitch import FakeCluster

VIP_STACK = {"networks": {"front": {}, "back": {}}, "services": {
    "web": {"deploy": {"replicas": 3}, "networks": ["front"]},
    "db": {"deploy": {"replicas": 2}, "networks": ["back"]},
    "client": {"deploy": {"replicas": 3}, "networks": ["front", "back"]}}}


def cluster(**web) -> Cluster:
    stack = {**VIP_STACK, "services": dict(VIP_STACK["services"])}
    if web:
        stack["services"]["web"] = {**stack["services"]["web"], "x-swarmmesh": web}
    return Cluster.from_stack(stack, nodes=3)


def web_rule(c: Cluster) -> str:
    _sets, rules_, _chains = eastwest.vip_rules(c)
    head = eastwest.vip_head(c.networks["front"], c.service("web").vips["front"])
    [rule] = [r for r in rules_ if r.startswith(head) and "@" not in r]
    return rule


def addrs(c: Cluster, service: str, net: str = "front") -> list[str]:
    return [str(t.addresses[net]) for t in c.tasks_of(service)]


def test_rr_dnats_each_vip_on_its_own_leg_by_the_kernels_counter():
    c = cluster()
    a, b, d = addrs(c, "web")
    vip = c.service("web").vips["front"]
    assert web_rule(c) == (f'iifname "lb-n1" ip daddr {vip} dnat to numgen inc mod 3 '
                           f"map {{ 0 : {a}, 1 : {b}, 2 : {d} }}")
    _s, rules_, _c = eastwest.vip_rules(c)
    db_vip = c.service("db").vips["back"]
    assert any(r.startswith(f'iifname "lb-n2" ip daddr {db_vip} dnat to numgen inc mod 2')
               for r in rules_)


def test_the_port_is_kept_and_every_node_has_the_same_pick():
    c = cluster()
    texts = {n.name: kernel.table(c, n.name) for n in c.nodes}
    for text in texts.values():
        assert web_rule(c) in text and " : 80" not in web_rule(c)


@pytest.mark.parametrize("scheduler,expr", [
    ("sh", "jhash ip saddr mod 3 seed 0x5eed"),
    ("maglev", f"jhash ip saddr mod {picks.maglev_stable_size(3)} seed 0x5eed")])
def test_hashing_schedulers_hash_the_client_address(scheduler, expr):
    assert f"dnat to {expr} map" in web_rule(cluster(scheduler=scheduler))


def test_wrr_repeats_a_task_by_its_weight():
    c = cluster(scheduler="wrr", weights={1: 3, 2: 1, 3: 0})
    a, b, _d = addrs(c, "web")
    assert f"numgen inc mod 4 map {{ 0 : {a}, 1 : {a}, 2 : {a}, 3 : {b} }}" in web_rule(c)


def test_lc_takes_the_weights_the_live_connections_give():
    c = cluster(scheduler="lc")
    names = [t.name for t in c.tasks_of("web")]
    _s, rules_, _c = eastwest.vip_rules(c, lc={names[0]: 2, names[1]: 1, names[2]: 1})
    a, b, d = addrs(c, "web")
    assert any(f"numgen inc mod 4 map {{ 0 : {a}, 1 : {a}, 2 : {b}, 3 : {d} }}" in r
               for r in rules_)


def test_affinity_remembers_the_client_per_task_in_sets_of_its_own():
    c = cluster(affinity="60s")
    sets, rules_, chains = eastwest.vip_rules(c)
    web = c.tasks_of("web")
    names = [f"vaff0_t{layout.task_number(t)}" for t in web]
    assert sets == [f" set {n} {{ type ipv4_addr; flags dynamic,timeout; timeout 60s; }}"
                    for n in names]
    head = eastwest.vip_head(c.networks["front"], c.service("web").vips["front"])
    assert rules_[:3] == [f"{head} ip saddr @{n} update @{n} {{ ip saddr }} dnat to "
                          f"{t.addresses['front']}" for n, t in zip(names, web)]
    assert rules_[3] == (f"{head} numgen inc mod 3 vmap {{ "
                         + ", ".join(f"{k} : jump {n}" for k, n in enumerate(names)) + " }")
    assert chains[names[0]] == [f"update @{names[0]} {{ ip saddr }}",
                                f"{head} dnat to {web[0].addresses['front']}"]
    assert kernel.table(c, "node1").count(" set vaff0_t") == 3


def test_a_task_leaving_the_balancer_leaves_the_map_and_none_left_drops():
    c = cluster()
    web = c.tasks_of("web")
    web[1].state = "draining"
    assert str(web[1].addresses["front"]) not in web_rule(c)
    assert "numgen inc mod 2" in web_rule(c)
    for t in web:
        t.state = "draining"
    assert web_rule(c).endswith(" drop")
    t = c.place_task("web", "node2", state="running")          # a task joins
    assert web_rule(c).endswith(f"map {{ 0 : {t.addresses['front']} }}")


def test_snat_to_the_nodes_lb_address_and_the_legs_are_fenced():
    c = cluster()
    for n in c.nodes:
        text = kernel.table(c, n.name)
        for net in layout.user_networks(c):
            leg = layout.lb_intf(net)
            assert f'oifname "{leg}" snat to {n.lb_ips[net.name]}' in text
            assert f'iifname "{leg}" oifname "{leg}" ct status dnat accept' in text
            assert f'iifname "{leg}" drop' in text and f'oifname "{leg}" drop' in text
        assert 'iifname { "lb-n1", "lb-n2" } drop' in text


def test_no_user_network_no_east_west_text():
    text = kernel.table(Cluster.quick(3, 2), "node1")
    assert "lb-n" not in text and "ew_" not in text


def test_each_network_gets_a_leg_to_the_kernel_with_its_subnet_routed():
    c = cluster()
    plan = nodeplan.node_plan(c, "node1", SWARM)
    for net in layout.user_networks(c):
        k, b = layout.lb_intf(net), layout.lb_br_intf(net)
        assert f"ip link add {k} type veth peer name {b}" in plan.kernel
        assert f"ip link set {k} address {layout.lb_leg_mac(net)}" in plan.kernel
        assert f"ip route add {net.subnet} dev {k}" in plan.kernel
        assert nodeplan.port_arg(b, layout.lb_port(net)) in plan.bridge
        assert len(b) <= 15
    assert layout.lb_port(c.networks["back"]) < 0xFF00


def vip_of(c: Cluster, service: str = "web") -> str:
    return str(c.service(service).vips["front"])


def first(fc: FakeCluster, client, service: str, sport: int):
    [a] = fc.send(client, fc.from_task(client, "front", vip_of(fc.cluster, service), 80,
                                       sport=sport))
    return a


def test_sh_sends_a_client_to_one_task_whatever_its_port():
    c = cluster(scheduler="sh")
    fc = FakeCluster(c)
    tab = [t.name for t in kernel.pick_table(c.service("web").balancing, c.tasks_of("web"))]
    for client in c.tasks_of("client"):
        got = {first(fc, client, "web", 41000 + i).task.name for i in range(9)}
        assert got == {picks.owner(tab, str(client.addresses["front"]))}


def test_wrr_splits_by_weight_per_node():
    c = cluster(scheduler="wrr", weights={1: 2, 2: 1, 3: 1})
    fc = FakeCluster(c)
    web = c.tasks_of("web")
    for client in c.tasks_of("client"):
        got = Counter(first(fc, client, "web", 42000 + i).task.name for i in range(40))
        assert got == {web[0].name: 20, web[1].name: 10, web[2].name: 10}, client.node


def test_a_removed_task_is_forgotten_and_its_flows_pick_again():
    c = cluster()
    fc = FakeCluster(c)
    client = c.tasks_of("client")[0]
    a = first(fc, client, "web", 43000)
    assert first(fc, client, "web", 43000).task == a.task        # its conntrack entry
    c.remove_task(a.task.name)
    fc.apply(c)
    fc.flush(a.task)
    again = first(fc, client, "web", 43000)
    assert again.task != a.task and again.task in c.tasks_of("web")
