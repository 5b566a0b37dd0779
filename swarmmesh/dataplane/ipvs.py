"""Swarm's own ingress sandbox, built with the kernel's IPVS: the reference path.

With ``Testbed(ingress="ipvs")`` each node has a real ingress sandbox, a network namespace
of its own between the node's kernel and its bridge, built the way libnetwork builds
``ingress-sbox``; the emulated pick (:mod:`kernel`'s ``numgen`` map) is not used:

* the node's table only DNATs a published port to the sandbox, port kept (Swarm's
  ``DOCKER-INGRESS``: ``-m addrtype --dst-type LOCAL ... -j DNAT --to-destination
  172.18.0.2:<published>``), over ``gwbr`` to the sandbox's leg ``eth1``;
* the sandbox's ``mangle`` PREROUTING marks the published port with a firewall mark (from
  256, as libnetwork's allocator), IPVS holds one service per mark with scheduler ``rr``
  and one real server per task (masquerade, weight 1; 0 while the task drains), and the
  ``nat`` POSTROUTING SNATs what IPVS sends to the ingress network to the sandbox's
  ingress address (``-m ipvs --ipvs``), with ``net.ipv4.vs.conntrack=1`` so that netfilter
  sees IPVS's connections; moby's IPVS sysctls (``conn_reuse_mode=0``,
  ``expire_nodest_conn=1``, ``expire_quiescent_template=1``) are set;
* the sandbox's leg on the ingress network (``eth0``) has the node's ingress address and
  is the bridge's port 1 (``gwbr-sbox``), where the node's kernel is otherwise: the bridge
  forwards its frames exactly as it forwards the kernel's (same addresses, same ports), so
  the controller needs no change.  The bridge sends replies to the gateway MAC
  (``layout.GW_MAC``), so that leg carries that MAC (a departure from Docker's MAC of the
  address, seen by no task: the bridge writes the node's ingress MAC as the source).

Departure: one mark per published port (libnetwork: one per service) and the real server's
port is the target port (libnetwork: port 0, and the task REDIRECTs published -> target),
because the tasks here listen on the target port with no REDIRECT of their own.

Only Swarm's own balancing (rr, no affinity, no local policy) is built this way: the other
schedulers are this project's, not Swarm's (:func:`check_supported`).

Pure functions of the model: the sandbox's set-up commands, its iptables text, its IPVS
services and the ``ipvsadm -R`` lines that bring one set of services to another.  The
testbed (``testbed.sandbox``) runs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from swarmmesh.dataplane import layout, rules
from swarmmesh.dataplane.mtu import SWARM
from swarmmesh.model import Cluster
from swarmmesh.model.errors import InvalidConfigError

INGRESS_MODES = ("mesh", "ipvs")       # the emulated pick (default), Swarm's own IPVS
SBOX_GW_INTF = "eth1"                  # the sandbox's docker_gwbridge leg (172.18.0.2)
SBOX_INGRESS_INTF = "eth0"             # its leg on the ingress network (the node's address)
FIRST_MARK = 256                       # libnetwork's first firewall mark
SCHEDULER = "rr"
OVERLAY_MTU = SWARM.overlay            # (one machine only: --ingress ipvs spans no servers)
# moby sets these in every ingress and load-balancer namespace (and forwarding on).
SYSCTLS = (("net.ipv4.ip_forward", 1), ("net.ipv4.vs.conntrack", 1),
           ("net.ipv4.vs.conn_reuse_mode", 0), ("net.ipv4.vs.expire_nodest_conn", 1),
           ("net.ipv4.vs.expire_quiescent_template", 1))

PortKey = tuple[str, int]              # (protocol, published port)


@dataclass(frozen=True)
class VirtualService:
    """One IPVS service on a firewall mark, its real servers ("ip:port") and weights in
    task order."""

    mark: int
    protocol: str
    published: int
    scheduler: str
    dests: tuple[tuple[str, int], ...]


def check_supported(cluster: Cluster) -> None:
    """Swarm's IPVS balances by rr only: a service with other balancing options cannot
    take the reference path (the error names its field)."""
    for svc in cluster.ingress_services():
        if not svc.balancing.is_swarm():
            raise InvalidConfigError(f"services.{svc.name}.x-swarmmesh",
                                     "the IPVS reference path (ingress ipvs) builds Swarm's "
                                     "own balancing only (rr, no affinity, traffic_policy "
                                     "cluster)")


def assign_marks(cluster: Cluster, marks: Mapping[PortKey, int] | None = None
                 ) -> dict[PortKey, int]:
    """A firewall mark per ingress port: the ports that had one keep it, a new port takes
    the lowest free mark from 256 (libnetwork's allocator), a port that is gone frees its."""
    have = dict(marks or {})
    ports = [(p.protocol, p.published) for p, _t, _e in rules.ingress_ports(cluster)]
    out = {k: have[k] for k in ports if k in have}
    for k in ports:
        if k not in out:
            m = FIRST_MARK
            while m in out.values():
                m += 1
            out[k] = m
    return out


def services(cluster: Cluster, marks: Mapping[PortKey, int]) -> dict[int, VirtualService]:
    """Every ingress port's IPVS service: a real server per task of its service that still
    exists, weight 1 while it takes new connections, 0 while it drains."""
    out = {}
    for p, tasks, every in rules.ingress_ports(cluster):
        mark = marks[(p.protocol, p.published)]
        taking = {t.name for t in tasks}
        dests = tuple((f"{t.addresses['ingress']}:{p.target}", 1 if t.name in taking else 0)
                      for t in every)
        out[mark] = VirtualService(mark, p.protocol, p.published, SCHEDULER, dests)
    return out


def setup_commands(cluster: Cluster, node: str) -> list[str]:
    """The commands that configure a node's sandbox, run inside it once its two legs are
    there (``eth1`` from the node's ``gwbr``, ``eth0`` from the bridge's ``gwbr-sbox``);
    plain argv, no shell.  ``ipvsadm -L -n`` before the sysctls: it loads ``ip_vs``, whose
    sysctls exist only from then on."""
    n = cluster.node(node)
    prefix = cluster.networks["ingress"].subnet.prefixlen
    return [
        "ip link set lo up",
        f"ip link set {SBOX_GW_INTF} address {layout.SBOX_GW_MAC}",
        f"ip addr add {layout.SBOX_GW_IP}/{layout.GW_PREFIX} dev {SBOX_GW_INTF}",
        f"ip link set {SBOX_GW_INTF} up",
        f"ip link set {SBOX_INGRESS_INTF} address {layout.GW_MAC}",
        f"ip addr add {n.ingress_ip}/{prefix} dev {SBOX_INGRESS_INTF}",
        *[f"ip addr add {s.ingress_vip}/32 dev {SBOX_INGRESS_INTF}"    # as moby's sandbox
          for s in cluster.ingress_services() if s.ingress_vip is not None],
        f"ip link set {SBOX_INGRESS_INTF} mtu {OVERLAY_MTU} up",
        f"ip route add default via {layout.GW_IP} dev {SBOX_GW_INTF}",
        "ipvsadm -L -n",
        *[f"sysctl -qw {k}={v}" for k, v in SYSCTLS],
    ]


def iptables_text(cluster: Cluster, node: str, marks: Mapping[PortKey, int]) -> str:
    """The sandbox's ``mangle`` and ``nat`` tables, for ``iptables-restore`` (which
    replaces both in one go): the mark per published port, the SNAT of what IPVS sends to
    the ingress network."""
    subnet = cluster.networks["ingress"].subnet
    lines = ["*mangle", ":PREROUTING ACCEPT [0:0]"]
    lines += [f"-A PREROUTING -p {proto} -m {proto} --dport {port} -j MARK --set-mark {mark}"
              for (proto, port), mark in sorted(marks.items(), key=lambda kv: kv[1])]
    lines += ["COMMIT", "*nat", ":POSTROUTING ACCEPT [0:0]",
              f"-A POSTROUTING -d {subnet} -m ipvs --ipvs -j SNAT "
              f"--to-source {cluster.node(node).ingress_ip}",
              "COMMIT"]
    return "\n".join(lines) + "\n"


def ipvsadm_lines(old: Mapping[int, VirtualService], new: Mapping[int, VirtualService]
                  ) -> list[str]:
    """``ipvsadm -R`` lines that turn the services ``old`` into ``new``: services added or
    deleted, real servers added, reweighted (``-e``: a leaving task's weight 0) or deleted
    (its connections expire at once: ``expire_nodest_conn``)."""
    out = []
    for mark in sorted(set(old) - set(new)):
        out.append(f"-D -f {mark}")
    for mark in sorted(new):
        svc = new[mark]
        before = dict(old[mark].dests) if mark in old else None
        if before is None:
            out.append(f"-A -f {mark} -s {svc.scheduler}")
            before = {}
        elif old[mark].scheduler != svc.scheduler:
            out.append(f"-E -f {mark} -s {svc.scheduler}")
        want = dict(svc.dests)
        for dest, weight in svc.dests:
            if dest not in before:
                out.append(f"-a -f {mark} -r {dest} -m -w {weight}")
            elif before[dest] != weight:
                out.append(f"-e -f {mark} -r {dest} -m -w {weight}")
        out += [f"-d -f {mark} -r {dest}" for dest in before if dest not in want]
    return out
