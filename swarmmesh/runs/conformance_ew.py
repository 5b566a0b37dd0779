"""Figures of the east-west, health-check and overhead scenarios, from raw rows (pure).

East-west rows come from a client task of the stack: one per request it made by name
(the answer it got, the task that answered, the source that task saw), and the embedded
DNS's answers to repeated queries.  Timed rows are the load generator's (``t_send`` on the
load's clock).  Each function returns a :class:`~swarmmesh.runs.conformance.Figure`.
"""

from __future__ import annotations

from collections import Counter
from statistics import median
from typing import Mapping, Sequence

from swarmmesh.runs.conformance import Figure, exact_rr, ratio, second_life


def vip_answer(answers: Sequence[Sequence[str]], task_addresses: Sequence[str]) -> Figure:
    """What a VIP service's name resolved to, query after query: one address, not a
    task's, the same every time (the VIP), or what else."""
    seen = sorted({a for ans in answers for a in ans})
    if not answers or any(not a for a in answers):
        return Figure(f"no answer to {sum(1 for a in answers if not a)} of {len(answers)}",
                      "no answer")
    if all(len(a) == 1 for a in answers) and len(seen) == 1 and seen[0] not in task_addresses:
        return Figure(f"{seen[0]} every time (one address, no task's)", "the VIP")
    return Figure(f"{', '.join(seen)} (task addresses or several)", "not one VIP")


def ew_split(tasks: Sequence[str]) -> Figure:
    """The tasks that answered one client's new connections through the VIP, in order:
    exact round robin, and the counts' spread."""
    ok = [t for t in tasks if t]
    counts = Counter(ok)
    spread = max(counts.values()) - min(counts.values()) if counts else 0
    exact = exact_rr(list(tasks))
    return Figure(f"{'exact rr' if exact else 'not exact rr'} over {len(counts)} tasks, "
                  f"{len(tasks) - len(ok)} failed, counts within {spread}",
                  [exact, spread <= 1, len(tasks) == len(ok)])


def ew_source(seen: Sequence[str], client: str, vip: str | None,
              lbs: Mapping[str, str] | None = None, client_node: str = "") -> Figure:
    """The source the answering tasks saw for the client task's VIP connections, by kind:
    the client's own overlay address (no source NAT), the VIP, a node's load-balancer
    address on the network (``lbs``: node -> address; the client's node's or another's),
    or another address."""
    lbs = lbs or {}

    def kind(s: str) -> str:
        if s == client:
            return "the client's own address"
        if s == vip:
            return "the VIP"
        if s == lbs.get(client_node):
            return "the client node's load-balancer address"
        if s in lbs.values():
            return "another node's load-balancer address"
        return f"other ({s})"
    kinds = sorted({kind(s) for s in seen if s})
    if not kinds:
        return Figure("no answer", None)
    return Figure(f"{' and '.join(kinds)} ({', '.join(sorted(set(seen) - {''}))})",
                  kinds[0] if len(kinds) == 1 else kinds)


def answer_order(answers: Sequence[Sequence[str]]) -> str:
    """How the order of repeated answers of the same addresses behaves: ``one order``
    (always the same), ``rotates`` (each the previous one rotated by one) or ``varies``."""
    lists = [list(a) for a in answers if a]
    if len({tuple(a) for a in lists}) <= 1:
        return "one order"
    if all(b == a[1:] + a[:1] for a, b in zip(lists, lists[1:])):
        return "rotates"
    return "varies"


def name_answers(answers: Sequence[Sequence[str]], task_addresses: Sequence[str]) -> Figure:
    """A name that must answer the task addresses (``tasks.<service>``, a dnsrr service):
    whether every answer held exactly them, and how the order behaved."""
    want = sorted(task_addresses)
    exact = sum(1 for a in answers if sorted(a) == want)
    order = answer_order(answers)
    firsts = Counter(a[0] for a in answers if a)
    text = (f"{exact}/{len(answers)} answers the {len(want)} task addresses; order {order} "
            f"(first: {', '.join(f'{k} {v}x' for k, v in sorted(firsts.items()))})")
    return Figure(text, [exact == len(answers) and bool(answers), order])


# -- a health check's window --------------------------------------------------------------


def health_window(rows: Sequence[Mapping], victim: str, t_action: float,
                  silence: float = 2.0) -> dict:
    """From the moment the application turned unhealthy (``t_action``): when the victim
    last answered (before a replacement under the same name, as Swarm names it), how many
    new connections failed, when the last failure started."""
    back = second_life(rows, victim, t_action, silence)
    mine = [r["t_send"] for r in rows if r["ok"] and r["task"] == victim
            and r["t_send"] >= t_action and (back is None or r["t_send"] < back)]
    failed = [r["t_send"] for r in rows if not r["ok"] and r["t_send"] >= t_action]
    return {"last_answer_s": round(max(mine) - t_action, 2) if mine else None,
            "failed": len(failed),
            "last_failure_s": round(max(failed) - t_action, 2) if failed else None,
            "second_life_s": round(back - t_action, 2) if back is not None else None}


def seconds(value: float | None, what: str) -> Figure:
    if value is None:
        return Figure(f"no {what}", None)
    return Figure(f"{value:.1f} s after", value)


def failed(stats: Mapping) -> Figure:
    last = stats.get("last_failure_s")
    return Figure(f"{stats['failed']} failed" + (f", the last {last:.1f} s after"
                                                  if last is not None else ""),
                  stats["failed"])


# -- latency and connections/s against direct ---------------------------------------------


def path_stats(total_ms: Sequence[float | None]) -> dict:
    """One path's closed-loop requests: median latency (ms) and new connections/s (the
    requests over the time they took, one after another); failures counted."""
    ok = [float(t) for t in total_ms if t is not None]
    if not ok:
        return {"median_ms": None, "conn_per_s": None, "failed": len(total_ms)}
    return {"median_ms": round(median(ok), 3), "conn_per_s": round(1000 * len(ok) / sum(ok), 1),
            "failed": len(total_ms) - len(ok)}


def alternating(rounds: int, paths: Sequence[str]) -> list[str]:
    """The order the paths are measured in: ``rounds`` rounds, every other one reversed
    (A B C, C B A, A B C), so a drift of the machine's speed weighs on every path alike."""
    return [p for r in range(rounds) for p in (paths if r % 2 == 0 else paths[::-1])]


def against_direct(stats: Mapping[str, Mapping], direct: str, paths: Mapping[str, str],
                   against: str = "direct") -> dict[str, Figure]:
    """Per path (``paths``: path -> the behaviour's name with ``{what}`` in it), its median
    latency and new connections/s against the ``direct`` path's of the same run (from
    :func:`path_stats`); a path with failures says how many."""
    d = stats[direct]
    out = {}
    for path, name in paths.items():
        s = stats[path]
        for what, key, unit in (("latency", "median_ms", "latency"),
                                ("new connections/s", "conn_per_s", "connection rate")):
            f = ratio(s[key], d[key], unit, against)
            failed = s["failed"] + d["failed"]
            if failed and not f.skipped:
                f = Figure(f"{f.text}, {failed} failed", f.value)
            out[name.format(what=what)] = f
    return out


# -- a rolling update's order ----------------------------------------------------------------


def slot_of(task: str) -> str:
    """``web.1`` of ``web.1`` (Swarm's name, slot reused) or ``web.1.t6`` (the emulation's
    replacement)."""
    return ".".join(task.split(".")[:2])


def incarnations(rows: Sequence[Mapping], silence: float = 1.0) -> list[dict]:
    """The task instances that answered, from the rows alone: one per (slot, node), a new
    one when the same slot and node answer again after ``silence`` s without an answer
    (Swarm's replacement keeps the slot's name, and may land on the same node)."""
    out: list[dict] = []
    current: dict[tuple[str, str], dict] = {}
    for r in sorted((r for r in rows if r["ok"] and r["task"]), key=lambda r: r["t_send"]):
        key = (slot_of(r["task"]), r.get("task_node", ""))
        inc = current.get(key)
        if inc is None or r["t_send"] - inc["last"] >= silence:
            inc = {"slot": key[0], "node": key[1], "first": r["t_send"], "last": r["t_send"]}
            current[key] = inc
            out.append(inc)
        inc["last"] = r["t_send"]
    return out


def update_order(rows: Sequence[Mapping], t_action: float, t_end: float,
                 silence: float = 1.0) -> dict:
    """What a rolling update did, seen from the answers: each slot's old task leaving
    (``out``: its last answer) and its new one answering (``in``: its first), in time order,
    with the slots lettered in the order they were first touched (which slot goes first
    is not a stable fact of Swarm); per slot the gap (out to in: > 0 stop-first, < 0
    start-first's overlap) and the time between the slots' replacements."""
    incs = incarnations(rows, silence)
    events = [(i["last"], i["slot"], "out") for i in incs   # a stop may beat the command
              if t_action - silence <= i["last"] < t_end - silence and i["first"] < t_action]
    events += [(i["first"], i["slot"], "in") for i in incs if i["first"] >= t_action]
    events.sort()
    letters: dict[str, str] = {}
    for _t, slot, _kind in events:
        letters.setdefault(slot, "ABCDEFGH"[len(letters) % 8])
    times: dict[str, dict[str, float]] = {}
    for t, slot, kind in events:
        times.setdefault(slot, {}).setdefault(kind, t)
    gaps = [round(v["in"] - v["out"], 2) for v in times.values() if len(v) == 2]
    starts = sorted(min(v.values()) for v in times.values())
    return {"pattern": [f"{letters[s]} {k}" for _t, s, k in events],
            "gaps_s": gaps,
            "between_s": round(starts[1] - starts[0], 2) if len(starts) > 1 else None}


def order_figure(stats: Mapping) -> Figure:
    p = stats["pattern"]
    return Figure(", ".join(p) or "nothing replaced", p)


def gap_figure(stats: Mapping) -> Figure:
    """The largest out-to-in gap over the slots (negative: the new task answered first)."""
    g = stats["gaps_s"]
    if not g:
        return Figure("no slot replaced", None)
    worst = max(g)
    return Figure(f"{worst:+.1f} s (slots {', '.join(f'{x:+.1f}' for x in g)})", worst)
