"""Spoofed-source traffic: thousands of clients from one host, on a raw socket.

A *source plan* gives every request its own spoofed source address and port,
drawn without repetition from a seeded RNG inside ``SPOOF_PREFIX``
(198.18.0.0/15, the RFC 2544 benchmarking range: nothing in the testbed
uses it).  Request ``i`` goes to target ``i % len(targets)`` (a node's
underlay address and a published port), so every node sees the same
number of new flows, interleaved over the whole run.

Frames are built before the clock starts: scapy builds one template frame
per target (Ethernet/IPv4/UDP or TCP SYN, checksums and all), and each
request's frame is that template with its source address, source port and
TCP sequence number patched in and both checksums recomputed (scapy takes
0.6 ms a packet here; a patch takes a few microseconds, and the unit tests
check that a patched frame equals scapy's own frame byte for byte).  They
are then written one ``send()`` each on an ``AF_PACKET`` socket (with
``PACKET_QDISC_BYPASS``), either as fast as possible or paced open-loop: the
packet ``k`` is due at ``t0 + k / rate`` on the monotonic clock, and the
loop sends whatever is due in batches of at most ``batch`` frames, sleeping
until the next packet is due otherwise, so oversleeping never shifts the
schedule (no drift).

A capture thread reads an ``AF_PACKET`` socket with a classic BPF filter
(IPv4 to the spoofed prefix) and kernel receive timestamps, and matches
every reply to its request by the reply's destination address and port,
which are the request's spoofed source.

* UDP: the task server answers every datagram with its JSON document, which
  names the task and its node.
* TCP, ``tcp_mode="http"`` (default): on the SYN-ACK the generator sends
  the ACK with an HTTP/1.0 GET in it; the answer names the task; the
  generator then resets the connection.  This completes a real connection
  through the mesh without any socket on the client.
* TCP, ``tcp_mode="syn"``: the SYN-ACK alone proves the mesh answered (the
  task is not known); the generator answers it with a RST.

Either way every connection ends with our RST, so no half-open connection
piles up on a task (its SYN backlog would overflow into SYN cookies) and no
SYN-ACK is retransmitted for a minute.

The spoofed prefix must route back to the client: :func:`route_spoofed_prefix`
adds ``SPOOF_PREFIX via <client underlay address>`` in every node's
namespace (strict ``rp_filter`` then passes as well).  The client's own
kernel does not own those addresses and does not forward (``ip_forward=0``),
so it drops the replies silently: no RST, no ICMP (the experiment checks
the client's counters).

CLI (inside the client's namespace; one JSON summary line on stdout)::

    python -m swarmmesh.traffic.scapygen --iface c1-eth0 \\
        --target node1=192.168.99.1=aa:bb:..  [--target ...] --port 8000 \\
        --protocol udp --sources 3000 --rate 2000 --seed 1 --out records.csv
"""

from __future__ import annotations

import argparse
import ctypes
import json
import random
import re
import socket
import struct
import sys
import threading
import time
from array import array
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Callable, Iterable, Sequence

SPOOF_PREFIX = IPv4Network("198.18.0.0/15")
PORT_RANGE = (1024, 65535)
ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
SO_ATTACH_FILTER = 26
SO_TIMESTAMPNS = 35
SO_RCVBUFFORCE = 33
SO_SNDBUFFORCE = 32
PACKET_QDISC_BYPASS = 20
PACKET_STATISTICS = 6
SOL_PACKET = 263
HTTP_GET = b"GET / HTTP/1.0\r\nHost: swarmmesh\r\n\r\n"

# TCP flags
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

# Offsets in an untagged Ethernet + 20-byte IPv4 header frame.
_IP, _IP_CSUM, _IP_SRC, _IP_DST = 14, 24, 26, 30
_L4 = 34

RECORD_COLUMNS = ["seq", "src_ip", "src_port", "ingress_node", "dst_ip", "dst_port",
                  "send_s", "reply_s", "latency_ms", "reply", "task", "task_node",
                  "seen_source", "duplicates", "ok"]
_TASK_RE = re.compile(rb'"task": "([^"]*)", "node": "([^"]*)", "client": "([^"]*)"')


# --------------------------------------------------------------------------
# The plan: who sends what to whom
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """A published port on a node's underlay address, and the node's MAC."""
    node: str
    ip: str
    mac: str
    port: int


@dataclass(frozen=True)
class Request:
    seq: int
    src_ip: str
    src_port: int
    target: Target
    isn: int = 0             # TCP initial sequence number

    @property
    def key(self) -> tuple[str, int]:
        return (self.src_ip, self.src_port)


def source_plan(count: int, seed: int, prefix: IPv4Network = SPOOF_PREFIX,
                ports: tuple[int, int] = PORT_RANGE) -> list[tuple[str, int]]:
    """``count`` distinct (address, port) pairs from ``prefix``, reproducible
    for a seed.  The network and broadcast addresses are never used; pairs
    are drawn without replacement, so thousands of sources are mostly
    distinct addresses as well."""
    hosts = prefix.num_addresses - 2
    nports = ports[1] - ports[0] + 1
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if count > hosts * nports:
        raise ValueError(f"{count} sources do not fit {prefix} x ports {ports}")
    base = int(prefix.network_address) + 1
    rng = random.Random(seed)
    return [(str(IPv4Address(base + k // nports)), ports[0] + k % nports)
            for k in rng.sample(range(hosts * nports), count)]


def plan_requests(targets: Sequence[Target], sources: int, seed: int,
                  prefix: IPv4Network = SPOOF_PREFIX) -> list[Request]:
    """One request per source; request ``i`` goes to ``targets[i % n]``."""
    if not targets:
        raise ValueError("at least one target is needed")
    rng = random.Random(f"isn-{seed}")
    return [Request(i, ip, port, targets[i % len(targets)], rng.getrandbits(32))
            for i, (ip, port) in enumerate(source_plan(sources, seed, prefix))]


# --------------------------------------------------------------------------
# Frames: scapy templates, patched per request
# --------------------------------------------------------------------------

def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\0"
    s = sum(array("H", data))                # native-order words
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    if sys.byteorder == "little":            # the folded sum is byte-order symmetric
        s = ((s & 0xff) << 8) | (s >> 8)
    return ~s & 0xffff


def template(proto: str, src_mac: str, target: Target, flags: int = SYN,
             payload: bytes = b"") -> bytes:
    """One frame built by scapy; the source address and port are placeholders."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether
    ip = Ether(src=src_mac, dst=target.mac) / IP(src="0.0.0.0", dst=target.ip, ttl=64)
    if proto == "udp":
        pkt = ip / UDP(sport=0, dport=target.port) / payload
    elif proto == "tcp":
        pkt = ip / TCP(sport=0, dport=target.port, flags=flags, window=65535) / payload
    else:
        raise ValueError(f"protocol must be udp or tcp, got {proto!r}")
    return bytes(pkt)


def patch(tmpl: bytes, src_ip: str, sport: int, seq: int | None = None,
          ack: int | None = None) -> bytes:
    """``tmpl`` with a new source address/port (and TCP seq/ack), checksums redone."""
    f = bytearray(tmpl)
    f[_IP_SRC:_IP_SRC + 4] = socket.inet_aton(src_ip)
    struct.pack_into("!H", f, _L4, sport)
    proto = f[_IP + 9]
    if proto == 6:
        if seq is not None:
            struct.pack_into("!I", f, _L4 + 4, seq)
        if ack is not None:
            struct.pack_into("!I", f, _L4 + 8, ack)
        csum_at = _L4 + 16
    else:
        csum_at = _L4 + 6
    f[_IP_CSUM:_IP_CSUM + 2] = b"\0\0"
    struct.pack_into("!H", f, _IP_CSUM, checksum(bytes(f[_IP:_L4])))
    f[csum_at:csum_at + 2] = b"\0\0"
    seg = bytes(f[_L4:])
    pseudo = bytes(f[_IP_SRC:_IP_DST + 4]) + struct.pack("!BBH", 0, proto, len(seg))
    c = checksum(pseudo + seg)
    if proto == 17 and c == 0:
        c = 0xffff
    struct.pack_into("!H", f, csum_at, c)
    return bytes(f)


def build_frames(requests: Sequence[Request], proto: str, src_mac: str,
                 payload: bytes = b"") -> list[bytes]:
    """The frame of every request, in order (one scapy template per target)."""
    tmpls: dict[Target, bytes] = {}
    out = []
    for r in requests:
        t = tmpls.get(r.target)
        if t is None:
            t = tmpls[r.target] = template(proto, src_mac, r.target, SYN, payload)
        out.append(patch(t, r.src_ip, r.src_port, seq=r.isn if proto == "tcp" else None))
    return out


# --------------------------------------------------------------------------
# Pacing
# --------------------------------------------------------------------------

def due_count(elapsed: float, rate: float, total: int) -> int:
    """How many packets are due ``elapsed`` seconds after the start: packet
    ``k`` (from 0) is due at ``k / rate``."""
    if elapsed < 0:
        return 0
    return min(total, int(elapsed * rate) + 1)


def send_paced(send: Callable[[bytes], object], frames: Sequence[bytes], rate: float,
               batch: int = 16, clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], object] = time.sleep,
               stamp: Callable[[], int] = time.time_ns) -> tuple[list[int], int]:
    """Send every frame; ``rate <= 0`` means as fast as possible.

    Returns the send timestamp of every frame (``stamp()`` just before its
    ``send``; 0 where the send failed) and the number of failed sends.  The
    schedule is absolute (``t0 + k / rate``), so a late wake-up is caught up
    in batches of at most ``batch`` frames and never delays what follows.
    """
    n = len(frames)
    stamps = [0] * n
    failed = 0
    i = 0
    t0 = clock()
    while i < n:
        if rate > 0:
            due = due_count(clock() - t0, rate, n)
            if due <= i:
                sleep(max(0.0, t0 + i / rate - clock()))
                continue
            end = min(due, i + batch)
        else:
            end = n
        for j in range(i, end):
            stamps[j] = stamp()
            try:
                send(frames[j])
            except OSError:
                stamps[j] = 0
                failed += 1
        i = end
    return stamps, failed


def offered_rate(stamps: Iterable[int]) -> float | None:
    """Packets per second actually sent: ``(sent - 1) / (last - first)``."""
    sent = sorted(s for s in stamps if s)
    if len(sent) < 2 or sent[-1] == sent[0]:
        return None
    return (len(sent) - 1) / ((sent[-1] - sent[0]) / 1e9)


# --------------------------------------------------------------------------
# Replies
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Reply:
    """What a captured frame says, reduced to what matching needs."""
    kind: str                 # udp | synack | data | rst | fin | icmp
    key: tuple[str, int]      # the request's spoofed (address, port)
    peer: tuple[str, int]     # the answering (node address, port)
    seq: int = 0
    ack: int = 0
    task: str = ""
    task_node: str = ""
    seen_source: str = ""
    length: int = 0           # TCP payload length


def parse_frame(frame: bytes) -> Reply | None:
    """A reply to one of our requests, or None for anything else."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[14] >> 4 != 4:
        return None
    ihl = (frame[14] & 0x0f) * 4
    total = struct.unpack_from("!H", frame, 16)[0]
    proto = frame[23]
    src, dst = socket.inet_ntoa(frame[26:30]), socket.inet_ntoa(frame[30:34])
    l4 = 14 + ihl
    end = min(len(frame), 14 + total)
    if proto == 17 and end >= l4 + 8:
        sport, dport = struct.unpack_from("!HH", frame, l4)
        return _with_task(Reply("udp", (dst, dport), (src, sport)), frame[l4 + 8:end])
    if proto == 6 and end >= l4 + 20:
        sport, dport, seq, ack, off, flags = struct.unpack_from("!HHIIBB", frame, l4)
        data = frame[l4 + (off >> 4) * 4:end]
        if flags & RST:
            kind = "rst"
        elif flags & SYN and flags & ACK:
            kind = "synack"
        elif data:
            kind = "data"
        elif flags & FIN:
            kind = "fin"
        else:
            return None               # a bare ACK
        return _with_task(Reply(kind, (dst, dport), (src, sport), seq, ack, length=len(data)),
                          data)
    if proto == 1 and end >= l4 + 8 + 20 + 4 and frame[l4] == 3:   # destination unreachable
        inner = l4 + 8
        iihl = (frame[inner] & 0x0f) * 4
        isrc, idst = socket.inet_ntoa(frame[inner + 12:inner + 16]), \
            socket.inet_ntoa(frame[inner + 16:inner + 20])
        sport, dport = struct.unpack_from("!HH", frame, inner + iihl)
        return Reply("icmp", (isrc, sport), (idst, dport))
    return None


def _with_task(reply: Reply, data: bytes) -> Reply:
    m = _TASK_RE.search(data) if data else None
    if not m:
        return reply
    return Reply(reply.kind, reply.key, reply.peer, reply.seq, reply.ack,
                 m.group(1).decode(), m.group(2).decode(), m.group(3).decode(), reply.length)


class Matcher:
    """Matches replies to requests and says what to send back (TCP).

    ``on_reply`` returns the frames to send in answer: for a SYN-ACK the ACK
    with the GET (``http``) or a RST (``syn``); for the answer's data a RST.
    A request is ``ok`` once it has a task (UDP, TCP http) or a SYN-ACK (TCP
    syn); the first reply counts, later ones are counted as duplicates.
    """

    def __init__(self, requests: Sequence[Request], proto: str, src_mac: str,
                 tcp_mode: str = "http") -> None:
        if tcp_mode not in ("http", "syn"):
            raise ValueError(f"tcp_mode must be http or syn, got {tcp_mode!r}")
        self.requests = requests
        self.proto, self.src_mac, self.tcp_mode = proto, src_mac, tcp_mode
        self.by_key = {r.key: r for r in requests}
        self.reply_ns: dict[int, int] = {}
        self.kind: dict[int, str] = {}
        self.task: dict[int, tuple[str, str, str]] = {}
        self.dups: dict[int, int] = {}
        self.unmatched = 0
        self.unmatched_samples: list[str] = []
        self._state: dict[int, str] = {}           # TCP: get_sent | done
        self._tmpl: dict[tuple[Target, int], bytes] = {}

    def _frame(self, req: Request, flags: int, seq: int, ack: int, payload: bytes = b"") -> bytes:
        k = (req.target, flags)
        t = self._tmpl.get(k)
        if t is None:
            t = self._tmpl[k] = template("tcp", self.src_mac, req.target, flags, payload)
        return patch(t, req.src_ip, req.src_port, seq=seq, ack=ack)

    def on_reply(self, reply: Reply, t_ns: int) -> list[bytes]:
        req = self.by_key.get(reply.key)
        if req is None or reply.peer != (req.target.ip, req.target.port):
            self.unmatched += 1
            if len(self.unmatched_samples) < 5:
                self.unmatched_samples.append(
                    f"{reply.kind} from {reply.peer[0]}:{reply.peer[1]} "
                    f"to {reply.key[0]}:{reply.key[1]}")
            return []
        i = req.seq
        if i not in self.reply_ns:
            self.reply_ns[i] = t_ns
            self.kind[i] = reply.kind
        elif reply.kind in ("udp", "synack"):         # a second answer / a retransmission
            self.dups[i] = self.dups.get(i, 0) + 1
        if reply.task and i not in self.task:
            self.task[i] = (reply.task, reply.task_node, reply.seen_source)
        if self.proto != "tcp":
            return []
        our_seq = (req.isn + 1) & 0xffffffff
        state = self._state.get(i)
        if reply.kind == "synack" and state is None:
            if self.tcp_mode == "syn":
                self._state[i] = "done"
                return [self._frame(req, RST, reply.ack, 0)]
            self._state[i] = "get_sent"
            return [self._frame(req, PSH | ACK, our_seq, (reply.seq + 1) & 0xffffffff,
                                HTTP_GET)]
        if reply.kind in ("data", "fin") and state == "get_sent":
            self._state[i] = "done"
            if reply.kind == "fin" and i not in self.task:
                self.kind[i] = "fin"
            return [self._frame(req, RST, (our_seq + len(HTTP_GET)) & 0xffffffff, 0)]
        if reply.kind == "rst":
            self._state[i] = "done"
            if i not in self.task:
                self.kind[i] = "rst"
        return []

    def answered(self) -> int:
        """How many requests are ``ok`` so far (cheap: no per-request scan)."""
        if self.proto == "tcp" and self.tcp_mode == "syn":
            return len(self.reply_ns)
        return len(self.task)

    def ok(self, i: int) -> bool:
        if self.proto == "tcp" and self.tcp_mode == "syn":
            return self.kind.get(i) in ("synack", "data", "fin")
        return i in self.task

    def records(self, send_ns: Sequence[int], t0_ns: int) -> list[dict]:
        """One row per request (``RECORD_COLUMNS``); times in s from ``t0_ns``."""
        rows = []
        for r in self.requests:
            i = r.seq
            sent, got = send_ns[i], self.reply_ns.get(i)
            task, task_node, seen = self.task.get(i, ("", "", ""))
            rows.append({
                "seq": i, "src_ip": r.src_ip, "src_port": r.src_port,
                "ingress_node": r.target.node, "dst_ip": r.target.ip, "dst_port": r.target.port,
                "send_s": f"{(sent - t0_ns) / 1e9:.6f}" if sent else "",
                "reply_s": f"{(got - t0_ns) / 1e9:.6f}" if got else "",
                "latency_ms": f"{(got - sent) / 1e6:.3f}" if got and sent else "",
                "reply": self.kind.get(i, "none" if sent else "unsent"),
                "task": task, "task_node": task_node, "seen_source": seen,
                "duplicates": self.dups.get(i, 0), "ok": self.ok(i),
            })
        return rows


# --------------------------------------------------------------------------
# Sockets
# --------------------------------------------------------------------------

def bpf_dst_net(prefix: IPv4Network) -> list[tuple[int, int, int, int]]:
    """Classic BPF: accept IPv4 frames whose destination is in ``prefix``."""
    return [
        (0x28, 0, 0, 12),                           # ldh [12]         ethertype
        (0x15, 0, 4, ETH_P_IP),                     # jeq #0x800 else drop
        (0x20, 0, 0, _IP_DST),                      # ld  [30]         ip dst
        (0x54, 0, 0, int(prefix.netmask)),          # and #mask
        (0x15, 0, 1, int(prefix.network_address)),  # jeq #net else drop
        (0x06, 0, 0, 0x40000),                      # ret #262144      accept
        (0x06, 0, 0, 0),                            # ret #0           drop
    ]


def _attach_filter(sock: socket.socket, insns: list[tuple[int, int, int, int]]):
    prog = b"".join(struct.pack("HBBI", *i) for i in insns)
    buf = ctypes.create_string_buffer(prog)
    fprog = struct.pack("HL", len(insns), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    return buf


def send_socket(iface: str) -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    s.bind((iface, 0))
    try:
        s.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
        s.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, 8 << 20)
    except OSError:
        pass
    return s


class Capture(threading.Thread):
    """Reads replies to the spoofed prefix, matches them, sends TCP answers."""

    def __init__(self, iface: str, prefix: IPv4Network, matcher: Matcher,
                 answer: Callable[[bytes], object]) -> None:
        super().__init__(name="scapygen-capture", daemon=True)
        self.matcher, self.answer = matcher, answer
        self.stop_event = threading.Event()
        self.frames = 0
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # receives nothing yet
        self._prog = _attach_filter(self.sock, bpf_dst_net(prefix))
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 32 << 20)
        except OSError:
            pass
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.bind((iface, ETH_P_ALL))
        self.sock.settimeout(0.05)
        self.error: BaseException | None = None
        self.kernel_packets: int | None = None
        self.kernel_drops: int | None = None

    def run(self) -> None:
        recvmsg, m, answer = self.sock.recvmsg, self.matcher, self.answer
        cmsg_space = socket.CMSG_SPACE(16)
        try:
            while not self.stop_event.is_set():
                try:
                    data, anc, _flags, _addr = recvmsg(2048, cmsg_space)
                except socket.timeout:
                    continue
                t_ns = time.time_ns()
                for level, typ, val in anc:
                    if level == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS and len(val) >= 16:
                        sec, nsec = struct.unpack_from("qq", val)
                        t_ns = sec * 1_000_000_000 + nsec
                self.frames += 1
                reply = parse_frame(data)
                if reply is not None:
                    for f in m.on_reply(reply, t_ns):
                        try:
                            answer(f)
                        except OSError:
                            pass
        except BaseException as e:                        # noqa: BLE001
            self.error = e

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=5)
        try:        # struct tpacket_stats: frames queued, frames dropped (receive buffer full)
            self.kernel_packets, self.kernel_drops = struct.unpack(
                "II", self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
        except OSError:
            pass
        self.sock.close()


def iface_mac(iface: str) -> str:
    with open(f"/sys/class/net/{iface}/address") as f:
        return f.read().strip()


def generate(iface: str, targets: Sequence[Target], protocol: str, sources: int,
             rate: float, seed: int, wait: float = 2.0, batch: int = 16,
             tcp_mode: str = "http", capture: bool = True,
             prefix: IPv4Network = SPOOF_PREFIX, payload: bytes | None = None) -> dict:
    """Build, send and match; runs inside the client's namespace.

    Returns ``{"records": [...], "summary": {...}}``: one record per request
    (``RECORD_COLUMNS``) and the sent/replied counts, the offered rate (from
    the send timestamps) and the achieved rate (``ok`` replies over the time
    from the first send to the last matched reply).
    """
    src_mac = iface_mac(iface)
    requests = plan_requests(targets, sources, seed, prefix)
    if payload is None:
        payload = b"swarmmesh\n" if protocol == "udp" else b""
    t_build = time.monotonic()
    frames = build_frames(requests, protocol, src_mac, payload)
    build_s = time.monotonic() - t_build
    matcher = Matcher(requests, protocol, src_mac, tcp_mode)
    tx = send_socket(iface)
    cap = None
    if capture:
        answer_sock = send_socket(iface)
        cap = Capture(iface, prefix, matcher, answer_sock.send)
        cap.start()
    t0_ns = time.time_ns()
    stamps, failed = send_paced(tx.send, frames, rate, batch)
    sent_end = time.monotonic()
    if cap is not None:
        # Wait for replies: until all answered, or ``wait`` s after the last send.
        while time.monotonic() - sent_end < wait and matcher.answered() < len(requests):
            time.sleep(0.02)
        time.sleep(0.05)                    # the last RSTs go out
        cap.stop()
        answer_sock.close()
        if cap.error:
            raise cap.error
    tx.close()
    records = matcher.records(stamps, t0_ns)
    ok = [r for r in records if r["ok"]]
    sent = sum(1 for s in stamps if s)
    last_reply = max((matcher.reply_ns[r["seq"]] for r in ok), default=None)
    first = min((s for s in stamps if s), default=None)
    achieved = (len(ok) / ((last_reply - first) / 1e9)
                if ok and first and last_reply and last_reply > first else None)
    summary = {
        "protocol": protocol, "tcp_mode": tcp_mode if protocol == "tcp" else None,
        "requests": len(requests), "sent": sent, "send_failed": failed,
        "requested_rate_pps": rate if rate > 0 else "max",
        "offered_rate_pps": offered_rate(stamps),
        "achieved_rate_pps": achieved,
        "replied": len(matcher.reply_ns), "ok": len(ok),
        "duplicates": sum(matcher.dups.values()), "unmatched_replies": matcher.unmatched,
        "unmatched_samples": matcher.unmatched_samples,
        "captured_frames": cap.frames if cap else 0,
        "capture_kernel_drops": cap.kernel_drops if cap else None,
        "distinct_sources": len({(r.src_ip, r.src_port) for r in requests}),
        "distinct_source_ips": len({r.src_ip for r in requests}),
        "build_s": round(build_s, 3), "batch": batch, "seed": seed, "prefix": str(prefix),
        "t0_unix_ns": t0_ns,
    }
    return {"records": records, "summary": summary}


# --------------------------------------------------------------------------
# Testbed side (root namespace, run by experiments)
# --------------------------------------------------------------------------

def route_spoofed_prefix(tb, client: str, prefix: IPv4Network = SPOOF_PREFIX) -> dict:
    """Route ``prefix`` back to ``client`` from every node; report what the
    kernels were set to (rp_filter on the nodes, forwarding on the client)."""
    via = str(tb.cluster.clients[[c.name for c in tb.cluster.clients].index(client)].underlay_ip)
    facts: dict = {"prefix": str(prefix), "via": via, "nodes": {}}
    for n in tb.cluster.nodes:
        h = tb.host(n.name)
        h.run(f"ip route replace {prefix} via {via}")
        eth = h.defaultIntf().name
        facts["nodes"][n.name] = {
            "route": h.cmd(f"ip route get {prefix.network_address + 1}").split("\n")[0].strip(),
            "rp_filter": {k: h.cmd(f"sysctl -n net.ipv4.conf.{k}.rp_filter").strip()
                          for k in ("all", eth)},
        }
    c = tb.host(client)
    facts["client"] = {
        "ip_forward": c.cmd("sysctl -n net.ipv4.ip_forward").strip(),
        "owns_prefix": bool(c.cmd(f"ip -4 -o addr show to {prefix}").strip()),
    }
    return facts


def kernel_reply_counters(host) -> dict[str, int]:
    """TCP RSTs and ICMP messages the host's own kernel has sent."""
    snmp = host.cmd("cat /proc/net/snmp").splitlines()
    out = {}
    for i in range(0, len(snmp) - 1, 2):
        names, values = snmp[i].split(), snmp[i + 1].split()
        if names and names[0] in ("Tcp:", "Icmp:"):
            row = dict(zip(names[1:], values[1:]))
            key = "tcp_out_rsts" if names[0] == "Tcp:" else "icmp_out_msgs"
            out[key] = int(row["OutRsts" if names[0] == "Tcp:" else "OutMsgs"])
    return out


def targets_of(tb, nodes: Iterable[str], port: int) -> list[Target]:
    out = []
    for name in nodes:
        h = tb.host(name)
        out.append(Target(name, str(tb.cluster.node(name).underlay_ip), h.MAC(), port))
    return out


def run_in_client(tb, client: str, targets: Sequence[Target], out_csv, **kw) -> dict:
    """Run the generator in ``client``'s namespace; returns its summary
    (the records are written to ``out_csv``)."""
    args = ["-m", "swarmmesh.traffic.scapygen", "--iface", tb.host(client).defaultIntf().name,
            "--out", str(out_csv)]
    for t in targets:
        args += ["--target", f"{t.node}={t.ip}={t.mac}", "--port", str(t.port)]
    for k, v in kw.items():
        if isinstance(v, bool):
            if not v:
                args.append(f"--no-{k.replace('_', '-')}")
        else:
            args += [f"--{k.replace('_', '-')}", str(v)]
    n = kw.get("sources", 1000)
    rate = kw.get("rate", 0) or 50000
    out = tb.run_in(client, args, timeout=60 + n / rate + n / 2000 + kw.get("wait", 2))
    return json.loads(out.strip().splitlines()[-1])


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------

def _target(text: str) -> tuple[str, str, str]:
    parts = text.split("=")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"expected NODE=IP=MAC, got {text!r}")
    return parts[0], parts[1], parts[2]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m swarmmesh.traffic.scapygen",
                                description=__doc__.splitlines()[0])
    p.add_argument("--iface", required=True)
    p.add_argument("--target", type=_target, action="append", required=True,
                   help="NODE=IP=MAC (repeatable)")
    p.add_argument("--port", type=int, action="append", required=True,
                   help="published port, once, or once per --target")
    p.add_argument("--protocol", choices=["udp", "tcp"], default="udp")
    p.add_argument("--tcp-mode", choices=["http", "syn"], default="http")
    p.add_argument("--sources", type=int, default=1000)
    p.add_argument("--rate", type=float, default=0, help="packets/s; 0 = as fast as possible")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--wait", type=float, default=2.0, help="s to wait for replies after sending")
    p.add_argument("--prefix", default=str(SPOOF_PREFIX))
    p.add_argument("--no-capture", dest="capture", action="store_false")
    p.add_argument("--out", help="CSV of per-request records")
    a = p.parse_args(argv)
    if len(a.port) not in (1, len(a.target)):
        p.error("--port: give one port, or one per --target")
    ports = a.port * len(a.target) if len(a.port) == 1 else a.port
    targets = [Target(n, ip, mac, port) for (n, ip, mac), port in zip(a.target, ports)]
    res = generate(a.iface, targets, a.protocol, a.sources, a.rate, a.seed, wait=a.wait,
                   batch=a.batch, tcp_mode=a.tcp_mode, capture=a.capture,
                   prefix=IPv4Network(a.prefix))
    if a.out:
        import csv
        with open(a.out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=RECORD_COLUMNS)
            w.writeheader()
            w.writerows(res["records"])
    print(json.dumps(res["summary"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
