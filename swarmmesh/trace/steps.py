"""The steps every path is made of: a client, a task, a bridge, a VXLAN crossing."""

from __future__ import annotations

from swarmmesh.dataplane import layout, picks
from swarmmesh.model import Task
from swarmmesh.trace.dest import Source
from swarmmesh.trace.hops import Capture, Hop, Packet, Rewrite


def ep(ip, port) -> str:
    return f"{ip}:{port}" if port is not None else str(ip)


def client_hop(source: Source, pkt: Packet) -> Hop:
    c = source.client
    return Hop(c.name, f"{c.name} (client)", "client", f"connect() to {ep(pkt.dst, pkt.dport)}",
               pkt, capture=Capture(c.name, f"{c.name}-eth0", pkt))


def task_hop(task: Task, pkt: Packet, intf: str) -> Hop:
    return Hop(task.host, f"{task.host} ({task.name} on {task.node})", "task",
               f"the task's socket {pkt.proto}:{pkt.dport}: answers, sees source {pkt.src}",
               pkt, capture=Capture(task.host, intf, pkt))


def bridge_hop(node: str, pkt: Packet, in_port: int, tables: list[int], out: int,
               rewrites: tuple[Rewrite, ...] = (), reply: bool = False) -> Hop:
    """The node's bridge, as the model says: the tables walked and the port it leaves by;
    ``ofproto/trace`` of the real packet on ``in_port`` fills in the rules."""
    return Hop(node, f"{node} {layout.BRIDGE}", "bridge",
               f"in_port {in_port}, tables {' -> '.join(map(str, tables))}, output {out}",
               pkt, rewrites, (f"in_port={in_port}", f"tables={','.join(map(str, tables))}",
                               f"output={out}", *(["reply"] if reply else [])))


def vxlan_hop(cluster, src_node: str, dst_node: str, pkt: Packet, vni: int,
              reply: bool = False) -> Hop:
    a, b = str(cluster.node(src_node).underlay_ip), str(cluster.node(dst_node).underlay_ip)
    return Hop(src_node, f"{src_node} underlay", "vxlan",
               f"VXLAN VNI {vni}: {a} -> {b}:4789 (static FDB, no flooding)", pkt,
               (Rewrite("encap", f"{pkt.src} > {pkt.dst}", f"udp {a} > {b}:4789 vni {vni}"),),
               (f"decap on {dst_node}",), Capture(src_node, f"{src_node}-eth0", pkt, vni, (a, b)))


def why_picked(balancing, table: list[Task], chosen: Task) -> str:
    index = [t.name for t in table].index(chosen.name) if chosen in table else -1
    if balancing.affinity:
        return (f"ClientIP affinity ({int(balancing.affinity)} s): a known client goes back "
                f"to its task; a new one: {balancing.scheduler}")
    if picks.hashed(balancing.scheduler):
        return (f"{balancing.scheduler}: jhash of the client's address mod {len(table)} "
                f"= {index}")
    if balancing.scheduler == "rr":
        return (f"rr: the node's counter (numgen inc mod {len(table)}) stood at {index}")
    return f"{balancing.scheduler}: entry {index} of a table of {len(table)}"
