"""Every node's kernel rules (nftables), as text: pure functions of the model.

Two kinds of published port end in the node's kernel:

* ingress mode (Swarm's ``DOCKER-INGRESS`` chain): every local address + the published
  port is DNATed to the ingress sandbox on docker_gwbridge, on every node;
* host mode: only on a node that runs a task of the service, the published port is
  DNATed straight to that task's own docker_gwbridge leg and target port: no mesh, no
  SNAT (the task sees the client's address; its replies take its default route back
  through the node, whose conntrack un-DNATs them).  Anywhere else the port is closed.

The whole table is one text, so that a node reloads it in one transaction
(:func:`nft_script`) as tasks come and go.
"""

from __future__ import annotations

from swarmmesh.dataplane import layout, rules
from swarmmesh.model import Cluster, PublishedPort, Task

TABLE = "swarmmesh"
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


def _dnat_rules(cluster: Cluster, node: str) -> list[str]:
    out = [f"  fib daddr type local {p.protocol} dport {p.published} "
           f"dnat to {layout.SBOX_GW_IP}:{p.published}" for p in rules.published_ports(cluster)]
    out += [f"  fib daddr type local {p.protocol} dport {p.published} "
            f"dnat to {layout.task_gw_ip(t)}:{p.target}"
            for p, t in host_port_dnats(cluster, node)]
    return out


def table(cluster: Cluster, node: str) -> str:
    """The node's table ``ip swarmmesh``: published ports DNATed in prerouting (from
    outside) and output (from the node itself), localhost masqueraded where it leaves."""
    dnat = _dnat_rules(cluster, node)
    lines = [f"table ip {TABLE} {{",
             " chain prerouting { type nat hook prerouting priority -100; policy accept;",
             *dnat, " }",
             " chain output { type nat hook output priority -100; policy accept;",
             *dnat, " }"]
    # localhost too, as in Swarm: 127.0.0.1 may leave on gwbr (route_localnet)
    # and is masqueraded to the node's gateway address, as Docker does.  A task's own
    # leg has no address of the node's to masquerade to: SNAT to the gateway's.
    lines += [" chain postrouting { type nat hook postrouting priority 100; policy accept;",
              f"  oifname \"{layout.GW_INTF}\" ip saddr 127.0.0.0/8 masquerade"]
    lines += [f"  oifname \"{layout.gw_intf(t)}\" ip saddr 127.0.0.0/8 snat to {layout.GW_IP}"
              for t in gw_legs(cluster, node)]
    lines += [" }", "}"]
    return "\n".join(lines) + "\n"


def nft_script(cluster: Cluster, node: str) -> str:
    """An ``nft -f`` file that replaces the node's table in one transaction (whether it
    exists yet or not): connections already DNATed keep their conntrack entries."""
    return f"add table ip {TABLE}\ndelete table ip {TABLE}\n" + table(cluster, node)
