"""The embedded DNS: answers from the model, and the wire format (no root)."""

from __future__ import annotations

import random
import struct
from ipaddress import IPv4Address

import pytest

from swarmmesh.agents import dns
from swarmmesh.model import Cluster

STACK = {
    "networks": {"front": {}, "back": {}},
    "services": {
        "web": {"deploy": {"replicas": 3}, "networks": ["front"]},
        "client": {"networks": ["front"]},
        "db": {"deploy": {"replicas": 4, "endpoint_mode": "dnsrr"}, "networks": ["back"]},
        "api": {"networks": ["front", "back"], "ports": ["8000:80"]},
        "Mixed.Case": {"networks": ["front"]},
    },
}


@pytest.fixture
def c() -> Cluster:
    return Cluster.from_stack(STACK, nodes=3)


def task(c: Cluster, service: str, i: int = 0):
    return c.tasks_of(service)[i]


def addrs(c: Cluster, service: str, net: str) -> list[str]:
    return sorted(str(t.addresses[net]) for t in c.tasks_of(service))


def test_service_name_gives_its_vip(c):
    assert dns.answer(c, task(c, "client"), "web") == (
        dns.NOERROR, [str(c.service("web").vips["front"])])


def test_tasks_name_gives_every_task_address(c):
    rcode, ips = dns.answer(c, task(c, "client"), "tasks.web")
    assert rcode == dns.NOERROR and sorted(ips) == addrs(c, "web", "front")


def test_dnsrr_gives_task_addresses_shuffled_per_answer(c):
    rng = random.Random(1)
    orders = set()
    for _ in range(50):
        rcode, ips = dns.answer(c, task(c, "api"), "db", rng=rng)
        assert rcode == dns.NOERROR and sorted(ips) == addrs(c, "db", "back")
        orders.add(tuple(ips))
    assert len(orders) > 10                       # 24 orders of 4; not a fixed one


def test_names_are_scoped_by_the_askers_networks(c):
    client = task(c, "client")                    # front only
    assert dns.answer(c, client, "db") == (dns.NXDOMAIN, [])
    assert dns.answer(c, client, "tasks.db") == (dns.NXDOMAIN, [])
    api = task(c, "api")                          # front and back
    assert dns.answer(c, api, "db")[0] == dns.NOERROR
    # a service on two networks answers with the VIP on the network shared first
    assert dns.answer(c, task(c, "web"), "api") == (dns.NOERROR,
                                                    [str(c.service("api").vips["front"])])


def test_ingress_alone_gives_no_service_discovery():
    c = Cluster.quick(nodes=2, replicas=2)
    assert dns.answer(c, c.tasks[0], "app") == (dns.NXDOMAIN, [])


def test_unknown_names_are_nxdomain(c):
    for name in ("nope", "tasks.nope", "tasks.", "web.example.com", ""):
        assert dns.answer(c, task(c, "client"), name) == (dns.NXDOMAIN, []), name


def test_names_are_case_insensitive_and_may_end_in_a_dot(c):
    vip = [str(c.service("web").vips["front"])]
    assert dns.answer(c, task(c, "client"), "WEB.") == (dns.NOERROR, vip)
    assert dns.answer(c, task(c, "client"), "mixed.case")[0] == dns.NOERROR


def test_other_types_of_a_known_name_are_empty_noerror(c):
    assert dns.answer(c, task(c, "client"), "web", dns.QTYPE_AAAA) == (dns.NOERROR, [])
    assert dns.answer(c, task(c, "client"), "nope", dns.QTYPE_AAAA) == (dns.NXDOMAIN, [])


def test_answers_follow_the_model_as_tasks_come_and_go(c):
    asker = task(c, "api")
    before = dns.answer(c, asker, "tasks.db")[1]
    gone = c.tasks_of("db")[0]
    c.tasks.remove(gone)
    after = dns.answer(c, asker, "tasks.db")[1]
    assert str(gone.addresses["back"]) in before and str(gone.addresses["back"]) not in after
    assert len(after) == len(before) - 1


def test_a_task_that_is_not_running_is_left_out(c):
    asker = task(c, "api")
    sick = c.tasks_of("db")[1]
    sick.state = "unhealthy"                      # what the lifecycle code sets
    assert str(sick.addresses["back"]) not in dns.answer(c, asker, "db")[1]


# --- wire format ---------------------------------------------------------------

def test_query_and_response_round_trip(c):
    q = dns.build_query(0x1234, "tasks.web")
    qid, flags, name, qtype, qclass, _ = dns.parse_query(q)
    assert (qid, flags & 0x0100, name, qtype, qclass) == (0x1234, 0x0100, "tasks.web", 1, 1)
    resp = dns.respond(c, task(c, "client"), q)
    rid, rcode, ips = dns.parse_response(resp)
    assert (rid, rcode) == (0x1234, dns.NOERROR) and sorted(ips) == addrs(c, "web", "front")
    flags = struct.unpack("!H", resp[2:4])[0]
    assert flags & 0x8000 and flags & 0x0100 and flags & 0x0080     # QR, RD kept, RA
    ttl = struct.unpack("!I", resp[len(q) + 6:len(q) + 10])[0]
    assert ttl == dns.TTL


def test_nxdomain_on_the_wire(c):
    resp = dns.respond(c, task(c, "client"), dns.build_query(7, "db"))
    assert dns.parse_response(resp) == (7, dns.NXDOMAIN, [])


def test_edns_additional_record_is_tolerated(c):
    # dig sends an OPT record in the additional section
    q = bytearray(dns.build_query(9, "web"))
    q[10:12] = struct.pack("!H", 1)
    q += b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0)
    assert dns.parse_response(dns.respond(c, task(c, "client"), bytes(q)))[1] == dns.NOERROR


def test_malformed_and_unsupported_queries(c):
    asker = task(c, "client")
    assert dns.respond(c, asker, b"\x00\x01") is None                   # not even a header
    truncated = dns.build_query(5, "web")[:-3]
    assert dns.parse_response(dns.respond(c, asker, truncated))[1] == dns.FORMERR
    notify = bytearray(dns.build_query(6, "web"))
    notify[2] |= 4 << 3                                                 # opcode NOTIFY
    assert dns.parse_response(dns.respond(c, asker, bytes(notify)))[1] == dns.NOTIMP
    response = bytearray(dns.build_query(8, "web"))
    response[2] |= 0x80                                                 # a response
    assert dns.respond(c, asker, bytes(response)) is None


def test_every_answer_fits_in_one_udp_datagram():
    c = Cluster.from_stack({"networks": {"n": {"ipam": {"config": [{"subnet": "10.9.0.0/22"}]}}},
                            "services": {"big": {"deploy": {"replicas": 29},
                                                 "networks": ["n"]}}}, nodes=3)
    resp = dns.respond(c, c.tasks[0], dns.build_query(1, "tasks.big"))
    assert len(resp) <= 512
    assert len(dns.parse_response(resp)[2]) == 29
    assert all(IPv4Address(ip) in c.networks["n"].subnet for ip in dns.parse_response(resp)[2])


def test_a_large_service_is_capped_to_one_datagram():
    c = Cluster.from_stack({"networks": {"n": {"ipam": {"config": [{"subnet": "10.9.0.0/22"}]}}},
                            "services": {"big": {"deploy": {"replicas": 60},
                                                 "networks": ["n"]}}}, nodes=3)
    resp = dns.respond(c, c.tasks[0], dns.build_query(1, "tasks.big"))
    ips = dns.parse_response(resp)[2]
    assert len(resp) <= 512 and len(ips) == (512 - 12 - len("tasks.big") - 6) // 16
    assert len(set(ips)) == len(ips)


def test_the_pid_record_is_read_as_it_grows(tmp_path):
    from swarmmesh.agents.dns import PidRecord
    path = tmp_path / "pids"
    rec = PidRecord(path)
    assert rec.get() == {}                                   # no record yet
    path.write_text("100\tmininet:node1\n200\tswarmmesh.agents.dns\n")
    assert rec.get() == {"node1": 100}
    with open(path, "a") as f:
        f.write("300\tmininet:t1\n400\tmini")                # the last line half written
    assert rec.get() == {"node1": 100, "t1": 300}
    with open(path, "a") as f:
        f.write("net:t2\n500\tmininet:t1\n")                 # finished; t1 again: the later wins
    assert rec.get() == {"node1": 100, "t1": 500, "t2": 400}
    read = rec.offset
    assert rec.get() is rec.pids and rec.offset == read      # nothing new: nothing read
    path.write_text("7\tmininet:node9\n")                     # a new, shorter record
    assert rec.get() == {"node9": 7}
