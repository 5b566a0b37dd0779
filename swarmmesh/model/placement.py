"""From parsed specs to the cluster's objects: nodes, Swarm's placement of tasks, addresses.

Deterministic: the same stack and node count give the same placement and addresses.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from swarmmesh.model import constraints
from swarmmesh.model.errors import check
from swarmmesh.model.balancing import Balancing
from swarmmesh.model.nodes import NodeSetup
from swarmmesh.model.objects import (CLIENT_BASE, DOCKER_VERSION, INGRESS_NETWORK,
                                     INGRESS_SUBNET, INGRESS_VNI, UNDERLAY_SUBNET, USER_POOL, Client, Network, Node,
                                     Pending, PublishedPort, Service, Task, docker_mac)
from swarmmesh.model.stack import NetworkSpec, ParsedStack

satisfies = constraints.satisfies


# --- Swarm's scheduler: filters, then spread -------------------------------------------


@dataclass
class Load:
    """What is placed already: tasks per service and node, host-mode ports per node."""

    of_service: Counter = field(default_factory=Counter)     # (service, node) -> tasks
    total: Counter = field(default_factory=Counter)          # node -> tasks
    host_ports: dict = field(default_factory=lambda: defaultdict(set))  # node -> {(port, proto)}

    def add(self, svc: Service, node: str) -> None:
        self.of_service[(svc.name, node)] += 1
        self.total[node] += 1
        self.host_ports[node].update((p.published, p.protocol) for p in svc.host_ports())

    @classmethod
    def of(cls, services: dict[str, Service], tasks: list[Task]) -> "Load":
        load = cls()
        for t in tasks:
            if t.state != "draining":
                load.add(services[t.service], t.node)
        return load


# swarmkit's pipeline, in its order: a node is counted under the first filter it fails.
_FILTERS = (
    ("ready", "not available for new tasks"),
    ("constraints", "scheduling constraints not satisfied on"),
    ("host port", "host-mode port already in use on"),
    ("max replicas", "max replicas per node limit exceed"),
)


def _failing(svc: Service, node: Node, load: Load) -> str | None:
    if node.status != "ready" or node.availability != "active":
        return "ready"
    if not satisfies(svc.constraints, node):
        return "constraints"
    if any((p.published, p.protocol) in load.host_ports[node.name] for p in svc.host_ports()):
        return "host port"
    if svc.max_replicas_per_node and \
            load.of_service[(svc.name, node.name)] >= svc.max_replicas_per_node:
        return "max replicas"
    return None


def explain(failures: Counter) -> str:
    """The scheduler's reason, as ``docker service ps`` shows it: most failures first."""
    parts = []
    order = sorted(_FILTERS, key=lambda f: -failures[f[0]])       # stable: pipeline order
    for key, words in order:
        n = failures[key]
        if not n:
            continue
        if key == "max replicas":
            parts.append(words)
        elif key == "ready":
            parts.append(f"{n} node{'s' if n != 1 else ''} {words}")
        else:
            parts.append(f"{words} {n} node{'s' if n != 1 else ''}")
    return f"no suitable node ({'; '.join(parts) or 'no nodes'})"


def candidates(svc: Service, nodes: list[Node], load: Load) -> tuple[list[Node], str]:
    """Nodes that pass every filter, and the reason if there is none."""
    failures: Counter = Counter()
    ok = []
    for n in nodes:
        why = _failing(svc, n, load)
        if why is None:
            ok.append(n)
        else:
            failures[why] += 1
    return ok, ("" if ok else explain(failures))


def choose(svc: Service, nodes: list[Node], load: Load, every: list[Node] | None = None) -> Node:
    """Swarm's spread: over the preferences' label values first (fewest tasks of the
    service per branch, counted on every node of the branch as swarmkit's decision tree
    does, ties by value; only branches with a node that can take the task), then fewest
    tasks of the service, then fewest tasks (ties by node index; swarmkit breaks them
    arbitrarily).  ``nodes``: the candidates; ``every``: all nodes (default: nodes)."""
    group, whole = nodes, every if every is not None else nodes
    for descriptor in svc.preferences:
        ok: dict[str, list[Node]] = defaultdict(list)
        everywhere: dict[str, list[Node]] = defaultdict(list)
        for n in group:
            ok[constraints.spread_value(descriptor, n)].append(n)
        for n in whole:
            everywhere[constraints.spread_value(descriptor, n)].append(n)
        value = min(sorted(ok), key=lambda v: sum(load.of_service[(svc.name, n.name)]
                                                  for n in everywhere[v]))
        group, whole = ok[value], everywhere[value]
    return min(group, key=lambda n: (load.of_service[(svc.name, n.name)], load.total[n.name],
                                     n.index))


# --- building the cluster from a parsed stack ---------------------------------------------


def build(parsed: ParsedStack, nodes: NodeSetup, clients: int,
          ingress_subnet: IPv4Network = INGRESS_SUBNET) -> tuple:
    """Nodes, networks, services, placed tasks, clients and pending tasks for a stack, on
    an ingress network of ``ingress_subnet`` (Docker's own, or the one a user re-creates:
    ``docker network create --ingress --subnet``)."""
    specs, net_specs = parsed.services, parsed.networks
    node_list = [_make_node(i, nodes, ingress_subnet) for i in range(1, nodes.count + 1)]
    services: dict[str, Service] = {}
    for s in specs:
        services[s.name] = Service(
            name=s.name,
            replicas=s.replicas if s.replicas is not None else 1,
            ports=tuple(PublishedPort(p.published, p.target, p.protocol, p.mode)
                        for p in s.ports),  # type: ignore[arg-type]
            endpoint_mode=s.endpoint_mode,
            networks=tuple(s.networks),
            constraints=tuple(s.constraints),
            mode=s.mode,
            max_replicas_per_node=s.max_replicas_per_node,
            healthcheck=s.healthcheck,
            preferences=tuple(s.preferences),
            balancing=s.balancing or Balancing(),
        )
    placement, pending = _place(services, node_list)
    networks = _allocate_networks(net_specs, ingress_subnet)
    tasks = _make_tasks(placement, services, node_list, networks, net_specs)
    client_list = [Client(f"c{i}", UNDERLAY_SUBNET.network_address + CLIENT_BASE + i)
                   for i in range(1, clients + 1)]
    return node_list, networks, services, tasks, client_list, pending


def _make_node(index: int, setup: NodeSetup, ingress_subnet: IPv4Network) -> Node:
    ingress_ip = ingress_subnet.network_address + 1 + index
    a = setup.of(index)
    return Node(name=f"node{index}", index=index,
                underlay_ip=UNDERLAY_SUBNET.network_address + index,
                ingress_ip=ingress_ip, ingress_mac=docker_mac(ingress_ip),
                availability=a.availability, role=a.role, labels=dict(a.labels),
                engine_labels=dict(a.engine_labels), os=a.os, arch=a.arch)


def _place(services: dict[str, Service], nodes: list[Node]
           ) -> tuple[list[tuple[str, int, Node]], list[Pending]]:
    """(service, slot, node) in creation order, and the tasks no node can take."""
    load = Load()
    result: list[tuple[str, int, Node]] = []
    pending: list[Pending] = []
    for svc in services.values():
        if svc.mode == "global":
            targets = [n for n in nodes if n.status == "ready" and n.availability == "active"
                       and satisfies(svc.constraints, n)]
            svc.replicas = len(targets)
            for slot, node in enumerate(targets, start=1):
                ok, why = candidates(svc, [node], load)
                if ok:
                    load.add(svc, node.name)
                    result.append((svc.name, slot, node))
                else:
                    pending.append(Pending(svc.name, slot, why))
            continue
        for slot in range(1, svc.replicas + 1):
            ok, why = candidates(svc, nodes, load)
            if not ok:
                pending.append(Pending(svc.name, slot, why))
                continue
            node = choose(svc, ok, load, nodes)
            load.add(svc, node.name)
            result.append((svc.name, slot, node))
    return result, pending


def _allocate_networks(specs: dict[str, NetworkSpec],
                       ingress_subnet: IPv4Network) -> dict[str, Network]:
    """Ingress first, then user networks (given subnet or next free 10.0.k.0/24)."""
    networks = {INGRESS_NETWORK: Network(INGRESS_NETWORK, ingress_subnet, INGRESS_VNI, True)}
    explicit = [s for s in specs.values() if s.subnet is not None]
    for a in explicit:
        check(not a.subnet.overlaps(ingress_subnet), a.subnet_path,
              f"subnet {a.subnet} overlaps the ingress network ({ingress_subnet})")
    for i, a in enumerate(explicit):
        for b in explicit[:i]:
            check(not a.subnet.overlaps(b.subnet), a.subnet_path,
                   f"subnet {a.subnet} overlaps network {b.name!r} ({b.subnet})")
    taken = [ingress_subnet] + [s.subnet for s in explicit]
    candidates = USER_POOL.subnets(new_prefix=24)
    next(candidates)  # 10.0.0.0/24 is skipped, as by Docker
    for vni, spec in enumerate(specs.values(), start=INGRESS_VNI + 1):
        subnet = spec.subnet
        if subnet is None:
            subnet = next((c for c in candidates
                           if not any(c.overlaps(t) for t in taken)), None)
            check(subnet is not None, spec.subnet_path,
                   f"no free /24 left in {USER_POOL} for a default subnet")
            taken.append(subnet)
        networks[spec.name] = Network(spec.name, subnet, vni, False)
    return networks


def ingress_full_message(nodes: int, services: dict[str, Service], tasks: int,
                         subnet: IPv4Network = INGRESS_SUBNET) -> str:
    """Why a cluster does not fit its ingress network (one address per node's sandbox,
    per published service's VIP and per task with an ingress port)."""
    published = sum(1 for s in services.values() if s.ingress_ports())
    whose = f" (Docker {DOCKER_VERSION}'s)" if subnet == INGRESS_SUBNET else ""
    return (f"the ingress network {subnet}{whose} has {subnet.num_addresses - 3} addresses "
            f"for the nodes' sandboxes, the published services' VIPs and their tasks; "
            f"{nodes} nodes, {published} VIPs and up to {tasks} tasks do not fit: fewer "
            "nodes or replicas, or a larger ingress subnet (--ingress-subnet, as real "
            "Swarm's ingress network re-created with `docker network create --ingress "
            "--subnet`)")


def _make_tasks(placement: list[tuple[str, int, Node]], services: dict[str, Service],
                nodes: list[Node], networks: dict[str, Network],
                net_specs: dict[str, NetworkSpec]) -> list[Task]:
    """Tasks with host names and addresses; nodes' lb_ips after the tasks."""
    nxt: dict[str, IPv4Address] = {
        INGRESS_NETWORK: networks[INGRESS_NETWORK].subnet.network_address + 2 + len(nodes)}
    for name, net in networks.items():
        if not net.ingress:
            nxt[name] = net.subnet.network_address + 2

    def take(net_name: str) -> IPv4Address:
        net = networks[net_name]
        addr = nxt[net_name]
        if net_name == INGRESS_NETWORK:
            check(addr < net.subnet.broadcast_address, "services",
                  ingress_full_message(len(nodes), services, len(placement), net.subnet))
        path = net_specs[net_name].subnet_path if net_name in net_specs else "services"
        check(addr < net.subnet.broadcast_address, path,
               f"subnet {net.subnet} of network {net_name!r} has too few addresses "
               "for its tasks and load-balancer endpoints")
        nxt[net_name] = addr + 1
        return addr

    tasks: list[Task] = []
    for number, (sname, slot, node) in enumerate(placement, start=1):
        svc = services[sname]
        addresses: dict[str, IPv4Address] = {}
        if svc.ingress_ports():
            if svc.ingress_vip is None:        # the service's VIP, then its tasks
                svc.ingress_vip = take(INGRESS_NETWORK)
            addresses[INGRESS_NETWORK] = take(INGRESS_NETWORK)
        for net in svc.networks:
            addresses[net] = take(net)
        tasks.append(Task(name=f"{sname}.{slot}", service=sname, slot=slot, node=node.name,
                          host=f"t{number}", addresses=addresses,
                          macs={k: docker_mac(v) for k, v in addresses.items()}))
    for name, net in networks.items():
        if net.ingress:
            continue
        for node in nodes:
            if any(t.node == node.name and name in t.addresses for t in tasks):
                node.lb_ips[name] = take(name)
    for svc in services.values():
        if svc.ingress_ports() and svc.ingress_vip is None:    # no task placed yet
            svc.ingress_vip = take(INGRESS_NETWORK)
    for svc in services.values():          # endpoint_mode vip: one VIP per user network
        if svc.endpoint_mode == "vip":
            svc.vips = {net: take(net) for net in svc.networks}
    return tasks
