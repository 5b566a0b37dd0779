"""From parsed specs to the cluster's objects: nodes, Swarm's placement of tasks, addresses.

Deterministic: the same stack and node count give the same placement and addresses.
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Iterable


from swarmmesh.model.errors import check
from swarmmesh.model.objects import (CLIENT_BASE, INGRESS_NETWORK, INGRESS_SUBNET, INGRESS_VNI,
                                     UNDERLAY_SUBNET, USER_POOL, Client, Network, Node,
                                     PublishedPort, Service, Task, docker_mac)
from swarmmesh.model.stack import NetworkSpec, ParsedStack, ServiceSpec

def satisfies(constraints: Iterable[tuple[str, str, str]], node: Node) -> bool:
    for _, op, value in constraints:
        same = node.name.lower() == value.lower()
        if same != (op == "=="):
            return False
    return True


def build(parsed: ParsedStack, nodes: int, clients: int
          ) -> tuple[list[Node], dict[str, Network], dict[str, Service], list[Task], list[Client]]:
    """Nodes, networks, services, placed tasks and clients for a parsed stack."""
    specs, net_specs = parsed.services, parsed.networks
    node_list = [_make_node(i) for i in range(1, nodes + 1)]
    services: dict[str, Service] = {}
    for s in specs:
        _check_placement(s, node_list)
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
        )
    placement = _place(specs, services, node_list)
    networks = _allocate_networks(net_specs)

    # 2. build
    tasks = _make_tasks(placement, services, node_list, networks, net_specs)
    client_list = [Client(f"c{i}", UNDERLAY_SUBNET.network_address + CLIENT_BASE + i)
                   for i in range(1, clients + 1)]
    return node_list, networks, services, tasks, client_list


def _make_node(index: int) -> Node:
    ingress_ip = INGRESS_SUBNET.network_address + 1 + index
    return Node(name=f"node{index}", index=index,
                underlay_ip=UNDERLAY_SUBNET.network_address + index,
                ingress_ip=ingress_ip, ingress_mac=docker_mac(ingress_ip))


def _check_placement(s: ServiceSpec, nodes: list[Node]) -> None:
    path = f"services.{s.name}.deploy.placement.constraints"
    known = {n.name.lower() for n in nodes}
    for fld, op, value in s.constraints:
        check(op != "==" or value.lower() in known, path,
               f"{fld} {op} {value}: no such node "
               f"(nodes are {nodes[0].name}..{nodes[-1].name})")
    check(any(satisfies(s.constraints, n) for n in nodes), path,
           "no node satisfies " + " and ".join(f"{f} {o} {v}" for f, o, v in s.constraints))


def _place(specs: list[ServiceSpec], services: dict[str, Service],
           nodes: list[Node]) -> list[tuple[str, int, Node]]:
    """Swarm's spread: (service, slot, node) in creation order."""
    total = {n.name: 0 for n in nodes}
    host_ports = {n.name: set() for n in nodes}  # (published, protocol) bound on the node
    result: list[tuple[str, int, Node]] = []
    for s in specs:
        svc = services[s.name]
        eligible = [n for n in nodes if satisfies(s.constraints, n)]
        mine = {n.name: 0 for n in nodes}
        wanted = [(p.published, p.protocol, p.path) for p in s.ports if p.mode == "host"]
        if s.mode == "global":
            svc.replicas = len(eligible)
        for slot in range(1, svc.replicas + 1):
            if s.mode == "global":
                candidates = [eligible[slot - 1]]
            else:
                candidates = [n for n in eligible if not s.max_replicas_per_node
                              or mine[n.name] < s.max_replicas_per_node]
                check(bool(candidates),
                       f"services.{s.name}.deploy.placement.max_replicas_per_node",
                       f"task {s.name}.{slot} cannot be placed: every eligible node "
                       f"already runs {s.max_replicas_per_node} replicas")
            for pub, proto, ppath in wanted:
                before = candidates
                candidates = [n for n in candidates if (pub, proto) not in host_ports[n.name]]
                check(bool(candidates), ppath,
                       f"task {s.name}.{slot} cannot be placed: host-mode port "
                       f"{pub}/{proto} is already bound on "
                       + ", ".join(n.name for n in before))
            node = min(candidates, key=lambda n: (mine[n.name], total[n.name], n.index))
            mine[node.name] += 1
            total[node.name] += 1
            host_ports[node.name].update((pub, proto) for pub, proto, _ in wanted)
            result.append((s.name, slot, node))
    return result


def _allocate_networks(specs: dict[str, NetworkSpec]) -> dict[str, Network]:
    """Ingress first, then user networks (given subnet or next free 10.0.k.0/24)."""
    networks = {INGRESS_NETWORK: Network(INGRESS_NETWORK, INGRESS_SUBNET, INGRESS_VNI, True)}
    explicit = [s for s in specs.values() if s.subnet is not None]
    for i, a in enumerate(explicit):
        for b in explicit[:i]:
            check(not a.subnet.overlaps(b.subnet), a.subnet_path,
                   f"subnet {a.subnet} overlaps network {b.name!r} ({b.subnet})")
    taken = [s.subnet for s in explicit]
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


def _make_tasks(placement: list[tuple[str, int, Node]], services: dict[str, Service],
                nodes: list[Node], networks: dict[str, Network],
                net_specs: dict[str, NetworkSpec]) -> list[Task]:
    """Tasks with host names and addresses; nodes' lb_ips after the tasks."""
    nxt: dict[str, IPv4Address] = {
        INGRESS_NETWORK: INGRESS_SUBNET.network_address + 2 + len(nodes)}
    for name, net in networks.items():
        if not net.ingress:
            nxt[name] = net.subnet.network_address + 2

    def take(net_name: str) -> IPv4Address:
        net = networks[net_name]
        addr = nxt[net_name]
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
    for svc in services.values():          # endpoint_mode vip: one VIP per user network
        if svc.endpoint_mode == "vip":
            svc.vips = {net: take(net) for net in svc.networks}
    return tasks
