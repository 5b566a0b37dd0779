"""The prediction against the packets: each hop is checked against what was captured
where it happens (tcpdump in its namespace, the nft trace and conntrack of its kernel,
``ofproto/trace`` of the very packet on its bridge, the task's answer); the first hop that
disagrees is named."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from swarmmesh.trace.hops import Capture, Hop, Packet, Path
from swarmmesh.trace.parse import CtEvent, NftEvent, OfTrace, Seen


@dataclass
class Observed:
    """What the live side captured for one connection."""

    seen: dict[tuple[str, str], list[Seen]] = field(default_factory=dict)  # (host, intf)
    ofproto: dict[tuple[str, int], OfTrace] = field(default_factory=dict)  # (node, in_port)
    nft: dict[str, list[NftEvent]] = field(default_factory=dict)   # node -> first packet's
    conntrack: dict[str, list[CtEvent]] = field(default_factory=dict)
    answer: dict | None = None      # the task's answer, or {"refused"/"timeout": True}


def seen_matches(s: Seen, want: Packet, cap: Capture) -> bool:
    if (s.proto, s.src, s.dst, s.dport) != (want.proto, want.src, want.dst, want.dport):
        return False
    if want.sport is not None and s.sport != want.sport:
        return False
    if cap.vni is not None and (s.vni != cap.vni or s.outer != cap.outer):
        return False
    return True


def check_capture(hop: Hop, obs: Observed) -> tuple[bool, str]:
    cap = hop.capture
    got = obs.seen.get((cap.host, cap.intf))
    if got is None:
        return False, f"no capture on {cap.host} {cap.intf}"
    if any(seen_matches(s, cap.packet, cap) for s in got):
        vx = f" vni {cap.vni} {cap.outer[0]} > {cap.outer[1]}" if cap.vni else ""
        return True, f"seen on {cap.host} {cap.intf}: {cap.packet}{vx}"
    others = "; ".join(f"{s.proto} {s.src}:{s.sport} > {s.dst}:{s.dport}"
                       + (f" vni {s.vni}" if s.vni else "") for s in got[:3])
    return False, (f"{cap.packet} not seen on {cap.host} {cap.intf} "
                   f"({len(got)} packets: {others or 'none'})")


def _squash(rule: str) -> str:
    """A rule as nft prints it and as we write it differ in spaces only."""
    return re.sub(r"\s+", "", rule)


def check_nft(hop: Hop, obs: Observed) -> tuple[bool, str]:
    want = hop.matched.split(": ", 1)[1]
    chain = hop.matched.split(" chain ", 1)[1].split(":", 1)[0]
    rules = [e for e in obs.nft.get(hop.host, []) if e.kind == "rule" and e.chain == chain]
    if not any(_squash(e.text) == _squash(want) for e in rules):
        got = "; ".join(f"{e.chain}: {e.text}" for e in rules) or "no rule in that chain"
        return False, f"nft trace on {hop.host}: {got}"
    ct = next((e for e in obs.conntrack.get(hop.host, []) if e.event == "NEW"), None)
    for r in hop.rewrites:
        nat = ct and (ct.dnat if r.kind == "dnat" else ct.snat)
        if ct is None or nat is None or nat[0] != r.after.split(":")[0]:
            return False, f"conntrack on {hop.host}: {r.kind} to {nat} (expected {r.after})"
    return True, f"nft trace: {chain} matched; conntrack: {ct.orig} -> reply {ct.reply}"


def check_bridge(hop: Hop, obs: Observed) -> tuple[bool, str, tuple[str, ...]]:
    opts = dict(d.split("=", 1) for d in hop.detail if "=" in d)
    trace = obs.ofproto.get((hop.host, int(opts["in_port"])))
    if trace is None:
        return False, f"no ofproto/trace on {hop.host} in_port {opts['in_port']}", ()
    tables = [str(r.table) for r in trace.rules]
    want = opts["tables"].split(",")
    lines = tuple(r.line() for r in trace.rules)
    got = (f"ofproto/trace: tables {','.join(tables)} output {trace.outputs or 'none'} "
           f"({trace.datapath_actions or 'no answer'})")
    if _dedupe(tables) != want:
        return False, got, lines
    if trace.outputs[-1:] != [opts["output"]]:
        return False, got, lines
    return True, f"ofproto/trace: datapath actions {trace.datapath_actions}", lines


def _dedupe(tables: list[str]) -> list[str]:
    return [t for i, t in enumerate(tables) if i == 0 or tables[i - 1] != t]


def check_refusal(hop: Hop, obs: Observed) -> tuple[bool, str]:
    a = obs.answer or {}
    if not any(a.get(k) for k in ("refused", "timeout", "unresolved", "unreachable")):
        return False, f"the connection was answered: {a}"
    nat = [e for e in obs.conntrack.get(hop.host, []) if e.event == "NEW" and e.dnat]
    if nat:
        return False, f"conntrack on {hop.host} shows a DNAT: {nat[0].reply}"
    how = next(k for k in ("refused", "timeout", "unresolved", "unreachable") if a.get(k))
    return True, f"the connection: {how}; no DNAT in {hop.host}'s conntrack"


def check_task(hop: Hop, obs: Observed) -> tuple[bool, str]:
    ok, ev = check_capture(hop, obs)
    a = obs.answer or {}
    task = hop.namespace.split("(")[1].split(" on ")[0]
    if a.get("task") != task or a.get("client") != hop.packet.src:
        return False, f"the answer: task {a.get('task')}, source {a.get('client')}"
    return ok, f"{ev}; answered as {a['task']}, saw {a['client']}:{a.get('client_port')}" \
        if ok else ev


def verify(path: Path, obs: Observed) -> Path:
    """``path`` with every hop checked against ``obs``."""
    out = []
    for hop in path.hops:
        lines: tuple[str, ...] = ()
        if hop.stage == "refused":
            ok, ev = check_refusal(hop, obs)
        elif hop.stage == "task":
            ok, ev = check_task(hop, obs)
        elif hop.stage == "bridge":
            ok, ev, lines = check_bridge(hop, obs)
        elif hop.stage == "nft":
            ok, ev = check_nft(hop, obs)
            if ok and hop.capture is not None:
                ok, cev = check_capture(hop, obs)
                ev = f"{ev}; {cev}"
        elif hop.capture is not None:
            ok, ev = check_capture(hop, obs)
        else:
            ok, ev = False, "nothing captured checks this hop"
        hop = hop.with_check(ok, ev)
        if lines:
            from dataclasses import replace
            hop = replace(hop, detail=hop.detail + tuple(f"  {l}" for l in lines))
        out.append(hop)
    path.hops = out
    return path
