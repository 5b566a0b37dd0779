"""The generator's sockets: raw ``AF_PACKET`` sending, and the capture thread.

The capture reads an ``AF_PACKET`` socket with a classic BPF filter (IPv4
to the spoofed prefix) and kernel receive timestamps, matches every reply
(``scapygen_match``) and sends what the matcher answers (TCP ACK/GET, RST).
"""

from __future__ import annotations

import ctypes
import socket
import struct
import threading
import time
from ipaddress import IPv4Network
from typing import Callable

from swarmmesh.traffic.scapygen_frames import OFF_IP_DST
from swarmmesh.traffic.scapygen_match import Matcher, parse_frame

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
SO_ATTACH_FILTER = 26
SO_TIMESTAMPNS = 35
SO_RCVBUFFORCE = 33
SO_SNDBUFFORCE = 32
PACKET_QDISC_BYPASS = 20
PACKET_STATISTICS = 6
SOL_PACKET = 263


def bpf_dst_net(prefix: IPv4Network) -> list[tuple[int, int, int, int]]:
    """Classic BPF: accept IPv4 frames whose destination is in ``prefix``."""
    return [
        (0x28, 0, 0, 12),                           # ldh [12]         ethertype
        (0x15, 0, 4, ETH_P_IP),                     # jeq #0x800 else drop
        (0x20, 0, 0, OFF_IP_DST),                   # ld  [30]         ip dst
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
