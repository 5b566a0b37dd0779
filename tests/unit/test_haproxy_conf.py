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
            "192.168.99.201 60484 mesh mesh node1 1 1 3 199 -- 192.168.99.1\n"
            "192.168.99.201 37502 direct direct slot2 0 0 1 199 -- 10.254.0.11\n"
            "192.168.99.201 40000 mesh mesh node2 0 -1 1002 0 SC 192.168.99.2\n")
    rows = lbplan.parse_log(text)
    assert [(r["client_port"], r["server"], r["tc_ms"], r["termination"], r["server_ip"])
            for r in rows] == [(60484, "node1", 1, "--", "192.168.99.1"),
                               (37502, "slot2", 0, "--", "10.254.0.11"),
                               (40000, "node2", -1, "SC", "192.168.99.2")]


def test_parse_stat_keeps_servers():
    csv = ("# pxname,svname,qcur,stot,status,check_status,addr\n"
           "mesh,FRONTEND,,5,OPEN,,\n"
           "mesh,node1,0,3,UP,L4OK,192.168.99.1:8000\n"
           "mesh,node2,0,2,DOWN,L4TOUT,192.168.99.2:8000\n"
           "mesh,BACKEND,0,5,UP,,\n")
    assert lbplan.parse_stat(csv) == {
        ("mesh", "node1"): {"status": "UP", "stot": 3, "check_status": "L4OK",
                            "addr": "192.168.99.1"},
        ("mesh", "node2"): {"status": "DOWN", "stot": 2, "check_status": "L4TOUT",
                            "addr": "192.168.99.2"}}
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


def test_a_discovered_direct_pool_is_a_server_template_asking_the_external_dns(cluster):
    disc = lbplan.Discovery(lbplan.tasks_name("app", "Swarm.Example."),
                            lbplan.slots_for(2), "192.168.99.253:53", hold=1.0)
    pools = {p.name: p for p in lbplan.pools(cluster, "app", {"app.1": "10.254.0.10"},
                                             discovery=disc)}
    text = lbplan.config(list(pools.values()), "192.168.99.254")
    assert disc.fqdn == "tasks.app.swarm.example" and disc.slots == 8
    direct = text.split("\nbackend direct\n")[1].split("\n\n")[0]
    assert ("    server-template slot 8 tasks.app.swarm.example:80 resolvers extdns "
            "init-addr none resolve-prefer ipv4") in direct
    assert "    server " not in direct                 # no fixed server: DNS fills the slots
    res = text.split("resolvers extdns\n")[1]
    assert res.splitlines()[:2] == ["    nameserver dns1 192.168.99.253:53",
                                    "    accepted_payload_size 8192"]
    assert "    hold valid 1000ms" in res and "    hold obsolete 0s" in res
    # a pool with no task yet still has its frontend and its slots
    assert [p.name for p in lbplan.pools(cluster, "app", {}, discovery=disc)][-1] == "direct"
    with pytest.raises(InvalidConfigError, match="slots"):
        lbplan.pools(cluster, "app", {"app.1": "a", "app.2": "b"},
                     discovery=lbplan.Discovery("x", 1, "1.2.3.4:53"))


def test_the_zone_follows_its_file(tmp_path):
    path = tmp_path / "zone.json"
    path.write_text('{"swarm.example": ["192.168.99.1"], "tasks.app.swarm.example": ["10.0.0.1"]}')
    z = extdns.Zone.load(path)
    assert z.answer("tasks.app.swarm.example", dns.QTYPE_A) == (dns.NOERROR, ["10.0.0.1"])
    assert not z.reload_if_changed(path)
    import os
    path.write_text('{"swarm.example": ["192.168.99.1"], "tasks.app.swarm.example": []}')
    os.utime(path, ns=(1, 10 ** 18))
    assert z.reload_if_changed(path)
    assert z.answer("tasks.app.swarm.example", dns.QTYPE_A) == (dns.NOERROR, [])


def test_a_new_task_gets_an_address_no_task_held_before_while_there_is_one():
    import ipaddress
    from swarmmesh.testbed.extlb import ExtLBError, free_direct_ip
    net = ipaddress.ip_network("10.254.0.0/24")
    assert free_direct_ip(net, {}) == "10.254.0.10"
    now = {"app.2": "10.254.0.11"}
    ever = {"10.254.0.10": "app.1", "10.254.0.11": "app.2"}
    assert free_direct_ip(net, now, ever) == "10.254.0.12"      # app.1's is not given again
    small = ipaddress.ip_network("10.254.0.0/28")               # .10 - .14 for tasks
    ever = {f"10.254.0.{i}": f"app.{i}" for i in range(10, 15)}
    assert free_direct_ip(small, {"x": "10.254.0.10"}, ever) == "10.254.0.11"   # then reused
    with pytest.raises(ExtLBError, match="no address left"):
        free_direct_ip(small, {f"t{i}": f"10.254.0.{i}" for i in range(10, 15)}, ever)
