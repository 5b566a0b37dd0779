"""The plan of a cluster spread over servers (issue 15): placement, tunnels, MTU arithmetic,
the controller's address and relays, and every error naming its field.  Pure: no root."""

from __future__ import annotations

import pytest
import yaml

from swarmmesh.dataplane import servers as sv
from swarmmesh.model import Cluster, InvalidConfigError

A = {"name": "localhost", "address": "10.0.0.1"}
B = {"name": "b", "address": "10.0.0.2"}
C = {"name": "c", "address": "10.0.0.3"}


def cluster(nodes=5, clients=2):
    return Cluster.quick(nodes=nodes, replicas=3, clients=clients)


# -- MTU arithmetic ------------------------------------------------------------------------
def test_the_overheads_are_the_headers_they_add():
    assert sv.OVERHEAD["gretap"] == 20 + 4 + 4 + 14 == 42      # IPv4, GRE, key, inner Ethernet
    assert sv.OVERHEAD["vxlan"] == 20 + 8 + 8 + 14 == 50       # IPv4, UDP, VXLAN, inner Ethernet
    assert sv.SWARM_OVERLAY_OVERHEAD == 50


@pytest.mark.parametrize("path, tunnel, underlay, overlay", [
    (1500, "gretap", 1458, 1408),          # a plain path: everything shrinks by 42
    (1500, "vxlan", 1450, 1400),
    (1542, "gretap", 1500, 1450),          # just enough for Swarm's own numbers
    (1550, "vxlan", 1500, 1450),
    (9000, "gretap", 1500, 1450),          # jumbo frames: the underlay stays Ethernet's 1500
])
def test_mtu_plan(path, tunnel, underlay, overlay):
    m = sv.mtu_plan(path, tunnel)
    assert (m.underlay, m.overlay) == (underlay, overlay)
    assert m.tunnel == path - sv.OVERHEAD[tunnel]
    # The overlay's largest VXLAN packet fits the underlay, whose largest frame fits the tunnel.
    assert m.overlay + sv.SWARM_OVERLAY_OVERHEAD - sv.ETHERNET <= m.underlay
    assert m.underlay + sv.OVERHEAD[tunnel] <= path
    assert "overlay" in m.explain()


def test_swarm_defaults_need_jumbo_enough_paths():
    assert sv.path_mtu_for_swarm_defaults("gretap") == 1542
    assert sv.path_mtu_for_swarm_defaults("vxlan") == 1550


def test_a_path_too_small_is_refused():
    with pytest.raises(InvalidConfigError, match="^mtu: a path MTU of 1360"):
        sv.mtu_plan(1360, "gretap")


# -- placement -----------------------------------------------------------------------------
def test_block_is_contiguous_and_even_first_servers_one_more():
    assert sv.block(["n1", "n2", "n3", "n4", "n5"], ["a", "b"]) == {
        "n1": "a", "n2": "a", "n3": "a", "n4": "b", "n5": "b"}


def test_round_robin():
    assert sv.round_robin(["n1", "n2", "n3"], ["a", "b"]) == {"n1": "a", "n2": "b", "n3": "a"}


def test_plan_block_with_clients_placed_apart():
    p = sv.plan(cluster(), [A, B])
    assert p.on("localhost") == ["node1", "node2", "node3", "c1"]
    assert p.on("b") == ["node4", "node5", "c2"]
    assert p.underlay == {"localhost": "underlay", "b": "underlay1"}
    assert p.underlay_of("node4") == "underlay1"
    assert p.controller_address == "10.0.0.1"
    assert p.relays == {"b": "servers/b/openflow.sock"}
    (t,) = p.tunnels
    assert (t.kind, t.key, t.a, t.b, t.intf_a, t.intf_b) == (
        "gretap", 1, "localhost", "b", "tun-s1", "tun-s0")
    assert (p.mtu.underlay, p.mtu.overlay) == (1458, 1408)


def test_plan_round_robin_and_explicit():
    p = sv.plan(cluster(), [A, {**B, "nodes": ["node1"]}, C], placement="round-robin",
                place_explicit={"c1": "c"})
    assert p.placement["node1"] == "b"
    # The rest by turn over all the servers, in order.
    assert [p.placement[n] for n in ("node2", "node3", "node4", "node5")] == [
        "localhost", "b", "c", "localhost"]
    assert p.placement["c1"] == "c"
    assert len(p.tunnels) == 2 and {t.b for t in p.tunnels} == {"b", "c"}   # a star


def test_the_smallest_server_mtu_sets_the_plan():
    p = sv.plan(cluster(), [{**A, "mtu": 9000}, {**B, "mtu": 1500}])
    assert p.mtu.path == 1500 and p.mtu.overlay == 1408
    with pytest.raises(InvalidConfigError, match=r"^servers\[1\]\.mtu: a path MTU of 1300"):
        sv.plan(cluster(), [{**A, "mtu": 9000}, {**B, "mtu": 1300}])


def test_servers_flag_and_file():
    assert sv.parse_servers_flag("localhost,root@b:2222") == [
        {"name": "localhost"}, {"user": "root", "port": "2222", "name": "b"}]
    kw = sv.load_servers_file(yaml.safe_load("""
placement: round-robin
tunnel: vxlan
servers:
  - {name: localhost, address: 10.0.0.1, mtu: 9000}
  - {name: b, address: 10.0.0.2, user: lab, port: 2222, mtu: 9000}
place: {node2: localhost}
"""))
    p = sv.plan(cluster(), **kw)
    assert p.server("b").user == "lab" and p.server("b").port == 2222
    assert p.placement["node2"] == "localhost" and p.mtu.overlay == 1450
    assert p.tunnels[0].kind == "vxlan"
    assert p.to_dict()["mtu"]["tunnel"] == 8950


def test_a_name_is_resolved_by_the_caller():
    p = sv.plan(cluster(), [A, {"name": "b"}], resolve={"b": "10.0.0.9"}.get)
    assert p.server("b").address == "10.0.0.9"


@pytest.mark.parametrize("servers, kw, field, words", [
    ([], {}, "servers", "at least one"),
    ([A, {"name": "b"}], {}, "servers[1].address", "does not resolve"),
    ([A, {**B, "address": "b.example"}], {}, "servers[1].address", "IPv4"),
    ([A, {**B, "port": "ssh"}], {}, "servers[1].port", "an integer"),
    ([A, {**B, "port": 0}], {}, "servers[1].port", "1..65535"),
    ([A, {**B, "colour": 1}], {}, "servers[1].colour", "unknown key"),
    ([A, {**B, "name": "localhost"}], {}, "servers[1].name", "listed twice"),
    ([A, {**B, "address": "10.0.0.1"}], {}, "servers[1].address", "also localhost"),
    ([{**A, "address": "127.0.0.1"}, B], {}, "servers[0].address", "loopback"),
    ([B, {**A, "address": "10.0.0.5"}], {}, "servers", "localhost must come first"),
    ([A, B], {"placement": "random"}, "placement", "block, round-robin"),
    ([A, B], {"tunnel": "ssh"}, "tunnel", "gretap, vxlan"),
    ([A, B], {"place_explicit": {"node9": "b"}}, "place.node9", "no node or client"),
    ([A, B], {"place_explicit": {"node1": "z"}}, "place.node1", "unknown server 'z'"),
    ([{**A, "nodes": ["node1"]}, {**B, "nodes": ["node1"]}], {}, "servers[1].nodes",
     "node1 placed twice"),
    ([{**A, "nodes": ["node1"]}, B], {"place_explicit": {"node1": "b"}}, "place.node1",
     "placed twice (localhost in servers[0].nodes"),
    ([A, {**B, "nodes": "node1"}], {}, "servers[1].nodes", "a list"),
])
def test_errors_name_the_field(servers, kw, field, words):
    with pytest.raises(InvalidConfigError) as e:
        sv.plan(cluster(), servers, **kw)
    assert e.value.field == field and words in e.value.reason, str(e.value)


def test_flag_errors_name_the_field():
    with pytest.raises(InvalidConfigError, match=r"^place\.node1: placed twice \(a and b\)"):
        sv.parse_place_flags(["node1=a", "node1=b"])
    with pytest.raises(InvalidConfigError, match="^place: want HOST=SERVER"):
        sv.parse_place_flags(["node1"])
    with pytest.raises(InvalidConfigError, match=r"^servers\[1\]: empty name"):
        sv.parse_servers_flag("a,,b")
    with pytest.raises(InvalidConfigError, match="^colour: unknown key"):
        sv.load_servers_file({"servers": [A], "colour": 1})


def test_a_servers_file_without_a_tunnel_gets_vxlan_as_the_flag_does():
    kw = sv.load_servers_file({"servers": [A, {"name": "b", "address": "10.0.0.2"}]})
    assert kw["tunnel"] == sv.DEFAULT_TUNNEL == "vxlan"
    assert sv.plan(cluster(), **kw).tunnels[0].kind == "vxlan"
