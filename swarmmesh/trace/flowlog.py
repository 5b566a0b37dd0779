"""The flow log of a run (``--flows``): every connection a node's kernel saw on a
published port, from its conntrack events, as one row: the entry node, the client, the
task picked (by the DNAT's address), the NAT tuple, bytes and packets each way (with
``nf_conntrack_acct``), start, end, duration, and how it ended.  Pure: events in, rows
out; the matrix figure reads ``flows.csv`` alone."""

from __future__ import annotations

from dataclasses import dataclass

from swarmmesh.dataplane import layout
from swarmmesh.model import Cluster
from swarmmesh.trace.parse import CtEvent

COLUMNS = ["entry_node", "proto", "client", "client_port", "published", "task",
           "task_address", "task_port", "snat_address", "snat_port", "packets_in",
           "packets_out", "bytes_in", "bytes_out", "start", "end", "duration_s", "ended"]
ENDINGS = ("closed", "reset", "timed out", "open")


@dataclass
class _Flow:
    first: CtEvent
    states: list[str]
    last: CtEvent
    destroyed: bool = False
    ended_at: float | None = None    # when it closed (TIME_WAIT, CLOSE) or was destroyed
    counted: CtEvent | None = None   # the event or listing that carries its counters


def task_by_address(cluster: Cluster) -> dict[str, str]:
    """Every address a node's kernel may DNAT to (ingress, docker_gwbridge leg) -> task."""
    out = {}
    for t in cluster.tasks:
        for a in t.addresses.values():
            out[str(a)] = t.name
        if layout.has_gw_leg(t, cluster):
            out[str(layout.task_gw_ip(t))] = t.name
    return out


def ending(states: list[str], destroyed: bool, proto: str) -> str:
    """closed (FIN: TIME_WAIT or a closing state reached), reset (CLOSE without FIN: an
    RST), timed out (destroyed otherwise: UDP, or a TCP connection idle too long), open
    (still there when the log stopped)."""
    if proto == "tcp":
        if "TIME_WAIT" in states or "LAST_ACK" in states:
            return "closed"
        if "CLOSE" in states:
            return "reset"
    return "timed out" if destroyed else "open"


def flows(events: dict[str, list[CtEvent]], cluster: Cluster,
          published: set[tuple[str, int]] | None = None,
          listed: dict[str, list[CtEvent]] | None = None) -> list[dict]:
    """One row per connection, in order of start, from each node's events: only the ones
    a node's table DNATed (a published port), or to ``published`` (proto, port).  The
    counters come from the connection's DESTROY event, else from ``listed`` (the node's
    ``conntrack -L`` at the end: a dump loses nothing, where a burst of events may)."""
    by_task = task_by_address(cluster)
    rows = []
    for node, evs in events.items():
        final = {(e.key, e.ct_id): e for e in (listed or {}).get(node, []) if e.bytes}
        for f in _group(evs).values():
            if f.last.bytes is None and (f.first.key, f.first.ct_id) in final:
                f.counted = final[(f.first.key, f.first.ct_id)]
            dnat = f.first.dnat
            if dnat is None and not (published and (f.first.proto, f.first.orig[3])
                                     in published):
                continue
            rows.append(_row(node, f, dnat, by_task))
    return sorted(rows, key=lambda r: (r["start"] or 0, r["entry_node"]))


def _group(evs: list[CtEvent]) -> dict[tuple, _Flow]:
    """Events of one connection together (a NEW starts one; its key the original tuple
    with the id when conntrack gives it, so a reused client port starts anew)."""
    live: dict[tuple, _Flow] = {}
    done: dict[tuple, _Flow] = {}
    for n, e in enumerate(evs):
        key = (e.key, e.ct_id)
        if e.event == "NEW" or key not in live:
            if key in live:
                done[(*key, n)] = live.pop(key)
            live[key] = _Flow(e, [e.state] if e.state else [], e)
            if e.event == "NEW":
                continue
        f = live[key]
        if e.state:
            f.states.append(e.state)
        f.last = e
        if f.ended_at is None and (e.state in ("TIME_WAIT", "CLOSE") or e.event == "DESTROY"):
            f.ended_at = e.timestamp
        if e.event == "DESTROY":
            f.destroyed = True
            done[(*key, n)] = live.pop(key)
    return {**done, **live}


def _row(node: str, f: _Flow, dnat, by_task: dict[str, str]) -> dict:
    e = f.first
    c = f.counted or f.last
    counters = c.packets is not None
    start, end = e.timestamp, f.ended_at
    snat = e.snat
    return {"entry_node": node, "proto": e.proto, "client": e.orig[0], "client_port": e.orig[2],
            "published": e.orig[3], "task": by_task.get(dnat[0], "") if dnat else "",
            "task_address": dnat[0] if dnat else "", "task_port": dnat[1] if dnat else "",
            "snat_address": snat[0] if snat else "", "snat_port": snat[1] if snat else "",
            "packets_in": c.packets[0] if counters else "",
            "packets_out": c.packets[1] if counters else "",
            "bytes_in": c.bytes[0] if counters else "",
            "bytes_out": c.bytes[1] if counters else "",
            "start": start, "end": end,
            "duration_s": round(end - start, 6) if start is not None and end is not None else "",
            "ended": ending(f.states, f.destroyed, e.proto)}


def matrix(rows: list[dict]) -> tuple[list[str], list[str], list[list[int]]]:
    """Entry nodes x tasks: how many connections each node gave each task."""
    nodes = sorted({r["entry_node"] for r in rows}, key=_natural)
    tasks = sorted({r["task"] or "(none)" for r in rows}, key=_natural)
    counts = [[sum(1 for r in rows if r["entry_node"] == n and (r["task"] or "(none)") == t)
               for t in tasks] for n in nodes]
    return nodes, tasks, counts


def _natural(name: str) -> tuple:
    head = name.rstrip("0123456789")
    tail = name[len(head):]
    return (head, int(tail) if tail else -1)
