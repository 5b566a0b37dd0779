"""The external load balancer in front of the swarm: HAProxy's configuration and the
external DNS zone, as pure functions of the model (no Mininet, no process);
``swarmmesh.testbed.extlb`` carries them out.

Swarm's documentation draws the routing mesh behind an external load balancer
(HAProxy) that forwards to *any* node's published port, and an external DNS
name "mapped to any or all nodes".  Three pools of servers, each a frontend of
its own on the balancer's address, make the comparison:

* ``mesh``: every node's ingress-published port (the routing mesh balances again);
* ``host``: every node's host-mode published port; only the nodes that run a task
  answer, the others refuse and HAProxy's check keeps them out of the rotation;
* ``direct``: every task's own address and target port (no node, no mesh).  With
  :class:`Discovery` it follows the tasks as a user's HAProxy does in front of a swarm:
  ``server-template`` slots filled by DNS discovery of ``tasks.<service>`` (a
  ``resolvers`` section), so a replacement task joins the pool and a removed one leaves
  it, with no reload.

HAProxy runs in TCP mode (L4, as the documentation's example), with TCP connect
checks on every server (``inter``, ``fall``, ``rise``) and ``roundrobin`` or
``leastconn``.  Each connection is logged on stdout in a fixed format
(:data:`LOG_FORMAT`, parsed by :func:`parse_log`): the client's address and
port, the frontend, the server HAProxy chose and its timers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from swarmmesh.model import Cluster, InvalidConfigError

BALANCES = ("roundrobin", "leastconn")
POOLS = ("mesh", "host", "direct")
LOG_FORMAT = "%ci %cp %ft %b %s %Tw %Tc %Tt %B %ts %si"
"""client IP, client port, frontend, backend, server, wait/connect/total ms,
bytes to the client, termination state, the server's address (a template's slot holds
whichever task DNS gave it)."""
LOG_FIELDS = ("client_ip", "client_port", "frontend", "backend", "server", "tw_ms", "tc_ms",
              "tt_ms", "bytes", "termination", "server_ip")
ZONE_TTL = 30


@dataclass(frozen=True)
class Checks:
    """HAProxy's health checks: a TCP connect every ``inter`` s; ``fall`` failures
    in a row take a server out, ``rise`` successes bring it back."""

    inter: float = 0.5
    fall: int = 2
    rise: int = 2

    def window(self) -> tuple[float, float]:
        """Bounds (s) from a server going silent (a lost node: SYNs unanswered) to
        HAProxy marking it DOWN.  Without ``timeout check`` a check has ``inter`` to
        complete, and the next one starts ``inter`` after it ended: a failing check
        takes ``2 x inter``.  The first one to fail starts between 0 and ``inter``
        after the loss (or was already under way), and ``fall`` of them must fail:
        ``(2 fall - 1) x inter`` to ``2 fall x inter``."""
        return (2 * self.fall - 1) * self.inter, 2 * self.fall * self.inter


@dataclass(frozen=True)
class Server:
    name: str          # node1, ... or the task's name
    address: str
    port: int
    backup: bool = False   # used only while no other server of the pool is up


@dataclass(frozen=True)
class Discovery:
    """A pool's servers found by DNS: ``slots`` servers of one ``server-template``, each
    holding one address of ``fqdn`` (the A records of ``tasks.<service>``) as the
    ``resolver`` (``ip:port``) answers, asked again every ``hold`` seconds."""

    fqdn: str
    slots: int
    resolver: str
    hold: float = 1.0
    prefix: str = "slot"


@dataclass
class Pool:
    name: str          # mesh | host | direct
    port: int          # the frontend's port on the balancer
    servers: list[Server] = field(default_factory=list)   # (with discovery: those at start)
    discovery: Discovery | None = None
    target: int = 0    # the servers' port (a template's)


def _ms(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


def published_ports(cluster: Cluster, service: str) -> tuple[int, int | None, int]:
    """(ingress-published port, host-mode published port or None, target port) of
    ``service``'s first TCP ports; InvalidConfigError naming the field if it
    publishes no TCP port through the mesh."""
    svc = cluster.service(service)
    tcp = [p for p in svc.ports if p.protocol == "tcp"]
    ingress = [p for p in tcp if p.mode != "host"]
    host = [p for p in tcp if p.mode == "host"]
    if not ingress:
        raise InvalidConfigError(f"services.{service}.ports",
                                 "the external load balancer needs a TCP port published "
                                 "through the routing mesh (mode: ingress)")
    return (ingress[0].published, host[0].published if host else None, ingress[0].target)


def pools(cluster: Cluster, service: str, direct: dict[str, str], base_port: int | None = None,
          discovery: Discovery | None = None) -> list[Pool]:
    """The balancer's pools for ``service``.  ``direct`` maps a task's name to the
    address the balancer reaches it on (its leg on the balancer's backend network);
    tasks missing from it are left out.  Frontend ports: the mesh's and the host-mode
    published ports, and ``base_port`` (default: the ingress port + 82) for direct."""
    ingress, host, target = published_ports(cluster, service)
    nodes = [n for n in cluster.nodes]
    out = [Pool("mesh", ingress, [Server(n.name, str(n.underlay_ip), ingress) for n in nodes])]
    if host is not None:
        out.append(Pool("host", host, [Server(n.name, str(n.underlay_ip), host) for n in nodes]))
    tasks = [t for t in cluster.tasks_of(service) if t.name in direct]
    if tasks or discovery is not None:
        port = base_port if base_port is not None else ingress + 82
        if port in {p.port for p in out}:
            raise InvalidConfigError("direct_port", f"{port} is taken by another frontend")
        if discovery is not None and discovery.slots < len(tasks):
            raise InvalidConfigError("slots", f"{discovery.slots} server slots for "
                                              f"{len(tasks)} tasks")
        out.append(Pool("direct", port, [Server(t.name, direct[t.name], target) for t in tasks],
                        discovery, target))
    return out


def tasks_name(service: str, zone_name: str) -> str:
    """The external zone's name for a service's tasks (Swarm's ``tasks.<service>``)."""
    return f"tasks.{service}.{zone_name.rstrip('.').lower()}"


def slots_for(replicas: int) -> int:
    """Server slots of a discovered pool: room for every task, one replacement of each
    during a rolling change, and a few more (a user sizes it for the service's scale)."""
    return max(8, 2 * replicas + 2)


def zone_pools(cluster: Cluster, service: str, zones: dict[str, str], zone: str) -> list[Pool]:
    """A balancer in ``zone`` that sends its clients to their own zone: the mesh's and the
    host-mode ports of the zone's nodes, the other zones' nodes as backups (used only
    when no node of the zone answers)."""
    ingress, host, _ = published_ports(cluster, service)
    out = []
    for name, port in (("mesh", ingress), ("host", host)):
        if port is None:
            continue
        own = [Server(n.name, str(n.underlay_ip), port) for n in cluster.nodes
               if zones[n.name] == zone]
        other = [Server(n.name, str(n.underlay_ip), port, backup=True) for n in cluster.nodes
                 if zones[n.name] != zone]
        out.append(Pool(name, port, own + other))
    return out


def config(pools_: list[Pool], bind: str, balance: str = "roundrobin",
           checks: Checks = Checks(), stats_socket: str = "/run/haproxy.sock",
           connect_timeout: float = 1.0, retries: int = 1, redispatch: bool = False) -> str:
    """haproxy.cfg: one frontend and one backend per pool, on ``bind``."""
    if balance not in BALANCES:
        raise InvalidConfigError("balance", f"must be one of {', '.join(BALANCES)}, got {balance!r}")
    if checks.inter <= 0 or checks.fall < 1 or checks.rise < 1:
        raise InvalidConfigError("checks", f"inter > 0, fall >= 1, rise >= 1, got {checks}")
    lines = ["global",
             "    log stdout format raw local0",
             f"    stats socket {stats_socket} mode 600 level admin",
             "    maxconn 4000",
             "",
             "defaults",
             "    mode tcp",
             "    log global",
             f'    log-format "{LOG_FORMAT}"',
             f"    timeout connect {_ms(connect_timeout)}",
             "    timeout client 30s",
             "    timeout server 30s",
             f"    retries {retries}"]
    if redispatch:
        lines.append("    option redispatch")
    for pool in pools_:
        if not pool.servers:
            raise InvalidConfigError(f"pools.{pool.name}", "a pool needs at least one server")
        lines += ["",
                  f"frontend {pool.name}",
                  f"    bind {bind}:{pool.port}",
                  f"    default_backend {pool.name}",
                  "",
                  f"backend {pool.name}",
                  f"    balance {balance}",
                  f"    default-server check inter {_ms(checks.inter)} fall {checks.fall} "
                  f"rise {checks.rise}"]
        if pool.discovery is None:
            lines += [f"    server {s.name} {s.address}:{s.port}" + (" backup" if s.backup else "")
                      for s in pool.servers]
        else:
            lines.append(_template(pool))
    lines += resolvers([p.discovery for p in pools_ if p.discovery is not None])
    return "\n".join(lines) + "\n"


def _template(pool: Pool) -> str:
    d = pool.discovery
    return (f"    server-template {d.prefix} {d.slots} {d.fqdn}:{pool.target} "
            f"resolvers {RESOLVERS} init-addr none resolve-prefer ipv4")


RESOLVERS = "extdns"


def resolvers(discoveries: list[Discovery]) -> list[str]:
    """The ``resolvers`` section the discovered pools ask: answers held ``hold`` s (then
    asked again), a name that lost an address loses its slot at once (``hold obsolete``)."""
    if not discoveries:
        return []
    d = discoveries[0]
    hold = _ms(d.hold)
    return ["", f"resolvers {RESOLVERS}",
            f"    nameserver dns1 {d.resolver}",
            "    accepted_payload_size 8192",
            "    resolve_retries 3",
            f"    timeout resolve {hold}",
            f"    timeout retry {hold}",
            f"    hold valid {hold}",
            f"    hold nx {hold}",
            f"    hold other {hold}",
            f"    hold refused {hold}",
            f"    hold timeout {hold}",
            "    hold obsolete 0s"]


def parse_log(text: str) -> list[dict]:
    """The connection lines of HAProxy's stdout log (:data:`LOG_FORMAT`); other
    lines (warnings, server state changes) are skipped."""
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != len(LOG_FIELDS) or not parts[1].isdigit():
            continue
        row = dict(zip(LOG_FIELDS, parts))
        for k in ("client_port", "tw_ms", "tc_ms", "tt_ms", "bytes"):
            row[k] = int(row[k])
        rows.append(row)
    return rows


def parse_stat(csv_text: str) -> dict[tuple[str, str], dict]:
    """``show stat`` (CSV) -> {(backend, server): {status, stot, check_status}}
    for the servers (not the FRONTEND/BACKEND summary lines)."""
    lines = csv_text.splitlines()
    if not lines or not lines[0].startswith("# "):
        return {}
    head = lines[0][2:].split(",")
    out = {}
    for line in lines[1:]:
        row = dict(zip(head, line.split(",")))
        sv = row.get("svname", "")
        if not sv or sv in ("FRONTEND", "BACKEND"):
            continue
        out[(row["pxname"], sv)] = {"status": row.get("status", ""),
                                    "stot": int(row.get("stot") or 0),
                                    "check_status": row.get("check_status", ""),
                                    "addr": row.get("addr", "").rsplit(":", 1)[0]}
    return out


def zone(name: str, cluster: Cluster) -> dict[str, list[str]]:
    """The external DNS zone: ``name`` -> every node's underlay address ("an
    external DNS service mapped to any or all nodes"); the nodes one by one as
    ``<node>.<name>``."""
    name = name.rstrip(".").lower()
    if not name or any(not label or len(label) > 63 for label in name.split(".")):
        raise InvalidConfigError("dns_name", f"not a DNS name: {name!r}")
    out = {name: [str(n.underlay_ip) for n in cluster.nodes]}
    out.update({f"{n.name}.{name}": [str(n.underlay_ip)] for n in cluster.nodes})
    return out
