"""The controller sends a plan as a few large writes of encoded FlowMods (each distinct
flow encoded once per process), then a barrier: the bytes parse back into exactly the
messages the one-at-a-time path builds, in order (os-ken only, no switch)."""

from __future__ import annotations

import types

from os_ken.ofproto import ofproto_parser, ofproto_protocol, ofproto_v1_3
from os_ken.ofproto import ofproto_v1_3_parser as parser

from swarmmesh.control import app as mesh
from swarmmesh.control import ofp as ofpmod
from swarmmesh.dataplane import layout, rules, sync
from swarmmesh.model import Cluster

ofp = ofproto_v1_3


class RecordingDatapath(ofproto_protocol.ProtocolDesc):
    """os-ken's ProtocolDesc plus what the app calls on a Datapath: raw ``send``,
    ``send_msg`` and ``set_xid``."""

    def __init__(self) -> None:
        super().__init__(version=ofp.OFP_VERSION)
        self.id, self.xid = 1, 0
        self.writes: list[bytes] = []
        self.msgs: list = []

    def send(self, buf) -> None:
        self.writes.append(bytes(buf))

    def send_msg(self, msg) -> None:
        msg.serialize()
        self.msgs.append(msg)

    def set_xid(self, msg) -> int:
        self.xid += 1
        msg.set_xid(self.xid)
        return self.xid


def split(stream: bytes) -> list:
    """An OpenFlow byte stream cut into parsed messages."""
    out, i = [], 0
    while i < len(stream):
        version, msg_type, msg_len, xid = ofproto_parser.header(stream[i:i + 8])
        out.append(parser.msg_parser(RecordingDatapath(), version, msg_type, msg_len, xid,
                                     stream[i:i + msg_len]))
        i += msg_len
    assert i == len(stream)
    return out


def key(msg) -> tuple:
    return (msg.command, msg.table_id, msg.priority, msg.cookie,
            tuple(sorted(msg.match.items())), bytes(encoded(msg)[8:]))


def encoded(msg) -> bytes:
    msg.serialize()
    return msg.buf


def apply(plan: sync.Plan) -> RecordingDatapath:
    dp = RecordingDatapath()
    ctl = types.SimpleNamespace(barriers={})
    mesh.MeshController._apply(ctl, dp, "node1", plan, 7)
    assert list(ctl.barriers.values()) == [("node1", 7)]
    return dp


def test_a_whole_node_goes_out_in_few_writes_as_the_same_messages_in_order():
    cluster = Cluster.quick(6, 30)
    desired = rules.node_flows(cluster, "node1")
    stale = [sync.Installed(5, 77, (("eth_type", 2048),), sync.COOKIE | 1)]
    dp = apply(sync.Plan(add=desired, delete=stale))
    assert len(dp.writes) < len(desired) / 10
    assert all(len(w) <= 64 * 1024 for w in dp.writes)
    got = split(b"".join(dp.writes))
    one = RecordingDatapath()
    want = [ofpmod.flow_mod(one, f) for f in desired] + [ofpmod.delete_mod(one, stale[0])]
    assert [key(m) for m in got] == [key(m) for m in want]
    # then the barrier, with the xid the app waits for
    barrier, = dp.msgs
    assert isinstance(barrier, parser.OFPBarrierRequest) and barrier.xid == dp.xid


def test_each_distinct_flow_is_encoded_once_and_the_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(ofpmod, "_ENCODED", {})
    calls = []
    real = ofpmod.flow_mod
    monkeypatch.setattr(ofpmod, "flow_mod", lambda dp, f: calls.append(f) or real(dp, f))
    cluster = Cluster.quick(4, 8)
    dp = RecordingDatapath()
    for node in cluster.nodes:
        for f in rules.node_flows(cluster, node.name):
            ofpmod.flow_mod_bytes(dp, f)
    distinct = {f for n in cluster.nodes for f in rules.node_flows(cluster, n.name)}
    assert len(calls) == len(distinct) < sum(len(rules.node_flows(cluster, n.name))
                                             for n in cluster.nodes)
    monkeypatch.setattr(ofpmod, "_ENCODED", {})
    monkeypatch.setattr(ofpmod, "ENCODED_MAX", 3)
    for f in list(distinct)[:10]:
        ofpmod.flow_mod_bytes(dp, f)
    assert len(ofpmod._ENCODED) <= 3


def test_batches_keep_order_and_size_and_pass_a_long_message_whole():
    bufs = [bytes([i]) * n for i, n in enumerate([10, 30, 25, 100, 5, 5])]
    out = ofpmod.batches(bufs, limit=40)
    assert b"".join(out) == b"".join(bufs)
    assert out == [bufs[0] + bufs[1], bufs[2], bufs[3], bufs[4] + bufs[5]]
    assert ofpmod.batches([]) == []


def test_a_switch_whose_features_beat_os_kens_own_handler_is_still_programmed():
    """os-ken's OFPHandler sets ``datapath.id`` in its own event loop; the app's features
    handler may run first (seen in the guest) and must take the id from the message."""
    cluster = Cluster.quick(3, 2)
    dp = RecordingDatapath()
    dp.id = None                                          # OFPHandler has not run yet
    dpid = layout.dpid_of(cluster.node("node3"))
    ctl = types.SimpleNamespace(cluster=cluster, stats={}, logger=None)
    ev = types.SimpleNamespace(msg=types.SimpleNamespace(datapath=dp, datapath_id=dpid))
    mesh.MeshController.switch_features(ctl, ev)
    assert dp.id == dpid and ctl.stats == {dpid: []}
    (request,) = dp.msgs
    assert isinstance(request, parser.OFPFlowStatsRequest)
