"""The hop model: where a packet is, what matched it there, what it was rewritten to.

A trace is a list of :class:`Hop` in the order the packet takes them (the request, then
the reply).  Each hop names the host and the namespace it happens in, what matched (a
nftables rule, an OpenFlow rule, a VXLAN device, a socket), every rewrite it made
(before -> after), the packet as it leaves the hop, and where the packet may be seen
(the capture point that verifies it).  ``verified`` is None until the packets are
compared with it (:mod:`swarmmesh.trace.compare`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace


@dataclass(frozen=True)
class Packet:
    """The addresses of one packet (the inner one for a tunnel)."""

    proto: str
    src: str
    sport: int | None
    dst: str
    dport: int | None

    def __str__(self) -> str:
        return f"{self.proto} {_ep(self.src, self.sport)} > {_ep(self.dst, self.dport)}"

    def reversed(self) -> "Packet":
        return Packet(self.proto, self.dst, self.dport, self.src, self.sport)


def _ep(ip: str, port: int | None) -> str:
    return ip if port is None else f"{ip}:{port}"


@dataclass(frozen=True)
class Rewrite:
    """One rewrite made at a hop: ``kind`` is dnat, snat, un-snat, un-dnat, redirect,
    encap, decap or mac."""

    kind: str
    before: str
    after: str

    def __str__(self) -> str:
        return f"{self.kind} {self.before} -> {self.after}"


@dataclass(frozen=True)
class Capture:
    """Where a hop's packet can be seen: a host, one of its interfaces, the packet expected
    there; ``vni`` for a VXLAN packet on the underlay (the outer addresses in ``outer``)."""

    host: str
    intf: str
    packet: Packet
    vni: int | None = None
    outer: tuple[str, str] | None = None


@dataclass(frozen=True)
class Hop:
    """One step of the path."""

    host: str                       # node3, t1, c1
    namespace: str                  # "node3 kernel", "node3 br-ingress", "t1", "underlay"
    stage: str                      # client, nft, bridge, vxlan, task, reply, refused
    matched: str                    # what matched, in the table's own words
    packet: Packet | None           # the packet as it leaves the hop
    rewrites: tuple[Rewrite, ...] = ()
    detail: tuple[str, ...] = ()    # further lines: table, priority, cookie, actions...
    capture: Capture | None = None  # where the real packet confirms it
    verified: bool | None = None
    evidence: str = ""              # what confirmed it, or what was seen instead

    def with_check(self, ok: bool, evidence: str) -> "Hop":
        return replace(self, verified=ok, evidence=evidence)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["packet"] = str(self.packet) if self.packet else None
        d["rewrites"] = [asdict(r) for r in self.rewrites]
        d["detail"] = list(self.detail)
        if self.capture is not None:
            d["capture"] = {"host": self.capture.host, "intf": self.capture.intf,
                            "packet": str(self.capture.packet), "vni": self.capture.vni,
                            "outer": list(self.capture.outer) if self.capture.outer else None}
        return d


@dataclass
class Path:
    """A connection's path: its hops in order; ``refused`` says why it stops, if it does;
    ``candidates``: the tasks the entry's pick could have chosen, ``pick`` the one it did."""

    source: str
    dest: str
    hops: list[Hop] = field(default_factory=list)
    refused: str = ""
    candidates: tuple[str, ...] = ()
    pick: str = ""
    why_pick: str = ""

    @property
    def verified(self) -> bool:
        """Every hop checked and confirmed (a refusal confirmed counts)."""
        return bool(self.hops) and all(h.verified is True for h in self.hops)

    def first_disagreement(self) -> Hop | None:
        return next((h for h in self.hops if h.verified is False), None)

    def to_dict(self) -> dict:
        return {"source": self.source, "dest": self.dest, "verified": self.verified,
                "refused": self.refused or None, "pick": self.pick or None,
                "why_pick": self.why_pick or None, "candidates": list(self.candidates),
                "hops": [h.to_dict() for h in self.hops]}
