"""SOURCE and DEST of a trace, read against the cluster: errors name the argument."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, ip_address

from swarmmesh.model import Cluster, InvalidConfigError, Task
from swarmmesh.model.objects import Client

PROTOCOLS = ("tcp", "udp")


@dataclass(frozen=True)
class Source:
    """A client on the underlay, or a task (which sends from its own namespace)."""

    name: str
    client: Client | None = None
    task: Task | None = None


@dataclass(frozen=True)
class Dest:
    """``kind``: node (a node's address and a port: the mesh or host mode), service (a
    service name, east-west through its VIP or dnsrr), address (a VIP or a task's address)."""

    kind: str
    port: int
    proto: str
    node: str = ""
    service: str = ""
    address: str = ""

    def __str__(self) -> str:
        where = self.node or self.service or self.address
        return f"{where}:{self.port}/{self.proto}"


def parse_source(cluster: Cluster, text: str) -> Source:
    for c in cluster.clients:
        if c.name == text:
            return Source(text, client=c)
    for t in cluster.tasks:
        if text in (t.name, t.host):
            return Source(t.name, task=t)
    names = [c.name for c in cluster.clients] + [t.name for t in cluster.tasks]
    raise InvalidConfigError("SOURCE", f"no client or task {text!r} (one of: "
                                       f"{', '.join(names[:12])})")


def parse_dest(cluster: Cluster, text: str) -> Dest:
    """``node:port[/tcp|udp]``, ``service:port[/proto]`` or ``address:port[/proto]``."""
    where, _, rest = text.rpartition(":")
    port_text, _, proto = rest.partition("/")
    proto = proto or "tcp"
    if not where or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise InvalidConfigError("DEST", f"must be NAME:PORT[/tcp|udp] with a port in "
                                         f"1..65535, got {text!r}")
    if proto not in PROTOCOLS:
        raise InvalidConfigError("DEST", f"protocol must be tcp or udp, got {proto!r}")
    port = int(port_text)
    if any(n.name == where for n in cluster.nodes):
        return Dest("node", port, proto, node=where)
    if where in cluster.services:
        return Dest("service", port, proto, service=where)
    try:
        addr = ip_address(where)
    except ValueError:
        raise InvalidConfigError("DEST", f"{where!r} is no node, service or address of "
                                         "this cluster") from None
    node = next((n.name for n in cluster.nodes if n.underlay_ip == addr), "")
    if node:
        return Dest("node", port, proto, node=node)
    if not owner_of(cluster, addr):
        raise InvalidConfigError("DEST", f"{where} is no node's, VIP's or task's address")
    return Dest("address", port, proto, address=str(addr))


def owner_of(cluster: Cluster, addr: IPv4Address) -> tuple[str, str] | None:
    """("vip", service) or ("task", task name) for an overlay address, or None."""
    for s in cluster.services.values():
        if addr in s.vips.values():
            return "vip", s.name
    for t in cluster.tasks:
        if addr in t.addresses.values():
            return "task", t.name
    return None
