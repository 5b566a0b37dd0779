"""The external load balancer and the external DNS name, added to a running testbed.

Swarm's documentation puts an external HAProxy in front of every node and an
external DNS name on the nodes.  :func:`build` adds, through the Mininet API
(nothing in the topology changes):

* ``haproxy``: a host on the underlay at the highest free address
  (192.168.99.254 unless taken), running Debian's ``haproxy`` in the foreground
  with the configuration of :func:`swarmmesh.dataplane.extlb.config`: one
  frontend per pool (``mesh``: every node's published port; ``host``: every node's
  host-mode port, the nodes without a task kept out by the checks; ``direct``:
  every task), TCP checks, ``roundrobin`` or ``leastconn``, one log line per
  connection on stdout (``haproxy.log`` in the run folder) and a stats socket
  (``show stat``) in the run's state folder.
* For ``direct``, a backend network (10.254.0.0/24 unless taken): a bridge in the
  balancer (10.254.0.1) with one veth to every task (``<task>-xlb``, 10.254.0.10,
  ...).  The balancer's connections to a task leave from 10.254.0.1, on-link for
  the task: nothing of the task's routing changes (its mesh and host-mode replies
  keep their paths).  The ``direct`` pool follows the tasks as a user's HAProxy in front
  of a swarm does: ``server-template`` slots filled by DNS discovery of
  ``tasks.<service>.<name>`` from the external DNS, asked again every second.  A task
  started at run time gets its leg and its address in that record as it starts
  (:class:`DirectFollower`, called by the testbed); a stopped one leaves the record.
* ``extdns``: a host on the underlay (the next free address) running
  :mod:`swarmmesh.agents.extdns`, authoritative for the cluster's external name.

Both processes are recorded in the run state as they start (``swarmmesh clean``
kills them after a crash) and stopped with their host.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from swarmmesh import agents
from swarmmesh.dataplane import extlb as lbplan
from swarmmesh.model import Cluster, InvalidConfigError, UNDERLAY_SUBNET
from swarmmesh.testbed import l4lb
from swarmmesh.testbed.runtime import stop_popen
from swarmmesh.testbed.topology import SwarmClient

LB_HOST, DNS_HOST = "haproxy", "extdns"
BRIDGE = "xbe0"
DEFAULT_NAME = "swarm.example"


class ExtLBError(RuntimeError):
    """The balancer or the DNS did not come up; the message says what."""


class ServiceHost(SwarmClient):
    """An underlay host that runs one long-lived server, recorded and stopped with it."""

    proc: subprocess.Popen | None = None

    def start(self, argv: list[str], marker: str, log: Path, **kw) -> subprocess.Popen:
        out = open(log, "w")
        self.proc = self.popen(argv, stdout=out, stderr=subprocess.STDOUT, **kw)
        out.close()
        if self.state:
            self.state.register(self.proc.pid, marker)
        return self.proc

    def terminate(self):
        stop_popen(self.proc)
        super().terminate()


@dataclass
class ExternalLB:
    host: str
    address: str
    dns_host: str
    dns_address: str
    dns_name: str
    balance: str
    checks: lbplan.Checks
    pools: list[lbplan.Pool]
    backend_network: str
    legs: dict[str, str]                 # task -> its lb-side veth
    config_path: Path
    log_path: Path
    stats_socket: Path
    zone: dict[str, list[str]] = field(default_factory=dict)
    config: str = ""
    service: str = ""
    addresses: dict[str, str] = field(default_factory=dict)   # task -> its direct address
    zone_path: Path | None = None
    ever: dict[str, str] = field(default_factory=dict)        # direct address -> last task

    def task_at(self, address: str) -> str | None:
        """The task that holds (or last held) a direct address."""
        return self.ever.get(address)

    def pool(self, name: str) -> lbplan.Pool:
        return next(p for p in self.pools if p.name == name)

    def describe(self) -> dict:
        lo, hi = self.checks.window()
        return {"host": self.host, "address": self.address, "balance": self.balance,
                "checks": {"inter_s": self.checks.inter, "fall": self.checks.fall,
                           "rise": self.checks.rise, "detection_window_s": [lo, hi]},
                "pools": {p.name: {"frontend": f"{self.address}:{p.port}",
                                   "servers": {s.name: f"{s.address}:{s.port}"
                                               for s in p.servers}} for p in self.pools},
                "backend_network": self.backend_network,
                "dns": {"host": self.dns_host, "address": self.dns_address,
                        "name": self.dns_name, "zone": self.zone},
                "config": self.config}


def free_underlay_ips(cluster: Cluster, count: int) -> list[str]:
    """The ``count`` highest underlay addresses no node and no client uses."""
    used = {str(n.underlay_ip) for n in cluster.nodes} | {str(c.underlay_ip)
                                                         for c in cluster.clients}
    free = [str(h) for h in reversed(list(UNDERLAY_SUBNET.hosts())) if str(h) not in used]
    if len(free) < count:
        raise InvalidConfigError("nodes", "no free underlay address left for the balancer")
    return free[:count]


def build(tb, cluster: Cluster, service: str, balance: str = "roundrobin",
          checks: lbplan.Checks = lbplan.Checks(), dns_name: str = DEFAULT_NAME,
          direct: bool = True, **cfg) -> ExternalLB:
    """Add the balancer (and its backend network to the tasks), start HAProxy and the
    DNS; returns once both run (not yet once the checks pass: see :func:`wait_up`)."""
    zone = lbplan.zone(dns_name, cluster)        # bad names fail before anything is built
    lb_ip, dns_ip = free_underlay_ips(cluster, 2)
    net = l4lb.backend_network(cluster)
    host = l4lb.add_underlay_host(tb, LB_HOST, lb_ip, cls=ServiceHost)
    legs, addrs = {}, {}
    discovery = None
    if direct:
        l4lb._sh(host, f"ip link add {BRIDGE} type bridge && ip addr add "
                       f"{next(net.hosts())}/{net.prefixlen} dev {BRIDGE} && "
                       f"ip link set {BRIDGE} up")
        for t in cluster.tasks_of(service):
            if t.host in tb.net:
                addrs[t.name] = free_direct_ip(net, addrs)
                legs[t.name] = add_leg(tb, host, t, addrs[t.name])
        fqdn = lbplan.tasks_name(service, dns_name)
        zone[fqdn] = [addrs[t] for t in sorted(addrs)]
        discovery = lbplan.Discovery(fqdn, lbplan.slots_for(len(cluster.tasks_of(service))),
                                     f"{dns_ip}:53")
    pools = lbplan.pools(cluster, service, addrs, discovery=discovery)
    lb = start_haproxy(tb, host, lb_ip, pools, balance, checks, **cfg)
    lb.backend_network, lb.legs, lb.service, lb.addresses = str(net), legs, service, addrs
    lb.ever = {ip: t for t, ip in addrs.items()}
    lb.dns_host, lb.dns_address, lb.dns_name, lb.zone = (DNS_HOST, dns_ip,
                                                         dns_name.rstrip(".").lower(), zone)
    _start_dns(tb, lb)
    if direct:
        tb.task_watchers.append(DirectFollower(tb, lb))
    return lb


DIRECT_FIRST = 9            # the tasks' direct addresses start at the network's 10th


def free_direct_ip(net, taken: dict[str, str], ever: dict[str, str] | None = None) -> str:
    """The lowest address of the backend network that no task ever held (the balancer has
    .1), else the lowest no task holds now: an address given again at once would meet the
    balancer's ARP entry for the task that left (its MAC), and stay unreachable."""
    pool = [str(ip) for i, ip in enumerate(net.hosts()) if i >= DIRECT_FIRST]
    for used in (set(taken.values()) | set(ever or {}), set(taken.values())):
        free = [ip for ip in pool if ip not in used]
        if free:
            return free[0]
    raise ExtLBError(f"no address left for a task in the backend network {net}")


def add_leg(tb, host, task, ip: str) -> str:
    """A veth from the balancer's bridge to ``task``, ``ip`` on the task's end; returns
    the balancer's end."""
    net = l4lb.backend_network(tb.cluster)
    intf, peer = f"{host.name}-{task.host}", f"{task.host}-xlb"
    tb.state.register_links([intf, peer])
    tb.net.addLink(host, tb.task_host(task), intfName1=intf, intfName2=peer)
    l4lb._sh(host, f"ip link set {intf} master {BRIDGE} && ip link set {intf} up")
    l4lb._sh(tb.task_host(task), f"ip addr add {ip}/{net.prefixlen} dev {peer} && "
                                 f"ip link set {peer} up && ethtool -K {peer} tx off "
                                 ">/dev/null 2>&1; true")
    return intf


class DirectFollower:
    """The direct pool follows the tasks: the testbed calls it as it starts a task (a leg
    to the balancer, its address in ``tasks.<service>``) and before it stops one (out of
    the record; its leg goes with its host).  HAProxy's resolvers see the record change
    at their next question (every ``Discovery.hold`` s)."""

    def __init__(self, tb, lb: ExternalLB) -> None:
        self.tb, self.lb = tb, lb
        self.net = l4lb.backend_network(tb.cluster)

    def task_started(self, task) -> None:
        if task.service != self.lb.service or task.name in self.lb.addresses:
            return
        ip = free_direct_ip(self.net, self.lb.addresses, self.lb.ever)
        balancer = self.tb.host(self.lb.host)
        if ip in self.lb.ever:                       # given again: forget the old MAC
            balancer.cmd(f"ip neigh flush to {ip}")
        self.lb.legs[task.name] = add_leg(self.tb, balancer, task, ip)
        self.lb.addresses[task.name] = ip
        self.lb.ever[ip] = task.name
        self.write_zone()

    def task_stopping(self, task) -> None:
        if self.lb.addresses.pop(task.name, None) is not None:
            self.lb.legs.pop(task.name, None)
            self.write_zone()

    def write_zone(self) -> None:
        fqdn = lbplan.tasks_name(self.lb.service, self.lb.dns_name)
        self.lb.zone[fqdn] = [self.lb.addresses[t] for t in sorted(self.lb.addresses)]
        write_zone(self.lb.zone_path, self.lb.zone)


def write_zone(path: Path, zone: dict) -> None:
    """The zone file, replaced at once (the DNS reads it again when it changes)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(zone, indent=1))
    tmp.replace(path)


def start_haproxy(tb, host, address: str, pools: list[lbplan.Pool], balance: str = "roundrobin",
                  checks: lbplan.Checks = lbplan.Checks(), **cfg) -> ExternalLB:
    """Check and start HAProxy in ``host`` (a :class:`ServiceHost`) with these pools on
    ``address``; its config and stats socket in the run state (the config's path marks
    the PID), a copy of the config and its log in the run folder."""
    conf = tb.state.dir / f"{host.name}.cfg"     # in the run state: its path is the PID's marker
    sock = tb.state.dir / f"{host.name}.sock"
    conf.write_text(lbplan.config(pools, address, balance, checks, str(sock), **cfg))
    (tb.run_dir / f"{host.name}.cfg").write_text(conf.read_text())
    lb = ExternalLB(host.name, address, "", "", "", balance, checks, pools, "", {}, conf,
                    tb.run_dir / f"{host.name}.log", sock, {}, conf.read_text())
    check = subprocess.run(["haproxy", "-c", "-q", "-f", str(conf)], capture_output=True, text=True)
    if check.returncode != 0:
        raise ExtLBError(f"haproxy -c refused {conf}: {(check.stdout + check.stderr).strip()}")
    proc = host.start(["haproxy", "-db", "-f", str(conf)], str(conf), lb.log_path)
    _wait(lambda: sock.exists() or proc.poll() is not None, 10, f"haproxy did not open {sock}")
    if proc.poll() is not None:
        raise ExtLBError(f"haproxy exited {proc.returncode}: {lb.log_path.read_text()[-800:]}")
    return lb


def _start_dns(tb, lb: ExternalLB) -> None:
    dns_host = l4lb.add_underlay_host(tb, DNS_HOST, lb.dns_address, cls=ServiceHost)
    zone_file = lb.zone_path = tb.state.dir / "extdns-zone.json"
    write_zone(zone_file, lb.zone)
    (tb.run_dir / zone_file.name).write_text(zone_file.read_text())
    proc = dns_host.start([sys.executable, "-m", "swarmmesh.agents.extdns", "--zone",
                           str(zone_file), "--bind", lb.dns_address],
                          str(zone_file), tb.run_dir / "extdns.log",
                          env=agents.python_env())
    log = tb.run_dir / "extdns.log"
    _wait(lambda: "ready" in log.read_text() or proc.poll() is not None, 10,
          "the external DNS did not start")
    if proc.poll() is not None:
        raise ExtLBError(f"the external DNS exited: {log.read_text()[-500:]}")


def _wait(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise ExtLBError(what)
        time.sleep(0.05)


def admin(lb: ExternalLB, command: str, timeout: float = 2.0) -> str:
    """One command on HAProxy's stats socket (a unix socket: reachable from any
    namespace), its whole answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(lb.stats_socket))
        s.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def servers(lb: ExternalLB) -> dict[tuple[str, str], dict]:
    """(pool, server) -> status (UP, DOWN, ...), connections so far, last check; a
    discovered pool's slot that holds a task's address is named by that task."""
    out = {}
    for (pool, name), v in lbplan.parse_stat(admin(lb, "show stat")).items():
        holder = lb.task_at(v.get("addr", "")) if pool == "direct" else None
        out[(pool, holder or name)] = {**v, "slot": name} if holder else v
    return out


def wait_up(lb: ExternalLB, want: dict[str, set[str]], timeout: float = 20.0) -> dict:
    """Until exactly the servers of ``want`` (pool -> names) are UP in their pools (the
    others DOWN); returns the last ``show stat``."""
    deadline = time.monotonic() + timeout
    while True:
        st = servers(lb)
        up = {p.name: {s for (b, s), v in st.items() if b == p.name and v["status"] == "UP"}
              for p in lb.pools}
        if all(up.get(p, set()) == set(names) for p, names in want.items()):
            return st
        if time.monotonic() > deadline:
            raise ExtLBError(f"HAProxy's checks: want UP {want}, have {up}")
        time.sleep(0.1)


def cut_direct(tb, lb: ExternalLB, node: str) -> list[str]:
    """A node loses power: its tasks' legs to the balancer go down too (the mesh's and
    the host-mode paths lose them with the node's underlay link).  Returns the legs."""
    gone = [lb.legs[t.name] for t in tb.cluster.tasks_on(node) if t.name in lb.legs]
    for intf in gone:
        tb.host(lb.host).cmd(f"ip link set {intf} down")
    return gone


def resolve(tb, client: str, lb: ExternalLB, name: str | None = None) -> list[str]:
    """The addresses the external DNS gives ``client`` for ``name`` (default: the
    cluster's name), asked with ``dig``."""
    out = tb.host(client).cmd(f"dig +short +time=1 +tries=2 @{lb.dns_address} "
                              f"{name or lb.dns_name} A")
    return [w for w in out.split() if w.count(".") == 3 and w[0].isdigit()]
