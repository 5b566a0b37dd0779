"""The commands the live trace sends (pure parts of swarmmesh.runs.tracing)."""

from __future__ import annotations

from pathlib import Path

from swarmmesh.model import Cluster
from swarmmesh.runs import tracing
from swarmmesh.trace.dest import parse_dest, parse_source
from swarmmesh.trace.predict import predict

FIX = Path(__file__).parent / "fixtures" / "trace"


def cluster() -> Cluster:
    return Cluster.from_stack(FIX / "stack.yml", nodes=3, implicit_network=False)


def test_the_trace_table_marks_only_the_clients_packets_before_conntrack():
    text = tracing.nft_trace_script("192.168.99.201", "udp", 5353)
    assert "table ip swarmmesh_trace" in text and "priority -350" in text
    assert "ip saddr 192.168.99.201 udp dport 5353 meta nftrace set 1" in text
    assert "type filter hook prerouting" in text


def test_captures_watch_the_overlay_on_a_nodes_underlay_leg_and_the_protocol_elsewhere():
    assert tracing.capture_filter("node3-eth0", "tcp") == ["udp", "port", "4789"]
    assert tracing.capture_filter("c1-eth0", "udp") == ["udp"]
    assert tracing.capture_filter("gwbr", "tcp") == ["tcp"]


def test_every_candidates_capture_point_is_watched():
    c = cluster()
    src, dest = parse_source(c, "c1"), parse_dest(c, "node3:8000")
    plans = [predict(c, src, dest, pick=t) for t in ("app.1", "app.2")]
    pts = tracing.points(plans)
    assert ("t1", "t1-eth0") in pts and ("t2", "t2-eth0") in pts
    assert ("node3", "node3-eth0") in pts and ("node1", "node1-eth0") in pts
    assert len(pts) == len(set(pts))


def test_ofproto_flow_is_the_packet_as_it_enters_the_bridge():
    c = cluster()
    mesh = predict(c, parse_source(c, "c1"), parse_dest(c, "node3:5353/udp"), sport=40000)
    i = next(i for i, h in enumerate(mesh.hops) if h.stage == "bridge")
    assert tracing.ofproto_flow(mesh.hops[i], tracing.entering_packet(mesh, i)) == (
        "in_port=1,udp,nw_src=10.0.0.4,nw_dst=10.0.0.11,nw_ttl=64,udp_src=40000,udp_dst=80")
    vip = predict(c, parse_source(c, "app.1"), parse_dest(c, "db:80"), sport=40000)
    flow = tracing.ofproto_flow(vip.hops[1], tracing.entering_packet(vip, 1))
    assert flow == ("in_port=1001,tcp,nw_src=10.0.1.2,nw_dst=10.0.1.12,nw_ttl=64,"
                    "tcp_src=40000,tcp_dst=80")                  # before the VIP's NAT


def test_the_answer_or_how_the_connection_failed():
    assert tracing.answer_of({"answer": {"task": "app.1"}}) == {"task": "app.1"}
    assert tracing.answer_of({"refused": True}) == {"refused": True}
    assert tracing.answer_of({"error": "[Errno 101] Network is unreachable"}) == \
        {"unreachable": True}
    assert tracing.answer_of({"unresolved": True}) == {"unresolved": True}
