"""The controller's decisions, as pure functions: cluster model in, flows out.

Nothing here knows os-ken or a switch.  The flows are written in the small
language of ``swarmmesh.dataplane.flows``; ``swarmmesh.control.ofp`` turns them
into OpenFlow 1.3 messages (with Nicira extensions); the unit tests run them on
``tests.doubles.fakeswitch.FakeSwitch``.

Every swarm node has its own Open vSwitch bridge (``br-ingress``) in its own
namespace, with these ports::

    1   gwbr-sbox   the node's leg to its ingress sandbox (Swarm's docker_gwbridge)
    2   vx-ingress  kernel VXLAN device, VNI 4096, UDP 4789, static FDB per MAC
    10+ <task>-veth one per local task on the ingress network (t<n>: 9 + n)

The node's kernel plays Swarm's DOCKER-INGRESS chain *and* its ingress
sandbox (``swarmmesh.dataplane.kernel``): for a new connection to
``<any local address>:<published>`` it picks a task, exact round robin per
node (``numgen inc`` over the tasks in the balancer, as IPVS rr), DNATs to the
task's ingress address and target port, and SNATs to the node's own ingress
address, all in its own conntrack; the ingress subnet is routed via the
sandbox address 172.18.0.2 into the bridge.  The bridge is the ingress
overlay: it carries those packets to the task, on this node or over VXLAN,
and the replies back to the kernel, with no conntrack, nothing learned and no
flow that matches a client's address or port, so a new connection never
leaves the datapath's cached megaflows.

Tables::

    0   classify: ARP answered locally; from the kernel (port 1) only a
        published connection to a task's ingress address and target port
        -> 22, anything else from the kernel dropped; replies to this node's
        ingress address -> 32; overlay delivery -> 40
    22  from this node's ingress address: its source MAC, then 40
    32  reply to this node's ingress address: back to the node's kernel
        (which un-SNATs and un-DNATs it)
    40  L3 delivery on the ingress network: local task port or VXLAN

User overlay networks (east-west, Swarm's ``lb-<net>`` endpoint) share the
bridge; table 0 tags a packet with its network's index in ``reg2`` by the
port it came in on, and every later match includes that tag, so networks
are isolated by construction.  Network j (its VNI minus 4096) has the
VXLAN device ``vx-n<j>`` on port ``1000*j`` and task ``t<n>``'s leg on
port ``1000*j + n``::

    50  per network: ARP answered locally; a VIP (TCP, UDP) and a reply to
        this node's LB address -> the node's kernel; task-to-task delivery
    80  L3 delivery on the network: local task port or the network's VXLAN

A VIP is balanced in the node's kernel, as ingress is (``swarmmesh.dataplane.eastwest``):
network j's leg to it (``lb-n<j>``, port ``65000 + j``, Swarm's ``lb-<net>``) takes the
VIP's packets, the kernel picks a task (``numgen inc`` or ``jhash``, exact per node),
DNATs to it, SNATs to the node's LB address and sends it back on the same leg, where it
is plain delivery; the task's reply to the LB address goes to the kernel, which un-NATs
it.  The bridge keeps no conntrack and learns nothing for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from swarmmesh.dataplane.flows import (Flow, Goto, Load, Move, MoveBits, Output, SetField, flow,
                                      ip_cover)
from swarmmesh.dataplane.layout import (GW_MAC, PORT_GW, PORT_VXLAN, SBOX_GW_IP, SBOX_GW_MAC,
                                       lb_leg_mac, lb_port, net_index, net_port, task_ports,
                                       user_networks, vxlan_port)
from swarmmesh.model import Cluster, Network, Node, PublishedPort, Task, docker_mac

# --- the pipeline: zones, registers, tables --------------------------------

T_CLASSIFY = 0
T_FWD_OUT, T_RPL_OUT = 22, 32
T_DELIVER = 40
T_NET = 50
T_NET_DELIVER = 80
REG_NET = "reg2"

IP_PROTO = {"tcp": 6, "udp": 17}
ETH_IP, ETH_ARP = 0x0800, 0x0806


# --- helpers over the model -------------------------------------------------



def ingress_ports(cluster: Cluster) -> list[tuple[PublishedPort, list[Task], list[Task]]]:
    """Every ingress-mode published port with the tasks that take new
    connections behind it (running, on a node that is up), and every task of
    its service that still exists (the leaving ones keep their connections)."""
    out = []
    for svc in cluster.ingress_services():
        every = [t for t in cluster.tasks_of(svc.name) if "ingress" in t.addresses]
        tasks = [t for t in every if cluster.in_balancer(t)]
        for p in svc.ports:
            if p.mode == "ingress" and p.protocol in IP_PROTO:
                out.append((p, tasks, every))
    return out


def arp_responder(ip: str, mac: str, in_port: int | None = None) -> Flow:
    """Answer ARP for ``ip`` with ``mac`` on the port the request came in."""
    match = {"eth_type": ETH_ARP, "arp_op": 1, "arp_tpa": ip}
    if in_port is not None:
        match["in_port"] = in_port
    return flow(T_CLASSIFY, 300, match, [
        Move("eth_src", "eth_dst"),
        SetField("eth_src", mac),
        SetField("arp_op", 2),
        Move("arp_sha", "arp_tha"),
        Move("arp_spa", "arp_tpa"),
        SetField("arp_sha", mac),
        SetField("arp_spa", ip),
        Output("in_port"),
    ])


DOCKER_OUI = 0x0242     # the top 16 bits of the MAC Docker derives from an IPv4 address


def by_docker_mac(addresses: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """(address -> MAC) split into the addresses whose MAC is the one Docker derives from
    them (``02:42`` and the four bytes: every address of a cluster the model places),
    which a flow can answer for by block, and the others (address -> MAC)."""
    derived = [ip for ip, mac in addresses.items() if mac.lower() == docker_mac(ip)]
    return derived, {ip: mac for ip, mac in addresses.items() if mac.lower() != docker_mac(ip)}


def arp_block_responder(block) -> Flow:
    """Answer ARP for any address of ``block`` with its Docker MAC, on the port the request
    came in: the MAC is written as ``02:42`` and the address asked for (one flow for a
    block of addresses, as :func:`arp_responder` is for one)."""
    return flow(T_CLASSIFY, 290, {"eth_type": ETH_ARP, "arp_op": 1, "arp_tpa": block}, [
        Move("eth_src", "eth_dst"),
        MoveBits("arp_tpa", "eth_src", 32),
        Load("eth_src", DOCKER_OUI, 32, 16),
        SetField("arp_op", 2),
        Move("arp_sha", "arp_tha"),
        Move("eth_src", "arp_sha"),
        Move("arp_spa", "arp_tpa"),
        MoveBits("eth_src", "arp_spa", 32),
        Output("in_port"),
    ])


def _l4(port: PublishedPort, dst: bool = True) -> str:
    return f"{port.protocol}_{'dst' if dst else 'src'}"


# --- the flows of one node ---------------------------------------------------

@dataclass(frozen=True)
class Shared:
    """The ingress flows that are the same on every node (they cover every task of the
    cluster, by address block), derived once per model by :func:`shared_flows` and given
    to :func:`node_flows` for each node."""

    ingress_tasks: tuple[Task, ...]
    arp: tuple[Flow, ...]
    published: tuple[Flow, ...]       # 0 -> 22: a published connection to a task
    icmp: tuple[Flow, ...]            # 0 -> 40: ICMP to a task
    to_overlay: tuple[Flow, ...]      # 40: a task's address -> its MAC, over VXLAN


def shared_flows(cluster: Cluster) -> Shared:
    """:class:`Shared` of ``cluster`` (the caller keeps it while the model stays)."""
    ingress_tasks = tuple(t for t in cluster.tasks if "ingress" in t.addresses)
    return Shared(ingress_tasks, tuple(_arp_flows(cluster, list(ingress_tasks))),
                  tuple(_published_flows(cluster)), tuple(_icmp_flows(ingress_tasks)),
                  tuple(_to_overlay({str(t.addresses["ingress"]): t.macs["ingress"]
                                     for t in ingress_tasks})))


def node_flows(cluster: Cluster, node_name: str, shared: Shared | None = None) -> list[Flow]:
    """All flows of one node's bridge, derived from the model alone (``shared``: what
    :func:`shared_flows` derived from the same model, if the caller kept it)."""
    shared = shared or shared_flows(cluster)
    node = cluster.node(node_name)
    ports = task_ports(cluster, node_name)
    return [*shared.arp,
            *_classify_flows(cluster, node, ports, shared),
            *_ingress_out_flows(node),
            *_deliver_flows(cluster, node, ports, shared),
            *network_flows(cluster, node_name)]


def _arp_flows(cluster: Cluster, ingress_tasks: list[Task]) -> list[Flow]:
    """0: ARP is answered locally for every known address; nothing is flooded.  One flow
    per block of the addresses with a Docker MAC (all of them, unless a model says
    otherwise), one per other address."""
    flows = [arp_responder(SBOX_GW_IP, SBOX_GW_MAC, in_port=PORT_GW)]
    known = {str(n.ingress_ip): n.ingress_mac for n in cluster.nodes}
    known.update((str(t.addresses["ingress"]), t.macs["ingress"]) for t in ingress_tasks)
    derived, others = by_docker_mac(known)
    flows += [arp_block_responder(block) for block in ip_cover(derived)]
    flows += [arp_responder(ip, mac) for ip, mac in others.items()]
    return flows


def _published_flows(cluster: Cluster) -> list[Flow]:
    """0 -> 22: a connection the kernel picked a task for, DNATed and SNATed: to the
    task's ingress address and a target port of its service.  Every task that
    still exists (the draining ones keep their connections; the kernel no
    longer picks them).  Nothing else from the kernel reaches the ingress network.
    One flow per block of the tasks' addresses (:func:`ip_cover`), not one per task."""
    targets: dict[tuple, set[str]] = {}
    for p, _tasks, every in ingress_ports(cluster):
        key = (IP_PROTO[p.protocol], _l4(p), p.target)
        targets.setdefault(key, set()).update(str(t.addresses["ingress"]) for t in every)
    return [flow(T_CLASSIFY, 200, {"in_port": PORT_GW, "eth_type": ETH_IP, "ip_proto": proto,
                                   "ipv4_dst": dst, field: target}, [Goto(T_FWD_OUT)])
            for (proto, field, target), addrs in targets.items() for dst in ip_cover(addrs)]


def _icmp_flows(ingress_tasks) -> list[Flow]:
    """0 -> 40: ICMP between ingress addresses passes, as in Swarm, where the task's
    firewall drops only TCP/UDP that is not a published port.  (Not from the node's
    kernel: dropped before, as Swarm's node reaches no task.)  One flow per block of
    the tasks' addresses."""
    return [flow(T_CLASSIFY, 160, {"eth_type": ETH_IP, "ip_proto": 1, "ipv4_dst": dst},
                 [Goto(T_DELIVER)])
            for dst in ip_cover(str(t.addresses["ingress"]) for t in ingress_tasks)]


def _classify_flows(cluster: Cluster, node: Node, ports: dict[str, int],
                    shared: Shared) -> list[Flow]:
    """0: IP on the ingress network, to the table of its stage (or dropped)."""
    flows: list[Flow] = list(shared.published)
    flows.append(flow(T_CLASSIFY, 165, {"in_port": PORT_GW, "eth_type": ETH_IP}, []))
    # 0 -> 32: a reply to this node's ingress address, from a local task or the overlay.
    for port in [PORT_VXLAN, *ports.values()]:
        flows.append(flow(T_CLASSIFY, 190, {
            "in_port": port, "eth_type": ETH_IP, "ipv4_dst": str(node.ingress_ip)},
            [Goto(T_RPL_OUT)]))
    # 0 -> 40: a local task answers another node's sandbox (one flow per block of their
    # addresses).
    sandboxes = ip_cover(str(n.ingress_ip) for n in cluster.nodes if n.name != node.name)
    for dst in sandboxes:
        for port in ports.values():
            flows.append(flow(T_CLASSIFY, 180, {
                "in_port": port, "eth_type": ETH_IP, "ipv4_dst": dst}, [Goto(T_DELIVER)]))
    # 0 -> 40: the overlay delivers a balanced connection to a local task.
    for t in cluster.tasks_on(node.name):
        if "ingress" in t.addresses:
            flows.append(flow(T_CLASSIFY, 170, {
                "in_port": PORT_VXLAN, "eth_type": ETH_IP,
                "ipv4_dst": str(t.addresses["ingress"])}, [Goto(T_DELIVER)]))
    flows += shared.icmp
    flows.append(flow(T_CLASSIFY, 0, {}, []))
    return flows


def _ingress_out_flows(node: Node) -> list[Flow]:
    """22: from this node's ingress address (the kernel SNATed it), then delivered;
    32: a reply to it, back to the node's kernel (which un-SNATs and un-DNATs it)."""
    return [
        flow(T_FWD_OUT, 100, {"eth_type": ETH_IP},
             [SetField("eth_src", node.ingress_mac), Goto(T_DELIVER)]),
        flow(T_RPL_OUT, 100, {"eth_type": ETH_IP}, [
            SetField("eth_src", SBOX_GW_MAC), SetField("eth_dst", GW_MAC), Output(PORT_GW)]),
    ]


def _deliver(t: Task, out: int) -> Flow:
    """40: a task's ingress address -> its MAC, out of ``out``."""
    return flow(T_DELIVER, 100, {"eth_type": ETH_IP, "ipv4_dst": str(t.addresses["ingress"])},
                [SetField("eth_dst", t.macs["ingress"]), Output(out)])


def _to_overlay(addresses: dict[str, str]) -> list[Flow]:
    """40: to the overlay (the kernel VXLAN device's static FDB picks the remote node by
    MAC), each address with its MAC: for a block of addresses with Docker MACs, one flow
    that writes ``02:42`` and the destination address as the MAC, below the flows of the
    tasks on this node (which override it for theirs); one flow for each other address."""
    derived, others = by_docker_mac(addresses)
    flows = [flow(T_DELIVER, 90, {"eth_type": ETH_IP, "ipv4_dst": block},
                  [MoveBits("ipv4_dst", "eth_dst", 32), Load("eth_dst", DOCKER_OUI, 32, 16),
                   Output(PORT_VXLAN)]) for block in ip_cover(derived)]
    flows += [flow(T_DELIVER, 95, {"eth_type": ETH_IP, "ipv4_dst": ip},
                   [SetField("eth_dst", mac), Output(PORT_VXLAN)]) for ip, mac in others.items()]
    return flows


def _deliver_flows(cluster: Cluster, node: Node, ports: dict[str, int],
                   shared: Shared) -> list[Flow]:
    """40: delivery by destination address: a local port or the overlay."""
    flows = [_deliver(t, ports[t.host]) for t in shared.ingress_tasks
             if t.node == node.name and ports.get(t.host, PORT_VXLAN) != PORT_VXLAN]
    # (a local task without a port, as a remote one: to the overlay, from shared.to_overlay)
    flows += shared.to_overlay
    flows += _to_overlay({str(n.ingress_ip): n.ingress_mac for n in cluster.nodes
                          if n.name != node.name})
    return flows


def overlay_fdb(cluster: Cluster, node_name: str,
                network: str = "ingress") -> list[tuple[str, str]]:
    """Static VXLAN FDB of one node on one overlay network: (MAC, remote
    underlay IP) for every address on it that lives on another node (its
    ingress or load-balancer address, its tasks), as Swarm fills it from its
    gossip database."""
    entries = []
    for n in cluster.nodes:
        if n.name == node_name:
            continue
        if network == "ingress":
            entries.append((n.ingress_mac, str(n.underlay_ip)))
        elif network in n.lb_ips:
            entries.append((docker_mac(n.lb_ips[network]), str(n.underlay_ip)))
    for t in cluster.tasks:
        if network in t.addresses and t.node != node_name:
            entries.append((t.macs[network], str(cluster.node(t.node).underlay_ip)))
    return entries


def published_ports(cluster: Cluster) -> list[PublishedPort]:
    """The ports every node's kernel steers into its ingress sandbox."""
    return [p for p, _, _ in ingress_ports(cluster)]



# --- user overlay networks: east-west load balancing -------------------------



def vips(cluster: Cluster) -> list[tuple[str, str, object, list[Task]]]:
    """(network, service, VIP, the service's tasks on that network) for every VIP."""
    out = []
    for svc in cluster.services.values():
        for net, vip in svc.vips.items():
            tasks = [t for t in cluster.tasks_of(svc.name)
                     if net in t.addresses and cluster.in_balancer(t)]
            out.append((net, svc.name, vip, tasks))
    return out


def network_flows(cluster: Cluster, node_name: str) -> list[Flow]:
    """The flows of one node for its user overlay networks (see the module doc)."""
    node = cluster.node(node_name)
    flows: list[Flow] = []
    nets = user_networks(cluster)
    if not nets:
        return flows
    local = cluster.tasks_on(node_name)
    for net in nets:
        flows += _net_flows(cluster, node, net, local)
    flows.append(flow(T_NET, 0, {}, []))
    return flows


def _net_flows(cluster: Cluster, node: Node, net: Network, local: list[Task]) -> list[Flow]:
    """One network's flows on one node: tables 0, 50, 80, 63/64 and 72."""
    j = net_index(net)
    tag = {REG_NET: j}
    net_vips = [(svc, vip, tasks) for nname, svc, vip, tasks in vips(cluster)
                if nname == net.name]
    # 0 -> 50: the port a packet came in on names its network (the node's kernel too).
    in_ports = [vxlan_port(net), lb_port(net)] + [net_port(t, net) for t in local
                                                 if net.name in t.addresses]
    flows = [flow(T_CLASSIFY, 250, {"in_port": port}, [SetField(REG_NET, j), Goto(T_NET)])
             for port in in_ports]
    flows += _net_arp_flows(cluster, net, tag, net_vips)
    # 50: a VIP (TCP and UDP; a VIP answers nothing else, as in Swarm), and a reply to
    # this node's load-balancer address: to the node's kernel, which picks and NATs.
    to_kernel = [SetField("eth_dst", lb_leg_mac(net)), Output(lb_port(net))]
    for _svc, vip, _tasks in net_vips:
        for proto in IP_PROTO.values():
            flows.append(flow(T_NET, 200, {**tag, "eth_type": ETH_IP, "ip_proto": proto,
                                           "ipv4_dst": str(vip)}, to_kernel))
    lb_ip = node.lb_ips.get(net.name)
    if lb_ip is not None:
        flows.append(flow(T_NET, 190, {**tag, "eth_type": ETH_IP, "ipv4_dst": str(lb_ip)},
                          to_kernel))
    flows += _net_deliver_flows(cluster, node.name, net, tag)
    return flows


def _net_arp_flows(cluster: Cluster, net: Network, tag: dict,
                   net_vips: list[tuple[str, object, list[Task]]]) -> list[Flow]:
    """50: ARP for every address on this network, answered locally."""
    on_net = [t for t in cluster.tasks if net.name in t.addresses]
    known = [(str(t.addresses[net.name]), t.macs[net.name]) for t in on_net]
    known += [(str(n.lb_ips[net.name]), docker_mac(n.lb_ips[net.name]))
              for n in cluster.nodes if net.name in n.lb_ips]
    known += [(str(vip), docker_mac(vip)) for _svc, vip, _t in net_vips]
    flows = []
    for ip, mac in known:
        f = arp_responder(ip, mac)
        flows.append(flow(T_NET, 300, {**f.match_dict, **tag}, f.actions))
    return flows


def _net_deliver_flows(cluster: Cluster, node_name: str, net: Network,
                       tag: dict) -> list[Flow]:
    """50 -> 80: plain delivery to a task or another node's LB address."""
    on_net = [t for t in cluster.tasks if net.name in t.addresses]
    dests = [(t.addresses[net.name], t.macs[net.name],
              net_port(t, net) if t.node == node_name else vxlan_port(net)) for t in on_net]
    dests += [(n.lb_ips[net.name], docker_mac(n.lb_ips[net.name]), vxlan_port(net))
              for n in cluster.nodes if n.name != node_name and net.name in n.lb_ips]
    flows = []
    for ip, _mac, _port in dests:
        flows.append(flow(T_NET, 100, {**tag, "eth_type": ETH_IP, "ipv4_dst": str(ip)},
                          [Goto(T_NET_DELIVER)]))
    for ip, mac, port in dests:
        flows.append(flow(T_NET_DELIVER, 100, {**tag, "eth_type": ETH_IP,
                                               "ipv4_dst": str(ip)},
                          [SetField("eth_dst", mac), Output(port)]))
    return flows
