"""East-west rules (user overlay networks, service VIPs) on the fake flow table."""

from __future__ import annotations

from collections import Counter

import pytest

from swarmmesh.dataplane import layout, rules
from tests.doubles.fakeswitch import FakeCluster
from swarmmesh.model import Cluster, docker_mac
from tests.stacks import EASTWEST as STACK

IP = rules.ETH_IP


@pytest.fixture
def cluster() -> Cluster:
    return Cluster.from_stack(STACK, nodes=3)


def vip(c: Cluster, service: str, net: str = "front") -> str:
    return str(c.service(service).vips[net])


def call(fc: FakeCluster, client, service: str, sport: int, port: int = 80,
         proto: str = "tcp", net: str = "front"):
    """First packet of a new connection from ``client`` to the service's VIP."""
    arrivals = fc.send(client, fc.from_task(client, net, vip(fc.cluster, service), port,
                                            sport=sport, proto=proto))
    assert len(arrivals) == 1, arrivals
    return arrivals[0]


def test_vips_are_given_per_network_and_only_in_vip_mode(cluster):
    assert set(cluster.service("web").vips) == {"front"}
    assert set(cluster.service("api").vips) == {"front", "back"}
    assert cluster.service("db").vips == {}
    every = [a for t in cluster.tasks for a in t.addresses.values()]
    every += [a for n in cluster.nodes for a in n.lb_ips.values()]
    for svc in cluster.services.values():
        for net, addr in svc.vips.items():
            assert addr in cluster.networks[net].subnet
            assert addr not in every


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_new_connections_to_a_vip_split_exactly_round_robin_per_node(cluster, proto):
    fc = FakeCluster(cluster)
    web = cluster.tasks_of("web")
    for client in cluster.tasks_of("client"):      # one client per node: independent rr
        got = [call(fc, client, "web", 41000 + i, proto=proto).task.name
               for i in range(3 * len(web))]
        assert got == [t.name for t in web] * 3, client.node


def test_vip_connection_is_dnatted_to_the_task_and_snatted_to_the_node_lb_address(cluster):
    fc = FakeCluster(cluster)
    client = cluster.tasks_of("client")[0]
    node = cluster.node(client.node)
    a = call(fc, client, "web", 42000, port=8080)
    assert a.packet["ipv4_dst"] == str(a.task.addresses["front"])
    assert a.packet["tcp_dst"] == 8080                     # the port is kept
    assert a.packet["ipv4_src"] == str(node.lb_ips["front"])
    assert a.packet["eth_dst"] == a.task.macs["front"]


def test_reply_comes_back_from_the_vip(cluster):
    fc = FakeCluster(cluster)
    client = cluster.tasks_of("client")[0]
    for i in range(3):                                     # local and remote tasks
        a = call(fc, client, "web", 43000 + i)
        back = fc.reply(a.task, a.packet)
        assert len(back) == 1 and back[0].task == client, back
        pkt = back[0].packet
        assert (pkt["ipv4_src"], pkt["tcp_src"]) == (vip(cluster, "web"), 80)
        assert (pkt["ipv4_dst"], pkt["tcp_dst"]) == (str(client.addresses["front"]), 43000 + i)
        assert pkt["eth_src"] == layout.lb_leg_mac(cluster.networks["front"])   # the kernel


def test_established_connection_keeps_its_task(cluster):
    fc = FakeCluster(cluster)
    client = cluster.tasks_of("client")[0]
    first = call(fc, client, "web", 44000)
    fc.reply(first.task, first.packet)
    for _ in range(3):
        again = call(fc, client, "web", 44000)
        assert again.task == first.task
    # ... and the pointer moved once only
    assert call(fc, client, "web", 44001).task != first.task


def test_unanswered_resent_syn_keeps_its_task_and_the_pointer(cluster):
    fc = FakeCluster(cluster)
    client = cluster.tasks_of("client")[0]
    first = call(fc, client, "web", 44100)
    assert call(fc, client, "web", 44100).task == first.task   # resent before any reply
    web = cluster.tasks_of("web")
    assert call(fc, client, "web", 44101).task == web[1]


def test_each_network_leaves_on_its_own_vxlan_port(cluster):
    fc = FakeCluster(cluster)
    api = cluster.tasks_of("api")[0]
    remote_db = next(t for t in cluster.tasks_of("db") if t.node != api.node)
    remote_web = next(t for t in cluster.tasks_of("web") if t.node != api.node)
    sw = fc.switches[api.node]
    for net, dst, port in (("back", remote_db, layout.vxlan_port(cluster.networks["back"])),
                           ("front", remote_web, layout.vxlan_port(cluster.networks["front"]))):
        pkt = fc.from_task(api, net, str(dst.addresses[net]), 5432, dst_mac=dst.macs[net])
        assert [p for p, _ in sw.process(pkt)] == [port]
    assert (layout.vxlan_port(cluster.networks["front"])
            != layout.vxlan_port(cluster.networks["back"]))


def test_task_to_task_on_one_network_keeps_its_source(cluster):
    fc = FakeCluster(cluster)
    api = cluster.tasks_of("api")[0]
    for db in cluster.tasks_of("db"):                      # dnsrr: straight to the task
        addr = str(db.addresses["back"])
        got = fc.send(api, fc.from_task(api, "back", addr, 5432, dst_mac=db.macs["back"]))
        assert [a.task for a in got] == [db]
        assert got[0].packet["ipv4_src"] == str(api.addresses["back"])


def test_networks_are_isolated(cluster):
    """A front-only task reaches nothing on back: not by address, VIP or ARP."""
    fc = FakeCluster(cluster)
    for client in cluster.tasks_of("client"):
        for db in cluster.tasks_of("db"):
            addr = str(db.addresses["back"])
            assert fc.send(client, fc.from_task(client, "front", addr, 5432,
                                                dst_mac=db.macs["back"])) == []
        assert fc.send(client, fc.from_task(client, "front", vip(cluster, "api", "back"),
                                            80)) == []
        arp = {"in_port": layout.net_port(client, cluster.networks["front"]),
               "eth_type": rules.ETH_ARP, "eth_src": client.macs["front"],
               "eth_dst": "ff:ff:ff:ff:ff:ff", "arp_op": 1, "arp_sha": client.macs["front"],
               "arp_spa": str(client.addresses["front"]), "arp_tha": "00:00:00:00:00:00",
               "arp_tpa": str(cluster.tasks_of("db")[0].addresses["back"])}
        assert fc.switches[client.node].process(arp) == []
    assert not fc.vxlan_drops


def test_arp_for_a_vip_is_answered_locally_with_the_vip_mac(cluster):
    fc = FakeCluster(cluster)
    client = cluster.tasks_of("client")[1]
    port = layout.net_port(client, cluster.networks["front"])
    target = vip(cluster, "web")
    arp = {"in_port": port, "eth_type": rules.ETH_ARP, "eth_src": client.macs["front"],
           "eth_dst": "ff:ff:ff:ff:ff:ff", "arp_op": 1, "arp_sha": client.macs["front"],
           "arp_spa": str(client.addresses["front"]), "arp_tha": "00:00:00:00:00:00",
           "arp_tpa": target}
    out = fc.switches[client.node].process(arp)
    assert len(out) == 1
    assert out[0][1]["arp_op"] == 2 and out[0][1]["arp_sha"] == docker_mac(target)
    assert out[0][1]["arp_spa"] == target and out[0][1]["eth_dst"] == client.macs["front"]


def test_vip_is_not_answered_for_icmp(cluster):
    fc = FakeCluster(cluster)
    client = cluster.tasks_of("client")[0]
    pkt = {"in_port": layout.net_port(client, cluster.networks["front"]), "eth_type": IP,
           "ip_proto": 1, "eth_src": client.macs["front"], "eth_dst": docker_mac(vip(cluster, "web")),
           "ipv4_src": str(client.addresses["front"]), "ipv4_dst": vip(cluster, "web")}
    assert fc.switches[client.node].process(pkt) == []


def test_vip_of_a_service_with_no_task_drops():
    c = Cluster.from_stack({"networks": {"n": {}}, "services": {
        "idle": {"deploy": {"replicas": 0}, "networks": ["n"]},
        "client": {"networks": ["n"]}}}, nodes=2)
    fc = FakeCluster(c)
    client = c.tasks_of("client")[0]
    assert fc.send(client, fc.from_task(client, "n", str(c.service("idle").vips["n"]),
                                        80)) == []


def test_ingress_and_user_network_flows_coexist(cluster):
    """The published port of `api` still works with the user networks present."""
    fc = FakeCluster(cluster)
    got = Counter()
    for node in cluster.nodes:
        arrivals = fc.deliver(node.name, fc.from_client(node.name, "192.168.99.201",
                                                        45000, 8000))
        assert len(arrivals) == 1
        got[arrivals[0].task.name] += 1
    assert got == {"api.1": 3}


def test_port_numbers_and_interface_names_fit_linux_and_ovs():
    c = Cluster.from_stack({"networks": {f"net{i}": {} for i in range(5)}, "services": {
        "s": {"deploy": {"replicas": 30}, "networks": [f"net{i}" for i in range(5)]}}},
        nodes=3)
    seen = set()
    for node in c.nodes:
        ports = layout.net_ports(c, node.name)
        assert not seen & set(ports.values())
        seen |= set(ports.values())
        for net in layout.user_networks(c):
            assert layout.vxlan_port(net) not in ports.values()
    for t in c.tasks:
        for name in t.addresses:
            net = c.networks[name]
            assert len(layout.net_intf(t, net)) <= 15 and len(layout.task_net_intf(t, net)) <= 15
    assert max(seen) < 0xFF00
