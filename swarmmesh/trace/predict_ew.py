"""East-west: a task to a service on an overlay network it shares, through the service's
VIP (the bridge hands it to the node's kernel on the network's ``lb-n<j>`` leg, whose
nftables DNAT it to a task and SNAT it to the node's load-balancer address) or dnsrr (the name gives the tasks' own addresses: no VIP, no
NAT); a network the source is not on is isolated from it."""

from __future__ import annotations

from ipaddress import ip_address

from swarmmesh.dataplane import eastwest, kernel, layout, rules
from swarmmesh.model import Cluster, Task, docker_mac
from swarmmesh.trace.dest import Dest, Source, owner_of
from swarmmesh.trace.hops import Capture, Hop, Packet, Path, Rewrite
from swarmmesh.trace.steps import bridge_hop, ep, task_hop, vxlan_hop, why_picked


def east_west(cluster: Cluster, source: Source, dest: Dest, path: Path,
              pick: str | None, sport: int | None) -> Path:
    src = source.task
    svc, target = _target(cluster, dest)
    shared = [n for n in src.addresses if n in _networks_of(cluster, svc, target)
              and not cluster.networks[n].ingress]
    if not shared:
        theirs = sorted(_networks_of(cluster, svc, target)) or ["none"]
        why = (f"isolated: {src.name} is on {', '.join(sorted(src.addresses)) or 'no network'}"
               f", {svc or dest.address} on {', '.join(theirs)}: no name resolves and the "
               "bridge has no path between networks")
        pkt = Packet(dest.proto, "", sport, dest.address or svc, dest.port)
        path.refused = why
        path.hops.append(Hop(src.host, src.host, "refused", why, pkt))
        return path
    net = cluster.networks[shared[0]]
    service = cluster.service(svc) if svc else None
    tasks = ([t for t in cluster.tasks_of(svc) if net.name in t.addresses
              and cluster.in_balancer(t)] if svc else [cluster.task(target)])
    path.candidates = tuple(t.name for t in tasks)
    if not tasks:
        path.refused = f"no task of {svc} on {net.name} in the balancer"
        return path
    chosen = next((t for t in tasks if pick in (t.name, t.host)), tasks[0])
    path.pick = chosen.name
    s_ip = str(src.addresses[net.name])
    if service is not None and service.endpoint_mode == "vip" and dest.kind != "address" \
            or (dest.kind == "address" and owner_of(cluster, ip_address(dest.address))[0] == "vip"):
        vip = str(service.vips[net.name])
        path.why_pick = _why_vip(cluster, service.name, net, vip, tasks, chosen)
        return _vip(cluster, path, src, chosen, net, Packet(dest.proto, s_ip, sport, vip,
                                                             dest.port))
    path.why_pick = ("dnsrr: the embedded DNS answered the tasks' addresses, the client "
                     "took the first" if svc else "the task's own address")
    return _plain(cluster, path, src, chosen, net,
                  Packet(dest.proto, s_ip, sport, str(chosen.addresses[net.name]), dest.port))


def _target(cluster: Cluster, dest: Dest) -> tuple[str, str]:
    """(service, task) the destination names: a service, a VIP's service, a task."""
    if dest.kind == "service":
        return dest.service, ""
    kind, name = owner_of(cluster, ip_address(dest.address))
    return (name, "") if kind == "vip" else ("", name)


def _networks_of(cluster: Cluster, svc: str, task: str) -> set[str]:
    if svc:
        s = cluster.service(svc)
        return set(s.vips) | {n for t in cluster.tasks_of(svc) for n in t.addresses}
    return set(cluster.task(task).addresses)


def _source_hop(src: Task, pkt: Packet, net, note: str) -> Hop:
    intf = layout.task_net_intf(src, net)
    return Hop(src.host, f"{src.host} ({src.name} on {src.node})", "client",
               f"connect() to {ep(pkt.dst, pkt.dport)}", pkt, (), (note,),
               Capture(src.host, intf, pkt))


def _why_vip(cluster: Cluster, svc: str, net, vip: str, tasks: list[Task],
             chosen: Task) -> str:
    balancing = cluster.service(svc).balancing
    return f"VIP {vip}: " + why_picked(balancing, kernel.pick_table(balancing, tasks), chosen)


def vip_rule(cluster: Cluster, net, vip: str) -> str:
    """The node's prerouting rule of the VIP, as :mod:`eastwest` writes it."""
    _s, rules_, _c = eastwest.vip_rules(cluster)
    head = eastwest.vip_head(net, vip)
    return next(r for r in rules_ if r.startswith(head + " ") and "@" not in r)


def _vip(cluster: Cluster, path: Path, src: Task, task: Task, net, pkt: Packet) -> Path:
    """The bridge hands the packet to the node's kernel (``lb-n<j>``), which picks a task,
    DNATs and SNATs it and sends it back on the same leg; then plain delivery."""
    node = cluster.node(src.node)
    lb = str(node.lb_ips[net.name])
    t_ip = str(task.addresses[net.name])
    leg = layout.lb_intf(net)
    path.hops.append(_source_hop(src, pkt, net, f"the embedded DNS: {path.dest.split(':')[0]}"
                                 f" -> VIP {pkt.dst}"))
    path.hops.append(bridge_hop(src.node, pkt, layout.net_port(src, net),
                                [rules.T_CLASSIFY, rules.T_NET], layout.lb_port(net),
                                (Rewrite("mac", "eth_dst " + docker_mac_of(pkt.dst),
                                         "eth_dst " + layout.lb_leg_mac(net)),)))
    dnat = Packet(pkt.proto, pkt.src, pkt.sport, t_ip, pkt.dport)
    out = Packet(pkt.proto, lb, pkt.sport, t_ip, pkt.dport)
    path.hops.append(Hop(src.node, f"{src.node} kernel", "nft",
                         f"table ip {kernel.TABLE} chain prerouting: "
                         f"{vip_rule(cluster, net, pkt.dst)}", dnat,
                         (Rewrite("dnat", ep(pkt.dst, pkt.dport), ep(t_ip, pkt.dport)),),
                         (f"from {leg}: Swarm's lb-{net.name}", f"pick: {task.name} "
                          f"({path.why_pick})")))
    snat_rule = next(r for r in eastwest.lb_snat_rules(cluster, src.node)
                     if r.startswith(f'oifname "{leg}" '))
    path.hops.append(Hop(src.node, f"{src.node} kernel", "nft",
                         f"table ip {kernel.TABLE} chain postrouting: {snat_rule}", out,
                         (Rewrite("snat", ep(pkt.src, pkt.sport), ep(lb, pkt.sport)),),
                         (f"route {net.subnet} dev {leg}",), Capture(src.node, leg, out)))
    remote = task.node != src.node
    port = layout.vxlan_port(net) if remote else layout.net_port(task, net)
    path.hops.append(bridge_hop(src.node, out, layout.lb_port(net),
                                [rules.T_CLASSIFY, rules.T_NET, rules.T_NET_DELIVER], port))
    _deliver(cluster, path, src.node, task, net, out)
    return path


def docker_mac_of(ip: str) -> str:
    return docker_mac(ip_address(ip))


def _plain(cluster: Cluster, path: Path, src: Task, task: Task, net, pkt: Packet) -> Path:
    path.hops.append(_source_hop(src, pkt, net, path.why_pick))
    remote = task.node != src.node
    port = layout.vxlan_port(net) if remote else layout.net_port(task, net)
    path.hops.append(bridge_hop(src.node, pkt, layout.net_port(src, net),
                                [rules.T_CLASSIFY, rules.T_NET, rules.T_NET_DELIVER], port))
    _deliver(cluster, path, src.node, task, net, pkt)
    return path


def _deliver(cluster: Cluster, path: Path, node: str, task: Task, net, pkt: Packet) -> None:
    if task.node != node:
        path.hops.append(vxlan_hop(cluster, node, task.node, pkt, net.vni))
        path.hops.append(bridge_hop(task.node, pkt, layout.vxlan_port(net),
                                    [rules.T_CLASSIFY, rules.T_NET, rules.T_NET_DELIVER],
                                    layout.net_port(task, net)))
    path.hops.append(task_hop(task, pkt, layout.task_net_intf(task, net)))
    src_host = path.hops[0].host
    back = Packet(pkt.proto, path.hops[0].packet.dst, pkt.dport, path.hops[0].packet.src,
                  pkt.sport)
    path.hops.append(Hop(src_host, src_host, "reply", "the answer, from the address it "
                         "called", back, capture=Capture(src_host, path.hops[0].capture.intf,
                                                         back)))
