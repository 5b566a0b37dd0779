"""Parsers of what the tools print: ``nft monitor trace``, ``ovs-appctl ofproto/trace``,
``conntrack -E`` and ``tcpdump -n -l``.  Text in, plain records out; nothing runs here."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# -- nft monitor trace ---------------------------------------------------------------

_NFT = re.compile(r"^trace id (?P<id>[0-9a-f]+) (?P<family>\w+) (?P<table>\S+) (?P<chain>\S+) "
                  r"(?P<kind>packet|rule|policy|verdict)(?::)? ?(?P<rest>.*)$")
_VERDICT = re.compile(r"^(?P<rule>.*?) \(verdict (?P<verdict>[^)]*)\)\s*$")


@dataclass(frozen=True)
class NftEvent:
    """One line of ``nft monitor trace``: a packet entering a chain, a rule that matched
    (its text and verdict), or the chain's policy."""

    trace_id: str
    table: str
    chain: str
    kind: str                       # packet | rule | policy | verdict
    text: str                       # the rule's text, the policy, or the packet's fields
    verdict: str = ""
    fields: dict = field(default_factory=dict, compare=False)


def nft_packet_fields(text: str) -> dict[str, str]:
    """``iif "x" ip saddr 1.2.3.4 tcp dport 80 ...`` -> {"iif": "x", "ip saddr": ...}."""
    out: dict[str, str] = {}
    toks = text.split()
    i = 0
    two = ("ip", "tcp", "udp", "ether", "meta", "ct")
    while i < len(toks):
        key = toks[i]
        if key in two and i + 2 < len(toks):
            key, i = f"{key} {toks[i + 1]}", i + 1
        val = toks[i + 1] if i + 1 < len(toks) else ""
        if val == "==" and i + 2 < len(toks):
            val, i = toks[i + 2], i + 1
        out[key] = val.strip('"')
        i += 2
    return out


def parse_nft_trace(text: str) -> list[NftEvent]:
    """Every line of ``nft monitor trace`` output, in order (other lines skipped)."""
    events = []
    for line in text.splitlines():
        m = _NFT.match(line.strip())
        if not m:
            continue
        kind, rest = m["kind"], m["rest"].strip()
        verdict, fields = "", {}
        if kind == "rule":
            v = _VERDICT.match(rest)
            if v:
                rest, verdict = v["rule"], v["verdict"]
        elif kind == "packet":
            fields = nft_packet_fields(rest)
        elif kind == "policy":
            verdict = rest
        events.append(NftEvent(m["id"], m["table"], m["chain"], kind, rest, verdict, fields))
    return events


def nft_first_packet(events: list[NftEvent], tables: tuple[str, ...]) -> list[NftEvent]:
    """The events of the first traced packet that reached one of ``tables`` (the first id
    seen there, up to the next packet of that id entering a chain it already entered)."""
    first = next((e.trace_id for e in events if e.table in tables), None)
    out, entered = [], set()
    for e in events:
        if e.trace_id != first:
            continue
        if e.kind == "packet":
            key = (e.table, e.chain)
            if key in entered:        # the id is reused by a later packet
                break
            entered.add(key)
        if e.table in tables:
            out.append(e)
    return out


# -- ovs-appctl ofproto/trace --------------------------------------------------------

_OF_RULE = re.compile(r"^\s*(?P<table>\d+)\. (?P<match>.*?),? ?priority (?P<prio>\d+)"
                      r"(?:, cookie (?P<cookie>0x[0-9a-f]+))?\s*$")


@dataclass
class OfRule:
    """One OpenFlow rule ``ofproto/trace`` walked through, with the actions it printed."""

    table: int
    match: str
    priority: int
    cookie: str
    actions: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"table {self.table} priority {self.priority} cookie {self.cookie}: "
                f"{self.match or '(any)'} -> {', '.join(self.actions) or 'drop'}")


@dataclass
class OfTrace:
    """One ``ofproto/trace``: the rules hit, in order, across every recirculation, and the
    datapath's last actions."""

    flow: str
    rules: list[OfRule]
    final_flow: str
    datapath_actions: str
    nat: list[str] = field(default_factory=list)     # "nw_dst=... -> nw_dst=..." per recirc

    @property
    def outputs(self) -> list[str]:
        """The OpenFlow ports the packet left by (``output:N`` actions of the rules hit)."""
        return [a.split(":", 1)[1] for r in self.rules for a in r.actions
                if a.startswith("output:")]

    @property
    def dropped(self) -> bool:
        return self.datapath_actions.strip() == "drop"


def parse_ofproto_trace(text: str) -> OfTrace:
    rules: list[OfRule] = []
    flow = final = dp = ""
    nat, initial = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("Flow: ") and not flow:
            flow = line[6:]
        elif line.startswith("Final flow: "):
            final = line[12:]
        elif line.startswith("Datapath actions: "):
            dp = line[18:]
        elif line.startswith("Initial flow: "):
            initial = line[14:]
        elif line.startswith("Modified flow: ") and initial and line[15:] != initial:
            nat.append(f"{initial} -> {line[15:]}")
        elif (m := _OF_RULE.match(raw)):
            rules.append(OfRule(int(m["table"]), m["match"].rstrip(","), int(m["prio"]),
                                m["cookie"] or ""))
        elif rules and line and not line.startswith(("->", ">>", "thaw", "Resuming",
                                                     "bridge(", "---", "===", "recirc(",
                                                     "Replacing", "Megaflow", "Flow:",
                                                     "Initial flow:", "Modified flow:")):
            rules[-1].actions.append(line)
    if not flow and text.strip():          # ovs-appctl's error, as the datapath's answer
        dp = "error: " + text.strip().splitlines()[0]
    return OfTrace(flow, rules, final or flow, dp, nat)


# -- conntrack -E -------------------------------------------------------------------

_CT_HEAD = re.compile(r"^(?:\[(?P<ts>[\d.]+)\]\s+)?\s*\[(?P<event>NEW|UPDATE|DESTROY)\]\s+"
                      r"(?P<proto>\w+)\s+\d+\s+(?P<rest>.*)$")
# ``conntrack -L``: no event, the protocol's number and the entry's timeout first
_CT_LIST = re.compile(r"^(?P<proto>tcp|udp|sctp|icmp)\s+\d+\s+\d+\s+(?P<rest>.*)$")


@dataclass(frozen=True)
class CtEvent:
    """One ``conntrack -E`` event: the original direction's tuple, the reply's (which says
    the NAT: the reply's source is the DNAT's target, its destination the SNAT's), the
    TCP state, the counters when accounting is on."""

    event: str
    proto: str
    state: str
    orig: tuple[str, str, int | None, int | None]       # src, dst, sport, dport
    reply: tuple[str, str, int | None, int | None]
    flags: tuple[str, ...] = ()
    ct_id: str = ""
    timestamp: float | None = None
    packets: tuple[int, int] | None = None              # original, reply
    bytes: tuple[int, int] | None = None

    @property
    def key(self) -> tuple:
        return (self.proto, *self.orig)

    @property
    def dnat(self) -> tuple[str, int | None] | None:
        """Where the connection was DNATed to (None if not)."""
        src, dst, sport, dport = self.orig
        r_src, _r_dst, r_sport, _r_dport = self.reply
        return None if (r_src, r_sport) == (dst, dport) else (r_src, r_sport)

    @property
    def snat(self) -> tuple[str, int | None] | None:
        """What the connection's source was SNATed to (None if not)."""
        src, _dst, sport, _dport = self.orig
        _r_src, r_dst, _r_sport, r_dport = self.reply
        return None if (r_dst, r_dport) == (src, sport) else (r_dst, r_dport)


def _tuple(kv: dict[str, str]) -> tuple[str, str, int | None, int | None]:
    def port(k: str) -> int | None:
        return int(kv[k]) if k in kv else None
    return kv.get("src", ""), kv.get("dst", ""), port("sport"), port("dport")


def parse_conntrack_line(line: str) -> CtEvent | None:
    """One ``conntrack -E`` event, or one entry of ``conntrack -L`` (event ``LIST``)."""
    m = _CT_HEAD.match(line.strip())
    if not m:
        listed = _CT_LIST.match(line.strip())
        if not listed:
            return None
        m = {"ts": None, "event": "LIST", "proto": listed["proto"], "rest": listed["rest"]}
    halves: list[dict[str, str]] = [{}]
    state, flags, ct_id = "", [], ""
    for tok in m["rest"].split():
        if tok.startswith("[") and tok.endswith("]"):
            flags.append(tok.strip("[]"))
        elif "=" in tok:
            k, v = tok.split("=", 1)
            if k in ("mark", "use", "zone", "portid"):
                continue
            if k == "id":
                ct_id = v
            elif k == "src" and "src" in halves[-1]:
                halves.append({k: v})
            else:
                halves[-1][k] = v
        elif tok.isupper() or "_" in tok:
            state = tok
    orig, reply = halves[0], halves[1] if len(halves) > 1 else {}
    counters = "bytes" in orig
    return CtEvent(m["event"], m["proto"], state, _tuple(orig), _tuple(reply), tuple(flags),
                   ct_id, float(m["ts"]) if m["ts"] else None,
                   (int(orig["packets"]), int(reply.get("packets", 0))) if counters else None,
                   (int(orig["bytes"]), int(reply.get("bytes", 0))) if counters else None)


def parse_conntrack(text: str) -> list[CtEvent]:
    return [e for e in map(parse_conntrack_line, text.splitlines()) if e is not None]


# -- tcpdump -n -l ------------------------------------------------------------------

_TD_IP = re.compile(r"IP (?P<src>[\d.]+?)(?:\.(?P<sport>\d+))? > (?P<dst>[\d.]+?)"
                    r"(?:\.(?P<dport>\d+))?: (?P<rest>.*)$")
_VNI = re.compile(r"VXLAN, flags \[I\] \(0x08\), vni (\d+)")


@dataclass(frozen=True)
class Seen:
    """One packet tcpdump printed: its addresses (the inner ones for VXLAN), the protocol
    as tcpdump names it, and for VXLAN the VNI and the outer addresses."""

    proto: str
    src: str
    sport: int | None
    dst: str
    dport: int | None
    vni: int | None = None
    outer: tuple[str, str] | None = None
    info: str = ""


def _td_proto(rest: str) -> str:
    if rest.startswith("Flags ["):
        return "tcp"
    if rest.startswith("UDP"):
        return "udp"
    if rest.startswith("ICMP"):
        return "icmp"
    return rest.split(",")[0].split()[0].lower() if rest else "?"


def parse_tcpdump(text: str, proto: str | None = None) -> list[Seen]:
    """``tcpdump -n -l`` lines; a VXLAN packet (tcpdump prints the outer line, then the
    inner one on the next) becomes one :class:`Seen` with its inner addresses.  ``proto``:
    the capture's filter allowed only that protocol (tcpdump decodes some UDP ports as
    their application, e.g. 5353 as mDNS, and then names no protocol)."""
    out: list[Seen] = []
    pending: tuple[int, tuple[str, str]] | None = None
    for line in text.splitlines():
        m = _TD_IP.search(line)
        if not m:
            continue
        port = (lambda k: int(m[k]) if m[k] else None)
        rest = m["rest"]
        v = _VNI.search(rest)
        if v:
            pending = (int(v.group(1)), (m["src"], m["dst"]))
            continue
        vni, outer = pending if pending else (None, None)
        pending = None
        out.append(Seen(proto or _td_proto(rest), m["src"], port("sport"), m["dst"], port("dport"),
                        vni, outer, rest[:80]))
    return out
