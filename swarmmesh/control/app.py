"""The routing-mesh controller: an os-ken app run as its own process.

It is a thin shell: the flows come from ``swarmmesh.dataplane.rules`` (pure functions of
the cluster model) and ``swarmmesh.control.ofp`` translates them; this app only carries
them to each node's bridge when it connects, and reports errors.  Every rule is
proactive: the app asks for no packet-in, so it is never in the path of a connection.

Run it (as the experiments do)::

    python -m swarmmesh.control.app --model RUN/model.json --state-dir RUN/ctl

Each node's vswitchd lives in the node's own network namespace, where the
controller's 127.0.0.1 listener cannot be reached; the process therefore also
serves a unix socket (``--unix-socket``) that relays to that listener
(``swarmmesh.control.relay``).  Unix sockets are not network-namespaced, so
every node reaches it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from os_ken import cfg
from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import (CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER,
                                        set_ev_cls)
from os_ken.ofproto import ofproto_v1_3

from swarmmesh.control.ofp import batches, delete_mod, encode, flow_mod_bytes
from swarmmesh.control.relay import DEFAULT_UNIX_SOCKET, close_unix_relay, serve_unix_relay
from swarmmesh.dataplane import layout, rules, sync
from swarmmesh.dataplane.flows import Flow
from swarmmesh.model import Cluster, InvalidConfigError

LOG = logging.getLogger("swarmmesh.controller")

DEFAULT_PORT = 6653


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
        self._shared_of = None                   # the model _shared_flows were derived from
        self._shared_flows = None
        if self.model_path is not None:
            threading.Thread(target=self._watch, name="model-watch", daemon=True).start()

    # -- connecting switches: read the table back, then change only the difference
    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def switch_features(self, ev):
        dp = ev.msg.datapath
        # os-ken's own OFPHandler sets dp.id from this same message, in its own event loop:
        # this handler can run first and find None (seen in the guest: a node never
        # programmed, "datapath None is not a node"). The message carries the id itself.
        if dp.id is None:
            dp.id = ev.msg.datapath_id
        node = layout.node_of_dpid(self.cluster, dp.id)
        if node is None:
            self.logger.warning("datapath %016x is not a node of this cluster; ignored", dp.id)
            return
        parser, ofp = dp.ofproto_parser, dp.ofproto
        self.stats[dp.id] = []
        dp.send_msg(parser.OFPFlowStatsRequest(dp, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY,
                                               ofp.OFPG_ANY, 0, 0, parser.OFPMatch()))

    # The request goes out from the features handler (CONFIG_DISPATCHER), and os-ken's own
    # OFPHandler moves the switch to MAIN_DISPATCHER in its own event loop: the reply can
    # come in before that, and os-ken hands an event only to the handlers of the state the
    # switch was in when it arrived. MAIN only would drop it: the node is never programmed
    # (seen on the kernel datapath, 4 builds in about 45).
    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
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
            node = layout.node_of_dpid(self.cluster, dp.id)
            desired = rules.node_flows(self.cluster, node.name, self._shared())
            plan = sync.plan_sync(desired, installed)
            self._apply(dp, node.name, plan, self.revision)
            self.datapaths[dp.id] = dp
            self.installed[dp.id] = desired
        self.logger.info("%s: in sync with the model (revision %d): %d flows, %d added or "
                         "changed, %d stale removed, %d left as they were", node.name,
                         self.revision, len(desired), len(plan.add), len(plan.delete),
                         len(desired) - len(plan.add))

    def _shared(self) -> "rules.Shared":
        """The flows every node has, for the model in hand (derived once per model: it
        is replaced, never changed in place)."""
        if self._shared_of is not self.cluster:
            self._shared_flows, self._shared_of = rules.shared_flows(self.cluster), self.cluster
        return self._shared_flows

    def _apply(self, dp, node: str, plan: "sync.Plan", revision: int) -> None:
        """The plan's additions, then its deletions, in a few large writes (each distinct
        flow encoded once in this process: :func:`ofp.flow_mod_bytes`), then a barrier
        whose reply says the switch has them all."""
        bufs = [flow_mod_bytes(dp, f) for f in plan.add]
        bufs += [encode(delete_mod(dp, i)) for i in plan.delete]
        for buf in batches(bufs):
            dp.send(buf)
        barrier = dp.ofproto_parser.OFPBarrierRequest(dp)
        dp.set_xid(barrier)
        self.barriers[barrier.xid] = (node, revision)
        dp.send_msg(barrier)

    @set_ev_cls(ofp_event.EventOFPBarrierReply, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def barrier_reply(self, ev):
        done = self.barriers.pop(ev.msg.xid, None)
        if done is not None:
            self._ready(*done)

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
                node = layout.node_of_dpid(cluster, dpid)
                if node is None:
                    continue
                desired = rules.node_flows(cluster, node.name, self._shared())
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


def load_cluster(path: str) -> Cluster:
    with open(path) as f:
        return Cluster.from_dict(json.load(f))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
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
    return ap.parse_args(argv)


def cluster_of(args: argparse.Namespace) -> Cluster:
    """The cluster to program: the model file, a stack file, or the quick service."""
    if args.model:
        return load_cluster(args.model)
    if args.stack:
        return Cluster.from_stack(args.stack, nodes=args.nodes)
    return Cluster.quick(nodes=args.nodes, replicas=args.replicas)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(filename=args.log_file, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        MeshController.cluster = cluster_of(args)
    except InvalidConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    MeshController.state_dir = Path(args.state_dir) if args.state_dir else None
    MeshController.model_path = Path(args.model) if args.model else None

    cfg.CONF(args=[], project="os_ken")
    cfg.CONF.set_override("ofp_listen_host", "127.0.0.1")
    cfg.CONF.set_override("ofp_tcp_listen_port", args.port)
    relay = serve_unix_relay(args.unix_socket, args.port)
    def stop(*_):
        # os-ken's native hub cannot unwind its threads: leave at once.
        close_unix_relay(relay, args.unix_socket)
        logging.shutdown()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    LOG.info("listening on 127.0.0.1:%d, relay at %s", args.port, args.unix_socket)
    try:
        app_manager.AppManager.run_apps([MeshController.__module__])
    finally:
        close_unix_relay(relay, args.unix_socket)
    return 0


if __name__ == "__main__":
    sys.exit(main())
