"""A trace as text, hop by hop (in the manner of ``ovn-trace --detailed``): where, what
matched, each rewrite before -> after, the packet as it leaves, and what confirmed it."""

from __future__ import annotations

from swarmmesh.trace.hops import Hop, Path

MARK = {True: "ok", False: "DIFFERS", None: "unchecked"}


def hop_text(i: int, hop: Hop) -> list[str]:
    head = f"{i:2d}. {hop.namespace} [{hop.stage}]"
    lines = [head, "    " + "-" * (len(head) - 4)]
    lines.append(f"    {hop.matched}")
    lines += [f"    {d}" for d in hop.detail
              if d != "reply" and ("=" not in d.split()[0] or d.startswith("  "))]
    for r in hop.rewrites:
        lines.append(f"    {r.kind}: {r.before} -> {r.after}")
    if hop.packet is not None:
        lines.append(f"    packet: {hop.packet}")
    if hop.verified is not None or hop.evidence:
        lines.append(f"    [{MARK[hop.verified]}] {hop.evidence}")
    return lines


def text(path: Path) -> str:
    lines = [f"trace {path.source} -> {path.dest}"]
    if path.candidates:
        lines.append(f"candidates: {', '.join(path.candidates)}")
    if path.pick:
        lines.append(f"pick: {path.pick} ({path.why_pick})")
    lines.append("")
    reply_started = False
    for i, hop in enumerate(path.hops, 1):
        if hop.stage == "reply" or "reply" in hop.detail:
            if not reply_started:
                lines += ["reply:", ""]
                reply_started = True
        lines += hop_text(i, hop) + [""]
    if path.refused:
        lines.append(f"refused: {path.refused}")
    bad = path.first_disagreement()
    if bad is not None:
        lines.append(f"NOT VERIFIED: hop {path.hops.index(bad) + 1} ({bad.namespace}, "
                     f"{bad.stage}) disagrees with the packets: {bad.evidence}")
    elif path.verified:
        lines.append(f"verified: all {len(path.hops)} hops seen in the real packets")
    return "\n".join(lines) + "\n"
