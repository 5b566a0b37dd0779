"""The model's plain data: nodes, networks, services, tasks, clients, and the address plan."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network


from swarmmesh.model.errors import check, is_int
from swarmmesh.model.balancing import Balancing
from swarmmesh.model.healthcheck import HealthCheck

INGRESS_NETWORK = "ingress"
# The Docker release whose routing mesh the emulation follows (measured on a real swarm of
# three dockerd from Debian 12's docker.io): its ingress network is 10.0.0.0/24, the nodes'
# ingress sandboxes take .2, .3, ... in node order, then each published service its ingress
# VIP (a /32 in every sandbox) followed by its tasks.  Docker 1.12-1.13 used 10.255.0.0/16.
DOCKER_VERSION = "20.10.24"
INGRESS_SUBNET = IPv4Network("10.0.0.0/24")
INGRESS_VNI = 4096
UNDERLAY_SUBNET = IPv4Network("192.168.99.0/24")
USER_POOL = IPv4Network("10.0.0.0/16")  # default user subnets: 10.0.1.0/24, 10.0.2.0/24, ...
CLIENT_BASE = 200  # client i -> 192.168.99.(200 + i)
MAX_NODES = 200
MAX_CLIENTS = 254 - CLIENT_BASE
AUTO_PORT_FIRST, AUTO_PORT_LAST = 30000, 32767
PROTOCOLS = ("tcp", "udp", "sctp")
PORT_MODES = ("ingress", "host")
ENDPOINT_MODES = ("vip", "dnsrr")
DEPLOY_MODES = ("replicated", "global")
DNSRR_INGRESS_ERROR = "port published with ingress mode can't be used with dnsrr mode"


NODE_ROLES = ("manager", "worker")
NODE_AVAILABILITIES = ("active", "pause", "drain")


def node_id(name: str) -> str:
    """Swarm-style node ID: 25 characters of [0-9a-z], a function of the name."""
    digest = int.from_bytes(hashlib.sha256(f"swarmmesh:{name}".encode()).digest(), "big")
    chars = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = []
    for _ in range(25):
        digest, r = divmod(digest, 36)
        out.append(chars[r])
    return "".join(out)


def docker_mac(ip: IPv4Address | str) -> str:
    """Docker-style MAC for an IPv4 address: ``02:42`` + the four address bytes."""
    return "02:42:" + ":".join(f"{b:02x}" for b in IPv4Address(ip).packed)


# --------------------------------------------------------------------------
# Data classes
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishedPort:
    """One published port of a service."""

    published: int
    target: int
    protocol: str = "tcp"
    mode: str = "ingress"

    def __post_init__(self) -> None:
        for name in ("published", "target"):
            value = getattr(self, name)
            check(is_int(value) and 1 <= value <= 65535, name,
                   f"must be an integer in 1..65535, got {value!r}")
        check(self.protocol in PROTOCOLS, "protocol",
               f"must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}")
        check(self.mode in PORT_MODES, "mode",
               f"must be one of {', '.join(PORT_MODES)}, got {self.mode!r}")


@dataclass
class Network:
    """An overlay network (the ingress one or a user network)."""

    name: str
    subnet: IPv4Network
    vni: int
    ingress: bool

    @property
    def gateway(self) -> IPv4Address:
        """The ``.1`` address, reserved, never given to a task."""
        return self.subnet.network_address + 1


@dataclass
class Node:
    """A Swarm node (a Mininet host on the underlay)."""

    name: str
    index: int
    underlay_ip: IPv4Address
    ingress_ip: IPv4Address
    ingress_mac: str
    lb_ips: dict[str, IPv4Address] = field(default_factory=dict)
    availability: str = "active"   # "active" | "drain" | "pause" (no new task here)
    status: str = "ready"          # "ready" | "down"
    role: str = "worker"           # "manager" | "worker"
    labels: dict[str, str] = field(default_factory=dict)         # docker node update --label-add
    engine_labels: dict[str, str] = field(default_factory=dict)  # the daemon's own labels
    os: str = "linux"
    arch: str = "x86_64"

    @property
    def id(self) -> str:
        """A stable Swarm-style node ID (25 lower-case characters), from the name."""
        return node_id(self.name)


@dataclass
class Service:
    """A Swarm service, normalised."""

    name: str
    replicas: int
    ports: tuple[PublishedPort, ...]
    endpoint_mode: str = "vip"
    networks: tuple[str, ...] = ()
    constraints: tuple[tuple[str, str, str], ...] = ()
    mode: str = "replicated"
    max_replicas_per_node: int = 0  # 0 = unlimited
    vips: dict[str, IPv4Address] = field(default_factory=dict)  # user network -> VIP
    ingress_vip: IPv4Address | None = None  # with an ingress port: a /32 in every sandbox
    healthcheck: HealthCheck | None = None  # None: no healthcheck key (no check runs)
    preferences: tuple[str, ...] = ()  # placement.preferences: spread descriptors, outermost first
    balancing: Balancing = field(default_factory=Balancing)   # Swarm's rr, or x-swarmmesh

    def ingress_ports(self) -> tuple[PublishedPort, ...]:
        """Ports published through the routing mesh."""
        return tuple(p for p in self.ports if p.mode == "ingress")

    def host_ports(self) -> tuple[PublishedPort, ...]:
        """Ports published in host mode (bound only where a task runs)."""
        return tuple(p for p in self.ports if p.mode == "host")


@dataclass
class Task:
    """One task (container) of a service, placed on a node."""

    name: str
    service: str
    slot: int
    node: str
    host: str
    addresses: dict[str, IPv4Address] = field(default_factory=dict)
    macs: dict[str, str] = field(default_factory=dict)
    # Lifecycle: "starting" (not yet healthy: not in the load balancer),
    # "running" (in it), "draining" (weight 0: no new connection, the
    # established ones go on; Swarm's 2 s before removal).
    state: str = "running"
    version: int = 1           # the service spec version the task runs (rolling updates)


TASK_STATES = ("starting", "running", "draining")


@dataclass
class Pending:
    """A task Swarm created but could not place (``docker service ps``: Pending, with
    the scheduler's reason); placed when a node that satisfies it appears."""

    service: str
    slot: int
    reason: str
    version: int = 1


@dataclass
class Client:
    """An external client on the underlay, outside the cluster."""

    name: str
    underlay_ip: IPv4Address
