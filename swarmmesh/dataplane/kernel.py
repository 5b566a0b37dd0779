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
  With Swarm's own IPVS as a reference path (``Testbed(ingress="ipvs")``, :mod:`ipvs`)
  the chain ``mesh`` only DNATs the port to the ingress sandbox 172.18.0.2, as Swarm's
  ``DOCKER-INGRESS`` does, and a real sandbox namespace picks (IPVS rr) and SNATs;
* host mode: only on a node that runs a task of the service, the published port is
  DNATed straight to that task's own docker_gwbridge leg and target port: no mesh, no
  SNAT (the task sees the client's address; its replies take its default route back
  through the node, whose conntrack un-DNATs them).  Anywhere else the port is closed.

The same table holds the node's east-west picks (a service's VIP on a user network, Swarm's
``lb-<net>``): prerouting rules on the node's legs ``lb-n<j>`` and their SNAT
(:mod:`eastwest`); the pick's text is shared with ingress (:mod:`nftpick`).

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

from swarmmesh.dataplane import eastwest, layout, rules
from swarmmesh.dataplane.nftpick import dnat_pick, pick_table, sticky_rules
from swarmmesh.model import Cluster, PublishedPort, Task
from swarmmesh.model.balancing import Balancing

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


def balancing_of(cluster: Cluster, port: PublishedPort) -> Balancing:
    """The balancing options of the service that publishes ``port`` (ingress mode)."""
    for svc in cluster.ingress_services():
        if port in svc.ingress_ports():
            return svc.balancing
    return Balancing()


def pick_rule(port: PublishedPort, tasks: list[Task], balancing: Balancing = Balancing(),
              address=None, lc: dict[str, int] | None = None) -> str:
    """The ``mesh`` chain's rule for one ingress port: the k-th entry of the service's
    table (walked by the counter, or indexed by the client's hash) names the task whose
    ``address(task)`` (default: its ingress address) and target port the connection is
    DNATed to; no task: dropped."""
    where = address or (lambda t: t.addresses["ingress"])
    return dnat_pick(f"{port.protocol} dport {port.published}", pick_table(balancing, tasks, lc),
                     balancing, where, f" : {port.target}")


def affinity_set(pi: int, task: Task, prefix: str = "aff") -> str:
    """The dynamic set of the client addresses stuck to ``task`` on the ``pi``-th port
    (``prefix``: ``aff`` for ingress ports, ``vaff`` for VIPs)."""
    return f"{prefix}{pi}_t{layout.task_number(task)}"


def affinity_rules(pi: int, port: PublishedPort, tasks: list[Task], balancing: Balancing,
                   address) -> tuple[list[str], list[str], dict[str, list[str]]]:
    """ClientIP session affinity (IPVS persistence, Kubernetes' sessionAffinity): a
    client seen within the timeout goes back to its task; a new one is picked by the
    scheduler and remembered.  (sets, rules in ``mesh``, chains one per task)."""
    return sticky_rules(lambda t: affinity_set(pi, t), f"{port.protocol} dport {port.published}",
                        tasks, balancing, lambda t: f"{address(t)} : {port.target}")


def local_tasks(cluster: Cluster, node: str, tasks: list[Task]) -> list[Task]:
    """``traffic_policy: local``: only the node's own tasks take its connections."""
    return [t for t in tasks if t.node == node]


def mesh(cluster: Cluster, node: str, lc: dict[str, int] | None = None
         ) -> tuple[list[str], list[str], dict[str, list[str]]]:
    """The node's sets, the ``mesh`` chain's rules and the per-task chains, for every
    ingress port: Swarm's rr unless the service chose otherwise."""
    sets: list[str] = []
    rules_: list[str] = []
    chains: dict[str, list[str]] = {}
    for pi, (p, tasks) in enumerate(ingress_picks(cluster)):
        b = balancing_of(cluster, p)
        address = (lambda t: t.addresses["ingress"])
        if b.traffic_policy == "local":
            tasks = local_tasks(cluster, node, tasks)
            address = layout.task_gw_ip            # straight to the task: no mesh, no SNAT
            if not tasks:
                continue                           # nothing local: the node refuses
        if b.affinity:
            s_, r_, c_ = affinity_rules(pi, p, tasks, b, address)
            sets, rules_ = sets + s_, rules_ + r_
            chains.update(c_)
        else:
            rules_.append(pick_rule(p, tasks, b, address if b.traffic_policy == "local"
                                    else None, lc))
    return sets, rules_, chains


def ingress_snat(cluster: Cluster, node: str) -> str:
    """The postrouting rule that SNATs what leaves for the ingress network to the node's
    ingress address (the sandbox's masquerade)."""
    subnet = cluster.networks["ingress"].subnet
    return (f"oifname \"{layout.GW_INTF}\" ip daddr {subnet} "
            f"snat to {cluster.node(node).ingress_ip}")


def sandbox_dnat_rules(cluster: Cluster) -> list[str]:
    """With the IPVS reference path (:mod:`ipvs`): the ``mesh`` chain only DNATs every
    ingress port to the ingress sandbox, port kept, as Swarm's ``DOCKER-INGRESS`` chain;
    the sandbox's IPVS picks the task."""
    return [f"{p.protocol} dport {p.published} dnat to {layout.SBOX_GW_IP}"
            for p, _tasks in ingress_picks(cluster)]


def _dnat_rules(cluster: Cluster, node: str) -> list[str]:
    out = [f"  fib daddr type local jump {PICK_CHAIN}"] if ingress_picks(cluster) else []
    out += [f"  fib daddr type local {p.protocol} dport {p.published} "
            f"dnat to {layout.task_gw_ip(t)}:{p.target}"
            for p, t in host_port_dnats(cluster, node)]
    return out


def table(cluster: Cluster, node: str, lc: dict[str, int] | None = None,
          ingress: str = "mesh") -> str:
    """The node's table ``ip swarmmesh``: the round-robin pick of ingress ports (one
    chain, so that prerouting and output share one counter per port), published ports
    DNATed in prerouting (from outside) and output (from the node itself), what leaves
    for the ingress network SNATed to the node's ingress address, localhost masqueraded
    where it leaves.  ``ingress="ipvs"``: ingress ports only DNATed to the ingress
    sandbox, which picks and SNATs (:func:`sandbox_dnat_rules`)."""
    dnat = _dnat_rules(cluster, node)
    if ingress == "ipvs":
        sets, picks, chains = [], sandbox_dnat_rules(cluster), {}
    else:
        sets, picks, chains = mesh(cluster, node, lc)
    vsets, vrules, vchains = eastwest.vip_rules(cluster, lc)
    lines = [f"table ip {TABLE} {{", *sets, *vsets,
             f" chain {PICK_CHAIN} {{", *[f"  {r}" for r in picks], " }"]
    for name, body in {**chains, **vchains}.items():
        lines += [f" chain {name} {{", *[f"  {r}" for r in body], " }"]
    lines += [
             " chain prerouting { type nat hook prerouting priority -100; policy accept;",
             *dnat, *[f"  {r}" for r in vrules], " }",
             " chain output { type nat hook output priority -100; policy accept;",
             *dnat, " }"]
    # localhost too, as in Swarm: 127.0.0.1 may leave on gwbr (route_localnet)
    # and is masqueraded to the node's gateway address, as Docker does.  A task's own
    # leg has no address of the node's to masquerade to: SNAT to the gateway's.
    lines += [" chain postrouting { type nat hook postrouting priority 100; policy accept;",
              *([f"  {ingress_snat(cluster, node)}"] if ingress != "ipvs" else []),
              f"  oifname \"{layout.GW_INTF}\" ip saddr 127.0.0.0/8 masquerade"]
    lines += [f"  oifname \"{layout.gw_intf(t)}\" ip saddr 127.0.0.0/8 snat to {layout.GW_IP}"
              for t in gw_legs(cluster, node)]
    lines += [f"  {r}" for r in eastwest.lb_snat_rules(cluster, node)]
    lines += [" }", *eastwest.filter_chains(cluster), "}"]
    return "\n".join(lines) + "\n"


def nft_script(cluster: Cluster, node: str, lc: dict[str, int] | None = None,
               ingress: str = "mesh") -> str:
    """An ``nft -f`` file that replaces the node's rules in one transaction (whether the
    table exists yet or not): connections already DNATed keep their conntrack entries.
    The table is flushed, not deleted, so that session-affinity sets keep their clients
    through a reload (a set no longer named stays, empty of rules that use it)."""
    return (f"add table ip {TABLE}\nflush table ip {TABLE}\n"
            + table(cluster, node, lc, ingress))
