"""The live side of ``swarmmesh trace``: one real connection through a running testbed,
watched at every hop, then compared with the model's prediction.

Before the connection: ``tcpdump`` in every namespace a candidate path crosses (the
connection starts once each says it is listening), ``nft monitor trace`` and ``conntrack
-E`` in the entry node, and a table of the trace's own there (``ip swarmmesh_trace``: one
rule, ``meta nftrace set 1`` on the client's packets to the port, removed afterwards).
After it: ``ofproto/trace`` of the very packet on each bridge it crossed, on its real
in_port.  The pure parts (prediction, parsing, comparison) are in :mod:`swarmmesh.trace`.
"""

from __future__ import annotations

import json
import subprocess
import time
from contextlib import ExitStack, contextmanager
from typing import Iterator

from swarmmesh.dataplane import layout
from swarmmesh.trace import compare, parse
from swarmmesh.trace.dest import Dest, Source, parse_dest, parse_source
from swarmmesh.trace.hops import Hop, Path
from swarmmesh.trace.predict import predict

TRACE_TABLE = "swarmmesh_trace"
NFT_TABLES = ("swarmmesh", TRACE_TABLE)
SETTLE = 0.3            # seconds the captures keep running after the connection


def nft_trace_script(client_ip: str, proto: str, port: int) -> str:
    """The trace's own table: the client's packets to the port get ``nftrace`` before
    conntrack and NAT see them (priority -350, a filter chain: it changes nothing)."""
    return (f"table ip {TRACE_TABLE} {{\n"
            f" chain pre {{ type filter hook prerouting priority -350; policy accept;\n"
            f"  ip saddr {client_ip} {proto} dport {port} meta nftrace set 1\n }}\n}}\n")


def capture_filter(intf: str, proto: str) -> list[str]:
    """A node's underlay leg carries the overlay: VXLAN; elsewhere the connection's protocol."""
    return ["udp", "port", "4789"] if intf.endswith("-eth0") and intf.startswith("node") \
        else [proto]


def points(paths: list[Path]) -> list[tuple[str, str]]:
    """Every (host, interface) a capture must watch, over every candidate path."""
    out = []
    for p in paths:
        for h in p.hops:
            if h.capture and (h.capture.host, h.capture.intf) not in out:
                out.append((h.capture.host, h.capture.intf))
    return out


def ofproto_flow(hop: Hop, entering) -> str:
    """The ``ofproto/trace`` flow of a bridge hop: the packet as it enters, on its in_port."""
    in_port = next(d.split("=", 1)[1] for d in hop.detail if d.startswith("in_port="))
    p = entering
    ports = (f",{p.proto}_src={p.sport}" if p.sport is not None else "") + \
        f",{p.proto}_dst={p.dport}"
    return f"in_port={in_port},{p.proto},nw_src={p.src},nw_dst={p.dst},nw_ttl=64{ports}"


def entering_packet(path: Path, i: int):
    """A bridge hop that NATs gets the previous hop's packet; others pass it as it leaves."""
    hop = path.hops[i]
    if any(r.kind in ("dnat", "snat") for r in hop.rewrites) and i > 0:
        return path.hops[i - 1].packet
    return hop.packet


@contextmanager
def process(host, cmd: list[str], tb, ready: str | None = None) -> Iterator[list[str]]:
    """``cmd`` in ``host`` for the block's length; yields a one-item list that holds its
    output once the block ends.  ``ready``: wait for that text on its stderr first."""
    proc = host.popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    tb.state.register(proc.pid, cmd[0])
    out: list[str] = []
    try:
        said = ""
        while ready and ready not in said:
            line = proc.stderr.readline()
            if not line:
                raise RuntimeError(f"{host.name}: {' '.join(cmd)} did not start: {said}")
            said += line
        yield out
    finally:
        time.sleep(SETTLE)
        proc.terminate()
        try:
            out.append(proc.communicate(timeout=5)[0])
        except subprocess.TimeoutExpired:
            proc.kill()
            out.append(proc.communicate()[0])


@contextmanager
def nft_trace(node, tb, client_ip: str, dest: Dest) -> Iterator[list[str]]:
    """The trace table in ``node`` and ``nft monitor trace`` for the block's length; the
    table is removed whatever happens."""
    script = tb.state.dir / node.name / "trace.nft"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(nft_trace_script(client_ip, dest.proto, dest.port))
    node.cmd(f"nft -f {script}")
    try:
        with process(node, ["nft", "monitor", "trace"], tb) as out:
            time.sleep(0.3)             # nft monitor says nothing once it listens
            yield out
    finally:
        node.cmd(f"nft delete table ip {TRACE_TABLE} 2>/dev/null")


def send(tb, source: Source, dest: Dest, cluster, timeout: float) -> dict:
    """The one real connection, from the client or the task."""
    host = source.client.name if source.client else source.task.host
    where = (str(cluster.node(dest.node).underlay_ip) if dest.kind == "node"
             else dest.service or dest.address)
    args = ["-m", "swarmmesh.agents.probe", where, str(dest.port), "--timeout", str(timeout)]
    return json.loads(tb.run_in(host, args + (["--udp"] if dest.proto == "udp" else []),
                                timeout=timeout + 20))


def answer_of(result: dict) -> dict:
    """The task's answer, or how the connection failed (refused, timeout, unresolved: no
    name, unreachable: no route)."""
    if "answer" in result and isinstance(result["answer"], dict):
        return result["answer"]
    if "unreachable" in str(result.get("error", "")):
        return {"unreachable": True}
    return ({k: True for k in ("refused", "timeout", "unresolved") if result.get(k)}
            or {"error": result})


def trace(tb, source_text: str, dest_text: str, timeout: float = 2.0,
          raw: dict | None = None) -> Path:
    """Trace one real connection from SOURCE to DEST through the running testbed ``tb``;
    ``raw``, if given, receives the tools' own text (capture point or tool -> text)."""
    cluster = tb.cluster
    source, dest = parse_source(cluster, source_text), parse_dest(cluster, dest_text)
    first = predict(cluster, source, dest)
    plans = [predict(cluster, source, dest, pick=c) for c in first.candidates] or [first]
    obs = compare.Observed()
    with ExitStack() as stack:
        caps = {pt: stack.enter_context(process(
                    tb.host(pt[0]), ["tcpdump", "--immediate-mode", "-l", "-n", "-i", pt[1],
                                     *capture_filter(pt[1], dest.proto)], tb, "listening on"))
                for pt in points(plans)}
        nft = ct = None
        where = kernel_of(cluster, source, dest, first)
        if where is not None:
            node = tb.host(where[0])
            nft = stack.enter_context(nft_trace(node, tb, where[1], dest))
            ct = stack.enter_context(process(node, ["conntrack", "-E", "-p", dest.proto], tb))
        result = send(tb, source, dest, cluster, timeout)
    obs.seen = {pt: parse.parse_tcpdump(out[0], None if pt[1] == f"{pt[0]}-eth0"
                                        and pt[0].startswith("node") else dest.proto)
                for pt, out in caps.items()}
    if raw is not None:
        raw.update({f"tcpdump {h} {i}": out[0] for (h, i), out in caps.items()})
        raw.update({"nft monitor trace": nft[0], "conntrack -E": ct[0]} if nft else {})
    if nft is not None:
        obs.nft[where[0]] = parse.nft_first_packet(parse.parse_nft_trace(nft[0]), NFT_TABLES)
        obs.conntrack[where[0]] = [e for e in parse.parse_conntrack(ct[0])
                                   if e.orig[2] == result.get("sport")]
    obs.answer = answer_of(result)
    path = predict(cluster, source, dest, pick=obs.answer.get("task"), sport=result.get("sport"))
    obs.ofproto = bridge_traces(tb, path, raw)
    return compare.verify(path, obs)


def kernel_of(cluster, source: Source, dest: Dest, path: Path) -> tuple[str, str] | None:
    """(node, client address) whose kernel picks for this connection: the entry node for a
    published port, the source task's node for a VIP (its first nft hop); else None."""
    if dest.kind == "node":
        return dest.node, str(source.client.underlay_ip)
    hop = next((h for h in path.hops if h.stage == "nft"), None)
    if hop is None or source.task is None:
        return None
    return hop.host, path.hops[0].packet.src


def bridge_traces(tb, path: Path, raw: dict | None = None) -> dict:
    """``ofproto/trace`` on every bridge hop of ``path``, its packet on its in_port."""
    out = {}
    for i, hop in enumerate(path.hops):
        if hop.stage != "bridge":
            continue
        flow = ofproto_flow(hop, entering_packet(path, i))
        text = tb.host(hop.host).appctl(f"ofproto/trace {layout.BRIDGE} '{flow}'")
        port = int(flow.split(",", 1)[0].split("=")[1])
        if raw is not None:
            raw[f"ofproto/trace {hop.host} {flow}"] = text
        out[(hop.host, port)] = parse.parse_ofproto_trace(text)
    return out
