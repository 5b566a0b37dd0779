"""A swarm node's set-up as a pure plan: cluster model and MTUs in, command lines out.

Derived like the flows (``rules``) and the nft text (``kernel``), and golden-tested the
same way (``tests/unit/fixtures/nodeplan/``); ``testbed.topology.SwarmNode`` only runs
what :func:`node_plan` returns.  A node's set-up, in order:

* ``kernel``: forwarding; its underlay leg at the underlay MTU; Swarm's docker_gwbridge
  leg to the ingress sandbox (``gwbr``, and its bridge end ``gwbr-sbox``); the route of
  the ingress network via the sandbox (mesh ingress) or, with a real sandbox (``ipvs``),
  that sandbox's leg at the overlay MTU; one kernel VXLAN device per overlay network
  (``vx-ingress`` and one per user network, no learning, at the overlay MTU) with the
  static FDB loaded in one ``bridge -batch``; every task leg at the overlay MTU (a
  docker_gwbridge leg stays at Ethernet's 1500); localhost routed out of ``gwbr``;
* ``fdb``: the lines of that batch file (every remote task and LB endpoint's MAC on the
  node that has it);
* ``gw_legs``: the node's end of each local task's docker_gwbridge leg (host-mode ports);
* ``bridge``: the ``ovs-vsctl`` commands of the node's bridge ``br-ingress`` and its
  ports, with the OpenFlow port numbers the rules expect (one transaction).

Every MTU comes from one :class:`~swarmmesh.dataplane.mtu.Mtu` (Swarm's 1500/1450 on one
machine, the servers' plan across servers): nothing rewrites a leg afterwards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from swarmmesh.dataplane import eastwest, kernel, layout, rules
from swarmmesh.dataplane.mtu import Mtu
from swarmmesh.model import Cluster, Task

VXLAN_PORT = 4789            # the overlay's UDP port (IANA's VXLAN port, as Swarm's)
FDB_FILE = "fdb.batch"       # the batch file's name in the node's state folder


@dataclass(frozen=True)
class NodePlan:
    """What a node runs, in order (see the module's text)."""

    kernel: tuple[str, ...]
    fdb: tuple[str, ...]
    gw_legs: tuple[str, ...]
    bridge: tuple[str, ...]

    def text(self) -> str:
        """The whole plan as text, section by section (the golden files' form)."""
        return "".join(f"# {name}\n" + "".join(f"{line}\n" for line in lines)
                       for name, lines in (("kernel", self.kernel), ("fdb", self.fdb),
                                           ("gw_legs", self.gw_legs),
                                           ("bridge", self.bridge)))


def underlay_intf(host: str) -> str:
    """A node's or client's leg on the underlay."""
    return f"{host}-eth0"


def tx_off_cmd(intf: str) -> str:
    """Checksum offload off on one leg: userspace OVS does not fill in checksums that
    veth leaves to offload."""
    return f"{{ ethtool -K {intf} tx off >/dev/null 2>&1 || true; }}"


_TX_OFF = re.compile(re.escape(tx_off_cmd("\0")).replace("\0", r"(\S+)"))   # its inverse


def split_tx_off(cmds: list[str]) -> tuple[list[str], list[str]]:
    """The interfaces of the :func:`tx_off_cmd` commands among ``cmds``, and the other
    commands in their order (for a runner that turns the offload off itself, after them:
    ``testbed.netns.tx_off``)."""
    intfs, rest = [], []
    for c in cmds:
        m = _TX_OFF.fullmatch(c)
        if m:
            intfs.append(m.group(1))
        else:
            rest.append(c)
    return intfs, rest


def tx_cmd(intf: str, offload: bool) -> str:
    """:func:`tx_off_cmd`, or a no-op with ``offload`` (userspace TSO: OVS then carries the
    kernel's offload metadata and fills checksums in itself)."""
    return "true" if offload else tx_off_cmd(intf)


def task_legs_on_node(task: Task, cluster: Cluster) -> list[tuple[str, bool]]:
    """The node's ends of a task's legs, as Mininet links them (``topology.task_legs``):
    (interface, is it an overlay leg), the ingress leg first, then one per user network,
    then the docker_gwbridge leg (no overlay) if the task has one."""
    legs = []
    for name in task.addresses:
        net = cluster.networks[name]
        legs.append((layout.task_intf(task) if net.ingress else layout.net_intf(task, net),
                     True))
    if layout.has_gw_leg(task, cluster):
        legs.append((layout.gw_intf(task), False))
    return legs


def node_legs(cluster: Cluster, node: str) -> list[tuple[str, bool]]:
    """Every task leg on ``node`` built with the cluster, in link order."""
    return [leg for t in cluster.tasks if t.node == node and is_built(t, cluster)
            for leg in task_legs_on_node(t, cluster)]


def is_built(task: Task, cluster: Cluster) -> bool:
    """Is the task a host at all?  Not if it is on no network and has no host-mode port."""
    return bool(task.addresses) or layout.has_gw_leg(task, cluster)


def vxlan_cmds(intf: str, vni: int, local: str, dev: str, mtu: Mtu) -> list[str]:
    """One kernel VXLAN device of an overlay network: no learning (the FDB is static)."""
    return [f"ip link add {intf} type vxlan id {vni} dstport {VXLAN_PORT} "
            f"local {local} dev {dev} nolearning",
            f"ip link set {intf} mtu {mtu.overlay} up"]


def gw_leg_cmds(task: Task, offload: bool = False) -> list[str]:
    """The node's end of a task's docker_gwbridge leg: up, a /32 route to the task (the
    node answers ARP for its gateway address on it, as for any local address), and
    localhost allowed out as on gwbr."""
    intf = layout.gw_intf(task)
    return [*([] if offload else [tx_off_cmd(intf)]), f"ip link set {intf} up",
            f"ip route replace {layout.task_gw_ip(task)}/32 dev {intf}",
            f"sysctl -qw net.ipv4.conf.{intf}.route_localnet=1"]


def kernel_cmds(cluster: Cluster, node: str, mtu: Mtu, ingress: str = "mesh",
                offload: bool = False, fdb_path: str | None = None) -> list[str]:
    """The node kernel's set-up (``fdb_path``: where the FDB batch file is, if any)."""
    me = cluster.node(node)
    eth0 = underlay_intf(node)
    cmds = ["sysctl -qw net.ipv4.ip_forward=1", f"ip link set {eth0} mtu {mtu.underlay}"]
    # Swarm's docker_gwbridge leg to the ingress sandbox: the bridge's port 1 plays the
    # sandbox, or (ingress "ipvs") a real sandbox sits between gwbr and that port (made
    # before this plan runs).
    if ingress != "ipvs":
        cmds.append(f"ip link add {layout.GW_INTF} type veth peer name {layout.GW_OVS_INTF}")
    cmds.append(f"ip link set {layout.GW_INTF} address {layout.GW_MAC}")
    cmds.append(f"ip addr add {layout.GW_IP}/{layout.GW_PREFIX} dev {layout.GW_INTF}")
    for intf in (layout.GW_INTF, layout.GW_OVS_INTF):
        cmds += [f"ip link set {intf} up", tx_cmd(intf, offload)]
    # The kernel DNATs a published connection to the task it picked: the ingress
    # network is routed via the sandbox (the bridge), and nothing else goes there.
    # (A real sandbox picks itself: the node reaches no task, as in Swarm.)
    if ingress != "ipvs":
        cmds.append(f"ip route add {cluster.networks['ingress'].subnet} "
                    f"via {layout.SBOX_GW_IP} dev {layout.GW_INTF}")
    else:
        cmds.append(f"ip link set {layout.GW_OVS_INTF} mtu {mtu.overlay}")
    local = str(me.underlay_ip)
    cmds += vxlan_cmds(layout.VXLAN_INTF, cluster.networks["ingress"].vni, local, eth0, mtu)
    for net in layout.user_networks(cluster):
        cmds += vxlan_cmds(layout.vxlan_intf(net), net.vni, local, eth0, mtu)
    cmds += eastwest.leg_cmds(cluster, mtu.overlay, lambda intf: tx_cmd(intf, offload))
    if fdb_path is not None:
        cmds.append(f"bridge -batch {fdb_path}")      # one process for the whole FDB
    # Every leg's offload, then every overlay leg's MTU: consecutive ``ip`` commands run as
    # one ``ip -batch`` (a thousand legs: a thousand fewer processes).
    legs = node_legs(cluster, node)
    cmds += [tx_cmd(intf, offload) for intf, _ in legs]
    cmds += [f"ip link set {intf} mtu {mtu.overlay}"
             for intf, overlay in legs if overlay]     # docker_gwbridge is no overlay: 1500
    cmds.append(f"sysctl -qw net.ipv4.conf.{layout.GW_INTF}.route_localnet=1")
    return cmds


def fdb_lines(cluster: Cluster, node: str) -> list[str]:
    """The static FDB of every VXLAN device of ``node`` (``bridge -batch`` lines)."""
    fdb = [f"fdb append {mac} dev {layout.VXLAN_INTF} dst {remote}"
           for mac, remote in rules.overlay_fdb(cluster, node)]
    for net in layout.user_networks(cluster):
        vx = layout.vxlan_intf(net)
        fdb += [f"fdb append {mac} dev {vx} dst {remote}"
                for mac, remote in rules.overlay_fdb(cluster, node, net.name)]
    return fdb


def bridge_args(cluster: Cluster, node: str, datapath: str, controller: str) -> list[str]:
    """The ``ovs-vsctl`` commands of the node's bridge: its datapath and dpid, the
    docker_gwbridge and VXLAN ports, one port per task leg, with the OpenFlow port numbers
    the rules use, and the controller (``controller``: the socket vswitchd dials)."""
    me = cluster.node(node)
    cmd = [f"add-br {layout.BRIDGE}",
           f"set bridge {layout.BRIDGE} datapath_type={datapath} fail-mode=secure "
           f"protocols=OpenFlow13 other-config:datapath-id={layout.dpid_of(me):016x}",
           port_arg(layout.GW_OVS_INTF, layout.PORT_GW),
           port_arg(layout.VXLAN_INTF, layout.PORT_VXLAN)]
    cmd += [port_arg(layout.vxlan_intf(net), layout.vxlan_port(net))
            for net in layout.user_networks(cluster)]
    cmd += [port_arg(layout.lb_br_intf(net), layout.lb_port(net))
            for net in layout.user_networks(cluster)]
    for task in cluster.tasks_on(node):
        port = layout.task_ports(cluster, node).get(task.host)
        if port is not None:
            cmd.append(port_arg(layout.task_intf(task), port))
        for name in task.addresses:
            net = cluster.networks[name]
            if not net.ingress:
                cmd.append(port_arg(layout.net_intf(task, net), layout.net_port(task, net)))
    cmd.append(f"set-controller {layout.BRIDGE} unix:{controller}")
    cmd.append(f"set controller {layout.BRIDGE} max_backoff=1000 inactivity_probe=0")
    return cmd


def port_arg(intf: str, ofport: int) -> str:
    return f"add-port {layout.BRIDGE} {intf} -- set interface {intf} ofport_request={ofport}"


def node_plan(cluster: Cluster, node: str, mtu: Mtu, *, ingress: str = "mesh",
              offload: bool = False, datapath: str = "netdev",
              fdb_path: str = FDB_FILE, controller: str = "controller.sock") -> NodePlan:
    """The whole set-up of ``node`` (see the module's text).  ``fdb_path``: where the
    runner writes :attr:`NodePlan.fdb`; ``controller``: the socket in the node's OVS run
    folder that vswitchd dials."""
    fdb = fdb_lines(cluster, node)
    return NodePlan(
        kernel=tuple(kernel_cmds(cluster, node, mtu, ingress, offload,
                                 fdb_path if fdb else None)),
        fdb=tuple(fdb),
        gw_legs=tuple(c for t in kernel.gw_legs(cluster, node) for c in gw_leg_cmds(t, offload)),
        bridge=tuple(bridge_args(cluster, node, datapath, controller)))


def task_cmds(intfs: list[str], gw_intf: str | None, mtu: Mtu, offload: bool = False,
              lo: str | None = None, legs: list[str] = ()) -> list[str]:
    """A task container's legs: offload, and the overlay MTU on every leg but its
    docker_gwbridge one; its default route via docker_gwbridge if it has that leg.
    ``lo``: its loopback's state too (``up``); ``legs``: the ``ip`` commands that give
    the legs their addresses and state. The ``ip`` commands come last, together (one
    ``ip -batch``)."""
    cmds = [tx_cmd(intf, offload) for intf in intfs]
    cmds += list(legs)
    cmds += [f"ip link set lo {lo}"] if lo else []
    cmds += [f"ip link set {intf} mtu {mtu.overlay}"
             for intf in intfs if intf != gw_intf]        # docker_gwbridge is no overlay
    if gw_intf:                  # as a container's: the default route is docker_gwbridge
        cmds.append(f"ip route replace default via {layout.GW_IP} dev {gw_intf}")
    return cmds


def attach_cmds(task: Task, cluster: Cluster, mtu: Mtu, offload: bool = False) -> list[str]:
    """The node's side of a task started at run time (its legs exist): its docker_gwbridge
    leg plugged, every overlay leg up at the overlay MTU and a port of the bridge."""
    cmds = gw_leg_cmds(task, offload) if layout.has_gw_leg(task, cluster) else []
    for intf, overlay in task_legs_on_node(task, cluster):
        if overlay:
            cmds += [tx_cmd(intf, offload), f"ip link set {intf} mtu {mtu.overlay} up"]
    return cmds


def attach_ports(task: Task, cluster: Cluster) -> list[str]:
    """The bridge ports of a task started at run time (``ovs-vsctl`` arguments each)."""
    out = []
    for name in task.addresses:
        net = cluster.networks[name]
        if net.ingress:
            intf, port = layout.task_intf(task), layout.ingress_port(task)
        else:
            intf, port = layout.net_intf(task, net), layout.net_port(task, net)
        out.append(f"--may-exist {port_arg(intf, port)}")
    return out
