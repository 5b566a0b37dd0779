"""The trace's prediction from the model, and its comparison with captured packets (the
kernel's and the bridges' text from a real testbed: fixtures/trace)."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarmmesh.model import Cluster, InvalidConfigError
from swarmmesh.trace import compare, parse, render
from swarmmesh.trace.dest import parse_dest, parse_source
from swarmmesh.trace.predict import predict
from swarmmesh.trace.parse import Seen

FIX = Path(__file__).parent / "fixtures" / "trace"
STACK = FIX / "stack.yml"


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    return Cluster.from_stack(STACK, nodes=3, implicit_network=False)


def trace(cluster, source, dest, pick=None, sport=51686):
    return predict(cluster, parse_source(cluster, source), parse_dest(cluster, dest), pick,
                   sport)


def stages(path):
    return [(h.host, h.stage) for h in path.hops]


def test_the_fixture_cluster_is_the_one_the_fixtures_came_from(cluster):
    assert [(t.name, t.node) for t in cluster.tasks_of("app")] == [("app.1", "node1"),
                                                                    ("app.2", "node2")]


def test_ingress_via_a_node_without_the_task_crosses_vxlan_both_ways(cluster):
    p = trace(cluster, "c1", "node3:8000", pick="app.1")
    assert p.candidates == ("app.1", "app.2") and p.pick == "app.1"
    assert stages(p) == [("c1", "client"), ("node3", "nft"), ("node3", "nft"),
                         ("node3", "bridge"), ("node3", "vxlan"), ("node1", "bridge"),
                         ("t1", "task"), ("node1", "bridge"), ("node1", "vxlan"),
                         ("node3", "bridge"), ("node3", "reply")]
    vx = p.hops[4]
    assert vx.capture.vni == 4096 and vx.capture.outer == ("192.168.99.3", "192.168.99.1")
    assert [str(r) for r in p.hops[1].rewrites] == ["dnat 192.168.99.3:8000 -> 10.0.0.6:80"]
    assert [str(r) for r in p.hops[2].rewrites] == [
        "snat 192.168.99.201:51686 -> 10.0.0.4:51686"]
    assert str(p.hops[6].packet) == "tcp 10.0.0.4:51686 > 10.0.0.6:80"
    assert str(p.hops[-1].packet) == "tcp 192.168.99.3:8000 > 192.168.99.201:51686"


def test_ingress_via_a_node_with_the_task_stays_on_its_bridge(cluster):
    p = trace(cluster, "c1", "node1:8000", pick="app.1")
    assert "vxlan" not in [h.stage for h in p.hops]
    assert p.hops[3].matched == "in_port 1, tables 0 -> 22 -> 40, output 10"
    assert p.hops[5].matched == "in_port 10, tables 0 -> 32, output 1"


def test_host_mode_goes_straight_to_the_local_task_and_keeps_the_client(cluster):
    p = trace(cluster, "c1", "node1:8080")
    assert stages(p) == [("c1", "client"), ("node1", "nft"), ("t7", "task"),
                         ("node1", "reply")]
    assert p.hops[2].packet.src == "192.168.99.201" and p.hops[2].packet.dst == "172.18.1.7"
    assert p.hops[2].capture.intf == "t7-ethgw"


def test_host_mode_is_refused_on_a_node_without_its_task(cluster):
    p = trace(cluster, "c1", "node3:8080")
    assert stages(p) == [("c1", "client"), ("node3", "refused")]
    assert "bound only where a task runs (node1)" in p.refused


def test_a_port_nobody_publishes_is_refused(cluster):
    assert "no service publishes 9999/tcp" in trace(cluster, "c1", "node2:9999").refused
    assert "no service publishes 8000/udp" in trace(cluster, "c1", "node2:8000/udp").refused


def test_local_traffic_policy_keeps_the_client_or_refuses(cluster):
    [near] = cluster.tasks_of("near")
    local = trace(cluster, "c1", f"{near.node}:8090")
    assert local.pick == "near.1" and local.hops[2].packet.src == "192.168.99.201"
    other = next(n.name for n in cluster.nodes if n.name != near.node)
    assert "traffic_policy local: no task of near" in trace(cluster, "c1",
                                                            f"{other}:8090").refused


def test_udp_port_takes_the_mesh(cluster):
    p = trace(cluster, "c1", "node3:5353/udp")
    assert p.pick == "dgram.1" and p.hops[1].packet.proto == "udp"
    assert "udp dport 5353 dnat" in p.hops[1].matched


def test_east_west_vip_goes_through_the_nodes_kernel(cluster):
    """The bridge hands the VIP to the kernel's lb-n<j> leg, whose prerouting DNATs
    (its pick rule) and postrouting SNATs to the node's LB address; then delivery."""
    p = trace(cluster, "app.1", "db:80", pick="db.1")
    to_kernel, dnat, snat, back = p.hops[1:5]
    assert (to_kernel.stage, to_kernel.detail[-1]) == ("bridge", "output=65001")
    assert dnat.stage == "nft" and "chain prerouting: iifname \"lb-n1\" ip daddr 10.0.1.12 " \
        "dnat to numgen inc mod" in dnat.matched
    assert [str(r) for r in dnat.rewrites] == ["dnat 10.0.1.12:80 -> 10.0.1.4:80"]
    assert [str(r) for r in snat.rewrites] == ["snat 10.0.1.2:51686 -> 10.0.1.8:51686"]
    assert snat.capture.intf == "lb-n1"
    assert (back.stage, back.detail[0]) == ("bridge", "in_port=65001")
    assert p.hops[5].capture.vni == 4097
    assert p.hops[7].packet.src == "10.0.1.8"          # the node's LB address
    assert p.why_pick.startswith("VIP 10.0.1.12: rr: the node's counter")


def test_dnsrr_goes_to_the_task_itself_without_nat(cluster):
    p = trace(cluster, "app.1", "dns:80", pick="dns.2")
    assert p.pick == "dns.2" and p.hops[1].rewrites == ()
    assert p.hops[-2].packet.src == "10.0.1.2"


def test_an_isolated_network_is_refused(cluster):
    p = trace(cluster, "app.1", "lone:80")
    assert p.refused.startswith("isolated: app.1 is on back, ingress, lone on front")


def test_bad_arguments_name_themselves(cluster):
    with pytest.raises(InvalidConfigError, match="SOURCE"):
        parse_source(cluster, "c9")
    with pytest.raises(InvalidConfigError, match="DEST"):
        parse_dest(cluster, "node3")
    with pytest.raises(InvalidConfigError, match="DEST"):
        parse_dest(cluster, "node3:80/sctp")
    assert parse_dest(cluster, "192.168.99.2:8000").node == "node2"


def observed_node3(answer) -> compare.Observed:
    """What the real testbed printed for c1 -> node3:8000 (app.1 answered)."""
    nft = parse.nft_first_packet(parse.parse_nft_trace((FIX / "nft_trace_ingress.txt")
                                                       .read_text()), ("swarmmesh",))
    ct = parse.parse_conntrack((FIX / "conntrack_ingress.txt").read_text())
    of = {(node, port): parse.parse_ofproto_trace((FIX / name).read_text())
          for node, port, name in (("node3", 1, "ofproto_ingress_out.txt"),
                                   ("node1", 2, "ofproto_ingress_in.txt"),
                                   ("node3", 2, "ofproto_reply_in.txt"))}
    return compare.Observed(nft={"node3": nft}, conntrack={"node3": ct}, ofproto=of,
                            answer=answer)


def test_the_kernel_and_bridge_hops_agree_with_the_real_text(cluster):
    p = trace(cluster, "c1", "node3:8000", pick="app.1")
    obs = observed_node3({"task": "app.1", "client": "10.0.0.4", "client_port": 51686})
    obs.seen[("node3", "gwbr")] = [Seen("tcp", "10.0.0.4", 51686, "10.0.0.6", 80)]
    obs.seen[("c1", "c1-eth0")] = [Seen("tcp", "192.168.99.201", 51686, "192.168.99.3", 8000)]
    v = compare.verify(p, obs)
    assert [h.verified for h in v.hops[1:4]] == [True, True, True]
    assert v.hops[5].verified is True                       # node1's bridge, from VXLAN
    assert "table 0 priority 200 cookie 0x5357168f492d87aa" in "\n".join(v.hops[3].detail)
    assert not v.verified                                   # the captures are missing
    assert v.first_disagreement().stage == "vxlan"


def test_a_wrong_pick_is_the_first_hop_that_disagrees(cluster):
    p = trace(cluster, "c1", "node3:8000", pick="app.2")
    obs = observed_node3({"task": "app.1", "client": "10.0.0.4"})
    obs.seen[("c1", "c1-eth0")] = [Seen("tcp", "192.168.99.201", 51686, "192.168.99.3", 8000)]
    v = compare.verify(p, obs)
    bad = v.first_disagreement()
    assert (bad.host, bad.stage) == ("node3", "nft")
    assert "DIFFERS" in render.text(v) and "NOT VERIFIED: hop 1" not in render.text(v)


def test_a_refusal_is_verified_by_the_client_and_conntrack(cluster):
    p = trace(cluster, "c1", "node3:8080", sport=33782)
    ct = parse.parse_conntrack((FIX / "conntrack_refused.txt").read_text())
    obs = compare.Observed(conntrack={"node3": ct}, answer={"refused": True},
                           seen={("c1", "c1-eth0"): [Seen("tcp", "192.168.99.201", 33782,
                                                          "192.168.99.3", 8080)]})
    v = compare.verify(p, obs)
    assert v.verified, render.text(v)
    obs.answer = {"task": "web.1", "client": "192.168.99.201"}
    assert compare.verify(p, obs).first_disagreement().stage == "refused"


def test_json_form(cluster):
    d = trace(cluster, "c1", "node3:8080").to_dict()
    assert d["verified"] is False and d["refused"] and len(d["hops"]) == 2
    assert d["hops"][0]["capture"]["intf"] == "c1-eth0"
