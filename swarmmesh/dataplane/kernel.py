"""Every node's kernel rules (nftables), as text: pure functions of the model.

Two kinds of published port end in the node's kernel:

* ingress mode (Swarm's ``DOCKER-INGRESS`` chain, then the ingress sandbox's fwmark,
  IPVS rr and SNAT): every local address + the published port goes to the chain
  ``mesh``, where the node picks a task for each new connection, round robin over the
  tasks in the balancer (``numgen inc mod k map {...}``), and DNATs it to that task's
  ingress address and target port; on its way out to the bridge (``gwbr``, the ingress
  subnet is routed via the sandbox address 172.18.0.2) it is SNATed to the node's own
  ingress address.  The bridge only carries it over the overlay (``rules``): no
  conntrack, no flow learned, nothing per connection.  The kernel's NAT runs once per
  conntrack entry: a resent SYN or a UDP flow's later datagrams keep their task, and a
  client port reused once its connection is closed gets a fresh pick (the kernel
  reopens the entry) and an SNAT port that clashes with no connection the task may
  still hold in TIME_WAIT (closed entries stay 120 s, longer than the task's 60 s; the
  userspace conntrack of the bridge, which did this NAT before, lost about one
  connection in 10 000 there).  A port with no task in the balancer drops new
  connections (IPVS with no real server), and remembers nothing for them;
* host mode: only on a node that runs a task of the service, the published port is
  DNATed straight to that task's own docker_gwbridge leg and target port: no mesh, no
  SNAT (the task sees the client's address; its replies take its default route back
  through the node, whose conntrack un-DNATs them).  Anywhere else the port is closed.

The whole table is one text, so that a node reloads it in one transaction
(:func:`nft_script`) as tasks come and go: the testbed reloads a node's table when its
text changes, after every revision of the model that the switches have applied (a task
joins the kernel's pick only once the bridges have its flows).

Exactness of the round robin: ``numgen inc`` is one atomic counter per rule, so the
new connections entering a node split N/k per task in map order, whatever their
concurrency (only the first packet of a conntrack entry is counted; two first packets
of one flow on two CPUs, one of them dropped as a clash, would take two turns).  A reload (any change of the node's text: a task joins or leaves the
balancer, a host-mode port binds) starts every port's counter again at 0, the first
task of its new map; the exact order holds from each reload on.  Connections already
picked keep their conntrack entries (and so their task) through a reload; draining tasks
leave the map but keep their bridge flows, and the entries of a removed task are
forgotten by the testbed (``conntrack -D --reply-src``, as IPVS's ``expire_nodest_conn``).
"""

from __future__ import annotations

from swarmmesh.dataplane import layout, rules
from swarmmesh.model import Cluster, PublishedPort, Task

TABLE = "swarmmesh"
PICK_CHAIN = "mesh"
HOST_PROTOCOLS = ("tcp", "udp")      # as the mesh: the task server answers these two


def host_port_dnats(cluster: Cluster, node: str) -> list[tuple[PublishedPort, Task]]:
    """Every host-mode port bound on ``node``, with the local task that takes it.  The
    first local task (in task order) binds a port; a later one on the same port and
    protocol gets nothing, as a second container fails to bind it in Docker."""
    out, bound = [], set()
    for task in cluster.tasks_on(node):
        for p in cluster.service(task.service).host_ports():
            key = (p.protocol, p.published)
            if p.protocol in HOST_PROTOCOLS and key not in bound:
                bound.add(key)
                out.append((p, task))
    return out


def gw_legs(cluster: Cluster, node: str) -> list[Task]:
    """The local tasks with a docker_gwbridge leg of their own."""
    return [t for t in cluster.tasks_on(node) if layout.has_gw_leg(t, cluster)]


def ingress_picks(cluster: Cluster) -> list[tuple[PublishedPort, list[Task]]]:
    """Every ingress-mode published port with the tasks a node's kernel picks from for a
    new connection, in round-robin order (the same on every node)."""
    return [(p, tasks) for p, tasks, _every in rules.ingress_ports(cluster)]


def pick_rule(port: PublishedPort, tasks: list[Task]) -> str:
    """The ``mesh`` chain's rule for one ingress port: the k-th new connection goes to
    ``tasks[k % len(tasks)]``'s ingress address and the target port; none: dropped."""
    head = f"{port.protocol} dport {port.published}"
    if not tasks:
        return f"{head} drop"
    picks = ", ".join(f"{k} : {t.addresses['ingress']}" for k, t in enumerate(tasks))
    return f"{head} dnat to numgen inc mod {len(tasks)} map {{ {picks} }} : {port.target}"


def ingress_snat(cluster: Cluster, node: str) -> str:
    """The postrouting rule that SNATs what leaves for the ingress network to the node's
    ingress address (the sandbox's masquerade)."""
    subnet = cluster.networks["ingress"].subnet
    return (f"oifname \"{layout.GW_INTF}\" ip daddr {subnet} "
            f"snat to {cluster.node(node).ingress_ip}")


def _dnat_rules(cluster: Cluster, node: str) -> list[str]:
    out = [f"  fib daddr type local jump {PICK_CHAIN}"] if ingress_picks(cluster) else []
    out += [f"  fib daddr type local {p.protocol} dport {p.published} "
            f"dnat to {layout.task_gw_ip(t)}:{p.target}"
            for p, t in host_port_dnats(cluster, node)]
    return out


def table(cluster: Cluster, node: str) -> str:
    """The node's table ``ip swarmmesh``: the round-robin pick of ingress ports (one
    chain, so that prerouting and output share one counter per port), published ports
    DNATed in prerouting (from outside) and output (from the node itself), what leaves
    for the ingress network SNATed to the node's ingress address, localhost masqueraded
    where it leaves."""
    dnat = _dnat_rules(cluster, node)
    lines = [f"table ip {TABLE} {{",
             f" chain {PICK_CHAIN} {{",
             *[f"  {pick_rule(p, tasks)}" for p, tasks in ingress_picks(cluster)], " }",
             " chain prerouting { type nat hook prerouting priority -100; policy accept;",
             *dnat, " }",
             " chain output { type nat hook output priority -100; policy accept;",
             *dnat, " }"]
    # localhost too, as in Swarm: 127.0.0.1 may leave on gwbr (route_localnet)
    # and is masqueraded to the node's gateway address, as Docker does.  A task's own
    # leg has no address of the node's to masquerade to: SNAT to the gateway's.
    lines += [" chain postrouting { type nat hook postrouting priority 100; policy accept;",
              f"  {ingress_snat(cluster, node)}",
              f"  oifname \"{layout.GW_INTF}\" ip saddr 127.0.0.0/8 masquerade"]
    lines += [f"  oifname \"{layout.gw_intf(t)}\" ip saddr 127.0.0.0/8 snat to {layout.GW_IP}"
              for t in gw_legs(cluster, node)]
    lines += [" }", "}"]
    return "\n".join(lines) + "\n"


def nft_script(cluster: Cluster, node: str) -> str:
    """An ``nft -f`` file that replaces the node's table in one transaction (whether it
    exists yet or not): connections already DNATed keep their conntrack entries."""
    return f"add table ip {TABLE}\ndelete table ip {TABLE}\n" + table(cluster, node)
