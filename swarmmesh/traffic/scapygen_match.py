"""Replies: what a captured frame says, and matching it to its request.

Every reply is matched to its request by its destination address and port,
which are the request's spoofed source.

* UDP: the task server answers every datagram with its JSON document, which
  names the task and its node.
* TCP, ``tcp_mode="http"`` (default): on the SYN-ACK the generator sends
  the ACK with an HTTP/1.0 GET in it; the answer names the task; the
  generator then resets the connection.
* TCP, ``tcp_mode="syn"``: the SYN-ACK alone proves the mesh answered (the
  task is not known); the generator answers it with a RST.
"""

from __future__ import annotations

import re
import socket
import struct
from dataclasses import dataclass
from typing import Sequence

from swarmmesh.traffic.scapygen_frames import ACK, FIN, PSH, RST, SYN, patch, template
from swarmmesh.traffic.scapygen_plan import Request, Target

HTTP_GET = b"GET / HTTP/1.0\r\nHost: swarmmesh\r\n\r\n"

RECORD_COLUMNS = ["seq", "src_ip", "src_port", "ingress_node", "dst_ip", "dst_port",
                  "send_s", "reply_s", "latency_ms", "reply", "task", "task_node",
                  "seen_source", "duplicates", "ok"]
_TASK_RE = re.compile(rb'"task": "([^"]*)", "node": "([^"]*)", "client": "([^"]*)"')


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
