"""Frames: one scapy template per target, patched per request.

Frames are built before the clock starts: scapy builds one template frame
per target (Ethernet/IPv4/UDP or TCP SYN, checksums and all), and each
request's frame is that template with its source address, source port and
TCP sequence number patched in and both checksums recomputed (scapy takes
0.6 ms a packet here; a patch takes a few microseconds, and the unit tests
check that a patched frame equals scapy's own frame byte for byte).
"""

from __future__ import annotations

import socket
import struct
import sys
from array import array
from typing import Sequence

from swarmmesh.traffic.scapygen_plan import Request, Target

# TCP flags
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

# Offsets in an untagged Ethernet + 20-byte IPv4 header frame.
OFF_IP, OFF_IP_CSUM, OFF_IP_SRC, OFF_IP_DST = 14, 24, 26, 30
OFF_L4 = 34


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
    f[OFF_IP_SRC:OFF_IP_SRC + 4] = socket.inet_aton(src_ip)
    struct.pack_into("!H", f, OFF_L4, sport)
    proto = f[OFF_IP + 9]
    if proto == 6:
        if seq is not None:
            struct.pack_into("!I", f, OFF_L4 + 4, seq)
        if ack is not None:
            struct.pack_into("!I", f, OFF_L4 + 8, ack)
        csum_at = OFF_L4 + 16
    else:
        csum_at = OFF_L4 + 6
    f[OFF_IP_CSUM:OFF_IP_CSUM + 2] = b"\0\0"
    struct.pack_into("!H", f, OFF_IP_CSUM, checksum(bytes(f[OFF_IP:OFF_L4])))
    f[csum_at:csum_at + 2] = b"\0\0"
    seg = bytes(f[OFF_L4:])
    pseudo = bytes(f[OFF_IP_SRC:OFF_IP_DST + 4]) + struct.pack("!BBH", 0, proto, len(seg))
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
