"""The cluster spread over several servers, as plain data: which host runs where, the
tunnels between the servers' underlay bridges, their MTUs, the controller's address and
one unix-socket relay per server.  Pure (no Mininet, no ssh): ``swarmmesh.testbed.servers``
carries it out over Mininet's cluster edition.

Design
------
Mininet's cluster edition (``mininet.examples.cluster``) runs a host on another server by
starting its shell there over ssh (``RemoteHost``: ``ssh ... sudo -E mnexec -cdn bash``);
every later command goes down that shell, every ``popen`` is one more ssh; a link between
two hosts on one server is an ordinary veth made there; a link between servers is a
``RemoteGRELink`` (a gretap in each server's root namespace, moved into the host) or an
``RemoteSSHLink`` (``ssh -w``, a tap pair).  This testbed takes its hosts, its GRE link and
its ssh plumbing, and none of its placers: a swarm node never leaves its tasks.

* A **whole swarm node** is placed on one server: the node's namespace, its tasks, its
  own ``ovsdb-server`` and ``ovs-vswitchd``, its embedded DNS.  Node <-> task links are
  veths on that server.  Mininet's ``SwitchBinPlacer``/``RoundRobinPlacer`` place hosts
  and switches separately and would cut node <-> task links across servers; here the unit
  of placement is the node (``block``: contiguous runs, as ``SwitchBinPlacer.bin``;
  ``round-robin``; or explicit per node).  Clients are placed the same way, apart.
* **Only the underlay crosses servers.**  Every server gets its own underlay bridge host
  (``underlay`` on the first, ``underlay<i>`` on server i); the servers' bridges form a
  star around the first (one tunnel each: L2 bridges joined twice make a loop).  The Swarm
  overlay (kernel VXLAN between nodes' underlay addresses) and the address plan do not
  change: a node on server 2 is still 192.168.99.x on the same L2 segment.
* **MTU.**  Each tunnel wraps whole underlay frames:  gretap with a key adds outer IPv4 20
  + GRE 4 + key 4 + inner Ethernet 14 = 42 bytes; a VXLAN tunnel adds outer IPv4 20 + UDP 8
  + VXLAN 8 + inner Ethernet 14 = 50.  The Swarm overlay inside the underlay adds the same
  50 again.  So with the servers' path MTU ``P``: underlay MTU ``U = min(1500, P - tunnel
  overhead)``, overlay (task leg) MTU ``O = U - 50``.  Swarm's own numbers (U 1500, O 1450)
  need ``P >= 1542`` for gretap, ``>= 1550`` for VXLAN (jumbo frames between the servers);
  on a plain 1500 path gretap gives U 1458, O 1408 and every node, task and client on
  every server is set to those (a bridge drops a frame longer than its port's MTU, it never
  fragments).  Mininet's ``RemoteGRELink`` hard-codes 1450 on both ends instead.
* **The controller** runs on the first server and listens on that server's address (not
  127.0.0.1); each other server runs a **relay** process: a unix socket (where the node's
  vswitchd dials, as today) relayed to the controller's TCP address.  Its connections are
  one per node, over the servers' network, not over ssh.
* **ssh** is used for control only (shells, processes, cleanup), multiplexed: one master
  connection per server (``ControlMaster``), every host's shell and process a session on it.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any, Iterable, Mapping

from swarmmesh.dataplane.mtu import (ETHERNET, ETHERNET_MTU, GRE_HEADER, GRE_KEY, IPV4,  # noqa: F401
                                     MIN_OVERLAY_MTU, OVERHEAD, SWARM_OVERLAY_OVERHEAD, UDP,
                                     VXLAN_HEADER, Mtu, overlay_of)
from swarmmesh.model import Cluster, InvalidConfigError

PLACEMENTS = ("block", "round-robin")
TUNNELS = ("gretap", "vxlan")
DEFAULT_TUNNEL = "vxlan"     # what --servers and a servers file with no tunnel get
LOCAL = "localhost"

@dataclass(frozen=True)
class Server:
    """One machine: its name (``localhost`` for the one the command runs on), the address
    the other servers reach it by, how to log in, and its interface MTU toward the others."""

    name: str
    address: str
    user: str = "root"
    port: int = 22
    mtu: int = ETHERNET_MTU

    @property
    def local(self) -> bool:
        return self.name == LOCAL


@dataclass(frozen=True)
class Tunnel:
    """One tunnel between the first server's underlay bridge and another's."""

    kind: str
    key: int                      # GRE key or VNI
    a: str                        # the first server
    b: str
    intf_a: str                   # its device in ``a``'s underlay host
    intf_b: str


@dataclass(frozen=True)
class Plan:
    servers: tuple[Server, ...]
    placement: dict[str, str]                 # node or client -> server name
    underlay: dict[str, str]                  # server name -> its underlay host
    tunnels: tuple[Tunnel, ...]
    mtu: Mtu
    controller_address: str                   # where every server's relay dials
    relays: dict[str, str] = field(default_factory=dict)   # server -> relay socket (state-relative)
    ssh_options: tuple[str, ...] = ()         # given to every ssh (identity, known hosts, ...)

    def server(self, name: str) -> Server:
        return next(s for s in self.servers if s.name == name)

    def on(self, server: str) -> list[str]:
        """The hosts placed on ``server``, in cluster order."""
        return [h for h, s in self.placement.items() if s == server]

    def underlay_of(self, host: str) -> str:
        return self.underlay[self.placement[host]]

    def to_dict(self) -> dict:
        return {"servers": [vars(s) for s in self.servers], "placement": self.placement,
                "underlay": self.underlay, "tunnels": [vars(t) for t in self.tunnels],
                "mtu": {**vars(self.mtu), "tunnel": self.mtu.tunnel,
                        "explain": self.mtu.explain()},
                "controller_address": self.controller_address, "relays": self.relays,
                "ssh_options": list(self.ssh_options)}


# -- arithmetic ----------------------------------------------------------------------------
def mtu_plan(path_mtu: int, tunnel: str = "gretap", field_name: str = "mtu") -> Mtu:
    """The MTUs for servers whose path carries ``path_mtu`` bytes of IP."""
    if tunnel not in OVERHEAD:
        raise InvalidConfigError("tunnel", f"one of {', '.join(TUNNELS)}, got {tunnel!r}")
    underlay = min(ETHERNET_MTU, path_mtu - OVERHEAD[tunnel])
    overlay = overlay_of(underlay)
    if overlay < MIN_OVERLAY_MTU:
        raise InvalidConfigError(field_name, f"a path MTU of {path_mtu} leaves the overlay "
                                 f"{overlay} bytes through {tunnel} (at least {MIN_OVERLAY_MTU})")
    return Mtu(path_mtu, OVERHEAD[tunnel], underlay, overlay)


def path_mtu_for_swarm_defaults(tunnel: str) -> int:
    """The servers' MTU that keeps Swarm's 1500/1450 (1542 gretap, 1550 VXLAN)."""
    return ETHERNET_MTU + OVERHEAD[tunnel]


# -- placement -----------------------------------------------------------------------------
def block(names: list[str], servers: list[str]) -> dict[str, str]:
    """Contiguous runs, sizes as even as can be, the first servers one more (as Mininet's
    ``SwitchBinPlacer.bin``)."""
    q, r = divmod(len(names), len(servers))
    tickets = [s for i, s in enumerate(servers) for _ in range(q + (i < r))]
    return dict(zip(names, tickets))


def round_robin(names: list[str], servers: list[str]) -> dict[str, str]:
    return {n: servers[i % len(servers)] for i, n in enumerate(names)}


def place(names: list[str], servers: list[str], how: str,
          explicit: Mapping[str, str]) -> dict[str, str]:
    """``explicit`` first; the rest by ``how`` over all the servers, in order."""
    rest = [n for n in names if n not in explicit]
    auto = (block if how == "block" else round_robin)(rest, servers)
    return {n: explicit.get(n) or auto[n] for n in names}


# -- parsing -------------------------------------------------------------------------------
def parse_servers_flag(text: str) -> list[dict]:
    """``--servers a,b,user@c:2222`` -> server entries."""
    out = []
    for i, word in enumerate(w.strip() for w in text.split(",")):
        if not word:
            raise InvalidConfigError(f"servers[{i}]", f"empty name in {text!r}")
        entry: dict[str, Any] = {}
        if "@" in word:
            entry["user"], word = word.split("@", 1)
        if word.count(":") == 1:
            word, port = word.split(":")
            entry["port"] = port
        entry["name"] = word
        out.append(entry)
    return out


def parse_place_flags(flags: Iterable[str]) -> dict[str, str]:
    """``--place node3=b`` (repeatable)."""
    out: dict[str, str] = {}
    for f in flags:
        host, sep, server = f.partition("=")
        if not sep or not host or not server:
            raise InvalidConfigError("place", f"want HOST=SERVER, got {f!r}")
        if host in out and out[host] != server:
            raise InvalidConfigError(f"place.{host}", f"placed twice ({out[host]} and {server})")
        out[host] = server
    return out


def _server(entry: Any, i: int, resolve) -> Server:
    path = f"servers[{i}]"
    if isinstance(entry, str):
        entry = {"name": entry}
    if not isinstance(entry, Mapping):
        raise InvalidConfigError(path, f"a name or a mapping, got {entry!r}")
    unknown = set(entry) - {"name", "address", "user", "port", "mtu", "nodes"}
    if unknown:
        raise InvalidConfigError(f"{path}.{sorted(unknown)[0]}", "unknown key (name, address, "
                                 "user, port, mtu, nodes)")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidConfigError(f"{path}.name", f"a server name, got {name!r}")
    address = entry.get("address") or resolve(name)
    if not address:
        raise InvalidConfigError(f"{path}.address", f"{name!r} does not resolve; give its address")
    try:
        IPv4Address(address)
    except ValueError:
        raise InvalidConfigError(f"{path}.address", f"an IPv4 address, got {address!r}") from None
    ints = {}
    for key, lo, hi, default in (("port", 1, 65535, 22), ("mtu", 1280, 65535, ETHERNET_MTU)):
        v = entry.get(key, default)
        try:
            v = int(v)
        except (TypeError, ValueError):
            raise InvalidConfigError(f"{path}.{key}", f"an integer, got {v!r}") from None
        if not lo <= v <= hi:
            raise InvalidConfigError(f"{path}.{key}", f"must be in {lo}..{hi}, got {v}")
        ints[key] = v
    user = entry.get("user", "root")
    if not isinstance(user, str) or not user:
        raise InvalidConfigError(f"{path}.user", f"a user name, got {user!r}")
    return Server(name, str(address), user, ints["port"], ints["mtu"])


def plan(cluster: Cluster, servers: list, placement: str = "block", tunnel: str = "gretap",
         place_explicit: Mapping[str, str] | None = None,
         resolve=lambda name: None, ssh_options: list[str] | None = None) -> Plan:
    """The plan for ``cluster`` over ``servers`` (names or mappings: name, address, user,
    port, mtu, nodes).  ``resolve`` maps a name to an IPv4 address (the caller's
    ``getent``; pure here).  Every error names its field."""
    if not servers:
        raise InvalidConfigError("servers", "at least one server")
    if placement not in PLACEMENTS:
        raise InvalidConfigError("placement", f"one of {', '.join(PLACEMENTS)}, got {placement!r}")
    parsed = [_server(e, i, resolve) for i, e in enumerate(servers)]
    names = [s.name for s in parsed]
    for i, n in enumerate(names):
        if n in names[:i]:
            raise InvalidConfigError(f"servers[{i}].name", f"{n!r} is listed twice")
    for i, s in enumerate(parsed):
        if s.address in [p.address for p in parsed[:i]]:
            raise InvalidConfigError(f"servers[{i}].address", f"{s.address} is also "
                                     f"{parsed[[p.address for p in parsed].index(s.address)].name}")
    for i, s in enumerate(parsed):
        if len(parsed) > 1 and IPv4Address(s.address).is_loopback:
            raise InvalidConfigError(f"servers[{i}].address", f"{s.address} is loopback; the "
                                     "other servers must reach it (give its own address)")
    if any(s.local for s in parsed[1:]):
        raise InvalidConfigError("servers", f"{LOCAL} must come first (the controller and "
                                 "the experiment run on the first server)")
    hosts = [n.name for n in cluster.nodes] + [c.name for c in cluster.clients]
    explicit = _explicit(servers, place_explicit or {}, names, hosts)
    nodes = [n.name for n in cluster.nodes]
    clients = [c.name for c in cluster.clients]
    where = {**place(nodes, names, placement, explicit),
             **place(clients, names, placement, explicit)}
    mtu = mtu_plan(min(s.mtu for s in parsed), tunnel,
                   "mtu" if len({s.mtu for s in parsed}) == 1 else
                   f"servers[{[s.mtu for s in parsed].index(min(s.mtu for s in parsed))}].mtu")
    underlay = {s.name: ("underlay" if i == 0 else f"underlay{i}") for i, s in enumerate(parsed)}
    tunnels = tuple(Tunnel(tunnel, i, parsed[0].name, s.name, f"tun-s{i}", "tun-s0")
                    for i, s in enumerate(parsed) if i > 0)
    relays = {s.name: f"servers/{s.name}/openflow.sock" for s in parsed[1:]}
    return Plan(tuple(parsed), where, underlay, tunnels, mtu, parsed[0].address, relays,
                tuple(ssh_options or ()))


def _explicit(servers: list, flags: Mapping[str, str], names: list[str],
              hosts: list[str]) -> dict[str, str]:
    """Explicit placement from each server's ``nodes:`` list and from ``--place``."""
    out: dict[str, tuple[str, str]] = {}          # host -> (server, where it was said)
    for i, entry in enumerate(servers):
        listed = entry.get("nodes", []) if isinstance(entry, Mapping) else []
        if not isinstance(listed, list):
            raise InvalidConfigError(f"servers[{i}].nodes", f"a list of node names, got {listed!r}")
        for h in listed:
            _claim(out, h, names[i], f"servers[{i}].nodes", hosts)
    for h, s in flags.items():
        _claim(out, h, s, f"place.{h}", hosts, names)
    return {h: s for h, (s, _) in out.items()}


def _claim(out: dict, host: str, server: str, path: str, hosts: list[str],
           names: list[str] | None = None) -> None:
    if host not in hosts:
        raise InvalidConfigError(path, f"no node or client {host!r} in the cluster "
                                 f"({', '.join(hosts[:6])}{', ...' if len(hosts) > 6 else ''})")
    if names is not None and server not in names:
        raise InvalidConfigError(path, f"unknown server {server!r} (servers: {', '.join(names)})")
    if host in out and out[host][0] != server:
        raise InvalidConfigError(path, f"{host} placed twice ({out[host][0]} in "
                                 f"{out[host][1]}, {server} here)")
    out[host] = (server, path)


def load_servers_file(data: Any) -> dict:
    """A servers file's top level (YAML already loaded): ``servers`` (list), ``placement``,
    ``tunnel``, ``place`` (host -> server).  Returns plan()'s keyword arguments."""
    if not isinstance(data, Mapping):
        raise InvalidConfigError("(top level)", f"a mapping, got {data!r}")
    unknown = set(data) - {"servers", "placement", "tunnel", "place", "ssh_options"}
    if unknown:
        raise InvalidConfigError(sorted(unknown)[0], "unknown key (servers, placement, tunnel, "
                                 "place, ssh_options)")
    opts = data.get("ssh_options", []) or []
    if not isinstance(opts, list) or not all(isinstance(o, str) for o in opts):
        raise InvalidConfigError("ssh_options", f"a list of ssh arguments, got {opts!r}")
    servers = data.get("servers")
    if not isinstance(servers, list) or not servers:
        raise InvalidConfigError("servers", f"a non-empty list, got {servers!r}")
    place_map = data.get("place", {}) or {}
    if not isinstance(place_map, Mapping):
        raise InvalidConfigError("place", f"a mapping host: server, got {place_map!r}")
    return {"servers": servers, "placement": data.get("placement", "block"),
            "ssh_options": list(opts),
            "tunnel": data.get("tunnel", DEFAULT_TUNNEL),
            "place_explicit": {str(k): str(v) for k, v in place_map.items()}}


# -- result files written on another server ----------------------------------------------
RESULTS = "results"          # the folder, in the run's state folder on every server


@dataclass(frozen=True)
class ResultFile:
    """A file an agent in a host on another server writes (the load generator's CSV,
    scapygen's records, ab's percentiles) and the experiment reads on the first server:
    the agent writes ``remote``, in the run's state folder on ``server`` (its own there:
    the run folder of the first server need not exist on it), and it is fetched into
    ``local``."""

    host: str
    server: str
    remote: str
    local: str


def result_file(plan: Plan, host: str, local: str, state_dir: str, seq: int,
                node: str | None = None) -> ResultFile | None:
    """Where an agent in ``host`` (a task: on ``node``'s server) writes a file meant for
    ``local``, or None when it writes ``local`` itself: a host on the first server, or a
    device (``/dev/null``).  ``seq`` keeps two files of one name apart."""
    server = plan.placement.get(host) or (plan.placement.get(node) if node else None)
    if server is None or plan.server(server).local or str(local).startswith("/dev/"):
        return None
    name = str(local).rstrip("/").rsplit("/", 1)[-1]
    return ResultFile(host, server, f"{str(state_dir).rstrip('/')}/{RESULTS}/{host}.{seq}.{name}",
                      str(local))


def by_server(files: Iterable[ResultFile]) -> dict[str, list[ResultFile]]:
    """The files to fetch, grouped by the server they are on (one session each)."""
    out: dict[str, list[ResultFile]] = {}
    for f in files:
        out.setdefault(f.server, []).append(f)
    return out


def fetch_script(files: Iterable[ResultFile]) -> str:
    """The shell script that sends ``files`` (all on one server) as one tar on stdout; a
    missing one is left out (tar says so on stderr, and exits 2 after the others)."""
    return "cd / && tar -cf - " + " ".join(shlex.quote(f.remote.lstrip("/")) for f in files)


def sort_fetched(files: Iterable[ResultFile], names: Iterable[str]
                 ) -> tuple[dict[str, ResultFile], list[ResultFile]]:
    """The tar's member names (relative to ``/``) -> the file each fills, and the files
    that did not come."""
    want = {f.remote.lstrip("/"): f for f in files}
    got = {n: want[n.lstrip("/")] for n in names if n.lstrip("/") in want}
    seen = {f.remote for f in got.values()}
    return got, [f for f in want.values() if f.remote not in seen]


# -- the command line ---------------------------------------------------------------------
def add_arguments(group) -> None:
    """The servers' flags, common to every experiment."""
    group.add_argument("--servers", default=None, metavar="A,B,...",
                       help="spread the cluster over these servers (the first: this machine, "
                            "'localhost'; [user@]name[:port]); see docs/servers.md")
    group.add_argument("--servers-file", default=None, metavar="FILE",
                       help="servers, their addresses, MTU, ssh options, placement (YAML)")
    group.add_argument("--placement", choices=("block", "round-robin"), default=None,
                       help="nodes (and clients) over the servers (default: block)")
    group.add_argument("--place", action="append", default=[], metavar="HOST=SERVER",
                       help="put one node or client on a server (repeat it)")
    group.add_argument("--tunnel", choices=("gretap", "vxlan"), default=None,
                       help="between the servers' underlays (default: vxlan; gretap needs "
                            "the kernel's ip_gre on every server)")
