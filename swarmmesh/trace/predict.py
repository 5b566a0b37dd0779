"""Which hops a connection must take, from the cluster model alone: north-south (a client
to a node's published port: the routing mesh, host mode, the local traffic policy) and,
in :mod:`swarmmesh.trace.predict_ew`, east-west (a task to a service's VIP or dnsrr).

``predict(cluster, source, dest, pick=None, sport=None)``: ``pick`` is the task the entry
chose (the model knows the candidates and the rule; which one a round-robin counter gives
is read from the packets); ``sport`` the client's source port, once known.
"""

from __future__ import annotations

from swarmmesh.dataplane import kernel, layout, rules
from swarmmesh.model import Cluster, PublishedPort, Task
from swarmmesh.trace.dest import Dest, Source
from swarmmesh.trace import predict_ew
from swarmmesh.trace.hops import Capture, Hop, Packet, Path, Rewrite
from swarmmesh.trace.steps import bridge_hop, client_hop, ep, task_hop, vxlan_hop, why_picked


def predict(cluster: Cluster, source: Source, dest: Dest, pick: str | None = None,
            sport: int | None = None) -> Path:
    path = Path(source.name, str(dest))
    if dest.kind == "node":
        if source.client is None:
            path.refused = "SOURCE: a node's published port is traced from a client"
            return path
        return _north_south(cluster, source, dest, path, pick, sport)
    if source.task is None:
        path.refused = "SOURCE: a service or overlay address is reached from a task"
        return path
    return predict_ew.east_west(cluster, source, dest, path, pick, sport)




def published(cluster: Cluster, port: int, proto: str) -> tuple[str, PublishedPort] | None:
    """The service publishing ``port``/``proto`` and its port (ingress or host mode)."""
    for svc in cluster.services.values():
        for p in svc.ports:
            if p.published == port and p.protocol == proto:
                return svc.name, p
    return None


def refusal(host: str, why: str, pkt: Packet, capture: Capture | None = None) -> Hop:
    return Hop(host, f"{host} kernel", "refused", why, pkt, capture=capture)


def _north_south(cluster: Cluster, source: Source, dest: Dest, path: Path,
                 pick: str | None, sport: int | None) -> Path:
    node = cluster.node(dest.node)
    pkt = Packet(dest.proto, str(source.client.underlay_ip), sport, str(node.underlay_ip),
                 dest.port)
    path.hops.append(client_hop(source, pkt))
    found = published(cluster, dest.port, dest.proto)
    if found is None:
        why = (f"no service publishes {dest.port}/{dest.proto}: {node.name}'s table has no "
               "rule for it, its own stack "
               + ("resets the connection" if dest.proto == "tcp" else "answers ICMP port "
                  "unreachable"))
        return _refuse(path, node.name, why, pkt)
    svc, port = found
    if port.mode == "host":
        return _host_mode(cluster, dest, path, pkt, svc, port)
    balancing = cluster.service(svc).balancing
    tasks = next(t for p, t in kernel.ingress_picks(cluster) if p == port)
    if balancing.traffic_policy == "local":
        tasks = kernel.local_tasks(cluster, node.name, tasks)
        if not tasks:
            return _refuse(path, node.name, f"traffic_policy local: no task of {svc} on "
                                            f"{node.name}: its table has no rule for "
                                            f"{dest.port}/{dest.proto}", pkt)
    path.candidates = tuple(t.name for t in tasks)
    if not tasks:
        return _refuse(path, node.name, f"no task of {svc} in the balancer: the mesh "
                                        "drops new connections", pkt)
    chosen = _chosen(cluster, tasks, pick)
    table = kernel.pick_table(balancing, tasks)
    path.pick, path.why_pick = chosen.name, why_picked(balancing, table, chosen)
    if balancing.traffic_policy == "local":
        return _direct(cluster, path, pkt, node.name, chosen, port,
                       kernel.pick_rule(port, tasks, balancing, layout.task_gw_ip),
                       "mesh", "traffic_policy local: a local task, no SNAT")
    return _mesh(cluster, path, pkt, node.name, chosen, port,
                 kernel.pick_rule(port, tasks, balancing))


def _refuse(path: Path, node: str, why: str, pkt: Packet) -> Path:
    path.refused = why
    path.hops.append(refusal(node, why, pkt))
    return path


def _chosen(cluster: Cluster, tasks: list[Task], pick: str | None) -> Task:
    if pick is None:
        return tasks[0]
    for t in tasks:
        if pick in (t.name, t.host):
            return t
    return cluster.task(pick)        # not a candidate: the comparison will say so


def _host_mode(cluster: Cluster, dest: Dest, path: Path, pkt: Packet, svc: str,
               port: PublishedPort) -> Path:
    bound = [(p, t) for p, t in kernel.host_port_dnats(cluster, dest.node)
             if (p.protocol, p.published) == (port.protocol, port.published)]
    if not bound:
        where = sorted({t.node for t in cluster.tasks_of(svc)}) or ["no node"]
        return _refuse(path, dest.node, f"host mode: {dest.port}/{dest.proto} of {svc} is "
                                        f"bound only where a task runs ({', '.join(where)});"
                                        f" {dest.node} runs none, nothing listens there",
                       pkt)
    [(p, task)] = bound
    path.candidates, path.pick = (task.name,), task.name
    path.why_pick = "host mode: the node's own task that binds the port"
    rule = (f"fib daddr type local {p.protocol} dport {p.published} "
            f"dnat to {layout.task_gw_ip(task)}:{p.target}")
    return _direct(cluster, path, pkt, dest.node, task, port, rule, "prerouting",
                   "host mode: no mesh, no SNAT")


def _direct(cluster: Cluster, path: Path, pkt: Packet, node: str, task: Task,
            port: PublishedPort, rule: str, chain: str, note: str) -> Path:
    """DNAT straight to the task's docker_gwbridge leg: the task sees the client."""
    gw = str(layout.task_gw_ip(task))
    after = Packet(pkt.proto, pkt.src, pkt.sport, gw, port.target)
    path.hops.append(Hop(node, f"{node} kernel", "nft", f"table ip {kernel.TABLE} chain "
                         f"{chain}: {rule}", after,
                         (Rewrite("dnat", ep(pkt.dst, pkt.dport), ep(gw, port.target)),),
                         (note, f"routed to {gw} via {layout.gw_intf(task)}")))
    path.hops.append(task_hop(task, after, layout.task_gw_intf(task)))
    path.hops.append(Hop(node, f"{node} kernel", "reply", "conntrack: un-DNAT", pkt.reversed(),
                         (Rewrite("un-dnat", ep(gw, port.target), ep(pkt.dst, pkt.dport)),),
                         (f"{task.host} replies via its default route {layout.GW_IP}",),
                         Capture(path.source, f"{path.source}-eth0", pkt.reversed())))
    return path



def _mesh(cluster: Cluster, path: Path, pkt: Packet, node: str, task: Task,
          port: PublishedPort, rule: str) -> Path:
    """The routing mesh: DNAT to the task's ingress address, SNAT to the node's ingress
    address, the bridge, VXLAN if the task is elsewhere, the task; then the reply."""
    entry = cluster.node(node)
    t_ip, n_ip = str(task.addresses["ingress"]), str(entry.ingress_ip)
    dnat = Packet(pkt.proto, pkt.src, pkt.sport, t_ip, port.target)
    snat = Packet(pkt.proto, n_ip, pkt.sport, t_ip, port.target)
    subnet = cluster.networks["ingress"].subnet
    path.hops.append(Hop(node, f"{node} kernel", "nft",
                         f"table ip {kernel.TABLE} chain {kernel.PICK_CHAIN}: {rule}", dnat,
                         (Rewrite("dnat", ep(pkt.dst, pkt.dport), ep(t_ip, port.target)),),
                         (f"prerouting: fib daddr type local jump {kernel.PICK_CHAIN}",
                          f"pick: {task.name} ({path.why_pick})")))
    path.hops.append(Hop(node, f"{node} kernel", "nft", f"table ip {kernel.TABLE} chain "
                         f"postrouting: {kernel.ingress_snat(cluster, node)}", snat,
                         (Rewrite("snat", ep(pkt.src, pkt.sport), ep(n_ip, pkt.sport)),),
                         (f"route {subnet} via {layout.SBOX_GW_IP} dev {layout.GW_INTF}",),
                         Capture(node, layout.GW_INTF, snat)))
    remote = task.node != node
    out = layout.PORT_VXLAN if remote else layout.ingress_port(task)
    path.hops.append(bridge_hop(node, snat, layout.PORT_GW,
                                [rules.T_CLASSIFY, rules.T_FWD_OUT, rules.T_DELIVER], out,
                                (Rewrite("mac", "eth_src " + layout.GW_MAC,
                                         "eth_src " + entry.ingress_mac),)))
    if remote:
        path.hops.append(vxlan_hop(cluster, node, task.node, snat,
                                   cluster.networks["ingress"].vni))
        path.hops.append(bridge_hop(task.node, snat, layout.PORT_VXLAN,
                                    [rules.T_CLASSIFY, rules.T_DELIVER],
                                    layout.ingress_port(task)))
    path.hops.append(task_hop(task, snat, f"{task.host}-eth0"))
    _mesh_reply(cluster, path, pkt, node, task, snat)
    return path


def _mesh_reply(cluster: Cluster, path: Path, pkt: Packet, node: str, task: Task,
                snat: Packet) -> None:
    reply = snat.reversed()
    if task.node != node:
        path.hops.append(bridge_hop(task.node, reply, layout.ingress_port(task),
                                    [rules.T_CLASSIFY, rules.T_DELIVER], layout.PORT_VXLAN,
                                    reply=True))
        path.hops.append(vxlan_hop(cluster, task.node, node, reply,
                                   cluster.networks["ingress"].vni, reply=True))
        in_port = layout.PORT_VXLAN
    else:
        in_port = layout.ingress_port(task)
    path.hops.append(bridge_hop(node, reply, in_port, [rules.T_CLASSIFY, rules.T_RPL_OUT],
                                layout.PORT_GW, reply=True))
    back = pkt.reversed()
    path.hops.append(Hop(node, f"{node} kernel", "reply", "conntrack: un-SNAT, un-DNAT", back,
                         (Rewrite("un-snat", ep(reply.dst, reply.dport), ep(back.dst, back.dport)),
                          Rewrite("un-dnat", ep(reply.src, reply.sport),
                                  ep(back.src, back.sport))),
                         capture=Capture(path.source, f"{path.source}-eth0", back)))

