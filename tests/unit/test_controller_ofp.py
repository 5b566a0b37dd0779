"""swarmmesh.control.app turns rule flows into OpenFlow 1.3 messages that serialize
and parse back (os-ken only, no switch, no root)."""

from __future__ import annotations

import pytest

from os_ken.ofproto import ofproto_parser, ofproto_protocol, ofproto_v1_3
from os_ken.ofproto import ofproto_v1_3_parser as parser

from swarmmesh.control.ofp import to_actions
from swarmmesh.control.ofp import flow_mod as ofp_flow_mod
from swarmmesh.dataplane import layout, rules, sync
from swarmmesh.dataplane.flows import Flow, Goto, Output, SetField
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
# East-west: a VIP goes to the node's kernel (its lb-n<j> leg), which picks.
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


def test_vip_flows_hand_the_vip_to_the_kernels_leg():
    """East-west: a VIP's packets leave for the node's kernel (port 65001, its MAC), and
    so do the replies to the node's LB address; nothing else goes there."""
    dp = FakeDatapath()
    net = VIP_CLUSTER.networks["front"]
    vip = str(VIP_CLUSTER.services["web"].vips["front"])
    lb = str(VIP_CLUSTER.node("node1").lb_ips["front"])
    to_kernel = [f for f in VIP_FLOWS if Output(layout.lb_port(net)) in f.actions]
    assert sorted(f.match_dict["ipv4_dst"] for f in to_kernel) == sorted([vip, vip, lb])
    for f in to_kernel:
        acts = apply_actions(round_trip(dp, flow_mod(dp, f)))
        assert [type(a) for a in acts] == [parser.OFPActionSetField, parser.OFPActionOutput]
        assert (acts[0].key, acts[0].value) == ("eth_dst", layout.lb_leg_mac(net))
        assert acts[1].port == layout.lb_port(net)


def test_output_in_port_and_arp_moves():
    dp = FakeDatapath()
    arp = [f for f in FLOWS if f.match_dict.get("arp_op") == 1 and f.priority == 300]
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


def test_an_arp_block_answers_with_the_docker_mac_of_the_address_asked_for():
    dp = FakeDatapath()
    blocks = [f for f in FLOWS if f.match_dict.get("arp_op") == 1 and f.priority == 290]
    assert any(isinstance(f.match_dict["arp_tpa"], tuple) for f in blocks)
    for f in blocks:
        acts = apply_actions(round_trip(dp, flow_mod(dp, f)))
        assert acts[-1].port == ofp.OFPP_IN_PORT
        moves = [(m.src_field, m.src_ofs, m.dst_field, m.dst_ofs, m.n_bits)
                 for m in acts if isinstance(m, parser.NXActionRegMove)]
        assert moves == [("eth_src_nxm", 0, "eth_dst_nxm", 0, 48),
                         ("arp_tpa_nxm", 0, "eth_src_nxm", 0, 32),
                         ("arp_sha_nxm", 0, "arp_tha_nxm", 0, 48),
                         ("eth_src_nxm", 0, "arp_sha_nxm", 0, 48),
                         ("arp_spa_nxm", 0, "arp_tpa_nxm", 0, 32),
                         ("eth_src_nxm", 0, "arp_spa_nxm", 0, 32)]
        loads = [(a.dst, a.ofs_nbits, a.value) for a in acts
                 if isinstance(a, parser.NXActionRegLoad)]
        assert loads == [("eth_src", 32 << 6 | 15, 0x0242)]


def test_numbered_output_goto_and_drop():
    dp = FakeDatapath()
    # Output(PORT_GW) on the reply path
    out, = flows_with(Output, rules.T_RPL_OUT)
    acts = apply_actions(round_trip(dp, flow_mod(dp, out)))
    assert acts[-1].port == layout.PORT_GW
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
    tag = next(f for f in VIP_FLOWS if f.table == rules.T_CLASSIFY
               and SetField(rules.REG_NET, 1) in f.actions)
    act = apply_actions(round_trip(dp, flow_mod(dp, tag)))[0]
    assert isinstance(act, parser.OFPActionSetField) and (act.key, act.value) == ("reg2", 1)


def test_to_actions_returns_goto_separately():
    acts, goto = to_actions(parser, ofp, (SetField("eth_src", "02:42:0a:ff:00:02"),
                                          Goto(40)))
    assert goto == 40 and len(acts) == 1
    assert to_actions(parser, ofp, ()) == ([], None)


def test_east_west_flows_serialize_and_parse_back():
    """User networks add reg2 matches and loads: all must encode."""
    from tests.stacks import EASTWEST as STACK
    cluster = Cluster.from_stack(STACK, nodes=3)
    dp = FakeDatapath()
    count = 0
    for node in cluster.nodes:
        for f in rules.network_flows(cluster, node.name):
            parsed = round_trip(dp, flow_mod(dp, f))
            assert dict(parsed.match.items()) == f.match_dict
            count += 1
    assert count > 50


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
