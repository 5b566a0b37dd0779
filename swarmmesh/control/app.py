"""The routing-mesh controller: an os-ken app run as its own process.

It is a thin shell: the flows come from ``swarmmesh.dataplane.rules`` (pure functions of
the cluster model); this app only carries them to each node's bridge when it
connects, and reports errors.  Every rule is proactive: the app asks for no
packet-in, so it is never in the path of a connection.

Run it (as the experiments do)::

    python -m swarmmesh.control.app --model RUN/model.json --state-dir RUN/ctl

Each node's vswitchd lives in the node's own network namespace, where the
controller's 127.0.0.1 listener cannot be reached; the process therefore also
serves a unix socket (``--unix-socket``) that relays to that listener.
Unix sockets are not network-namespaced, so every node reaches it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import (CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER,
                                        set_ev_cls)
from os_ken.ofproto import ofproto_v1_3

from swarmmesh.dataplane import rules, sync
from swarmmesh.dataplane.flows import (COOKIE_LEARNED, Ct, Flow, Goto, Learn, Move, Output,
                                       Resubmit, SetField)
from swarmmesh.model import Cluster, InvalidConfigError

LOG = logging.getLogger("swarmmesh.controller")

DEFAULT_UNIX_SOCKET = "/run/swarmmesh/openflow.sock"
DEFAULT_PORT = 6653

# Field widths for register moves and learn specs.
_WIDTH = {"eth_src": 48, "eth_dst": 48, "arp_sha": 48, "arp_tha": 48,
          "arp_spa": 32, "arp_tpa": 32, "ipv4_src": 32, "ipv4_dst": 32,
          "eth_type": 16, "ip_proto": 8, "tcp_src": 16, "tcp_dst": 16,
          "udp_src": 16, "udp_dst": 16, "arp_op": 16, "reg1": 32, "reg2": 32, "reg3": 32}
NX_NAT_F_SRC, NX_NAT_F_DST = 1, 2


def _nxm(field: str) -> str:
    """os-ken's name of a field in NXM form, as ``learn`` and moves want."""
    return field if field.startswith("reg") else f"{field}_nxm"


def _ip_int(ip: str) -> int:
    return int.from_bytes(socket.inet_aton(ip), "big")


def to_actions(parser, ofp, actions) -> tuple[list, int | None]:
    """Translate rule actions into os-ken actions; also return a goto table."""
    out, goto = [], None
    for a in actions:
        if isinstance(a, Output):
            port = ofp.OFPP_IN_PORT if a.port == "in_port" else a.port
            out.append(parser.OFPActionOutput(port))
        elif isinstance(a, SetField):
            out.append(parser.OFPActionSetField(**{a.field: a.value}))
        elif isinstance(a, Move):
            out.append(parser.NXActionRegMove(src_field=_nxm(a.src), dst_field=_nxm(a.dst),
                                              n_bits=_WIDTH[a.src]))
        elif isinstance(a, Resubmit):
            out.append(parser.NXActionResubmitTable(table_id=a.table))
        elif isinstance(a, Ct):
            nat = []
            if a.nat is not None:
                flags = NX_NAT_F_SRC if a.nat.kind == "src" else NX_NAT_F_DST
                kw = {"range_ipv4_min": a.nat.ip, "range_ipv4_max": a.nat.ip}
                if a.nat.port is not None:
                    kw.update(range_proto_min=a.nat.port, range_proto_max=a.nat.port)
                nat = [parser.NXActionNAT(flags=flags, **kw)]
            elif a.nat_existing:
                nat = [parser.NXActionNAT(flags=0)]
            if a.mark is not None:   # first: os-ken does not pad a nested NAT action
                nat.insert(0, parser.OFPActionSetField(ct_mark=a.mark))
            out.append(parser.NXActionCT(flags=1 if a.commit else 0, zone_src="",
                                         zone_ofs_nbits=a.zone, recirc_table=a.table,
                                         alg=0, actions=nat))
        elif isinstance(a, Learn):
            specs = []
            for f, v in a.match:
                if isinstance(v, str):
                    v = _ip_int(v)
                specs.append(parser.NXFlowSpecMatch(src=v, dst=(_nxm(f), 0), n_bits=_WIDTH[f]))
            for f in a.copy:
                specs.append(parser.NXFlowSpecMatch(src=(_nxm(f), 0), dst=(_nxm(f), 0),
                                                    n_bits=_WIDTH[f]))
            for f, v in a.load:
                specs.append(parser.NXFlowSpecLoad(src=v, dst=(_nxm(f), 0), n_bits=_WIDTH[f]))
            out.append(parser.NXActionLearn(table_id=a.table, specs=specs, priority=a.priority,
                                            cookie=COOKIE_LEARNED,
                                            hard_timeout=a.hard_timeout))
        elif isinstance(a, Goto):
            goto = a.table
        else:  # pragma: no cover - the rule language is closed
            raise TypeError(f"unknown action {a!r}")
    return out, goto


class MeshController(app_manager.OSKenApp):
    """Programs every node's ``br-ingress`` from the cluster model, and keeps
    it in step as the model file changes (the orchestrator rewrites it)."""

    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]
    cluster: Cluster | None = None        # set by main() before the app starts
    state_dir: Path | None = None
    model_path: Path | None = None        # watched for changes when set
    poll_interval = 0.05

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.errors = 0
        self.lock = threading.Lock()
        self.datapaths: dict[int, object] = {}
        self.installed: dict[int, list[Flow]] = {}   # what each switch holds (ours)
        self.stats: dict[int, list] = {}
        self.barriers: dict[int, tuple[str, int]] = {}     # xid -> (node, revision)
        self.revision = self._revision_of_file()
        if self.model_path is not None:
            threading.Thread(target=self._watch, name="model-watch", daemon=True).start()

    # -- connecting switches: read the table back, then change only the difference
    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def switch_features(self, ev):
        dp = ev.msg.datapath
        node = rules.node_of_dpid(self.cluster, dp.id)
        if node is None:
            self.logger.warning("datapath %016x is not a node of this cluster; ignored", dp.id)
            return
        parser, ofp = dp.ofproto_parser, dp.ofproto
        self.stats[dp.id] = []
        dp.send_msg(parser.OFPFlowStatsRequest(dp, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY,
                                               ofp.OFPG_ANY, 0, 0, parser.OFPMatch()))

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    def flow_stats(self, ev):
        dp = ev.msg.datapath
        if dp.id not in self.stats:
            return
        self.stats[dp.id] += ev.msg.body
        if ev.msg.flags & dp.ofproto.OFPMPF_REPLY_MORE:
            return
        body = self.stats.pop(dp.id)
        installed = [sync.Installed(s.table_id, s.priority, tuple(s.match.items()), s.cookie)
                     for s in body]
        with self.lock:
            node = rules.node_of_dpid(self.cluster, dp.id)
            desired = rules.node_flows(self.cluster, node.name)
            plan = sync.plan_sync(desired, installed)
            self._apply(dp, node.name, plan, self.revision)
            self.datapaths[dp.id] = dp
            self.installed[dp.id] = desired
        self.logger.info("%s: in sync with the model (revision %d): %d flows, %d added or "
                         "changed, %d stale removed, %d left as they were", node.name,
                         self.revision, len(desired), len(plan.add), len(plan.delete),
                         len(desired) - len(plan.add))

    def _apply(self, dp, node: str, plan: "sync.Plan", revision: int) -> None:
        parser, ofp = dp.ofproto_parser, dp.ofproto
        for f in plan.add:
            self.add_flow(dp, f)
        for i in plan.delete:
            dp.send_msg(parser.OFPFlowMod(dp, cookie=i.cookie, cookie_mask=0xFFFFFFFFFFFFFFFF,
                                          table_id=i.table, command=ofp.OFPFC_DELETE_STRICT,
                                          priority=i.priority, match=parser.OFPMatch(**dict(i.match)),
                                          out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY))
        barrier = parser.OFPBarrierRequest(dp)
        dp.set_xid(barrier)
        self.barriers[barrier.xid] = (node, revision)
        dp.send_msg(barrier)

    @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    def barrier_reply(self, ev):
        done = self.barriers.pop(ev.msg.xid, None)
        if done is not None:
            self._ready(*done)

    def add_flow(self, dp, f: Flow) -> None:
        parser, ofp = dp.ofproto_parser, dp.ofproto
        actions, goto = to_actions(parser, ofp, f.actions)
        inst = []
        if actions:
            inst.append(parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions))
        if goto is not None:
            inst.append(parser.OFPInstructionGotoTable(goto))
        dp.send_msg(parser.OFPFlowMod(dp, cookie=sync.flow_cookie(f), table_id=f.table,
                                      command=ofp.OFPFC_ADD, priority=f.priority,
                                      match=parser.OFPMatch(**f.match_dict),
                                      instructions=inst))

    # -- the model changes: every connected switch gets the difference
    def _revision_of_file(self) -> int:
        if self.model_path is None:
            return 0
        try:
            return int(json.loads(self.model_path.read_text()).get("revision", 0))
        except (OSError, ValueError):
            return 0

    def _watch(self) -> None:
        last = self.model_path.stat().st_mtime_ns if self.model_path.exists() else 0
        while True:
            time.sleep(self.poll_interval)
            try:
                mtime = self.model_path.stat().st_mtime_ns
                if mtime == last:
                    continue
                data = json.loads(self.model_path.read_text())
                cluster = Cluster.from_dict(data)
            except (OSError, ValueError, InvalidConfigError) as e:
                self.logger.warning("model not read (will retry): %s", e)
                continue
            last = mtime
            self.update(cluster, int(data.get("revision", 0)))

    def update(self, cluster: Cluster, revision: int) -> None:
        with self.lock:
            self.cluster, self.revision = cluster, revision
            for dpid, dp in list(self.datapaths.items()):
                node = rules.node_of_dpid(cluster, dpid)
                if node is None:
                    continue
                desired = rules.node_flows(cluster, node.name)
                plan = sync.plan_update(self.installed[dpid], desired)
                self._apply(dp, node.name, plan, revision)
                self.installed[dpid] = desired
                if not plan.empty:
                    self.logger.info("%s: revision %d: %d flows added or changed, %d removed",
                                     node.name, revision, len(plan.add), len(plan.delete))

    @set_ev_cls(ofp_event.EventOFPStateChange, [DEAD_DISPATCHER])
    def switch_gone(self, ev):
        with self.lock:
            self.datapaths.pop(ev.datapath.id, None)

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def error(self, ev):
        self.errors += 1
        msg = ev.msg
        self.logger.error("OpenFlow error from %016x: type=%d code=%d data=%s",
                          msg.datapath.id, msg.type, msg.code, msg.data[:64].hex())

    def _ready(self, node: str, revision: int) -> None:
        """ready/<node> holds the last model revision the switch has applied."""
        if self.state_dir is not None:
            d = self.state_dir / "ready"
            d.mkdir(parents=True, exist_ok=True)
            tmp = d / f".{node}"
            tmp.write_text(f"{revision}\n")
            tmp.replace(d / node)


# --- the unix-socket relay --------------------------------------------------

def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve_unix_relay(path: str, port: int) -> socket.socket:
    """Relay every connection on unix socket ``path`` to 127.0.0.1:``port``."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.exists(path):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(64)

    def accept_loop():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            try:
                up = socket.create_connection(("127.0.0.1", port))
            except OSError:
                conn.close()
                continue
            for a, b in ((conn, up), (up, conn)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()

    threading.Thread(target=accept_loop, daemon=True).start()
    return server


def load_cluster(path: str) -> Cluster:
    with open(path) as f:
        return Cluster.from_dict(json.load(f))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="swarmmesh.control.app", description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--model", help="cluster model JSON (Cluster.to_dict), as the experiments "
                                     "write; watched: the switches follow its changes")
    src.add_argument("--stack", help="docker stack / compose v3 file")
    ap.add_argument("--nodes", type=int, default=3, help="nodes, without --model (default 3)")
    ap.add_argument("--replicas", type=int, default=2,
                    help="replicas of the quick service `app`, without --model/--stack (default 2)")
    ap.add_argument("--port", type=int, default=DEFAULT_PORT, help="OpenFlow port on 127.0.0.1")
    ap.add_argument("--unix-socket", default=DEFAULT_UNIX_SOCKET,
                    help="relay socket the namespaced switches connect to")
    ap.add_argument("--state-dir", help="where to write ready/<node> once a node is programmed")
    ap.add_argument("--log-file", help="log here instead of stderr")
    args = ap.parse_args(argv)

    logging.basicConfig(filename=args.log_file, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.model:
            MeshController.cluster = load_cluster(args.model)
        elif args.stack:
            MeshController.cluster = Cluster.from_stack(args.stack, nodes=args.nodes)
        else:
            MeshController.cluster = Cluster.quick(nodes=args.nodes, replicas=args.replicas)
    except InvalidConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    MeshController.state_dir = Path(args.state_dir) if args.state_dir else None
    MeshController.model_path = Path(args.model) if args.model else None

    from os_ken import cfg
    cfg.CONF(args=[], project="os_ken")
    cfg.CONF.set_override("ofp_listen_host", "127.0.0.1")
    cfg.CONF.set_override("ofp_tcp_listen_port", args.port)
    relay = serve_unix_relay(args.unix_socket, args.port)
    def stop(*_):
        # os-ken's native hub cannot unwind its threads: leave at once.
        relay.close()
        try:
            os.unlink(args.unix_socket)
        except OSError:
            pass
        logging.shutdown()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    LOG.info("listening on 127.0.0.1:%d, relay at %s", args.port, args.unix_socket)
    try:
        app_manager.AppManager.run_apps([MeshController.__module__])
    finally:
        relay.close()
        try:
            os.unlink(args.unix_socket)
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
