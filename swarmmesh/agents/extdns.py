"""A small authoritative DNS server for the swarm's external name (runs in a host).

"An external DNS service mapped to any or all nodes" of Swarm's documentation: the
zone (a JSON file ``{name: [addresses]}``, written by the testbed from
:func:`swarmmesh.dataplane.extlb.zone`) maps the cluster's name to every node's
underlay address.  Answers are authoritative (AA set, RA clear), TTL 30 s, and
rotate by one address per query (BIND's ``cyclic`` order), so clients that take
the first address spread over the nodes.  A name under the zone that is not in it
gets NXDOMAIN, a name outside it REFUSED, a known name asked for another type an
empty NOERROR.  The zone follows its file: changed (its modification time), it is read
again before the next answer (the testbed rewrites it as tasks come and go: the
``tasks.<service>`` names HAProxy's DNS discovery asks).  UDP only; the wire format is the embedded DNS's
(:mod:`swarmmesh.agents.dns`).

    python -m swarmmesh.agents.extdns --zone zone.json --bind 192.168.99.253
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
from pathlib import Path

from swarmmesh.agents import dns

REFUSED = 5
AA, RA = 0x0400, 0x0080


class Zone:
    """The records and the rotation state."""

    def __init__(self, records: dict[str, list[str]], ttl: int = 30) -> None:
        self.records = {k.rstrip(".").lower(): list(v) for k, v in records.items()}
        self.apexes = sorted(self.records, key=len)[:1]
        self.ttl = ttl
        self.turn: dict[str, int] = {}
        self.mtime_ns = 0

    @classmethod
    def load(cls, path: Path, ttl: int = 30) -> "Zone":
        zone = cls(json.loads(path.read_text()), ttl)
        zone.mtime_ns = path.stat().st_mtime_ns
        return zone

    def reload_if_changed(self, path: Path) -> bool:
        """Read the zone file again if it changed since; True if it did.  A file being
        replaced or not valid JSON keeps the records as they are."""
        try:
            mtime = path.stat().st_mtime_ns
            if mtime == self.mtime_ns:
                return False
            records = json.loads(path.read_text())
        except (OSError, ValueError):
            return False
        self.records = {k.rstrip(".").lower(): list(v) for k, v in records.items()}
        self.mtime_ns = mtime
        return True

    def _inside(self, name: str) -> bool:
        return any(name == a or name.endswith("." + a) for a in self.apexes)

    def answer(self, qname: str, qtype: int) -> tuple[int, list[str]]:
        name = qname.rstrip(".").lower()
        if name not in self.records:
            return (dns.NXDOMAIN if self._inside(name) else REFUSED), []
        if qtype != dns.QTYPE_A:
            return dns.NOERROR, []
        ips = self.records[name]
        k = self.turn.get(name, 0)
        self.turn[name] = (k + 1) % len(ips) if ips else 0
        return dns.NOERROR, ips[k:] + ips[:k]

    def respond(self, data: bytes) -> bytes | None:
        try:
            qid, flags, qname, qtype, qclass, question = dns.parse_query(data)
        except dns.FormatError:
            return None
        if flags & 0x8000:
            return None
        if (flags >> 11) & 0xF != 0 or qclass != dns.QCLASS_IN:
            rcode, ips = dns.NOTIMP, []
        else:
            rcode, ips = self.answer(qname, qtype)
        reply = bytearray(dns.build_response(qid, flags, question, rcode, ips, self.ttl))
        f = (struct.unpack("!H", reply[2:4])[0] | AA) & ~RA
        reply[2:4] = struct.pack("!H", f)
        return bytes(reply)


def serve(zone: Zone, bind: str, port: int = dns.PORT, path: Path | None = None) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((bind, port))
        print("ready", flush=True)
        while True:
            data, peer = s.recvfrom(4096)
            if path is not None:
                zone.reload_if_changed(path)
            reply = zone.respond(data)
            if reply is not None:
                s.sendto(reply, peer)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="authoritative DNS for the swarm's external name")
    ap.add_argument("--zone", required=True, type=Path, help="JSON: {name: [addresses]}")
    ap.add_argument("--bind", default="0.0.0.0")
    ap.add_argument("--port", type=int, default=dns.PORT)
    ap.add_argument("--ttl", type=int, default=30)
    args = ap.parse_args(argv)
    try:
        serve(Zone.load(args.zone, args.ttl), args.bind, args.port, args.zone)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
