"""The nodes' kernel rules (nftables text) and the docker_gwbridge legs of host-mode tasks."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from swarmmesh.dataplane import kernel, layout
from swarmmesh.model import Cluster

# The ingress-only table of node3 (3 nodes, 2 replicas of app, 8000 -> 80/tcp): the
# kernel's round-robin pick, shared by prerouting and output, and the SNAT to node3's
# ingress address.
INGRESS_ONLY = """\
table ip swarmmesh {
 chain mesh {
  tcp dport 8000 dnat to numgen inc mod 2 map { 0 : 10.0.0.6, 1 : 10.0.0.7 } : 80
 }
 chain prerouting { type nat hook prerouting priority -100; policy accept;
  fib daddr type local jump mesh
 }
 chain output { type nat hook output priority -100; policy accept;
  fib daddr type local jump mesh
 }
 chain postrouting { type nat hook postrouting priority 100; policy accept;
  oifname "gwbr" ip daddr 10.0.0.0/24 snat to 10.0.0.4
  oifname "gwbr" ip saddr 127.0.0.0/8 masquerade
 }
}
"""
JUMP = "fib daddr type local jump mesh"


def not_vips(rules: list[str]) -> list[str]:
    """A chain's rules but the VIPs' (the stack's default network has them: eastwest)."""
    return [r for r in rules if '"lb-n' not in r]


def mixed(replicas: int = 2, nodes: int = 3) -> Cluster:
    """`web`: host-mode 8080/tcp -> 80 and 5353/udp -> 53; `app`: ingress 8000 -> 80."""
    return Cluster.from_stack({"services": {
        "web": {"deploy": {"replicas": replicas},
                "ports": [{"target": 80, "published": 8080, "mode": "host"},
                          {"target": 53, "published": 5353, "protocol": "udp", "mode": "host"}]},
        "app": {"deploy": {"replicas": 1},
                "ports": [{"target": 80, "published": 8000}]},
    }}, nodes=nodes)


def chain(text: str, name: str) -> list[str]:
    """The rule lines of one chain of a table's text."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f" chain {name} "))
    end = lines.index(" }", start)
    return [line.strip() for line in lines[start + 1:end]]


def test_ingress_only_cluster_table():
    cluster = Cluster.quick(nodes=3, replicas=2)
    assert kernel.table(cluster, "node3") == INGRESS_ONLY
    for node in cluster.nodes:                  # every node: the same pick, its own SNAT
        assert kernel.table(cluster, node.name) == INGRESS_ONLY.replace(
            "snat to 10.0.0.4", f"snat to {node.ingress_ip}")


def test_ingress_only_udp_and_several_ports():
    cluster = Cluster.from_stack({"services": {"a": {"deploy": {"replicas": 3}, "ports": [
        {"target": 80, "published": 8000}, {"target": 53, "published": 53, "protocol": "udp"}]}}})
    picks = ", ".join(f"{k} : {t.addresses['ingress']}"
                      for k, t in enumerate(cluster.tasks_of("a")))
    want = [f"tcp dport 8000 dnat to numgen inc mod 3 map {{ {picks} }} : 80",
            f"udp dport 53 dnat to numgen inc mod 3 map {{ {picks} }} : 53"]
    for node in cluster.nodes:
        text = kernel.table(cluster, node.name)
        assert chain(text, "mesh") == want
        assert not_vips(chain(text, "prerouting")) == [JUMP]
        assert chain(text, "output") == [JUMP]
        assert kernel.host_port_dnats(cluster, node.name) == []


def test_the_pick_follows_the_balancer_by_task_number():
    """Only tasks in the balancer are picked, in task order, each by its own (stable)
    ingress address: a task starting, draining or on a down node is out; no task:
    dropped."""
    c = Cluster.quick(3, 3)
    t1, t2, t3 = c.tasks_of("app")
    def mesh() -> list[str]:
        texts = {kernel.table(c, n.name).split(" chain prerouting")[0] for n in c.nodes}
        assert len(texts) == 1                       # the same pick on every node
        return chain(texts.pop() + " }\n", "mesh")
    def rule(*tasks) -> str:
        picks = ", ".join(f"{k} : {t.addresses['ingress']}" for k, t in enumerate(tasks))
        return f"tcp dport 8000 dnat to numgen inc mod {len(tasks)} map {{ {picks} }} : 80"
    assert mesh() == [rule(t1, t2, t3)]
    t4 = c.place_task("app", "node1", state="starting")
    assert mesh() == [rule(t1, t2, t3)]
    t4.state = "running"
    assert mesh() == [rule(t1, t2, t3, t4)]
    t2.state = "draining"
    assert mesh() == [rule(t1, t3, t4)]
    c.node(t3.node).status = "down"
    assert mesh() == [rule(*[t for t in (t1, t4) if t.node != t3.node])]
    for t in c.tasks_of("app"):
        t.state = "draining"
    assert mesh() == ["tcp dport 8000 drop"]


def test_host_mode_ports_only_on_nodes_with_a_task_to_that_task():
    cluster = mixed()
    web = {t.node: t for t in cluster.tasks_of("web")}
    assert sorted(web) == ["node1", "node2"]
    for node in cluster.nodes:
        text = kernel.table(cluster, node.name)
        want = [JUMP]
        if node.name in web:
            ip = layout.task_gw_ip(web[node.name])
            want += [f"fib daddr type local tcp dport 8080 dnat to {ip}:80",
                     f"fib daddr type local udp dport 5353 dnat to {ip}:53"]
        assert not_vips(chain(text, "prerouting")) == want, node.name
        assert chain(text, "output") == want, node.name
    assert "8080" not in kernel.table(cluster, "node3")
    assert "5353" not in kernel.table(cluster, "node3")


def test_localhost_snatted_to_the_gateway_on_each_local_gw_leg():
    cluster = mixed()
    for node in cluster.nodes:
        post = not_vips(chain(kernel.table(cluster, node.name), "postrouting"))
        legs = [layout.gw_intf(t) for t in cluster.tasks_on(node.name) if t.service == "web"]
        assert post == [f'oifname "gwbr" ip daddr 10.0.0.0/24 snat to {node.ingress_ip}',
                        'oifname "gwbr" ip saddr 127.0.0.0/8 masquerade'] + \
            [f'oifname "{leg}" ip saddr 127.0.0.0/8 snat to 172.18.0.1' for leg in legs]


def test_a_node_without_any_task_gets_no_host_rule():
    cluster = mixed(replicas=1, nodes=3)
    empty = [n.name for n in cluster.nodes if not cluster.tasks_on(n.name)]
    assert empty
    for name in empty:
        assert kernel.host_port_dnats(cluster, name) == []
        assert kernel.gw_legs(cluster, name) == []
        assert "172.18.1." not in kernel.table(cluster, name)


def test_a_task_started_at_run_time_binds_its_port_on_its_node():
    cluster = mixed()
    before = kernel.table(cluster, "node3")
    task = cluster.place_task("web", node="node3", state="starting")
    after = kernel.table(cluster, "node3")
    assert after != before
    assert f"tcp dport 8080 dnat to {layout.task_gw_ip(task)}:80" in after
    for node in ("node1", "node2"):            # other nodes: unchanged
        assert "8080" in kernel.table(cluster, node)
    cluster.remove_task(task.name)
    assert kernel.table(cluster, "node3") == before


def test_second_task_on_the_same_node_and_port_binds_nothing():
    cluster = mixed(replicas=1)
    first = cluster.tasks_of("web")[0]
    cluster.place_task("web", node=first.node)
    dnats = kernel.host_port_dnats(cluster, first.node)
    assert [(p.protocol, p.published, t.name) for p, t in dnats] == \
        [("tcp", 8080, first.name), ("udp", 5353, first.name)]


def test_sctp_host_port_is_not_bound():
    cluster = Cluster.from_stack({"services": {"s": {"ports": [
        {"target": 9, "published": 9, "protocol": "sctp", "mode": "host"}]}}})
    task = cluster.tasks[0]
    assert kernel.host_port_dnats(cluster, task.node) == []
    assert layout.has_gw_leg(task, cluster)    # the leg still exists, as the container's


def test_nft_script_replaces_the_table_in_one_file():
    cluster = mixed()
    script = kernel.nft_script(cluster, "node1")
    # flushed, not deleted: session-affinity sets keep their clients through a reload
    assert script.startswith("add table ip swarmmesh\nflush table ip swarmmesh\n")
    assert script.endswith(kernel.table(cluster, "node1"))


def test_gw_leg_addresses_never_collide_and_fit_the_gwbridge():
    cluster = mixed()
    gwbridge = IPv4Network(f"{layout.GW_IP}/{layout.GW_PREFIX}", strict=False)
    reserved = {IPv4Address(layout.GW_IP), IPv4Address(layout.SBOX_GW_IP)}
    task = cluster.tasks[0]
    ips = []
    for n in (1, 2, 253, 254, 255, 256, 1000, 5000, layout.GW_TASK_MAX):
        task.host = f"t{n}"
        ip = layout.task_gw_ip(task)
        assert ip in gwbridge and ip not in reserved
        assert ip not in (gwbridge.network_address, gwbridge.broadcast_address)
        ips.append(ip)
        for name in (layout.gw_intf(task), layout.task_gw_intf(task)):
            assert len(name) <= 15, name
    assert len(set(ips)) == len(ips)
    assert str(ips[0]) == "172.18.1.1"
    task.host = f"t{layout.GW_TASK_MAX + 1}"
    with pytest.raises(ValueError, match="t65279"):
        layout.task_gw_ip(task)


def test_gw_leg_names_are_distinct_from_the_other_legs():
    cluster = mixed()
    task = cluster.tasks_of("web")[0]
    others = {layout.task_intf(task), f"{task.host}-eth0", layout.GW_INTF, layout.GW_OVS_INTF}
    assert {layout.gw_intf(task), layout.task_gw_intf(task)}.isdisjoint(others)
    assert layout.gw_intf(task) != layout.task_gw_intf(task)


def test_only_services_with_a_host_mode_port_get_a_gw_leg():
    cluster = mixed()
    assert all(layout.has_gw_leg(t, cluster) == (t.service == "web") for t in cluster.tasks)
