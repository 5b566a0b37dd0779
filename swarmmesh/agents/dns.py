"""Swarm's embedded DNS server: every task asks 127.0.0.11.

In Swarm the node's Docker daemon answers DNS inside each container on
127.0.0.11.  Here one resolver process per node does the same: it opens a
UDP socket on ``127.0.0.11:53`` *inside* each local task's network namespace
(``setns``, so one process serves all of the node's tasks), and each task's
``/etc/resolv.conf`` (bind-mounted in the task's own mount namespace) names
that address.  Answers come from the cluster model, re-read whenever its
file changes, so they follow tasks as they come and go.

What a task gets (``answer``):

* ``<service>``: the service's VIP on a network the task shares with it
  (the first such network, in the task's own order), or, in ``dnsrr``
  mode, the running tasks' addresses on it, shuffled per answer;
* ``tasks.<service>``: every running task's address on that network, shuffled;
* a name on no network the task is on, or unknown: NXDOMAIN (Swarm would
  forward it to the host's resolvers; this testbed has none to reach);
* a known name asked for another type (AAAA, ...): an empty NOERROR, so
  that resolvers fall back to A.

Only UDP is served; an answer is capped at the addresses that fit in a
512-byte datagram (29 for a short name), so a service with more tasks
answers with a (shuffled) subset.  TTL 600 s, as Swarm's resolver sets it.

    python -m swarmmesh.agents.dns --node node1 --state-dir /run/swarmmesh/run-...
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import json
import os
import random
import selectors
import socket
import struct
import sys
import time
from pathlib import Path

from swarmmesh.model import Cluster, Task

ADDRESS = "127.0.0.11"
PORT = 53
TTL = 600
QTYPE_A, QTYPE_AAAA = 1, 28
QCLASS_IN = 1
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP = 0, 1, 2, 3, 4
RESOLV_CONF = f"nameserver {ADDRESS}\noptions ndots:0 attempts:2 timeout:1\n"
CLONE_NEWNET = 0x40000000
UDP_LIMIT = 512            # bytes of a DNS message over UDP without EDNS
ANSWER_SIZE = 16           # one A record with a compressed name


# --- the answers, from the model alone ----------------------------------------

def answer(cluster: Cluster, asker: Task, qname: str, qtype: int = QTYPE_A,
           rng: random.Random | None = None) -> tuple[int, list[str]]:
    """(rcode, addresses) for ``qname`` asked by task ``asker``."""
    rng = rng or random
    name = qname.rstrip(".").lower()
    want_tasks = name.startswith("tasks.")
    if want_tasks:
        name = name[len("tasks."):]
    svc = next((s for s in cluster.services.values() if s.name.lower() == name), None)
    if svc is None:
        return NXDOMAIN, []
    shared = [n for n in asker.addresses
              if not cluster.networks[n].ingress and n in svc.networks]
    if not shared:
        return NXDOMAIN, []
    net = shared[0]
    if want_tasks or svc.endpoint_mode == "dnsrr":
        ips = [str(t.addresses[net]) for t in cluster.tasks_of(svc.name)
               if net in t.addresses and cluster.in_balancer(t)]   # the same tasks as the VIP
        rng.shuffle(ips)
    else:
        ips = [str(svc.vips[net])]
    return NOERROR, (ips if qtype == QTYPE_A else [])


# --- DNS wire format (RFC 1035), just what a stub resolver sends -----------------

class FormatError(ValueError):
    pass


def parse_query(data: bytes) -> tuple[int, int, str, int, int, bytes]:
    """(id, flags, qname, qtype, qclass, the question's bytes) of a query."""
    if len(data) < 12:
        raise FormatError("shorter than a header")
    qid, flags, qdcount = struct.unpack("!HHH", data[:6])
    if qdcount != 1:
        raise FormatError(f"{qdcount} questions")
    labels, i = [], 12
    while True:
        if i >= len(data):
            raise FormatError("name runs past the end")
        n = data[i]
        if n & 0xC0:
            raise FormatError("compressed name in a question")
        i += 1
        if n == 0:
            break
        labels.append(data[i:i + n].decode("ascii", errors="replace"))
        i += n
    if i + 4 > len(data):
        raise FormatError("question without type and class")
    qtype, qclass = struct.unpack("!HH", data[i:i + 4])
    return qid, flags, ".".join(labels), qtype, qclass, data[12:i + 4]


def build_response(qid: int, qflags: int, question: bytes, rcode: int,
                   ips: list[str], ttl: int = TTL) -> bytes:
    """A response: QR, the query's opcode and RD, RA set; one A record per address."""
    flags = 0x8000 | (qflags & 0x7900) | 0x0080 | (rcode & 0xF)
    out = [struct.pack("!HHHHHH", qid, flags, 1 if question else 0, len(ips), 0, 0), question]
    for ip in ips:   # the name is a pointer to the question's (offset 12)
        out.append(struct.pack("!HHHIH", 0xC00C, QTYPE_A, QCLASS_IN, ttl, 4)
                   + socket.inet_aton(ip))
    return b"".join(out)


def respond(cluster: Cluster, asker: Task, data: bytes,
            rng: random.Random | None = None) -> bytes | None:
    """The bytes to send back for one datagram (None: not worth an answer)."""
    try:
        qid, flags, qname, qtype, qclass, question = parse_query(data)
    except FormatError:
        if len(data) >= 12 and not data[2] & 0x80:
            return build_response(struct.unpack("!H", data[:2])[0], data[2] << 8, b"", FORMERR, [])
        return None
    if flags & 0x8000:                   # a response: never answer one
        return None
    if (flags >> 11) & 0xF != 0 or qclass != QCLASS_IN:
        return build_response(qid, flags, question, NOTIMP, [])
    rcode, ips = answer(cluster, asker, qname, qtype, rng)
    room = (UDP_LIMIT - 12 - len(question)) // ANSWER_SIZE
    return build_response(qid, flags, question, rcode, ips[:room])


def build_query(qid: int, name: str, qtype: int = QTYPE_A) -> bytes:
    """A standard query with recursion desired, as a stub resolver sends it."""
    labels = b"".join(bytes([len(p)]) + p.encode("ascii") for p in name.rstrip(".").split(".") if p)
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + b"\0" \
        + struct.pack("!HH", qtype, QCLASS_IN)


def _skip_name(data: bytes, i: int) -> int:
    while True:
        n = data[i]
        if n & 0xC0 == 0xC0:
            return i + 2
        if n == 0:
            return i + 1
        i += 1 + n


def parse_response(data: bytes) -> tuple[int, int, list[str]]:
    """(id, rcode, A addresses in answer order) of a response."""
    if len(data) < 12:
        raise FormatError("shorter than a header")
    qid, flags, qd, an = struct.unpack("!HHHH", data[:8])
    i = 12
    for _ in range(qd):
        i = _skip_name(data, i) + 4
    ips = []
    for _ in range(an):
        i = _skip_name(data, i)
        rtype, _cls, _ttl, rdlen = struct.unpack("!HHIH", data[i:i + 10])
        i += 10
        if rtype == QTYPE_A and rdlen == 4:
            ips.append(socket.inet_ntoa(data[i:i + 4]))
        i += rdlen
    return qid, flags & 0xF, ips


def query(name: str, server: str = ADDRESS, port: int = PORT, timeout: float = 1.0,
          qtype: int = QTYPE_A) -> tuple[int, list[str]]:
    """Ask ``server`` directly (no glibc, no sorting): (rcode, addresses in its order)."""
    qid = random.getrandbits(16)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(build_query(qid, name, qtype), (server, port))
        while True:
            data = s.recv(4096)
            rid, rcode, ips = parse_response(data)
            if rid == qid:
                return rcode, ips


# --- the per-node server -----------------------------------------------------

_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def socket_in_netns(pid: int, address: str = ADDRESS, port: int = PORT) -> socket.socket:
    """A UDP socket bound to address:port in the network namespace of ``pid``."""
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {pid}")
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind((address, port))
            except OSError:
                s.close()
                raise
            s.setblocking(False)
            return s
        finally:
            if _libc.setns(own, CLONE_NEWNET) != 0:   # pragma: no cover - cannot happen
                os._exit(70)
    finally:
        os.close(own)
        os.close(target)


def parse_pids(text: str, pids: dict[str, int] | None = None) -> dict[str, int]:
    """Host name -> shell PID from lines of the run's record (``mininet:<host>``
    markers), added to ``pids``; a later line for a host wins."""
    pids = {} if pids is None else pids
    for line in text.splitlines():
        pid, _, marker = line.partition("\t")
        if marker.startswith("mininet:"):
            pids[marker[len("mininet:"):]] = int(pid)
    return pids


class PidRecord:
    """The run's record of processes (``<state>/pids``, appended to by the testbed), read
    as it grows: each look reads only the lines added since the last one (a 500-task
    run's record has thousands of lines, and every node's DNS looks 5 times a second).
    A record that shrank (a new run) is read again from its start."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.pids = path, 0, {}
        self.partial = b""

    def get(self) -> dict[str, int]:
        try:
            if os.stat(self.path).st_size == self.offset:    # (no open: most looks)
                return self.pids
            with open(self.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < self.offset:
                    self.offset, self.pids, self.partial = 0, {}, b""
                if size == self.offset:
                    return self.pids
                f.seek(self.offset)
                data = self.partial + f.read(size - self.offset)
        except OSError:
            return self.pids
        self.offset = size
        whole, _, self.partial = data.rpartition(b"\n")   # a line still being written waits
        parse_pids(whole.decode(errors="replace"), self.pids)
        return self.pids


class Resolver:
    """Serves the embedded DNS of one node's tasks, following the model file."""

    def __init__(self, node: str, state_dir: Path, model: Path | None = None,
                 log=sys.stderr) -> None:
        self.node, self.state_dir = node, Path(state_dir)
        self.model_path = Path(model) if model else self.state_dir / "model.json"
        self.log = log
        self.sel = selectors.DefaultSelector()
        self.socks: dict[str, tuple[socket.socket, int]] = {}   # host -> (socket, pid)
        self.cluster: Cluster | None = None
        self.local: frozenset[str] = frozenset()    # this node's task hosts, in ``cluster``
        self.mtime = 0.0
        self.rng = random.Random()
        self.record = PidRecord(self.state_dir / "pids")
        self.ready_file = self.state_dir / "dns" / f"{node}.json"
        self.ready_file.parent.mkdir(parents=True, exist_ok=True)

    def reload(self) -> None:
        try:
            mtime = self.model_path.stat().st_mtime
        except OSError:
            return
        if mtime != self.mtime:
            try:
                self.cluster = Cluster.from_dict(json.loads(self.model_path.read_text()))
                self.local = frozenset(t.host for t in self.cluster.tasks
                                       if t.node == self.node)
                self.mtime = mtime
            except (OSError, ValueError) as e:          # half-written: next time
                print(f"dns {self.node}: model not read: {e}", file=self.log)

    def sync(self) -> None:
        """Open sockets for new local tasks, close those of tasks that left."""
        if self.cluster is None:
            return
        local = self.local          # (found once per model: a look must not cost O(tasks))
        pids = self.record.get()
        changed = False
        for host in list(self.socks):
            sock, pid = self.socks[host]
            if host not in local or pids.get(host) != pid or not os.path.exists(f"/proc/{pid}"):
                self.sel.unregister(sock)
                sock.close()
                del self.socks[host]
                changed = True
        for host in sorted(local - set(self.socks)):
            pid = pids.get(host)
            if pid is None:
                continue
            try:
                sock = socket_in_netns(pid)
            except OSError:
                continue                   # the task's loopback is not up yet: retry
            self.socks[host] = (sock, pid)
            self.sel.register(sock, selectors.EVENT_READ, host)
            changed = True
        if changed:
            tmp = self.ready_file.with_suffix(".tmp")
            tmp.write_text(json.dumps({"node": self.node, "tasks": sorted(self.socks)}))
            tmp.replace(self.ready_file)

    def serve_once(self, timeout: float) -> None:
        for key, _ in self.sel.select(timeout):
            host = key.data
            try:
                data, peer = key.fileobj.recvfrom(4096)
            except OSError:
                continue
            asker = next((t for t in self.cluster.tasks if t.host == host), None)
            reply = respond(self.cluster, asker, data, self.rng) if asker else None
            if reply is not None:
                try:
                    key.fileobj.sendto(reply, peer)
                except OSError:
                    pass

    def run(self, poll: float = 0.2) -> None:
        while True:
            self.reload()
            self.sync()
            deadline = time.monotonic() + poll
            while (left := deadline - time.monotonic()) > 0:
                self.serve_once(left)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return _parser().parse_args(argv)


@functools.lru_cache(maxsize=1)
def _parser() -> argparse.ArgumentParser:
    """Built once (the fork server builds it before it forks, as the task server's)."""
    ap = argparse.ArgumentParser(description="Swarm's embedded DNS for one node's tasks")
    ap.add_argument("--node", required=True)
    ap.add_argument("--state-dir", required=True, type=Path)
    ap.add_argument("--model", type=Path, help="default: STATE_DIR/model.json")
    return ap


def run(args: argparse.Namespace) -> int:
    """Serve as :func:`parse_args` said, until killed."""
    try:
        Resolver(args.node, args.state_dir, args.model).run()
    except KeyboardInterrupt:
        pass
    return 0


def main(argv=None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
