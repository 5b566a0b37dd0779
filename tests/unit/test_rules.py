"""Unit tests for swarmmesh.dataplane.rules, run on tests.doubles.fakeswitch (no switch, no root)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from swarmmesh.dataplane import layout, rules
from tests.doubles.fakeswitch import AmbiguousMatch, FakeCluster, FakeSwitch
from swarmmesh.model import Cluster
from swarmmesh.dataplane.flows import Goto, Load, Move, MoveBits, Output, SetField, flow

CLIENT = "192.168.99.201"
CLIENT2 = "192.168.99.202"
ARP = rules.ETH_ARP
IP = rules.ETH_IP


def tasks_of(cluster: Cluster, service: str = "app") -> list:
    return [t for t in cluster.tasks_of(service) if "ingress" in t.addresses]


def connect(fc: FakeCluster, node: str, port: int, published: int = 8000,
            proto: str = "tcp", client: str = CLIENT):
    """A new connection's first packet into ``node``: the one arrival, or None."""
    arrivals = fc.deliver(node, fc.from_client(node, client, port, published, proto))
    assert len(arrivals) <= 1, arrivals
    return arrivals[0] if arrivals else None


def arp_request(in_port: int, tpa: str, spa: str = "172.18.0.1",
                sha: str = layout.GW_MAC) -> dict:
    return {"in_port": in_port, "eth_type": ARP, "eth_src": sha, "eth_dst": "ff:ff:ff:ff:ff:ff",
            "arp_op": 1, "arp_sha": sha, "arp_spa": spa, "arp_tha": "00:00:00:00:00:00",
            "arp_tpa": tpa}


CLUSTERS = {"3n2r": (3, 2), "4n3r": (4, 3)}


@pytest.fixture(params=sorted(CLUSTERS))
def cluster(request) -> Cluster:
    return Cluster.quick(*CLUSTERS[request.param])


# --------------------------------------------------------------------------
# One connection, end to end
# --------------------------------------------------------------------------


def test_syn_to_replica_less_node_leaves_on_vxlan():
    c = Cluster.quick(3, 2)
    fc = FakeCluster(c)
    outs = fc.switches["node3"].process(fc.from_client("node3", CLIENT, 40000, 8000))
    assert [port for port, _ in outs] == [layout.PORT_VXLAN]
    _, pkt = outs[0]
    first = tasks_of(c)[0]
    assert pkt["ipv4_dst"] == str(first.addresses["ingress"])
    assert pkt["eth_dst"] == first.macs["ingress"]
    assert pkt["eth_src"] == c.node("node3").ingress_mac


@pytest.mark.parametrize("nodes,replicas", CLUSTERS.values(), ids=CLUSTERS.keys())
def test_connection_round_trip_from_every_node(nodes, replicas):
    c = Cluster.quick(nodes, replicas)
    for entry in c.nodes:
        fc = FakeCluster(c)
        for i, task in enumerate(tasks_of(c)):     # one connection per task, in rr order
            cport = 40000 + i
            got = connect(fc, entry.name, cport)
            assert got is not None and got.task == task
            # Rewritten by the entry node: DNAT to the task, SNAT to the entry node.
            assert got.node == task.node and got.port == layout.task_ports(c, task.node)[task.host]
            assert got.packet["ipv4_dst"] == str(task.addresses["ingress"])
            assert got.packet["tcp_dst"] == 80
            assert got.packet["ipv4_src"] == str(entry.ingress_ip)
            assert got.packet["eth_dst"] == task.macs["ingress"]
            assert got.packet["eth_src"] == entry.ingress_mac
            assert got.hops == ([entry.name] if task.node == entry.name
                                else [entry.name, task.node])
            # The answer goes back to the entry node, un-rewritten, to its kernel,
            # which un-DNATs it: the client hears from the address it called.
            back = fc.reply(task, got.packet)
            assert len(back) == 1 and back[0].at_kernel
            assert back[0].node == entry.name and back[0].port == layout.PORT_GW
            assert back[0].hops == ([task.node] if task.node == entry.name
                                    else [task.node, entry.name])
            assert back[0].packet == {
                "eth_src": layout.SBOX_GW_MAC, "eth_dst": layout.GW_MAC, "eth_type": IP,
                "ip_proto": 6, "ipv4_src": str(entry.underlay_ip), "ipv4_dst": CLIENT,
                "tcp_src": 8000, "tcp_dst": cport}


def test_client_sees_the_task_never_the_client():
    """The task sees the entry node's ingress address (moby #25526)."""
    c = Cluster.quick(3, 2)
    fc = FakeCluster(c)
    for node in ("node1", "node2", "node3"):
        got = connect(fc, node, 41000)
        assert got.packet["ipv4_src"] == str(c.node(node).ingress_ip) != CLIENT


def test_established_packets_stay_on_their_task(cluster):
    fc = FakeCluster(cluster)
    entry = cluster.nodes[-1].name
    syn = fc.from_client(entry, CLIENT, 42000, 8000)
    first = fc.deliver(entry, syn)[0]
    assert fc.reply(first.task, first.packet)[0].at_kernel        # SYN-ACK
    for i in range(10):
        # New connections in between move the pointer on ...
        other = connect(fc, entry, 43000 + i)
        fc.reply(other.task, other.packet)
        # ... but the established one keeps its task and its rewrite.
        again = fc.deliver(entry, syn)
        assert len(again) == 1
        assert again[0].task == first.task and again[0].packet == first.packet
        assert fc.from_client(entry, CLIENT, 42000, 8000) == syn    # the kernel keeps it too
    addr = str(cluster.node(entry).underlay_ip)
    conn = fc.kernels[entry].conntrack[("tcp", CLIENT, 42000, addr, 8000)]
    assert conn.dst == (str(first.task.addresses["ingress"]), 80)
    assert conn.src == (str(cluster.node(entry).ingress_ip), 42000)


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_second_packet_before_any_reply_follows_the_first(proto):
    """A retransmitted SYN, or a second datagram before any answer: still
    ``+new`` in conntrack, but it reaches the task the first one went to."""
    c = Cluster.quick(3, 2, protocol=proto)
    fc = FakeCluster(c)
    pkt = fc.from_client("node3", CLIENT, 44000, 8000, proto)
    first = fc.deliver("node3", pkt)
    assert len(first) == 1
    for _ in range(3):
        assert fc.deliver("node3", pkt) == first
    back = fc.reply(first[0].task, first[0].packet)
    assert [(b.node, b.packet["ipv4_dst"]) for b in back] == [("node3", CLIENT)]


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_second_packet_before_any_reply_does_not_move_the_pointer(proto):
    c = Cluster.quick(3, 2, protocol=proto)
    fc = FakeCluster(c)
    pkt = fc.from_client("node3", CLIENT, 44000, 8000, proto)
    fc.deliver("node3", pkt)
    fc.deliver("node3", pkt)                    # SYN retransmitted, or a 2nd datagram
    tasks = tasks_of(c)
    assert [connect(fc, "node3", 44001 + i, proto=proto).task for i in range(4)] == \
        [tasks[1], tasks[0], tasks[1], tasks[0]]


# --------------------------------------------------------------------------
# Exact round-robin, per node
# --------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ["node1", "node2", "node3", "node4"])
def test_round_robin_is_exact_per_node(entry):
    c = Cluster.quick(4, 3)
    fc = FakeCluster(c)
    tasks = tasks_of(c)
    seq = []
    for i in range(60):
        got = connect(fc, entry, 20000 + i)
        seq.append(got.task.host)
        fc.reply(got.task, got.packet)
    assert seq == [t.host for t in tasks] * 20
    assert Counter(seq) == {t.host: 20 for t in tasks}


def test_round_robin_without_replies_too():
    c = Cluster.quick(4, 3)
    fc = FakeCluster(c)
    seq = [connect(fc, "node2", 21000 + i).task.host for i in range(30)]
    assert seq == [t.host for t in tasks_of(c)] * 10


def test_each_node_has_its_own_pointer():
    c = Cluster.quick(4, 3)
    fc = FakeCluster(c)
    order = [t.host for t in tasks_of(c)]
    rng = random.Random(4096)
    seen = {n.name: [] for n in c.nodes}
    for i in range(120):
        node = rng.choice(list(seen))
        seen[node].append(connect(fc, node, 22000 + i).task.host)
    for node, seq in seen.items():
        assert seq, node
        assert seq == [order[k % len(order)] for k in range(len(seq))], node


def test_same_client_port_from_two_clients():
    """SNAT keeps both apart even when they land on one task with one port."""
    c = Cluster.quick(3, 2)
    fc = FakeCluster(c)
    a = connect(fc, "node3", 45000, client=CLIENT)
    connect(fc, "node3", 45001, client=CLIENT)                 # moves the pointer on
    b = connect(fc, "node3", 45000, client=CLIENT2)
    assert a.task == b.task
    assert (a.packet["ipv4_src"], a.packet["tcp_src"]) != (b.packet["ipv4_src"],
                                                            b.packet["tcp_src"])
    for got, client in ((a, CLIENT), (b, CLIENT2)):
        back = fc.reply(got.task, got.packet)
        assert [(x.packet["ipv4_dst"], x.packet["tcp_dst"]) for x in back] == [(client, 45000)]


# --------------------------------------------------------------------------
# ARP and drops
# --------------------------------------------------------------------------


def _arp_reply(req: dict, mac: str, ip: str) -> dict:
    return {"eth_type": ARP, "eth_src": mac, "eth_dst": req["eth_src"], "arp_op": 2,
            "arp_sha": mac, "arp_spa": ip, "arp_tha": req["arp_sha"], "arp_tpa": req["arp_spa"]}


def test_arp_for_the_sandbox_is_answered_to_the_kernel(cluster):
    for node in cluster.nodes:
        sw = FakeSwitch(rules.node_flows(cluster, node.name))
        req = arp_request(layout.PORT_GW, layout.SBOX_GW_IP)
        assert sw.process(req) == [(layout.PORT_GW,
                                    _arp_reply(req, layout.SBOX_GW_MAC, layout.SBOX_GW_IP))]
        # the sandbox address is not answered on the overlay side
        assert sw.process(arp_request(layout.PORT_VXLAN, layout.SBOX_GW_IP)) == []


def test_arp_for_tasks_and_nodes_is_answered_on_the_in_port(cluster):
    for node in cluster.nodes:
        sw = FakeSwitch(rules.node_flows(cluster, node.name))
        in_ports = [layout.PORT_VXLAN, *layout.task_ports(cluster, node.name).values()]
        for in_port in in_ports:
            targets = [(str(t.addresses["ingress"]), t.macs["ingress"]) for t in cluster.tasks]
            targets += [(str(n.ingress_ip), n.ingress_mac) for n in cluster.nodes]
            for ip, mac in targets:
                req = arp_request(in_port, ip, spa="10.0.0.99", sha="02:42:0a:00:00:63")
                assert sw.process(req) == [(in_port, _arp_reply(req, mac, ip))]


def test_unknown_arp_is_dropped_not_flooded(cluster):
    for node in cluster.nodes:
        sw = FakeSwitch(rules.node_flows(cluster, node.name))
        for in_port in (layout.PORT_GW, layout.PORT_VXLAN):
            assert sw.process(arp_request(in_port, "10.0.0.250")) == []
            assert sw.process(arp_request(in_port, "172.18.0.1")) == []
        # an ARP reply is not forwarded either
        reply = dict(arp_request(layout.PORT_GW, layout.SBOX_GW_IP), arp_op=2)
        assert sw.process(reply) == []
    # nowhere a flood: every output is a concrete port or the in_port
    for node in cluster.nodes:
        for f in rules.node_flows(cluster, node.name):
            for a in f.actions:
                if isinstance(a, Output):
                    assert a.port == "in_port" or a.port in (
                        layout.PORT_GW, layout.PORT_VXLAN,
                        *layout.task_ports(cluster, node.name).values())


def test_unpublished_port_is_dropped(cluster):
    fc = FakeCluster(cluster)
    task = tasks_of(cluster)[0]
    for node in cluster.nodes:
        # the kernel does not send it to the bridge ...
        assert fc.from_client(node.name, CLIENT, 46000, 9999) is None
        assert fc.from_client(node.name, CLIENT, 46000, 8000, "udp") is None
        # ... and the bridge drops it all the same, even to a task's address
        pkt = fc.from_client(node.name, CLIENT, 46002, 8000)
        for port in (("tcp_dst", 9999), ("udp_dst", 80)):
            forged = {k: v for k, v in pkt.items() if k != "tcp_dst"}
            forged.update([port], ip_proto=rules.IP_PROTO[port[0][:3]],
                          ipv4_dst=str(task.addresses["ingress"]))
            if port[0] == "udp_dst":
                forged["udp_src"] = forged.pop("tcp_src")
            assert fc.deliver(node.name, forged) == [], (node.name, port)


def test_gw_port_to_another_destination_is_dropped(cluster):
    fc = FakeCluster(cluster)
    task = tasks_of(cluster)[0]
    for node in cluster.nodes:
        for dst, port in ((str(task.addresses["ingress"]), 8000), (str(node.ingress_ip), 80),
                          ("172.18.0.1", 80), (layout.SBOX_GW_IP, 80), ("10.0.0.250", 80),
                          ("8.8.8.8", 80)):
            pkt = dict(fc.from_client(node.name, CLIENT, 46001, 8000), ipv4_dst=dst,
                       tcp_dst=port)
            assert fc.deliver(node.name, pkt) == [], (node.name, dst)
            icmp = {k: v for k, v in pkt.items() if k not in ("tcp_src", "tcp_dst")}
            assert fc.deliver(node.name, dict(icmp, ip_proto=1)) == [], (node.name, dst)


def test_overlay_packet_for_nobody_is_dropped():
    c = Cluster.quick(3, 2)
    fc = FakeCluster(c)
    pkt = {"in_port": layout.PORT_VXLAN, "eth_type": IP, "ip_proto": 6, "eth_src": "02:42:0a:00:00:63",
           "eth_dst": c.node("node3").ingress_mac, "ipv4_src": "10.0.0.99",
           "ipv4_dst": "10.0.0.200", "tcp_src": 1, "tcp_dst": 80}
    assert fc.deliver("node3", pkt) == []
    # a stray "reply" to node3's ingress address with no connection behind it: the
    # bridge keeps no state, it goes to the kernel, unchanged (no conntrack entry
    # un-NATs it); were the kernel to route it back, the bridge drops it from port 1
    stray = dict(pkt, ipv4_dst=str(c.node("node3").ingress_ip))
    back = fc.deliver("node3", stray)
    assert [(a.at_kernel, a.packet["ipv4_dst"], a.packet["tcp_dst"]) for a in back] == [
        (True, stray["ipv4_dst"], 80)]
    assert fc.deliver("node3", {**back[0].packet, "in_port": layout.PORT_GW}) == []


def test_service_without_replicas_drops_new_connections():
    c = Cluster.quick(3, 0)
    fc = FakeCluster(c)
    for node in c.nodes:
        assert fc.from_client(node.name, CLIENT, 47000, 8000) is None     # the kernel drops it
        assert fc.kernels[node.name].conntrack == {}                      # and remembers nothing


# --------------------------------------------------------------------------
# Several services, UDP
# --------------------------------------------------------------------------


def test_two_services_balance_over_their_own_tasks():
    c = Cluster.from_stack({"services": {
        "web": {"deploy": {"replicas": 3}, "ports": ["8000:80"]},
        "api": {"deploy": {"replicas": 2}, "ports": [{"published": 9000, "target": 8080}]},
    }}, nodes=4)
    fc = FakeCluster(c)
    web, api = tasks_of(c, "web"), tasks_of(c, "api")
    assert len(web) == 3 and len(api) == 2
    for entry in ("node1", "node4"):
        seqs = {8000: [], 9000: []}
        for i in range(24):
            published = (8000, 9000)[i % 3 == 2]          # interleaved, unevenly
            got = connect(fc, entry, 30000 + i, published)
            seqs[published].append(got.task)
            assert got.packet["tcp_dst"] == {8000: 80, 9000: 8080}[published]
            back = fc.reply(got.task, got.packet)
            assert back[0].packet["tcp_src"] == published and back[0].node == entry
        assert seqs[8000] == [web[k % 3] for k in range(len(seqs[8000]))]
        assert seqs[9000] == [api[k % 2] for k in range(len(seqs[9000]))]


def test_udp_published_port():
    c = Cluster.quick(3, 2, published=5353, target=53, protocol="udp")
    fc = FakeCluster(c)
    tasks = tasks_of(c)
    for i in range(6):
        pkt = fc.from_client("node3", CLIENT, 50000 + i, 5353, "udp")
        got = fc.deliver("node3", pkt)
        assert len(got) == 1 and got[0].task == tasks[i % 2]
        assert got[0].packet["udp_dst"] == 53
        assert got[0].packet["ipv4_src"] == str(c.node("node3").ingress_ip)
        assert "tcp_dst" not in got[0].packet
        back = fc.reply(got[0].task, got[0].packet)
        assert len(back) == 1 and back[0].at_kernel and back[0].node == "node3"
        assert (back[0].packet["ipv4_src"], back[0].packet["udp_src"]) == (
            str(c.node("node3").underlay_ip), 5353)
        assert (back[0].packet["ipv4_dst"], back[0].packet["udp_dst"]) == (CLIENT, 50000 + i)
        # after the answer, the next datagram of the flow goes the same way
        assert fc.deliver("node3", pkt) == got
    # TCP to the UDP port is not published
    assert fc.from_client("node3", CLIENT, 50100, 5353) is None


def test_same_port_number_on_tcp_and_udp_is_two_services():
    c = Cluster.from_stack({"services": {
        "web": {"deploy": {"replicas": 2}, "ports": ["5300:80/tcp"]},
        "dns": {"deploy": {"replicas": 2}, "ports": ["5300:53/udp"]},
    }}, nodes=3)
    fc = FakeCluster(c)
    web, dns = tasks_of(c, "web"), tasks_of(c, "dns")
    for i in range(8):
        proto = ("tcp", "udp")[i % 2]
        got = connect(fc, "node3", 31000 + i, 5300, proto)
        assert got.task == (web, dns)[i % 2][(i // 2) % 2]
        assert got.packet[f"{proto}_dst"] == {"tcp": 80, "udp": 53}[proto]


# --------------------------------------------------------------------------
# The flows themselves
# --------------------------------------------------------------------------


def test_flows_are_deterministic(cluster):
    again = Cluster.quick(*{3: (3, 2), 4: (4, 3)}[len(cluster.nodes)])
    for node in cluster.nodes:
        assert rules.node_flows(cluster, node.name) == rules.node_flows(again, node.name)
        assert rules.overlay_fdb(cluster, node.name) == rules.overlay_fdb(again, node.name)


def test_every_table_target_exists(cluster):
    for node in cluster.nodes:
        flows = rules.node_flows(cluster, node.name)
        tables = {f.table for f in flows}
        assert rules.T_CLASSIFY in tables
        for f in flows:
            for a in f.actions:
                if isinstance(a, Goto):
                    assert a.table in tables and a.table > f.table, (f, a)
        # unique (table, priority, match): no flow silently replaces another
        keys = [(f.table, f.priority, f.match) for f in flows]
        assert len(keys) == len(set(keys))
        # the fake switch accepts them all (no unsupported field or action)
        FakeSwitch(flows)


# --------------------------------------------------------------------------
# The fake switch itself
# --------------------------------------------------------------------------


def _pkt(**kw) -> dict:
    return {"in_port": 1, "eth_type": IP, "ip_proto": 6, "ipv4_src": "10.0.0.1",
            "ipv4_dst": "10.0.0.2", "tcp_src": 1000, "tcp_dst": 80, **kw}


def test_fake_switch_highest_priority_wins_and_miss_drops():
    sw = FakeSwitch([flow(0, 10, {"eth_type": IP}, [Output(3)]),
                     flow(0, 20, {"eth_type": IP, "tcp_dst": 80}, [Output(4)])])
    assert [p for p, _ in sw.process(_pkt())] == [4]
    assert [p for p, _ in sw.process(_pkt(tcp_dst=81))] == [3]
    assert sw.process(_pkt(eth_type=ARP)) == []


def test_fake_switch_equal_priority_overlap_is_an_error():
    sw = FakeSwitch([flow(0, 10, {"eth_type": IP}, [Output(3)]),
                     flow(0, 10, {"tcp_dst": 80}, [Output(4)])])
    with pytest.raises(AmbiguousMatch):
        sw.process(_pkt())


def test_fake_switch_masked_match():
    sw = FakeSwitch([flow(0, 10, {"reg2": (1, 0x3)}, [Output(3)]),
                     flow(0, 10, {"reg2": (2, 0x3)}, [Output(4)])])
    assert [p for p, _ in sw.process(_pkt(reg2=5))] == [3]
    assert [p for p, _ in sw.process(_pkt(reg2=6))] == [4]
    assert sw.process(_pkt(reg2=4)) == []


def test_fake_switch_output_in_port_and_no_hairpin():
    sw = FakeSwitch([flow(0, 10, {"in_port": 1}, [Output("in_port"), Output(1), Output(2)])])
    outs = sw.process(_pkt(reg2=5))
    assert [p for p, _ in outs] == [1, 2]                 # Output(1) to in_port 1: dropped
    assert all(set(p) & {"in_port", "reg2"} == set() for _, p in outs)


def test_fake_switch_goto_must_go_forward():
    sw = FakeSwitch([flow(1, 10, {}, [Goto(0)]), flow(0, 10, {}, [Goto(1)])])
    with pytest.raises(ValueError):
        sw.process(_pkt())


def test_fake_switch_rejects_what_it_does_not_model():
    with pytest.raises(NotImplementedError):
        FakeSwitch([flow(0, 10, {"vlan_vid": 5}, [])])
    with pytest.raises(NotImplementedError):
        FakeSwitch([flow(0, 10, {}, [Output("flood")])])
    with pytest.raises(NotImplementedError):
        FakeSwitch([flow(0, 10, {"ct_state": 1}, [])])     # the bridge keeps no conntrack
    with pytest.raises(NotImplementedError):
        FakeSwitch([flow(0, 10, {}, ["drop"])])
    with pytest.raises(NotImplementedError):
        FakeSwitch([]).process(_pkt(vlan_vid=5))


def test_a_tcp_client_that_reuses_a_source_port_gets_a_fresh_pick():
    """Once the old connection is gone (Linux reuses ports), the same address and
    port is a new connection: the kernel picks again."""
    c = Cluster.quick(3, 3)
    fc = FakeCluster(c)
    first = connect(fc, "node1", 40000)
    fc.reply(first.task, first.packet)
    fc.forget_connections()                       # the old connection is gone
    again = connect(fc, "node1", 40000)
    tasks = tasks_of(c)
    assert again.task == tasks[(tasks.index(first.task) + 1) % 3]


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_a_flow_keeps_its_draining_task_and_moves_once_the_task_is_removed(proto):
    """Weight 0 (IPVS): the kernel stops picking the task, its flows stay, so an
    existing flow goes on; once the task is removed and its connections flushed, the
    flow's next packet gets a fresh pick."""
    c = Cluster.quick(3, 3, protocol=proto)
    fc = FakeCluster(c)
    first = connect(fc, "node1", 40000, proto=proto)
    first.task.state = "draining"
    fc.apply(c)
    again = connect(fc, "node1", 40000, proto=proto)
    assert again.task == first.task
    c.remove_task(first.task.name)
    fc.apply(c)
    fc.flush(first.task)
    moved = connect(fc, "node1", 40000, proto=proto)
    assert moved.task != first.task and moved.task.state == "running"


def test_a_reload_restarts_the_count_at_the_first_task_and_keeps_the_picks_made():
    """numgen's counter lives in the rule: a table whose text changed starts again
    at task 0 of its new map; a table reloaded unchanged keeps counting; connections
    picked before keep their task."""
    c = Cluster.quick(3, 3)
    fc = FakeCluster(c)
    tasks = tasks_of(c)
    a = connect(fc, "node3", 41000)
    assert [connect(fc, "node3", 41001 + i).task for i in range(1)] == [tasks[1]]
    fc.apply(c)                                    # nothing changed: no reload
    assert connect(fc, "node3", 41002).task == tasks[2]
    new = c.place_task("app", "node1", state="running")
    fc.apply(c)
    seq = [connect(fc, "node3", 41100 + i).task for i in range(8)]
    assert seq == [*tasks, new] * 2
    assert connect(fc, "node3", 41000).task == a.task        # picked before the reload


@pytest.mark.parametrize("eastwest", [False, True], ids=["ingress", "eastwest"])
def test_the_bridge_takes_no_learn_and_no_client_field(cluster, eastwest):
    """Every flow is proactive, ingress and VIPs alike: none learns or tracks a
    connection, none matches a client's address or port, so the datapath's cached
    megaflows serve every new connection."""
    if eastwest:
        from tests.stacks import EASTWEST
        cluster = Cluster.from_stack(EASTWEST, nodes=3)
    for node in cluster.nodes:
        for f in rules.node_flows(cluster, node.name):
            assert all(isinstance(a, (Output, SetField, Move, MoveBits, Load, Goto))
                       for a in f.actions), f
            assert not {"ipv4_src", "tcp_src", "udp_src"} & set(f.match_dict), f


def test_an_address_cover_matches_exactly_its_addresses():
    import ipaddress
    from swarmmesh.dataplane.flows import ip_cover
    addrs = {f"10.255.{i // 256}.{i % 256}" for i in range(102, 1102)} - {"10.255.1.7"}
    blocks = ip_cover(addrs)
    covered = set()
    for b in blocks:
        net = ipaddress.IPv4Network(b if isinstance(b, str) else f"{b[0]}/{b[1]}")
        covered |= {str(a) for a in net}
    assert covered == addrs
    assert len(blocks) < 25                      # a thousand addresses, a few blocks
    assert ip_cover(["10.0.0.9"]) == ["10.0.0.9"] and ip_cover([]) == []


def test_icmp_and_published_flows_are_per_block_at_scale():
    cluster = Cluster.quick(nodes=100, replicas=1000, ingress_subnet="10.255.0.0/16")
    flows = rules.node_flows(cluster, "node1")
    icmp = [f for f in flows if f.table == 0 and f.priority == 160]
    published = [f for f in flows if f.table == 0 and f.priority == 200]
    assert 0 < len(icmp) < 20 and 0 < len(published) < 20
    assert len(flows) < 400                      # 5,215 with one flow per address
