"""The trace's parsers, on text the tools printed in a real testbed (fixtures/trace)."""

from __future__ import annotations

from pathlib import Path

from swarmmesh.trace import parse

FIX = Path(__file__).parent / "fixtures" / "trace"


def text(name: str) -> str:
    return (FIX / name).read_text()


def test_nft_trace_names_the_rules_of_the_first_packet_in_order():
    events = parse.parse_nft_trace(text("nft_trace_ingress.txt"))
    first = parse.nft_first_packet(events, ("swarmmesh",))
    rules = [(e.chain, e.text, e.verdict) for e in first if e.kind == "rule"]
    assert rules == [
        ("prerouting", "fib daddr type local jump mesh", "jump mesh"),
        ("mesh", "tcp dport 8000 dnat to numgen inc mod 2 map { 0 : 10.0.0.6, "
                 "1 : 10.0.0.7 }:80", "accept"),
        ("postrouting", 'oifname "gwbr" ip daddr 10.0.0.0/24 snat to 10.0.0.4', "accept")]


def test_nft_trace_packet_fields_show_the_dnat_between_chains():
    first = parse.nft_first_packet(parse.parse_nft_trace(text("nft_trace_ingress.txt")),
                                   ("swarmmesh",))
    packets = [e.fields for e in first if e.kind == "packet"]
    assert packets[0]["ip daddr"] == "192.168.99.3" and packets[0]["tcp dport"] == "8000"
    assert packets[0]["iif"] == "node3-eth0" and packets[0]["tcp flags"] == "syn"
    assert packets[1]["ip daddr"] == "10.0.0.6" and packets[1]["tcp dport"] == "80"
    assert packets[1]["oif"] == "gwbr"


def test_nft_trace_a_reused_id_starts_a_new_packet():
    events = parse.parse_nft_trace(text("nft_trace_ingress.txt"))
    first = parse.nft_first_packet(events, ("swarmmesh_trace",))
    assert [e.kind for e in first] == ["packet", "rule", "policy"]
    assert first[0].fields["tcp flags"] == "syn"


def test_ofproto_trace_lists_tables_priorities_cookies_and_the_output_port():
    t = parse.parse_ofproto_trace(text("ofproto_ingress_out.txt"))
    assert [(r.table, r.priority) for r in t.rules] == [(0, 200), (22, 100), (40, 100)]
    assert t.rules[0].match == "tcp,in_port=1,nw_dst=10.0.0.6,tp_dst=80"
    assert t.rules[0].cookie == "0x5357168f492d87aa"
    assert t.rules[1].actions == ["set_field:02:42:0a:00:00:04->eth_src", "goto_table:40"]
    assert t.outputs == ["2"] and not t.dropped
    assert t.datapath_actions == "set(eth(src=02:42:0a:00:00:04,dst=02:42:0a:00:00:06)),5"
    assert "dl_src=02:42:0a:00:00:04" in t.final_flow


def test_ofproto_trace_of_a_drop():
    t = parse.parse_ofproto_trace(text("ofproto_drop.txt"))
    assert [(r.table, r.priority, r.actions) for r in t.rules] == [(0, 165, ["drop"])]
    assert t.dropped and t.outputs == []


def test_ofproto_trace_follows_conntrack_recirculations_and_their_nat():
    t = parse.parse_ofproto_trace(text("ofproto_vip.txt"))
    assert [r.table for r in t.rules] == [0, 50, 60, 61, 12, 13, 62, 63, 64, 80]
    assert t.outputs == ["1000"]
    assert t.nat == ["nw_src=10.0.1.2,tp_src=40000,nw_dst=10.0.1.12,tp_dst=80 -> "
                     "nw_src=10.0.1.2,tp_src=40000,nw_dst=10.0.1.4,tp_dst=80",
                     "nw_src=10.0.1.2,tp_src=40000,nw_dst=10.0.1.4,tp_dst=80 -> "
                     "nw_src=10.0.1.8,tp_src=40000,nw_dst=10.0.1.4,tp_dst=80"]
    pick = next(r for r in t.rules if r.table == 13)
    assert "nat(dst=10.0.1.4)" in pick.actions


def test_conntrack_event_gives_the_nat_tuple():
    events = parse.parse_conntrack(text("conntrack_ingress.txt"))
    assert [e.event for e in events] == ["NEW"] + ["UPDATE"] * 5
    assert [e.state for e in events] == ["SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT",
                                         "LAST_ACK", "TIME_WAIT"]
    e = events[0]
    assert e.orig == ("192.168.99.201", "192.168.99.3", 51686, 8000)
    assert e.reply == ("10.0.0.6", "10.0.0.4", 80, 51686)
    assert e.dnat == ("10.0.0.6", 80) and e.snat == ("10.0.0.4", 51686)
    assert e.flags == ("UNREPLIED",) and events[2].flags == ("ASSURED",)


def test_conntrack_event_with_timestamp_and_id():
    e = parse.parse_conntrack(text("conntrack_ingress_ts.txt"))[0]
    assert e.timestamp == 1796417929.243514 and e.ct_id == "3675421273"
    assert e.bytes is None


def test_conntrack_host_mode_dnat_without_snat_and_a_refusal():
    [new, *_] = parse.parse_conntrack(text("conntrack_host.txt"))
    assert new.dnat == ("172.18.1.7", 80) and new.snat is None
    refused = parse.parse_conntrack(text("conntrack_refused.txt"))
    assert [e.event for e in refused] == ["NEW", "DESTROY"]
    assert refused[0].dnat is None and refused[1].state == "CLOSE"


def test_conntrack_counters_when_accounting_is_on():
    line = ("[DESTROY] tcp      6 src=192.168.99.201 dst=192.168.99.3 sport=51686 dport=8000 "
            "packets=6 bytes=397 src=10.0.0.6 dst=10.0.0.4 sport=80 dport=51686 "
            "packets=4 bytes=518 [ASSURED]")
    e = parse.parse_conntrack_line(line)
    assert e.packets == (6, 4) and e.bytes == (397, 518)
    assert e.dnat == ("10.0.0.6", 80)


def test_tcpdump_vxlan_packets_carry_their_inner_addresses_vni_and_outer_ends():
    seen = parse.parse_tcpdump(text("tcpdump_vxlan.txt"))
    first = seen[0]
    assert (first.proto, first.src, first.sport, first.dst, first.dport) == \
        ("tcp", "10.0.1.8", 58790, "10.0.1.4", 80)
    assert first.vni == 4097 and first.outer == ("192.168.99.1", "192.168.99.3")
    assert seen[1].src == "10.0.1.4" and seen[1].outer == ("192.168.99.3", "192.168.99.1")
    assert all(s.vni == 4097 for s in seen)


def test_tcpdump_a_udp_port_tcpdump_decodes_as_an_application():
    # 5353 is printed as mDNS ("domain"): the capture's filter names the protocol
    assert parse.parse_tcpdump(text("tcpdump_udp.txt"))[0].proto != "udp"
    seen = parse.parse_tcpdump(text("tcpdump_udp.txt"), "udp")
    assert [(s.proto, s.src, s.dport) for s in seen] == [
        ("udp", "192.168.99.201", 5353), ("udp", "192.168.99.2", seen[0].sport)]


def test_ofproto_trace_error_is_kept_as_the_answer():
    t = parse.parse_ofproto_trace("Bad openflow flow syntax: in_port=1,udp,tp_src=1: "
                                  "prerequisites not met for setting tp_src\n")
    assert t.rules == [] and t.datapath_actions.startswith("error: Bad openflow flow syntax")
