"""A fake OpenFlow switch that runs ``swarmmesh.dataplane.rules`` flows on plain dicts.

Modelled on FAUCET's ``fakeoftable``: no switch, no kernel, just the lookup
and action semantics of Open vSwitch that the rules rely on, so unit tests
can follow a packet through one node's bridge and across the cluster.

A packet is a dict of header fields named as in the rules' matches
(``eth_src, eth_dst, eth_type, ip_proto, ipv4_src, ipv4_dst, tcp_src, ...,
arp_op, arp_spa, arp_tpa, arp_sha, arp_tha``) plus the metadata ``in_port`` and
``reg2`` (default 0).
Addresses are strings, as in the rules.

Semantics, as in OVS:

* per table, the highest-priority matching flow wins; a match value may be
  ``(value, mask)`` (integers, or an IPv4 address and mask in dotted form); no match drops; two matching flows of equal priority
  are an error (OVS's choice would be undefined);
* actions run in order; ``Goto`` (to a later table only) continues after
  them (the bridge keeps no conntrack and learns nothing: the rules use neither);
* ``Output(n)`` with ``n`` the packet's ``in_port`` is dropped (use
  ``Output("in_port")``).

Anything else raises ``NotImplementedError``: nothing is silently ignored.
Output packets carry header fields only (no ``in_port`` or registers), as on a wire.

``FakeKernel`` models the part of a node's kernel the bridge depends on: its
nftables table (the text of ``swarmmesh.dataplane.kernel.table``, read back
from the text alone) and its conntrack.  The ingress round-robin pick is
there, and the VIPs' (east-west, on the legs ``lb-n<j>``) (``numgen inc mod k map {...}``: one counter per rule, restarted by a
reload that changes the text), the DNAT to the task and the SNAT to the
node's ingress address (decided once per connection; SNAT keeps the source
port unless that reply tuple is taken), so that the tests check exact round
robin, the rewrites and the replies from the flows and the nft text together.
``FakeCluster`` puts one bridge and one kernel per node, with the overlay.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
import ipaddress
from ipaddress import IPv4Address, IPv4Network

from swarmmesh.dataplane import kernel, layout, picks, rules
from swarmmesh.model import Cluster, Task, docker_mac
from swarmmesh.dataplane.flows import Flow, Goto, Load, Move, MoveBits, Output, SetField

HEADER_FIELDS = frozenset((
    "eth_src", "eth_dst", "eth_type", "ip_proto", "ipv4_src", "ipv4_dst",
    "tcp_src", "tcp_dst", "udp_src", "udp_dst",
    "arp_op", "arp_spa", "arp_tpa", "arp_sha", "arp_tha"))
METADATA = frozenset(("in_port", "reg2"))
FIELDS = HEADER_FIELDS | METADATA
L4 = {6: ("tcp_src", "tcp_dst"), 17: ("udp_src", "udp_dst")}


class AmbiguousMatch(RuntimeError):
    """Two flows of the same priority match a packet in one table."""


def _check_field(name: str) -> None:
    if name not in FIELDS:
        raise NotImplementedError(f"field {name!r} is not modelled by the fake switch")


def _check_flow(f: Flow) -> None:
    for name, value in f.match:
        _check_field(name)
        if isinstance(value, tuple) and not (all(isinstance(v, int) for v in value)
                                             or name in IP_FIELDS):
            raise NotImplementedError(f"masked match on {name!r} needs integers: {value!r}")
    for a in f.actions:
        if isinstance(a, SetField):
            _check_field(a.field)
        elif isinstance(a, (Move, MoveBits)):
            _check_field(a.src)
            _check_field(a.dst)
        elif isinstance(a, Load):
            _check_field(a.field)
        elif isinstance(a, Output):
            if not isinstance(a.port, int) and a.port != "in_port":
                raise NotImplementedError(f"output to {a.port!r}")
        elif not isinstance(a, Goto):
            raise NotImplementedError(f"action {a!r}")


IP_FIELDS = {"ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa"}




MAC_FIELDS = {"eth_src", "eth_dst", "arp_sha", "arp_tha"}


def _field_int(name: str, value) -> int:
    """A field's value as an integer (a MAC or an IPv4 address in its text form too)."""
    if name in MAC_FIELDS:
        return int(value.replace(":", ""), 16)
    return int(ipaddress.IPv4Address(value)) if name in IP_FIELDS else value


def _field_value(name: str, number: int):
    """The inverse of :func:`_field_int`: the field's value in the packet's form."""
    if name in MAC_FIELDS:
        return ":".join(f"{b:02x}" for b in number.to_bytes(6, "big"))
    if name in IP_FIELDS:
        return str(ipaddress.IPv4Address(number))
    return number


def _write_bits(name: str, old, bits: int, ofs: int, n_bits: int):
    """``old`` (absent: 0) with ``n_bits`` bits from bit ``ofs`` set to ``bits``."""
    mask = ((1 << n_bits) - 1) << ofs
    number = _field_int(name, old) if old is not None else 0
    return _field_value(name, (number & ~mask) | ((bits << ofs) & mask))


def matches(f: Flow, packet: dict) -> bool:
    """Does ``packet`` match every field of ``f``?"""
    for name, want in f.match:
        if isinstance(want, tuple):
            value, mask = (_field_int(name, v) for v in want)
            if name in IP_FIELDS and name not in packet:
                return False
            if (_field_int(name, packet.get(name, 0)) & mask) != (value & mask):
                return False
        elif name not in packet or packet[name] != want:
            return False
    return True


class FakeSwitch:
    """Applies a list of ``Flow`` to packets (one bridge)."""

    def __init__(self, flows, name: str = "") -> None:
        self.name = name
        self.flows: list[Flow] = []
        for f in flows:
            self.add_flow(f)

    # ---- flow table ------------------------------------------------------

    def add_flow(self, f: Flow) -> None:
        """Add ``f``, replacing a flow of the same table, priority and match."""
        _check_flow(f)
        key = (f.table, f.priority, frozenset(f.match))
        self.flows = [g for g in self.flows
                      if (g.table, g.priority, frozenset(g.match)) != key]
        self.flows.append(f)

    def table(self, table: int) -> list[Flow]:
        return [f for f in self.flows if f.table == table]

    def lookup(self, table: int, packet: dict) -> Flow | None:
        hits = [f for f in self.flows if f.table == table and matches(f, packet)]
        if not hits:
            return None
        best = max(f.priority for f in hits)
        top = [f for f in hits if f.priority == best]
        if len(top) > 1:
            raise AmbiguousMatch(f"{self.name}: table {table} priority {best}: "
                                 f"{len(top)} flows match {packet}")
        return top[0]

    # ---- packets ---------------------------------------------------------

    def process(self, packet: dict) -> list[tuple[int, dict]]:
        """Run ``packet`` from table 0; return the (port, packet) outputs."""
        for name in packet:
            _check_field(name)
        pkt = {"reg2": 0, **copy.deepcopy(packet)}
        out: list[tuple[int, dict]] = []
        self._table(0, pkt, out)
        return out

    def _table(self, table: int, pkt: dict, out: list) -> None:
        while table is not None:
            f = self.lookup(table, pkt)
            if f is None:
                return                       # table miss: drop
            goto = self._actions(f, pkt, out)
            if goto is not None and goto <= table:
                raise ValueError(f"goto from table {table} to {goto}: must go forward")
            table = goto

    def _actions(self, f: Flow, pkt: dict, out: list) -> int | None:
        goto = None
        for a in f.actions:
            if isinstance(a, Output):
                port = pkt["in_port"] if a.port == "in_port" else a.port
                if a.port == "in_port" or a.port != pkt.get("in_port"):
                    out.append((port, {k: v for k, v in pkt.items()
                                       if k not in METADATA}))
            elif isinstance(a, SetField):
                pkt[a.field] = a.value
            elif isinstance(a, Move):
                if a.src not in pkt:
                    raise ValueError(f"move from {a.src!r}, absent from {pkt}")
                pkt[a.dst] = pkt[a.src]
            elif isinstance(a, MoveBits):
                if a.src not in pkt:
                    raise ValueError(f"move from {a.src!r}, absent from {pkt}")
                bits = (_field_int(a.src, pkt[a.src]) >> a.src_ofs) & ((1 << a.n_bits) - 1)
                pkt[a.dst] = _write_bits(a.dst, pkt.get(a.dst), bits, a.dst_ofs, a.n_bits)
            elif isinstance(a, Load):
                pkt[a.field] = _write_bits(a.field, pkt.get(a.field), a.value, a.ofs,
                                           a.n_bits)
            elif isinstance(a, Goto):
                goto = a.table
            else:
                raise NotImplementedError(f"action {a!r}")
        return goto

# --- a node's kernel: its nftables table and conntrack ------------------------

_PICK = re.compile(r"(tcp|udp) dport (\d+) "
                   r"(drop|dnat to (numgen inc|jhash ip saddr) mod (\d+)(?: seed \S+)? "
                   r"map \{ (.*) \} : (\d+))$")
_STICKY = re.compile(r"(tcp|udp) dport (\d+) ip saddr @(\S+) update @\S+ \{ ip saddr \} "
                     r"dnat to ([\d.]+) : (\d+)$")
_VMAP = re.compile(r"(tcp|udp) dport (\d+) (numgen inc|jhash ip saddr) mod (\d+)"
                   r"(?: seed \S+)? vmap \{ (.*) \}$")
_HOST = re.compile(r"fib daddr type local (tcp|udp) dport (\d+) dnat to ([\d.]+):(\d+)$")
_SNAT = re.compile(r'oifname "(\S+)" ip daddr ([\d./]+) snat to ([\d.]+)$')
_VIP = re.compile(r'iifname "(\S+)" ip daddr ([\d.]+) '
                  r'(drop|dnat to (numgen inc|jhash ip saddr) mod (\d+)(?: seed \S+)? '
                  r'map \{ (.*) \})$')
_LB_SNAT = re.compile(r'oifname "(\S+)" snat to ([\d.]+)$')


@dataclass
class KernelConn:
    """One connection the kernel NATed: where it goes, and what the reply undoes."""
    orig: tuple                  # (proto, client, client port, node address, published)
    dst: tuple[str, int]         # after DNAT: (task address, target port)
    src: tuple[str, int]         # after SNAT: (node's ingress address, port)


class FakeKernel:
    """A node's kernel as far as the ingress path goes: the ``mesh`` chain's round-robin
    picks, the host-mode DNATs and the SNAT to the ingress network, read from the node's
    table text, and a conntrack that decides NAT once per connection (a resent SYN, a
    later datagram keep their task) and un-NATs the replies."""

    def __init__(self, text: str) -> None:
        self.text = ""
        self.picks: dict[tuple[str, int], tuple[list[str], int]] = {}
        self.host: dict[tuple[str, int], tuple[str, int]] = {}
        self.snat: tuple[IPv4Network, str] | None = None
        self.counters: dict[tuple[str, int], int] = {}
        self.conntrack: dict[tuple, KernelConn] = {}
        self.replies: dict[tuple, KernelConn] = {}   # (proto, task, tport, src, sport) -> conn
        self.sticky: dict[tuple[str, int], list[tuple[str, str, int]]] = {}
        self.sets: dict[str, set[str]] = {}          # affinity set -> client addresses
        self.load(text)

    def load(self, text: str) -> bool:
        """Load a table's text; a different text restarts every counter (as ``nft -f``
        replacing the rules does; session-affinity sets keep their members, as the
        flushed table keeps its sets).  True if it changed."""
        if text == self.text:
            return False
        picks, host, snat, sticky = {}, {}, None, {}
        lines = [line.strip() for line in text.splitlines()]
        start = lines.index(f"chain {kernel.PICK_CHAIN} {{")
        jumps = self._jump_chains(lines)
        for line in lines[start + 1:lines.index("}", start)]:
            m, v, st = _PICK.match(line), _VMAP.match(line), _STICKY.match(line)
            if st is not None:
                proto, port, set_name, ip, target = st.groups()
                sticky.setdefault((proto, int(port)), []).append((set_name, ip, int(target)))
            elif v is not None:
                proto, port, how, mod, entries = v.groups()
                names = self._entries(entries, int(mod), line, " : jump ")
                picks[(proto, int(port))] = ([jumps[n][1] for n in names],
                                             jumps[names[0]][2] if names else 0, how, names)
            elif m is not None:
                proto, port, _, how, mod, entries, target = m.groups()
                ips = self._entries(entries, int(mod), line, " : ") if mod else []
                picks[(proto, int(port))] = (ips, int(target or 0), how or "numgen inc", [])
            else:
                raise NotImplementedError(f"nft rule {line!r}")
        for line in lines:
            m = _HOST.match(line)
            if m is not None:
                host[(m.group(1), int(m.group(2)))] = (m.group(3), int(m.group(4)))
            m = _SNAT.match(line)
            if m is not None and m.group(1) == layout.GW_INTF:
                snat = (IPv4Network(m.group(2)), m.group(3))
        self.text, self.picks, self.host, self.snat = text, picks, host, snat
        self.sticky = sticky
        self.counters = {key: 0 for key in picks}
        self._load_vips(lines)
        return True

    def _load_vips(self, lines: list[str]) -> None:
        """East-west: each VIP's pick per leg, and each leg's SNAT address."""
        self.vips, self.lb_snat = {}, {}
        for line in lines:
            m = _VIP.match(line)
            if m is not None:
                leg, vip, _, how, mod, entries = m.groups()
                ips = self._entries(entries, int(mod), line, " : ") if mod else []
                self.vips[(leg, vip)] = (ips, how or "numgen inc")
            m = _LB_SNAT.match(line)
            if m is not None:
                self.lb_snat[m.group(1)] = m.group(2)
        self.vip_counters = {key: 0 for key in self.vips}

    @staticmethod
    def _entries(entries: str, mod: int, line: str, sep: str) -> list[str]:
        keys, values = zip(*(e.split(sep) for e in entries.split(", ")))
        if list(keys) != [str(k) for k in range(mod)]:
            raise NotImplementedError(f"map not 0..{mod - 1}: {line!r}")
        return list(values)

    @staticmethod
    def _jump_chains(lines: list[str]) -> dict[str, tuple[str, str, int]]:
        """The per-task chains of session affinity: name -> (set, task address, port)."""
        out = {}
        for i, line in enumerate(lines):
            if line.startswith("chain aff") and line.endswith("{"):
                name = line.split()[1]
                m = re.match(r"(?:tcp|udp) dport \d+ dnat to ([\d.]+) : (\d+)$", lines[i + 2])
                if m is None or not lines[i + 1].startswith(f"update @{name} "):
                    raise NotImplementedError(f"affinity chain {name!r}")
                out[name] = (name, m.group(1), int(m.group(2)))
        return out

    def _pick(self, proto: str, dport: int, src: str) -> tuple[str, int] | None:
        """The task a new connection goes to (None: dropped), as the ``mesh`` chain says:
        a remembered client first, then the counter or the client's hash (the kernel's
        ``jhash``; here :func:`picks.source_hash`, another hash alike in spread)."""
        for set_name, ip, target in self.sticky.get((proto, dport), []):
            if src in self.sets.get(set_name, set()):
                return ip, target
        ips, target, how, names = self.picks[(proto, dport)]
        if not ips:
            return None
        if how == "numgen inc":
            k = self.counters[(proto, dport)]
            self.counters[(proto, dport)] = k + 1
            k %= len(ips)
        else:
            k = picks.source_hash(src, len(ips))
        if names:
            self.sets.setdefault(names[k], set()).add(src)
        return ips[k], target

    def nat(self, proto: str, src: str, sport: int, daddr: str,
            dport: int) -> KernelConn | None:
        """A packet to one of the node's own addresses: its connection after the kernel's
        DNAT and SNAT, or None (dropped, or not DNATed: the node's own sockets)."""
        key = (proto, src, sport, daddr, dport)
        if key in self.conntrack:
            return self.conntrack[key]
        if (proto, dport) in self.picks:
            dst = self._pick(proto, dport, src)
            if dst is None:
                return None                        # dropped: no entry is confirmed
        elif (proto, dport) in self.host:
            dst = self.host[(proto, dport)]
        else:
            return None
        new_src = (src, sport)
        if self.snat is not None and IPv4Address(dst[0]) in self.snat[0]:
            port = sport
            while (proto, *dst, self.snat[1], port) in self.replies:   # taken: another port
                port = port + 1 if port < 65535 else 1024
            new_src = (self.snat[1], port)
        conn = KernelConn(key, dst, new_src)
        self.conntrack[key] = conn
        self.replies[(proto, *dst, *new_src)] = conn
        return conn

    def un_nat(self, packet: dict) -> dict:
        """A reply leaving through the kernel: back to the client, from the node's address."""
        proto = {6: "tcp", 17: "udp"}.get(packet.get("ip_proto"))
        if proto is None:
            return packet
        sport_f, dport_f = L4[packet["ip_proto"]]
        conn = self.replies.get((proto, packet["ipv4_src"], packet.get(sport_f),
                                 packet["ipv4_dst"], packet.get(dport_f)))
        if conn is None:
            return packet
        _, client, cport, addr, published = conn.orig
        return {**packet, "ipv4_src": addr, sport_f: published,
                "ipv4_dst": client, dport_f: cport}

    def east_west(self, leg: str, packet: dict) -> dict | None:
        """A packet the bridge handed to the kernel on ``leg`` (``lb-n<j>``): a new
        connection to a VIP picked, DNATed and SNATed; a known one as it was; a reply
        un-NATed; None: dropped.  It leaves on the same leg."""
        proto = {6: "tcp", 17: "udp"}.get(packet.get("ip_proto"))
        if proto is None:
            return None
        sport_f, dport_f = L4[packet["ip_proto"]]
        key = (proto, packet["ipv4_src"], packet[sport_f], packet["ipv4_dst"], packet[dport_f])
        conn = self.conntrack.get(key)
        if conn is None and (leg, key[3]) in self.vips:
            conn = self._vip_conn(leg, key)
        if conn is not None:
            (d_ip, d_port), (s_ip, s_port) = conn.dst, conn.src
        else:
            back = self.replies.get(key)
            if back is None:
                return None
            _, client, cport, vip, vport = back.orig
            s_ip, s_port, d_ip, d_port = vip, vport, client, cport
        return {**packet, "ipv4_src": s_ip, sport_f: s_port, "ipv4_dst": d_ip,
                dport_f: d_port, "eth_dst": docker_mac(d_ip)}

    def _vip_conn(self, leg: str, key: tuple) -> KernelConn | None:
        proto, src, sport, vip, dport = key
        ips, how = self.vips[(leg, vip)]
        if not ips:
            return None
        if how == "numgen inc":
            k = self.vip_counters[(leg, vip)] % len(ips)
            self.vip_counters[(leg, vip)] += 1
        else:
            k = picks.source_hash(src, len(ips))
        dst, lb, port = (ips[k], dport), self.lb_snat[leg], sport
        while (proto, *dst, lb, port) in self.replies:        # taken: another port
            port = port + 1 if port < 65535 else 1024
        conn = KernelConn(key, dst, (lb, port))
        self.conntrack[key] = conn
        self.replies[(proto, *dst, lb, port)] = conn
        return conn

    def forget(self, address: str | None = None) -> None:
        """``conntrack -D [--reply-src address]``: forget connections (to one task)."""
        for key, conn in list(self.conntrack.items()):
            if address is None or conn.dst[0] == address:
                del self.conntrack[key]
                self.replies.pop((key[0], *conn.dst, *conn.src), None)


# --- a cluster of fake bridges ---------------------------------------------

@dataclass
class Arrival:
    """Where a packet left the bridges: at a task, or at a node's kernel."""
    node: str
    port: int
    packet: dict
    task: Task | None = None           # None: the node's kernel (PORT_GW)
    hops: list[str] = field(default_factory=list)   # nodes crossed, in order

    @property
    def at_kernel(self) -> bool:
        return self.task is None


class FakeCluster:
    """One FakeSwitch per node, with the overlay, the tasks and the kernels around."""

    MAX_HOPS = 8

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.switches = {n.name: FakeSwitch(rules.node_flows(cluster, n.name), n.name)
                         for n in cluster.nodes}
        self.kernels = {n.name: FakeKernel(kernel.table(cluster, n.name)) for n in cluster.nodes}
        self.vxlan_drops: list[tuple[str, dict]] = []   # no FDB entry: not flooded
        self._wire(cluster)

    def _wire(self, cluster: Cluster) -> None:
        """The tasks' ports and every node's VXLAN FDB, as the model says."""
        by_host = {t.host: t for t in cluster.tasks}
        self.port_task = {n.name: {port: by_host[host] for host, port
                                   in layout.task_ports(cluster, n.name).items()}
                          for n in cluster.nodes}
        for n in cluster.nodes:
            for (host, _net), port in layout.net_ports(cluster, n.name).items():
                self.port_task[n.name][port] = by_host[host]
        self.lb_legs = {layout.lb_port(net): (layout.lb_intf(net), layout.lb_leg_mac(net))
                        for net in layout.user_networks(cluster)}
        # VXLAN port -> network name (the ingress one is PORT_VXLAN)
        self.vxlan_net = {layout.PORT_VXLAN: "ingress"}
        self.vxlan_net.update({layout.vxlan_port(net): net.name
                               for net in layout.user_networks(cluster)})
        by_underlay = {str(n.underlay_ip): n.name for n in cluster.nodes}
        self.fdb = {(n.name, net): {mac.lower(): by_underlay[ip]
                                    for mac, ip in rules.overlay_fdb(cluster, n.name, net)}
                    for n in cluster.nodes for net in cluster.networks}

    def from_client(self, node: str, client_ip: str, client_port: int, published: int,
                    proto: str = "tcp") -> dict | None:
        """The packet a client sends to ``node``'s address, as the node's kernel hands it
        to port 1 after its round-robin pick, DNAT and SNAT; None if the kernel does not
        send it into the bridge (dropped, a host-mode port, or not published)."""
        addr = str(self.cluster.node(node).underlay_ip)
        conn = self.kernels[node].nat(proto, str(client_ip), client_port, addr, published)
        ingress = IPv4Network(str(self.cluster.networks["ingress"].subnet))
        if conn is None or IPv4Address(conn.dst[0]) not in ingress:
            return None
        sport, dport = L4[rules.IP_PROTO[proto]]
        return {"in_port": layout.PORT_GW, "eth_src": layout.GW_MAC,
                "eth_dst": layout.SBOX_GW_MAC, "eth_type": rules.ETH_IP,
                "ip_proto": rules.IP_PROTO[proto], "ipv4_src": conn.src[0],
                "ipv4_dst": conn.dst[0], sport: conn.src[1], dport: conn.dst[1]}

    def apply(self, cluster: Cluster) -> None:
        """A new model, as the testbed carries it out: every bridge gets its new flows
        then every kernel its table."""
        self.cluster = cluster
        self._wire(cluster)
        for n in cluster.nodes:
            sw = self.switches[n.name]
            sw.flows = []
            for f in rules.node_flows(cluster, n.name):
                sw.add_flow(f)
            self.kernels[n.name].load(kernel.table(cluster, n.name))

    def forget_connections(self) -> None:
        """Every kernel forgets every connection."""
        for n in self.cluster.nodes:
            self.kernels[n.name].forget()

    def flush(self, task: Task) -> None:
        """The connections to a removed task are forgotten everywhere (the testbed's
        ``flush_conntrack``): every kernel's entries whose reply comes from one of its
        addresses (ingress and VIPs alike)."""
        for n in self.cluster.nodes:
            for address in task.addresses.values():
                self.kernels[n.name].forget(str(address))

    def deliver(self, node: str, packet: dict) -> list[Arrival]:
        """Run ``packet`` into ``node``'s bridge and follow it to where it ends."""
        return self._deliver(node, packet, [node])

    def _deliver(self, node: str, packet: dict, hops: list[str]) -> list[Arrival]:
        if len(hops) > self.MAX_HOPS:
            raise RuntimeError(f"forwarding loop: {hops}")
        arrivals = []
        for port, pkt in self.switches[node].process(packet):
            if port in self.vxlan_net:
                fdb = self.fdb[(node, self.vxlan_net[port])]
                remote = fdb.get(str(pkt.get("eth_dst", "")).lower())
                if remote is None:
                    self.vxlan_drops.append((node, pkt))
                    continue
                arrivals += self._deliver(remote, {**pkt, "in_port": port},
                                          hops + [remote])
            elif port == layout.PORT_GW:
                arrivals.append(Arrival(node, port, self.kernels[node].un_nat(pkt), None, hops))
            elif port in self.lb_legs:
                leg, mac = self.lb_legs[port]
                back = self.kernels[node].east_west(leg, pkt)
                if back is not None:
                    arrivals += self._deliver(node, {**back, "in_port": port, "eth_src": mac},
                                              hops)
            elif port in self.port_task[node]:
                arrivals.append(Arrival(node, port, pkt, self.port_task[node][port], hops))
            else:
                raise RuntimeError(f"{node}: output to port {port}, which is not connected")
        return arrivals

    def task(self, task: Task | str) -> Task:
        if isinstance(task, str):
            return next(t for t in self.cluster.tasks if t.host == task or t.name == task)
        return task

    def task_port(self, task: Task | str, address: str) -> int:
        """The bridge port of the task's leg that holds ``address``."""
        task = self.task(task)
        for name, addr in task.addresses.items():
            if str(addr) == str(address):
                if name == "ingress":
                    return layout.task_ports(self.cluster, task.node)[task.host]
                return layout.net_port(task, self.cluster.networks[name])
        raise ValueError(f"{task.host} has no address {address}")

    def from_task(self, task: Task | str, network: str, dst_ip: str, dport: int,
                  sport: int = 40000, proto: str = "tcp", dst_mac: str | None = None) -> dict:
        """A packet a task sends on its leg on ``network`` (after its own ARP)."""
        task = self.task(task)
        sname, dname = L4[rules.IP_PROTO[proto]]
        return {"in_port": layout.net_port(task, self.cluster.networks[network]),
                "eth_src": task.macs[network],
                "eth_dst": dst_mac or rules.docker_mac(dst_ip), "eth_type": rules.ETH_IP,
                "ip_proto": rules.IP_PROTO[proto], "ipv4_src": str(task.addresses[network]),
                "ipv4_dst": str(dst_ip), sname: sport, dname: dport}

    def send(self, task: Task | str, packet: dict) -> list[Arrival]:
        """Run a packet built by :meth:`from_task` into the task's node."""
        return self.deliver(self.task(task).node, packet)

    def reply(self, task: Task | str, packet: dict) -> list[Arrival]:
        """The task's answer to ``packet`` (as it received it), sent on the
        leg that holds the packet's destination address."""
        task = self.task(task)
        port = self.task_port(task, packet["ipv4_dst"])
        answer = dict(packet)
        pairs = [("eth_src", "eth_dst"), ("ipv4_src", "ipv4_dst")]
        if packet.get("ip_proto") in L4:
            pairs.append(L4[packet["ip_proto"]])
        for a, b in pairs:
            answer[a], answer[b] = packet[b], packet[a]
        answer["in_port"] = port
        return self.deliver(task.node, answer)
