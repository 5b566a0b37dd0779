"""A kernel nftables L4 load balancer next to the cluster: the baseline that a
user would run instead of the routing mesh (kube-proxy's iptables mode).

Added to a running :class:`~swarmmesh.testbed.testbed.Testbed` through the Mininet API
(nothing in the topology changes):

* ``lb1``: one more host on the underlay (a leg on the Linux bridge ``ul0``
  in the ``underlay`` namespace), at the highest free underlay address
  (192.168.99.254 unless taken).
* A *backend network* 10.254.0.0/24: a Linux bridge ``be0`` in ``lb1``
  (10.254.0.1) with one veth leg to every task (``<task>-eth1``,
  10.254.0.10, .11, ...), like the pod network a kube-proxy node routes into.
  It bypasses the nodes and their Open vSwitch: the balancer is the only
  thing between the client and a task.
* Routes: in ``lb1``, each task's *ingress* address /32 via that task's
  backend address (so the balancer DNATs to the same addresses the mesh
  uses); in each task, the underlay subnet via 10.254.0.1 (the ingress
  overlay keeps its own on-link /24, so the mesh's replies are untouched).
* nftables in ``lb1``: ``<lb>:<published> dnat to numgen inc mod N map {k :
  task_k}:<target>`` (round-robin over new connections, as IPVS rr; conntrack
  keeps a connection on its task), and ``ct status dnat masquerade`` out of
  ``be0`` (as kube-proxy masquerades external NodePort traffic).

:func:`route_client_to_tasks` gives a client a route to the ingress subnet
via ``lb1``: then "directly at a task" is the client -> lb1 (plain IP
forwarding, no NAT) -> task, the same hop as the balanced path minus the
DNAT/masquerade.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from swarmmesh.model import Cluster, InvalidConfigError, UNDERLAY_SUBNET

BACKEND_CANDIDATES = ("10.254.0.0/24", "172.30.0.0/24", "192.168.250.0/24")
BRIDGE = "be0"
TABLE = "swarmmesh_l4lb"


@dataclass
class Backend:
    task: str
    host: str
    node: str
    ingress_ip: str
    backend_ip: str


@dataclass
class L4Balancer:
    name: str
    ip: str
    published: int
    target: int
    backend_net: str
    gateway: str
    backends: list[Backend] = field(default_factory=list)
    nft: str = ""

    def describe(self) -> dict:
        return {"host": self.name, "address": self.ip, "published": self.published,
                "target": self.target, "backend_network": self.backend_net,
                "backend_gateway": self.gateway,
                "backends": [vars(b) for b in self.backends], "nft_ruleset": self.nft}


def free_underlay_ip(cluster: Cluster) -> str:
    """The highest underlay address that no node and no client uses."""
    used = {str(n.underlay_ip) for n in cluster.nodes} | {str(c.underlay_ip)
                                                         for c in cluster.clients}
    for host in reversed(list(UNDERLAY_SUBNET.hosts())):
        if str(host) not in used:
            return str(host)
    raise InvalidConfigError("nodes", "no free underlay address left for the load balancer")


def backend_network(cluster: Cluster) -> ipaddress.IPv4Network:
    """A /24 for the backend network that overlaps no network of the cluster."""
    taken = [net.subnet for net in cluster.networks.values()] + [UNDERLAY_SUBNET,
                                                                 ipaddress.ip_network("172.18.0.0/16")]
    for text in BACKEND_CANDIDATES:
        cand = ipaddress.ip_network(text)
        if not any(cand.overlaps(t) for t in taken):
            return cand
    raise InvalidConfigError("networks", "every backend subnet candidate overlaps a cluster network")


def nft_ruleset(lb_ip: str, published: int, target: int, ingress_ips: list[str]) -> str:
    """The balancer's nftables ruleset (one table, its own)."""
    if not ingress_ips:
        raise ValueError("a load balancer needs at least one backend")
    pick = ", ".join(f"{k} : {ip}" for k, ip in enumerate(ingress_ips))
    return (f"table ip {TABLE} {{\n"
            f" chain prerouting {{ type nat hook prerouting priority dstnat; policy accept;\n"
            f"  ip daddr {lb_ip} tcp dport {published} "
            f"dnat to numgen inc mod {len(ingress_ips)} map {{ {pick} }} : {target}\n"
            f" }}\n"
            f" chain postrouting {{ type nat hook postrouting priority srcnat; policy accept;\n"
            f"  ct status dnat oifname \"{BRIDGE}\" masquerade\n"
            f" }}\n"
            f"}}\n")


def _sh(host, command: str) -> str:
    """Run a shell command in a Mininet host; raise naming host and command."""
    out = host.cmd(command + "; echo __rc=$?")
    body, _, rc = out.rpartition("__rc=")
    if rc.strip() != "0":
        raise RuntimeError(f"{host.name}: `{command}` failed ({rc.strip()}): {body.strip()}")
    return body


def add_underlay_host(tb, name: str, ip: str, cls=None, bridge: str = "ul0"):
    """A new host on the running testbed's underlay (a leg on ``bridge``, ``ul0``
    unless zones split it); ``cls``: a Mininet host class taking ``state`` (default:
    the topology's client class)."""
    from swarmmesh.testbed.topology import SwarmClient
    ul = tb.host("underlay")
    host = tb.net.addHost(name, cls=cls or SwarmClient, ip=None, state=tb.state)
    intf, peer = f"{name}-eth0", f"ul-{name}"
    tb.state.register_links([intf, peer])
    tb.net.addLink(host, ul, intfName1=intf, intfName2=peer)
    _sh(ul, f"ip link set {peer} master {bridge} && ip link set {peer} up")
    host.setIP(f"{ip}/{UNDERLAY_SUBNET.prefixlen}", intf=intf)
    _sh(host, f"ip link set {intf} up")
    # complete checksums, as on every client (the leg came after the host's config):
    # frames that cross a userspace WAN link between zones must carry them
    host.cmd(f"ethtool -K {intf} tx off >/dev/null 2>&1")
    return host


def build(tb, cluster: Cluster, service: str, published: int, target: int,
          name: str = "lb1") -> L4Balancer:
    """Add the balancer host, the backend network and the nftables rules."""
    tasks = [t for t in cluster.tasks_of(service) if "ingress" in t.addresses]
    net = backend_network(cluster)
    hosts = list(net.hosts())
    gw = str(hosts[0])
    lb = L4Balancer(name, free_underlay_ip(cluster), published, target, str(net), gw)
    host = add_underlay_host(tb, name, lb.ip)
    _sh(host, "sysctl -qw net.ipv4.ip_forward=1")
    _sh(host, f"ip link add {BRIDGE} type bridge && ip addr add {gw}/{net.prefixlen} dev {BRIDGE}"
              f" && ip link set {BRIDGE} up")
    for i, t in enumerate(tasks):
        th = tb.task_host(t)
        b = Backend(t.name, t.host, t.node, str(t.addresses["ingress"]), str(hosts[9 + i]))
        intf, peer = f"{name}-{t.host}", f"{t.host}-eth1"
        tb.state.register_links([intf, peer])
        tb.net.addLink(host, th, intfName1=intf, intfName2=peer)
        _sh(host, f"ip link set {intf} master {BRIDGE} && ip link set {intf} up")
        _sh(th, f"ip addr add {b.backend_ip}/{net.prefixlen} dev {peer} && ip link set {peer} up"
                f" && ip route replace {UNDERLAY_SUBNET} via {gw} dev {peer}")
        _sh(host, f"ip route replace {b.ingress_ip}/32 via {b.backend_ip} dev {BRIDGE}")
        lb.backends.append(b)
    lb.nft = nft_ruleset(lb.ip, published, target, [b.ingress_ip for b in lb.backends])
    conf = tb.state.dir / f"{name}-nft.conf"
    conf.write_text(lb.nft)
    _sh(host, f"nft -f {conf}")
    return lb


def route_client_to_tasks(tb, client: str, cluster: Cluster, lb: L4Balancer) -> str:
    """Give ``client`` a route to the ingress subnet via the balancer host
    (plain forwarding there: the "direct" path).  Returns the route."""
    route = f"{cluster.networks['ingress'].subnet} via {lb.ip}"
    _sh(tb.host(client), f"ip route replace {route}")
    return route
