"""East-west in the node's kernel: the VIPs' pick and NAT, as nftables text (pure).

Swarm gives every node a load-balancer endpoint per overlay network (``lb-<net>``, its
address the node's LB address on that network) where IPVS holds one fwmark service per
VIP: scheduler rr, one real server per task, NAT mode, then SNAT to the endpoint's
address, so the task sees the node's LB address and replies to it.  Here each node's
kernel plays that endpoint, in the same table as ingress (``kernel``):

* the bridge sends a packet to a VIP (TCP, UDP), and a reply to the node's LB address,
  to the kernel on network j's leg ``lb-n<j>`` (``layout.lb_port``); the network's
  subnet is routed back out of that leg, with no address of the node's on it;
* prerouting: a new connection from ``lb-n<j>`` to a VIP is DNATed to the task the
  service's table names (``numgen inc`` for rr, wrr and lc, ``jhash`` of the client's
  address for sh and maglev; ClientIP affinity as for ingress), the port kept, as
  IPVS's fwmark service (one counter for TCP and UDP); no task: dropped;
* postrouting: what leaves on ``lb-n<j>`` is SNATed to the node's LB address;
* a filter: only DNATed connections cross the leg, back out of the leg they came in on,
  so networks stay isolated and the node itself reaches no task.

Conntrack handles the replies; a reload (any change of the text) starts every counter
again at 0, as for ingress.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from swarmmesh.dataplane import layout, nftpick, rules
from swarmmesh.model import Cluster, Network, Task

FILTER_CHAIN_PRIORITY = 0


def vip_picks(cluster: Cluster) -> list[tuple[Network, str, IPv4Address, list[Task]]]:
    """(network, service, VIP, the tasks a new connection may get) for every VIP, in the
    order of :func:`rules.vips` (the affinity sets are numbered by it)."""
    return [(cluster.networks[net], svc, vip, tasks)
            for net, svc, vip, tasks in rules.vips(cluster)]


def vip_head(net: Network, vip) -> str:
    """What a new connection to ``vip`` looks like in the node's prerouting."""
    return f'iifname "{layout.lb_intf(net)}" ip daddr {vip}'


def vip_rules(cluster: Cluster, lc: dict[str, int] | None = None
              ) -> tuple[list[str], list[str], dict[str, list[str]]]:
    """The affinity sets, the prerouting rules and the per-task chains of every VIP."""
    sets: list[str] = []
    out: list[str] = []
    chains: dict[str, list[str]] = {}
    for vi, (net, svc, vip, tasks) in enumerate(vip_picks(cluster)):
        b = cluster.service(svc).balancing
        head = vip_head(net, vip)

        def address(t: Task, name: str = net.name) -> str:
            return str(t.addresses[name])

        if b.affinity:
            s_, r_, c_ = nftpick.sticky_rules(
                lambda t, i=vi: f"vaff{i}_t{layout.task_number(t)}", head, tasks, b, address)
            sets, out = sets + s_, out + r_
            chains.update(c_)
        else:
            out.append(nftpick.dnat_pick(head, nftpick.pick_table(b, tasks, lc), b, address))
    return sets, out, chains


def lb_snat_rules(cluster: Cluster, node: str) -> list[str]:
    """Postrouting: what leaves for a network's tasks is SNATed to the node's LB address."""
    me = cluster.node(node)
    return [f'oifname "{layout.lb_intf(net)}" snat to {me.lb_ips[net.name]}'
            for net in layout.user_networks(cluster) if net.name in me.lb_ips]


def filter_chains(cluster: Cluster) -> list[str]:
    """Forward: a leg's DNATed connections go back out of the same leg, nothing else
    crosses it; input and output: the node itself talks to no network's task."""
    nets = layout.user_networks(cluster)
    if not nets:
        return []
    legs = ", ".join(f'"{layout.lb_intf(n)}"' for n in nets)
    fwd = []
    for n in nets:
        leg = f'"{layout.lb_intf(n)}"'
        fwd += [f"iifname {leg} oifname {leg} ct status dnat accept",
                f"iifname {leg} drop", f"oifname {leg} drop"]
    hook = f"priority {FILTER_CHAIN_PRIORITY}; policy accept;"
    return [f" chain ew_forward {{ type filter hook forward {hook}",
            *[f"  {r}" for r in fwd], " }",
            f" chain ew_input {{ type filter hook input {hook}",
            f"  iifname {{ {legs} }} drop", " }",
            f" chain ew_output {{ type filter hook output {hook}",
            f"  oifname {{ {legs} }} drop", " }"]


def leg_cmds(cluster: Cluster, overlay_mtu: int, tx) -> list[str]:
    """The node's legs to its kernel, one per user network (``tx(intf)``: the offload
    command of a leg), and each network's subnet routed out of its leg."""
    cmds = []
    for net in layout.user_networks(cluster):
        k, b = layout.lb_intf(net), layout.lb_br_intf(net)
        cmds += [f"ip link add {k} type veth peer name {b}",
                 f"ip link set {k} address {layout.lb_leg_mac(net)}",
                 f"ip link set {k} mtu {overlay_mtu} up", tx(k),
                 f"ip link set {b} mtu {overlay_mtu} up", tx(b),
                 f"ip route add {net.subnet} dev {k}"]
    return cmds
