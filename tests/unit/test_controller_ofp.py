"""swarmmesh.control.app turns rule flows into OpenFlow 1.3 messages that serialize
and parse back (os-ken only, no switch, no root)."""

from __future__ import annotations

import socket

import pytest

from os_ken.ofproto import ofproto_parser, ofproto_protocol, ofproto_v1_3
from os_ken.ofproto import ofproto_v1_3_parser as parser

from swarmmesh.control.ofp import NX_NAT_F_DST, NX_NAT_F_SRC, to_actions
from swarmmesh.control.ofp import flow_mod as ofp_flow_mod
from swarmmesh.dataplane import layout, rules, sync
from swarmmesh.dataplane.flows import (COOKIE_LEARNED, Ct, Flow, Goto, Learn, Nat, Output,
                                      Resubmit, SetField, flow)
from swarmmesh.model import Cluster

ofp = ofproto_v1_3


class FakeDatapath(ofproto_protocol.ProtocolDesc):
    """What os-ken's own parser tests use (ProtocolDesc gives ``ofproto`` and
    ``ofproto_parser``), plus a ``send_msg`` that records."""

    def __init__(self, dpid: int = 1) -> None:
        super().__init__(version=ofp.OFP_VERSION)
        self.id = dpid
        self.sent: list = []

    def send_msg(self, msg) -> None:
        self.sent.append(msg)


CLUSTER = Cluster.quick(4, 3)
FLOWS = rules.node_flows(CLUSTER, "node1")
# East-west: a VIP's round-robin pick still learns (tables 12-15).
VIP_CLUSTER = Cluster.from_stack({"networks": {"front": {}}, "services": {
    "web": {"deploy": {"replicas": 3}, "networks": ["front"]}}}, nodes=4)
VIP_FLOWS = rules.node_flows(VIP_CLUSTER, "node1")


def flow_mod(dp, f: Flow):
    """The FlowMod for ``f``, as the controller builds it (``ofp.flow_mod``; the app sends
    its bytes, :mod:`test_controller_batches`), sent to ``dp``."""
    before = len(dp.sent)
    dp.send_msg(ofp_flow_mod(dp, f))
    assert len(dp.sent) == before + 1
    return dp.sent[-1]


def round_trip(dp, msg):
    msg.serialize()
    version, msg_type, msg_len, xid = ofproto_parser.header(msg.buf)
    assert (version, msg_type, msg_len) == (ofp.OFP_VERSION, ofp.OFPT_FLOW_MOD, len(msg.buf))
    return parser.msg_parser(dp, version, msg_type, msg_len, xid, bytes(msg.buf))


def apply_actions(msg) -> list:
    insts = [i for i in msg.instructions if isinstance(i, parser.OFPInstructionActions)]
    assert len(insts) <= 1
    return insts[0].actions if insts else []


def ip_int(ip: str) -> int:
    return int.from_bytes(socket.inet_aton(ip), "big")


def flows_with(action_type, table: int | None = None) -> list[Flow]:
    return [f for f in FLOWS if (table is None or f.table == table)
            and any(isinstance(a, action_type) for a in f.actions)]


@pytest.mark.parametrize("index", range(len(FLOWS)),
                         ids=[f"t{f.table}p{f.priority}n{i}" for i, f in enumerate(FLOWS)])
def test_every_flow_serializes_and_parses_back(index):
    f = FLOWS[index]
    dp = FakeDatapath()
    msg = flow_mod(dp, f)
    parsed = round_trip(dp, msg)
    assert isinstance(parsed, parser.OFPFlowMod)
    assert (parsed.table_id, parsed.priority, parsed.cookie, parsed.command) == (
        f.table, f.priority, sync.flow_cookie(f), ofp.OFPFC_ADD)
    assert len(parsed.instructions) == len(msg.instructions)
    assert dict(parsed.match.items()) == f.match_dict
    goto = [a for a in f.actions if isinstance(a, Goto)]
    others = [a for a in f.actions if not isinstance(a, Goto)]
    assert len(parsed.instructions) == bool(goto) + bool(others)
    assert len(apply_actions(parsed)) == len(others)
    gotos = [i for i in parsed.instructions if isinstance(i, parser.OFPInstructionGotoTable)]
    assert [i.table_id for i in gotos] == [a.table for a in goto]
    # and what came back serializes to the very same bytes
    again = parser.OFPFlowMod(dp, cookie=parsed.cookie, table_id=parsed.table_id,
                              command=parsed.command, priority=parsed.priority,
                              match=parsed.match, instructions=parsed.instructions)
    again.serialize()
    assert bytes(again.buf[8:]) == bytes(msg.buf[8:])        # all but the header's xid


def test_all_flows_of_every_node_serialize():
    dp = FakeDatapath()
    for node in CLUSTER.nodes:
        for f in rules.node_flows(CLUSTER, node.name):
            round_trip(dp, flow_mod(dp, f))
    assert len(dp.sent) == sum(len(rules.node_flows(CLUSTER, n.name)) for n in CLUSTER.nodes)


def test_ct_with_dnat_carries_ip_and_port():
    dp = FakeDatapath()
    f = flow(rules.T_VIP_STATE, 100, {"eth_type": rules.ETH_IP},
             [Ct(3, rules.T_LB_SNAT_CT, commit=True, nat=Nat("dst", "10.0.1.5", 80))])
    for msg in (flow_mod(dp, f), round_trip(dp, flow_mod(dp, f))):
        ct = apply_actions(msg)[-1]
        assert isinstance(ct, parser.NXActionCT)
        assert (ct.flags, ct.zone_ofs_nbits, ct.recirc_table) == (1, 3, rules.T_LB_SNAT_CT)
        assert not ct.zone_src
        nat, = [a for a in ct.actions if isinstance(a, parser.NXActionNAT)]
        assert nat.flags == NX_NAT_F_DST
        assert (nat.range_ipv4_min, nat.range_ipv4_max) == ("10.0.1.5", "10.0.1.5")
        assert (nat.range_proto_min, nat.range_proto_max) == (80, 80)


def test_vip_pick_dnats_to_the_task_and_keeps_the_port():
    dp = FakeDatapath()
    tasks = VIP_CLUSTER.tasks_of("web")
    picks = sorted((f for f in VIP_FLOWS if f.table == rules.T_RR_PICK and f.priority == 100
                    and f.match_dict.get("ip_proto") == 6), key=lambda f: f.match_dict["reg1"])
    assert len(picks) == len(tasks) == 3
    for f, task in zip(picks, tasks):
        ct = apply_actions(round_trip(dp, flow_mod(dp, f)))[-1]
        assert (ct.flags, ct.zone_ofs_nbits, ct.recirc_table) == (
            1, rules.ZONE_VIP_DNAT, rules.T_LB_SNAT_CT)
        nat, = [a for a in ct.actions if isinstance(a, parser.NXActionNAT)]
        ip = str(task.addresses["front"])
        assert (nat.flags, nat.range_ipv4_min, nat.range_ipv4_max) == (NX_NAT_F_DST, ip, ip)
        assert not nat.range_proto_min and not nat.range_proto_max


def test_ct_snat_and_bare_nat():
    dp = FakeDatapath()
    snat, = [f for f in VIP_FLOWS if f.table == rules.T_LB_SNAT_STATE
             and any(isinstance(a, Ct) for a in f.actions)]
    ct, = apply_actions(round_trip(dp, flow_mod(dp, snat)))
    nat, = ct.actions
    assert (ct.flags, ct.zone_ofs_nbits, ct.recirc_table) == (1, rules.ZONE_LB_SNAT,
                                                             rules.T_LB_OUT)
    assert nat.flags == NX_NAT_F_SRC
    ip = str(VIP_CLUSTER.node("node1").lb_ips["front"])
    assert (nat.range_ipv4_min, nat.range_ipv4_max) == (ip, ip)
    assert not nat.range_proto_min and not nat.range_proto_max
    # bare "nat": no flags, no range, no commit
    for table, zone, recirc in ((rules.T_VIP_CT, rules.ZONE_VIP_DNAT, rules.T_VIP_STATE),
                                (rules.T_LB_SNAT_CT, rules.ZONE_LB_SNAT, rules.T_LB_SNAT_STATE),
                                (rules.T_LB_RPL_SNAT, rules.ZONE_LB_SNAT, rules.T_LB_RPL_DNAT),
                                (rules.T_LB_RPL_DNAT, rules.ZONE_VIP_DNAT, rules.T_LB_RPL_OUT)):
        f, = [f for f in VIP_FLOWS if f.table == table and any(isinstance(a, Ct) for a in f.actions)]
        ct, = apply_actions(round_trip(dp, flow_mod(dp, f)))
        assert (ct.flags, ct.zone_ofs_nbits, ct.recirc_table) == (0, zone, recirc)
        nat, = ct.actions
        assert nat.flags == 0 and not nat.range_ipv4_min


def test_ingress_flows_keep_no_state():
    """The node's kernel NATs ingress connections: no ingress flow uses conntrack."""
    assert not flows_with(Ct, 0) and not [f for f in FLOWS if any(
        isinstance(a, Ct) for a in f.actions)]


def test_learn_has_the_right_specs():
    dp = FakeDatapath()
    f = [f for f in VIP_FLOWS if f.table == rules.T_RR_PICK
         and any(isinstance(a, Learn) for a in f.actions)][0]
    k = f.match_dict["reg1"]
    vip = str(VIP_CLUSTER.services["web"].vips["front"])
    for msg in (flow_mod(dp, f), round_trip(dp, flow_mod(dp, f))):
        ptr, conn = [a for a in apply_actions(msg) if isinstance(a, parser.NXActionLearn)]
        # the pointer: 3 immediate matches (network tag, the VIP) + 1 load (next task)
        assert (ptr.table_id, ptr.priority, ptr.cookie) == (rules.T_RR_PTR, 100,
                                                             COOKIE_LEARNED)
        assert len(ptr.specs) == 4
        assert [type(s) for s in ptr.specs] == [parser.NXFlowSpecMatch] * 3 + [
            parser.NXFlowSpecLoad]
        assert {s.dst[0]: s.src for s in ptr.specs[:3]} == {
            "eth_type_nxm": rules.ETH_IP, "ipv4_dst_nxm": ip_int(vip), "reg2": 1}
        load = ptr.specs[3]
        assert (load.dst, load.n_bits, load.src) == (("reg1", 0), 32, (k + 1) % 3)
        # the per-connection flow: 2 immediate + 4 copied fields + the task loaded in reg3
        assert (conn.table_id, conn.hard_timeout) == (rules.T_RR_CONN,
                                                      rules.LEARN_CONN_HARD_TIMEOUT)
        assert len(conn.specs) == 7
        copied = [s for s in conn.specs
                  if isinstance(s, parser.NXFlowSpecMatch) and isinstance(s.src, tuple)]
        assert [(s.src, s.dst, s.n_bits) for s in copied] == [
            (("ipv4_src_nxm", 0), ("ipv4_src_nxm", 0), 32),
            (("tcp_src_nxm", 0), ("tcp_src_nxm", 0), 16),
            (("ipv4_dst_nxm", 0), ("ipv4_dst_nxm", 0), 32),
            (("tcp_dst_nxm", 0), ("tcp_dst_nxm", 0), 16)]
        picked, = [s for s in conn.specs if isinstance(s, parser.NXFlowSpecLoad)]
        task = [t for t in VIP_CLUSTER.tasks_of("web")][k]
        assert (picked.dst, picked.src) == (("reg3", 0), layout.task_number(task))


def test_output_in_port_and_arp_moves():
    dp = FakeDatapath()
    arp = [f for f in FLOWS if f.match_dict.get("arp_op") == 1]
    assert arp
    for f in arp:
        acts = apply_actions(round_trip(dp, flow_mod(dp, f)))
        assert isinstance(acts[-1], parser.OFPActionOutput)
        assert acts[-1].port == ofp.OFPP_IN_PORT
        moves = [a for a in acts if isinstance(a, parser.NXActionRegMove)]
        assert [(m.src_field, m.dst_field, m.n_bits) for m in moves] == [
            ("eth_src_nxm", "eth_dst_nxm", 48), ("arp_sha_nxm", "arp_tha_nxm", 48),
            ("arp_spa_nxm", "arp_tpa_nxm", 32)]
        sets = {a.key: a.value for a in acts if isinstance(a, parser.OFPActionSetField)}
        assert sets["arp_op"] == 2 and sets["eth_src"] == sets["arp_sha"]


def test_numbered_output_resubmit_goto_and_drop():
    dp = FakeDatapath()
    # Output(PORT_GW) on the reply path
    out, = flows_with(Output, rules.T_RPL_OUT)
    acts = apply_actions(round_trip(dp, flow_mod(dp, out)))
    assert acts[-1].port == layout.PORT_GW
    # A VIP: TCP resubmits to the pointer and the pick; UDP to the known flows, then
    # the dispatch, which goes to the pointer and pick
    for table, want in ((rules.T_VIP_STATE, (rules.T_RR_CONN, rules.T_RR_DISPATCH)),
                        (rules.T_VIP_STATE, (rules.T_RR_PTR, rules.T_RR_PICK)),
                        (rules.T_RR_DISPATCH, (rules.T_RR_PTR, rules.T_RR_PICK))):
        f = next(f for f in VIP_FLOWS if f.table == table
                 and f.match_dict.get("ip_proto", 17) == (6 if want[0] == rules.T_RR_PTR
                                                          and table == rules.T_VIP_STATE else 17)
                 and any(isinstance(a, Resubmit) for a in f.actions))
        acts = apply_actions(round_trip(dp, flow_mod(dp, f)))
        assert [(type(a), a.table_id) for a in acts] == [
            (parser.NXActionResubmitTable, want[0]), (parser.NXActionResubmitTable, want[1])]
    # A Goto alone: one goto instruction, no apply-actions
    cls = [f for f in FLOWS if f.table == 0 and f.actions == (Goto(rules.T_FWD_OUT),)]
    msg = round_trip(dp, flow_mod(dp, cls[0]))
    assert [type(i) for i in msg.instructions] == [parser.OFPInstructionGotoTable]
    # SetField + Goto: both instructions
    fwd, = [f for f in FLOWS if f.table == rules.T_FWD_OUT]
    msg = round_trip(dp, flow_mod(dp, fwd))
    assert [type(i) for i in msg.instructions] == [parser.OFPInstructionActions,
                                                   parser.OFPInstructionGotoTable]
    # The table-miss drop: no instruction at all
    miss, = [f for f in FLOWS if f.table == 0 and f.priority == 0]
    assert round_trip(dp, flow_mod(dp, miss)).instructions == []


def test_register_set_field():
    dp = FakeDatapath()
    ptr, = [f for f in VIP_FLOWS if f.table == rules.T_RR_PTR]
    act, = apply_actions(round_trip(dp, flow_mod(dp, ptr)))
    assert isinstance(act, parser.OFPActionSetField) and (act.key, act.value) == ("reg1", 0)


def test_to_actions_returns_goto_separately():
    acts, goto = to_actions(parser, ofp, (SetField("eth_src", "02:42:0a:ff:00:02"),
                                          Goto(40)))
    assert goto == 40 and len(acts) == 1
    assert to_actions(parser, ofp, ()) == ([], None)


def test_east_west_flows_serialize_and_parse_back():
    """User networks add reg2 matches/loads and port-less DNAT: all must encode."""
    from tests.stacks import EASTWEST as STACK
    cluster = Cluster.from_stack(STACK, nodes=3)
    dp = FakeDatapath()
    count = 0
    for node in cluster.nodes:
        for f in rules.network_flows(cluster, node.name):
            parsed = round_trip(dp, flow_mod(dp, f))
            assert dict(parsed.match.items()) == f.match_dict
            count += 1
    assert count > 100


def test_vip_dnat_keeps_the_port_and_learn_matches_the_network():
    from tests.stacks import EASTWEST as STACK
    cluster = Cluster.from_stack(STACK, nodes=3)
    flows = [f for f in rules.network_flows(cluster, "node1")
             if f.table == rules.T_RR_PICK]
    dp = FakeDatapath()
    msg = round_trip(dp, flow_mod(dp, flows[0]))
    acts = apply_actions(msg)
    learn = [a for a in acts if isinstance(a, parser.NXActionLearn)]
    assert learn[0].table_id == rules.T_RR_PTR
    ptr_dsts = {s.dst[0] for s in learn[0].specs}
    assert {"reg2", "ipv4_dst_nxm", "reg1"} <= ptr_dsts
    ct = [a for a in acts if isinstance(a, parser.NXActionCT)][0]
    nat = [a for a in ct.actions if isinstance(a, parser.NXActionNAT)][0]
    assert nat.range_proto_min is None or nat.range_proto_min == 0


def test_replies_to_the_first_sync_are_handled_before_the_switch_reaches_main():
    """The flow-stats request leaves while the switch is in CONFIG_DISPATCHER; its reply and
    the barrier's may arrive before os-ken moves it to MAIN, and os-ken delivers an event
    only to handlers of the switch's state at arrival (seen on the kernel datapath)."""
    from os_ken.controller import ofp_event
    from os_ken.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER
    from swarmmesh.control.app import MeshController
    for handler, event in ((MeshController.flow_stats, ofp_event.EventOFPFlowStatsReply),
                           (MeshController.barrier_reply, ofp_event.EventOFPBarrierReply)):
        assert {CONFIG_DISPATCHER, MAIN_DISPATCHER} <= set(handler.callers[event].dispatchers)
