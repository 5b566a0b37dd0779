"""The cluster: one testbed's nodes, networks, services, tasks and clients, as plain data.

Built from a stack (:mod:`~swarmmesh.model.stack` parses and validates it,
:mod:`~swarmmesh.model.placement` places it); queried and changed at run time by the
orchestrator (every change a new revision, see :meth:`Cluster.to_dict`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Mapping, Sequence


from swarmmesh.model import placement
from swarmmesh.model import stack as stack_file
from swarmmesh.model.errors import InvalidConfigError, check, is_int
from swarmmesh.model.healthcheck import HealthCheck
from swarmmesh.model.objects import (INGRESS_NETWORK, MAX_CLIENTS, MAX_NODES, TASK_STATES,
                                     Client, Network, Node, Pending, PublishedPort,
                                     Service, Task, docker_mac)
from swarmmesh.model.balancing import Balancing
from swarmmesh.model.nodes import NodeSetup

@dataclass
class Cluster:
    """Nodes, networks, services, placed tasks and clients of one testbed."""

    nodes: list[Node]
    networks: dict[str, Network]
    services: dict[str, Service]
    tasks: list[Task]
    clients: list[Client]
    ignored_keys: list[str] = field(default_factory=list)
    pending: list[Pending] = field(default_factory=list)   # created, no node can take them
    warnings: list[str] = field(default_factory=list)      # from the stack file, once
    retired: set[str] = field(default_factory=set)         # removed tasks' names (run time only)
    retired_hosts: set[str] = field(default_factory=set)   # and their host names

    # ---- construction ---------------------------------------------------

    @classmethod
    def from_stack(cls, stack: stack_file.Source | Sequence[stack_file.Source],
                   nodes: int | NodeSetup = 3, clients: int = 1,
                   env: Mapping[str, str] | None = None,
                   implicit_network: bool = True,
                   ingress_subnet: str | IPv4Network | None = None) -> "Cluster":
        """Build a cluster from stack file paths, YAML texts or parsed mappings (several
        are merged in order), on ``nodes`` nodes (a count: node1 the manager, no labels;
        or a :class:`NodeSetup`), with ``${VAR}`` taken from ``env``; ``ingress_subnet``:
        the ingress network re-created with that subnet, as ``docker network create
        --ingress --subnet`` does before any service (default: Docker's 10.0.0.0/24)."""
        ingress = stack_file.ingress_subnet(ingress_subnet)
        if not isinstance(nodes, NodeSetup):
            check(is_int(nodes), "nodes", f"must be an integer, got {nodes!r}")
            check(nodes >= 1, "nodes", f"must be >= 1, got {nodes}")
            check(nodes <= MAX_NODES, "nodes",
                  f"at most {MAX_NODES} nodes fit the address plan, got {nodes}")
            nodes = NodeSetup(count=nodes)
        check(is_int(clients), "clients", f"must be an integer, got {clients!r}")
        check(clients >= 0, "clients", f"must be >= 0, got {clients}")
        check(clients <= MAX_CLIENTS, "clients",
               f"at most {MAX_CLIENTS} clients fit the address plan, got {clients}")
        parsed = stack_file.parse(stack, env, implicit_network)
        node_list, networks, services, tasks, client_list, pending = \
            placement.build(parsed, nodes, clients, ingress)
        return cls(node_list, networks, services, tasks, client_list, parsed.ignored,
                   pending=pending, warnings=parsed.warnings)

    @classmethod
    def quick(cls, nodes: int | NodeSetup = 3, replicas: int = 2, published: int = 8000,
              target: int = 80, service: str = "app", clients: int = 1,
              protocol: str = "tcp",
              ingress_subnet: str | IPv4Network | None = None) -> "Cluster":
        """One service with one ingress-published port (the classic demo): ``docker
        service create --publish``, so no stack network."""
        stack = {"services": {service: {
            "deploy": {"replicas": replicas},
            "ports": [{"target": target, "published": published,
                       "protocol": protocol, "mode": "ingress"}],
        }}}
        return cls.from_stack(stack, nodes=nodes, clients=clients, implicit_network=False,
                              ingress_subnet=ingress_subnet)

    # ---- lookups --------------------------------------------------------

    def service(self, name: str) -> Service:
        """The service called *name*."""
        try:
            return self.services[name]
        except KeyError:
            raise InvalidConfigError(f"services.{name}", "unknown service") from None

    def node(self, name: str) -> Node:
        """The node called *name*."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise InvalidConfigError(f"nodes.{name}", "unknown node")

    def tasks_of(self, service: str) -> list[Task]:
        """Tasks of a service, in slot order (unknown service: error)."""
        self.service(service)
        return [t for t in self.tasks if t.service == service]

    def tasks_on(self, node: str) -> list[Task]:
        """Tasks placed on a node, in task order (unknown node: error)."""
        self.node(node)
        return [t for t in self.tasks if t.node == node]

    def ingress_services(self) -> list[Service]:
        """Services with at least one ingress-mode published port."""
        return [s for s in self.services.values() if s.ingress_ports()]

    # ---- changes at run time (the orchestrator's decisions) ---------------

    def task(self, name: str) -> Task:
        """The task called *name* (its task name or its host name)."""
        for t in self.tasks:
            if t.name == name or t.host == name:
                return t
        raise InvalidConfigError(f"tasks.{name}", "unknown task")

    def _used_addresses(self) -> set[IPv4Address]:
        used = {a for t in self.tasks for a in t.addresses.values()}
        used |= {a for n in self.nodes for a in n.lb_ips.values()}
        used |= {n.ingress_ip for n in self.nodes}
        used |= {v for s in self.services.values() for v in s.vips.values()}
        used |= {s.ingress_vip for s in self.services.values() if s.ingress_vip is not None}
        return used

    def _free_address(self, net_name: str) -> IPv4Address:
        net = self.networks[net_name]
        used = self._used_addresses()
        for addr in net.subnet.hosts():
            if addr != net.gateway and addr not in used:
                return addr
        raise InvalidConfigError(f"networks.{net_name}",
                                 f"subnet {net.subnet} has no free address left")

    def candidates(self, service: str) -> tuple[list[Node], str]:
        """Nodes a new task of *service* may go to (Swarm's filters: active and ready,
        constraints met, host-mode ports free, under max_replicas_per_node), and the
        scheduler's reason when there is none."""
        svc = self.service(service)
        return placement.candidates(svc, self.nodes, placement.Load.of(self.services,
                                                                       self.tasks))

    def schedulable_nodes(self, service: str) -> list[Node]:
        """Nodes a new task of *service* may go to."""
        return self.candidates(service)[0]

    def pending_of(self, service: str) -> list[Pending]:
        self.service(service)
        return [p for p in self.pending if p.service == service]

    def place_task(self, service: str, node: str | None = None, state: str = "starting",
                   version: int | None = None, slot: int | None = None) -> Task:
        """A new task of *service* (scale up, replacement, rolling update), placed
        by Swarm's spread (fewest tasks of the service, then fewest tasks) unless
        *node* is given; new addresses on every network of the service."""
        svc = self.service(service)
        check(state in TASK_STATES, "state", f"must be one of {', '.join(TASK_STATES)}, "
                                              f"got {state!r}")
        if node is None:
            nodes, why = self.candidates(service)
            check(bool(nodes), f"services.{service}", why)
            target = placement.choose(svc, nodes, placement.Load.of(self.services, self.tasks),
                                      self.nodes)
        else:
            target = self.node(node)
        slots = [t.slot for t in self.tasks_of(service)]
        if slot is None:
            slot = max(slots, default=0) + 1
        hosts = [t.host for t in self.tasks] + list(self.retired_hosts)
        number = max((int(h[1:]) for h in hosts), default=0) + 1   # never reused
        name = f"{service}.{slot}"
        if name in self.retired or any(t.name == name for t in self.tasks):
            name = f"{service}.{slot}.t{number}"    # a replacement: a new task id, as in Swarm
        addresses: dict[str, IPv4Address] = {}
        if svc.ingress_ports():
            addresses[INGRESS_NETWORK] = self._free_address(INGRESS_NETWORK)
        for net in svc.networks:
            addresses[net] = self._free_address(net)
        task = Task(name=name, service=service, slot=slot, node=target.name, host=f"t{number}",
                    addresses={}, macs={}, state=state,
                    version=version if version is not None else self.service_version(service))
        task.addresses = addresses
        task.macs = {k: docker_mac(v) for k, v in addresses.items()}
        self.tasks.append(task)
        for net in svc.networks:                          # the node's LB endpoint, if new
            if net not in target.lb_ips:
                target.lb_ips[net] = self._free_address(net)
        return task

    def service_version(self, service: str) -> int:
        return max((t.version for t in self.tasks_of(service)), default=1)

    def remove_task(self, name: str) -> Task:
        task = self.task(name)
        self.tasks.remove(task)
        self.retired.add(task.name)           # names and host names are never used twice
        self.retired_hosts.add(task.host)
        return task

    def in_balancer(self, task: Task) -> bool:
        """Does the task take new connections (state running, node not down)?"""
        return task.state == "running" and self.node(task.node).status == "ready"

    # ---- serialisation --------------------------------------------------

    def to_dict(self) -> dict:
        """JSON-serialisable form (addresses as strings)."""
        return {
            "nodes": [{
                "name": n.name, "index": n.index, "underlay_ip": str(n.underlay_ip),
                "ingress_ip": str(n.ingress_ip), "ingress_mac": n.ingress_mac,
                "lb_ips": {k: str(v) for k, v in n.lb_ips.items()},
                "availability": n.availability, "status": n.status,
                "role": n.role, "labels": dict(n.labels),
                "engine_labels": dict(n.engine_labels), "os": n.os, "arch": n.arch,
            } for n in self.nodes],
            "networks": {k: {"name": n.name, "subnet": str(n.subnet), "vni": n.vni,
                             "ingress": n.ingress} for k, n in self.networks.items()},
            "services": {k: {
                "name": s.name, "replicas": s.replicas,
                "ports": [{"published": p.published, "target": p.target,
                           "protocol": p.protocol, "mode": p.mode} for p in s.ports],
                "endpoint_mode": s.endpoint_mode, "networks": list(s.networks),
                "constraints": [list(c) for c in s.constraints], "mode": s.mode,
                "max_replicas_per_node": s.max_replicas_per_node,
                "vips": {n: str(v) for n, v in s.vips.items()},
                "ingress_vip": str(s.ingress_vip) if s.ingress_vip is not None else None,
                "healthcheck": s.healthcheck.to_dict() if s.healthcheck else None,
                "preferences": list(s.preferences),
                "balancing": s.balancing.to_dict(),
            } for k, s in self.services.items()},
            "tasks": [{
                "name": t.name, "service": t.service, "slot": t.slot, "node": t.node,
                "host": t.host, "addresses": {k: str(v) for k, v in t.addresses.items()},
                "macs": dict(t.macs), "state": t.state, "version": t.version,
            } for t in self.tasks],
            "clients": [{"name": c.name, "underlay_ip": str(c.underlay_ip)}
                        for c in self.clients],
            "ignored_keys": list(self.ignored_keys),
            "pending": [{"service": p.service, "slot": p.slot, "reason": p.reason,
                         "version": p.version} for p in self.pending],
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> "Cluster":
        """Inverse of :meth:`to_dict` (no re-placement; data taken as is)."""
        try:
            return cls(
                nodes=[Node(n["name"], int(n["index"]), IPv4Address(n["underlay_ip"]),
                            IPv4Address(n["ingress_ip"]), n["ingress_mac"],
                            {k: IPv4Address(v) for k, v in n.get("lb_ips", {}).items()},
                            n.get("availability", "active"), n.get("status", "ready"),
                            n.get("role", "worker"), dict(n.get("labels", {})),
                            dict(n.get("engine_labels", {})), n.get("os", "linux"),
                            n.get("arch", "x86_64"))
                       for n in d["nodes"]],
                networks={k: Network(n["name"], IPv4Network(n["subnet"]), int(n["vni"]),
                                     bool(n["ingress"])) for k, n in d["networks"].items()},
                services={k: Service(
                    name=s["name"], replicas=int(s["replicas"]),
                    ports=tuple(PublishedPort(**p) for p in s["ports"]),
                    endpoint_mode=s.get("endpoint_mode", "vip"),
                    networks=tuple(s.get("networks", ())),
                    constraints=tuple(tuple(c) for c in s.get("constraints", ())),
                    mode=s.get("mode", "replicated"),
                    max_replicas_per_node=int(s.get("max_replicas_per_node", 0)),
                    vips={n: IPv4Address(v) for n, v in s.get("vips", {}).items()},
                    ingress_vip=(IPv4Address(s["ingress_vip"]) if s.get("ingress_vip")
                                 else None),
                    healthcheck=(HealthCheck.from_dict(s["healthcheck"])
                                 if s.get("healthcheck") else None),
                    preferences=tuple(s.get("preferences", ())),
                    balancing=Balancing.from_dict(s.get("balancing")),
                ) for k, s in d["services"].items()},
                tasks=[Task(t["name"], t["service"], int(t["slot"]), t["node"], t["host"],
                            {k: IPv4Address(v) for k, v in t["addresses"].items()},
                            dict(t["macs"]), t.get("state", "running"),
                            int(t.get("version", 1))) for t in d["tasks"]],
                clients=[Client(c["name"], IPv4Address(c["underlay_ip"]))
                         for c in d["clients"]],
                ignored_keys=list(d.get("ignored_keys", [])),
                pending=[Pending(p["service"], int(p["slot"]), p["reason"],
                                 int(p.get("version", 1))) for p in d.get("pending", [])],
                warnings=list(d.get("warnings", [])),
            )
        except InvalidConfigError as exc:
            raise InvalidConfigError("cluster", f"malformed cluster dict: {exc}") from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidConfigError(
                "cluster", f"malformed cluster dict: {type(exc).__name__}: {exc}") from None
