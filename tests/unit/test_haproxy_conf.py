"""The external load balancer's decisions, from the model alone: HAProxy's pools and
configuration, its log and stats parsers, the external DNS zone and its answers."""

from __future__ import annotations

import struct

import pytest

from swarmmesh.agents import dns, extdns
from swarmmesh.dataplane import extlb as lbplan
from swarmmesh.model import Cluster, InvalidConfigError

STACK = {"services": {"app": {"deploy": {"replicas": 2},
                              "ports": [{"target": 80, "published": 8000},
                                        {"target": 80, "published": 8080, "mode": "host"}]}}}


@pytest.fixture
def cluster():
    return Cluster.from_stack(STACK, nodes=3, implicit_network=False)


def test_pools_mesh_on_every_node_host_mode_on_every_node_direct_on_every_task(cluster):
    pools = {p.name: p for p in lbplan.pools(cluster, "app", {"app.1": "10.254.0.10",
                                                               "app.2": "10.254.0.11"})}
    assert [(s.name, s.address, s.port) for s in pools["mesh"].servers] == [
        ("node1", "192.168.99.1", 8000), ("node2", "192.168.99.2", 8000),
        ("node3", "192.168.99.3", 8000)]
    assert pools["mesh"].port == 8000
    # host mode: every node is listed; the checks keep node3 (no task: refused) out
    assert pools["host"].port == 8080 and len(pools["host"].servers) == 3
    assert [(s.name, s.address, s.port) for s in pools["direct"].servers] == [
        ("app.1", "10.254.0.10", 80), ("app.2", "10.254.0.11", 80)]
    assert pools["direct"].port == 8082


def test_no_host_mode_port_and_no_direct_leg_give_the_mesh_pool_alone():
    c = Cluster.quick(nodes=2, replicas=1)
    assert [p.name for p in lbplan.pools(c, "app", {})] == ["mesh"]


def test_a_service_without_an_ingress_tcp_port_is_refused_naming_the_field():
    c = Cluster.from_stack({"services": {"web": {"ports": [
        {"target": 80, "published": 8080, "mode": "host"}]}}}, nodes=2, implicit_network=False)
    with pytest.raises(InvalidConfigError, match=r"services\.web\.ports"):
        lbplan.pools(c, "web", {})


def test_config_one_frontend_and_backend_per_pool_with_checks(cluster):
    pools = lbplan.pools(cluster, "app", {"app.1": "10.254.0.10"})
    text = lbplan.config(pools, "192.168.99.254", "leastconn", lbplan.Checks(0.2, 3, 1),
                          "/run/x/haproxy.sock", redispatch=True)
    assert "    mode tcp\n" in text and "    option redispatch\n" in text
    assert "stats socket /run/x/haproxy.sock" in text
    for name, port in (("mesh", 8000), ("host", 8080), ("direct", 8082)):
        assert f"frontend {name}\n    bind 192.168.99.254:{port}\n    default_backend {name}\n" in text
        assert f"backend {name}\n    balance leastconn\n" in text
    assert text.count("default-server check inter 200ms fall 3 rise 1") == 3
    assert "    server node3 192.168.99.3:8080\n" in text
    assert "    server app.1 10.254.0.10:80\n" in text


@pytest.mark.parametrize("kw, field", [({"balance": "random"}, "balance"),
                                       ({"checks": lbplan.Checks(0, 2, 2)}, "checks")])
def test_bad_config_input_names_its_field(cluster, kw, field):
    with pytest.raises(InvalidConfigError, match=field):
        lbplan.config(lbplan.pools(cluster, "app", {}), "192.168.99.254", **kw)


def test_detection_window():
    assert lbplan.Checks(0.5, 2, 2).window() == (1.5, 2.0)
    assert lbplan.Checks(0.2, 3, 1).window() == pytest.approx((1.0, 1.2))


def test_parse_log_takes_connection_lines_only():
    text = ("[WARNING]  (13596) : Server host/node3 is DOWN, reason: Layer4 connection problem\n"
            "192.168.99.201 60484 mesh mesh node1 1 1 3 199 --\n"
            "192.168.99.201 37502 direct direct app.1 0 0 1 199 --\n"
            "192.168.99.201 40000 mesh mesh node2 0 -1 1002 0 SC\n")
    rows = lbplan.parse_log(text)
    assert [(r["client_port"], r["server"], r["tc_ms"], r["termination"]) for r in rows] == [
        (60484, "node1", 1, "--"), (37502, "app.1", 0, "--"), (40000, "node2", -1, "SC")]


def test_parse_stat_keeps_servers():
    csv = ("# pxname,svname,qcur,stot,status,check_status\n"
           "mesh,FRONTEND,,5,OPEN,\n"
           "mesh,node1,0,3,UP,L4OK\n"
           "mesh,node2,0,2,DOWN,L4TOUT\n"
           "mesh,BACKEND,0,5,UP,\n")
    assert lbplan.parse_stat(csv) == {
        ("mesh", "node1"): {"status": "UP", "stot": 3, "check_status": "L4OK"},
        ("mesh", "node2"): {"status": "DOWN", "stot": 2, "check_status": "L4TOUT"}}
    assert lbplan.parse_stat("") == {}


def test_zone_maps_the_name_to_every_node(cluster):
    z = lbplan.zone("Swarm.Example.", cluster)
    assert z["swarm.example"] == ["192.168.99.1", "192.168.99.2", "192.168.99.3"]
    assert z["node2.swarm.example"] == ["192.168.99.2"]
    with pytest.raises(InvalidConfigError, match="dns_name"):
        lbplan.zone("bad..name", cluster)


def _ask(zone, name, qtype=dns.QTYPE_A):
    reply = zone.respond(dns.build_query(7, name, qtype))
    flags = struct.unpack("!H", reply[2:4])[0]
    qid, rcode, ips = dns.parse_response(reply)
    return qid, flags, rcode, ips


def test_external_dns_is_authoritative_and_rotates(cluster):
    zone = extdns.Zone(lbplan.zone("swarm.example", cluster))
    answers = [_ask(zone, "swarm.example")[3] for _ in range(4)]
    assert answers[0] == ["192.168.99.1", "192.168.99.2", "192.168.99.3"]
    assert answers[1] == ["192.168.99.2", "192.168.99.3", "192.168.99.1"]
    assert answers[3] == answers[0]
    qid, flags, rcode, _ = _ask(zone, "SWARM.example.")
    assert qid == 7 and rcode == dns.NOERROR and flags & extdns.AA and not flags & extdns.RA
    assert _ask(zone, "node3.swarm.example")[3] == ["192.168.99.3"]
    assert _ask(zone, "nope.swarm.example")[2:] == (dns.NXDOMAIN, [])
    assert _ask(zone, "example.org")[2:] == (extdns.REFUSED, [])
    assert _ask(zone, "swarm.example", dns.QTYPE_AAAA)[2:] == (dns.NOERROR, [])
    assert zone.respond(b"\x00\x01") is None
