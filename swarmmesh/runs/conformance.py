"""Conformance: the same behaviour measured on real Swarm and on the emulation, compared.

Pure functions, no root: the list of behaviours (each with the scenario that measures it
and its tolerance), the figures drawn from a scenario's raw measurements, the verdicts and
the rows of the table that ``swarmmesh run conformance`` writes.

A *figure* is what one engine showed for one behaviour: a short text for the reader and a
value to compare (a number, a text or a small list), or ``not run: <reason>`` when the
engine could not run the scenario here.  A *verdict* is ``same``, ``differs (...)`` saying
by how much, or ``not compared`` when either side was not run: never a guess.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

NOT_RUN = "not run"
SAME = "same"
NOT_COMPARED = "not compared"


@dataclass(frozen=True)
class Figure:
    """One engine's figure for one behaviour: ``text`` for the table, ``value`` compared;
    ``skipped``: why it was not measured (then ``value`` is None)."""

    text: str
    value: object = None
    skipped: str = ""

    @classmethod
    def not_run(cls, reason: str) -> "Figure":
        return cls(f"{NOT_RUN}: {reason}", None, reason)

    def to_dict(self) -> dict:
        return {"text": self.text, "value": self.value, "skipped": self.skipped}


# -- verdicts ---------------------------------------------------------------------------


def equal(swarm: object, emulated: object) -> tuple[str, str]:
    """Exact: the same value or ``differs``, both named."""
    if swarm == emulated:
        return SAME, "equal"
    return f"differs ({_shown(swarm)} on Swarm; {_shown(emulated)} emulated)", "must be equal"


def _shown(value: object) -> str:
    """A value as the reader reads it: a list of words joined (``A out, A in``)."""
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return ", ".join(value) or "nothing"
    return str(value)


def within(abs_tol: float, rel_tol: float = 0.0) -> Callable[[object, object], tuple[str, str]]:
    """Numbers: ``same`` when ``|e - s| <= max(abs_tol, rel_tol * max(|s|, |e|))``,
    else ``differs (+1.2 s, +30 %)`` (emulated against Swarm)."""
    rule = f"within {abs_tol:g}" + (f" or {rel_tol:.0%}" if rel_tol else "")

    def verdict(swarm: object, emulated: object) -> tuple[str, str]:
        if swarm is None or emulated is None:
            return equal(swarm, emulated)[0], rule
        s, e = float(swarm), float(emulated)    # type: ignore[arg-type]
        if abs(e - s) <= max(abs_tol, rel_tol * max(abs(s), abs(e))):
            return SAME, rule
        pct = f", {(e - s) / abs(s):+.0%}" if s else ""
        return f"differs ({e - s:+.3g}{pct})", rule
    return verdict


def compare(swarm: Figure, emulated: Figure,
            rule: Callable[[object, object], tuple[str, str]]) -> tuple[str, str]:
    """The verdict and the rule it applied; ``not compared`` if either side was not run."""
    missing = [side for side, f in (("Swarm", swarm), ("emulated", emulated)) if f.skipped]
    if missing:
        return NOT_COMPARED, f"{' and '.join(missing)} not run"
    return rule(swarm.value, emulated.value)


# -- figures from raw measurements (rows: one per request) --------------------------------


def _by_node(rows: Sequence[Mapping]) -> dict[str, list[Mapping]]:
    out: dict[str, list[Mapping]] = {}
    for r in sorted(rows, key=lambda r: (int(r.get("seq", 0)))):
        out.setdefault(r["ingress_node"], []).append(r)
    return out


def exact_rr(seq: Sequence[str]) -> bool:
    """Did the answers take the tasks in one fixed cyclic order, each once per turn?"""
    k = len(set(seq))
    return bool(seq) and "" not in seq and len(set(seq[:k])) == k and all(
        seq[i] == seq[i % k] for i in range(len(seq)))


def split_per_node(rows: Sequence[Mapping]) -> Figure:
    """Each node's new connections: exact rr over every task, and the counts' spread."""
    nodes = _by_node(rows)
    exact = sum(1 for rs in nodes.values() if exact_rr([r["task"] for r in rs if r["ok"]])
                and all(r["ok"] for r in rs))
    spread = max((max(c.values()) - min(c.values()) for c in
                  (Counter(r["task"] for r in rs if r["ok"]) for rs in nodes.values()) if c),
                 default=0)
    return Figure(f"exact rr on {exact}/{len(nodes)} nodes, counts within {spread}",
                  [exact == len(nodes), spread <= 1])


def rotation_starts(rows: Sequence[Mapping]) -> Figure:
    """Which task each node's first connection got; compared: whether every node starts
    on the same task (which task is first is not a stable fact of either engine)."""
    first = {n: rs[0]["task"] for n, rs in sorted(_by_node(rows).items()) if rs}
    same = len(set(first.values())) == 1
    text = ", ".join(f"{n} {t}" for n, t in first.items())
    return Figure(f"{text} ({'one start' if same else 'own start per node'})",
                  "one start for every node" if same else "own start per node")


def seen_sources(rows: Sequence[Mapping]) -> Figure:
    """The source address each entry node's connections showed the task."""
    seen: dict[str, set[str]] = {}
    for r in rows:
        if r["ok"]:
            seen.setdefault(r["ingress_node"], set()).add(r["seen_source"])
    value = {n: sorted(s) for n, s in sorted(seen.items())}
    return Figure(", ".join(f"{n} → {'/'.join(s)}" for n, s in value.items()), value)


def target_ports(rows: Sequence[Mapping], published: int) -> Figure:
    ports = sorted({int(r["port"]) for r in rows if r["ok"] and r.get("port") not in (None, "")})
    return Figure(f"{published} → {', '.join(map(str, ports)) or 'nothing'}", ports)


def node_without_task(rows: Sequence[Mapping], empty: Sequence[str]) -> Figure:
    """What the nodes that run no task answered."""
    mine = [r for r in rows if r["ingress_node"] in empty]
    if not empty:
        return Figure.not_run("every node runs a task")
    ok = sum(1 for r in mine if r["ok"])
    return Figure(f"{ok}/{len(mine)} answered through {', '.join(empty)}", ok == len(mine))


def udp_split(rows: Sequence[Mapping]) -> Figure:
    nodes = _by_node(rows)
    exact = sum(1 for rs in nodes.values() if exact_rr([r["task"] for r in rs]))
    lost = sum(1 for r in rows if not r["ok"])
    return Figure(f"exact rr on {exact}/{len(nodes)} nodes, {lost} datagrams unanswered",
                  exact == len(nodes) and not lost)


def ingress_addresses(subnet: str, sandboxes: Sequence[str], vip: str,
                      tasks: Sequence[str]) -> Figure:
    text = (f"{subnet}; sandboxes {', '.join(sandboxes)}; VIP {vip}; "
            f"tasks {', '.join(sorted(tasks))}")
    return Figure(text, [subnet, list(sandboxes), vip, sorted(tasks)])


def refused(error: str | None) -> Figure:
    """A deployment that must be refused: the error, or that it went through."""
    if error is None:
        return Figure("accepted", "accepted")
    return Figure(f"refused: {error}", "refused")


# -- timed scenarios (rows of the load generator, t_send from its origin) -------------------


def first_answer_everywhere(rows: Sequence[Mapping], task: str | None, t_action: float,
                            nodes: Sequence[str]) -> Figure:
    """Seconds from the action until ``task`` had answered through every node."""
    if task is None:
        return Figure("no new task", None)
    firsts = {}
    for r in rows:
        if r["ok"] and r["task"] == task and r["t_send"] >= t_action:
            firsts.setdefault(r["ingress_node"], r["t_send"])
    if set(firsts) != set(nodes):
        missing = sorted(set(nodes) - set(firsts))
        return Figure(f"{task} never answered through {', '.join(missing)}", None)
    s = round(max(firsts.values()) - t_action, 2)
    return Figure(f"{s:.1f} s ({task})", s)


def second_life(rows: Sequence[Mapping], task: str, t_action: float,
                silence: float = 2.0) -> float | None:
    """When a task name answered again after at least ``silence`` s without an answer
    (from the action on): a replacement under the same name; None if it never did."""
    last = t_action
    for r in sorted((r for r in rows if r["ok"] and r["task"] == task
                     and r["t_send"] >= t_action), key=lambda r: r["t_send"]):
        if r["t_send"] - last >= silence:
            return r["t_send"]
        last = r["t_send"]
    return None


def failures_after(rows: Sequence[Mapping], t_action: float, nodes: Sequence[str]) -> dict:
    """Failed new connections after the action: per node, and when the last one started."""
    failed = [r for r in rows if not r["ok"] and r["t_send"] >= t_action]
    per_node = Counter(r["ingress_node"] for r in failed)
    last = max((r["t_send"] for r in failed), default=None)
    return {"failed": len(failed), "per_node": {n: per_node.get(n, 0) for n in nodes},
            "last_failure_s": round(last - t_action, 2) if last is not None else None,
            "errors": dict(Counter(r["error"] for r in failed))}


def failed_per_node(stats: Mapping) -> Figure:
    per = stats["per_node"]
    worst = max(per.values(), default=0)
    return Figure(f"{stats['failed']} failed ({', '.join(f'{n} {k}' for n, k in per.items())})",
                  worst)


def last_failure(stats: Mapping) -> Figure:
    s = stats["last_failure_s"]
    return Figure("no failure" if s is None else f"{s:.1f} s after", s if s is not None else 0.0)


def last_answer(rows: Sequence[Mapping], task: str, t_action: float) -> Figure:
    """Seconds from the action to the last new connection the task answered."""
    ts = [r["t_send"] for r in rows if r["ok"] and r["task"] == task and r["t_send"] >= t_action]
    if not ts:
        return Figure("none after the action", 0.0)
    s = round(max(ts) - t_action, 2)
    return Figure(f"{s:.1f} s after", s)


def reused_ports(rows: Sequence[Mapping]) -> Figure:
    """Of the connections that reused a client port (rows in start order), the share that
    reached another task than that port's previous connection (IPVS with
    ``conn_reuse_mode=0``: none, the port's entry lives on in TIME_WAIT)."""
    last: dict[str, str] = {}
    reuses = moved = 0
    for r in rows:
        if r["ok"] not in (True, "True"):
            continue
        port, task = str(r["client_port"]), r["task"]
        if port in last:
            reuses += 1
            moved += last[port] != task
        last[port] = task
    if not reuses:
        return Figure("no port reused", None)
    share = round(moved / reuses, 2)
    return Figure(f"{moved} of {reuses} reuses moved to another task", share)


def long_lived(conns: Sequence[Mapping], victim: str) -> Figure:
    """Keep-alive connections across a scale-up and a kill: those on other tasks than the
    killed one keep their TCP connection and their task; those on it break."""
    others = [c for c in conns if c["first_task"] != victim]
    kept = sum(1 for c in others if c["tcp_connections"] == 1 and len(c["tasks"]) == 1)
    hit = [c for c in conns if c["first_task"] == victim]
    broke = sum(1 for c in hit if c["tcp_connections"] > 1 or c["failed"])
    return Figure(f"{kept}/{len(others)} on other tasks kept; {broke}/{len(hit)} on the "
                  "killed task broke", [kept == len(others), broke == len(hit)])


def ratio(mesh: float | None, direct: float | None, what: str,
          against: str = "direct") -> Figure:
    """The mesh's figure against the direct path's (named ``against``), as a ratio (e.g.
    latency 1.4x)."""
    if not mesh or not direct:
        return Figure.not_run(f"no {what} measured")
    r = round(mesh / direct, 2)
    return Figure(f"{r:.2f}x {against} ({_num(mesh)} vs {_num(direct)})", r)


def _num(x: float) -> str:
    """Three significant digits, whole numbers from 1,000 on (5434, not 5.43e+03)."""
    return f"{x:.0f}" if abs(x) >= 1000 else f"{x:.3g}"


def service_names(names: Sequence[str]) -> Figure:
    return Figure(", ".join(sorted(names)), sorted(names))


# -- the behaviours, the scenario that measures each, and its tolerance ----------------------


@dataclass(frozen=True)
class Behaviour:
    """One claim about Swarm: its ``name`` in the table, the ``scenario`` that measures it,
    the ``rule`` that compares the two figures and the ``tolerance`` in words."""

    name: str
    scenario: str
    rule: Callable[[object, object], tuple[str, str]]
    tolerance: str


BEHAVIOURS: tuple[Behaviour, ...] = (
    Behaviour("split per node", "mesh", equal, "exact rr on every node, counts within 1"),
    Behaviour("rotation start per node", "mesh", equal,
              "whether every node starts on the same task"),
    Behaviour("source the task sees", "mesh", equal, "the same address per entry node"),
    Behaviour("published → target", "mesh", equal, "the same target port"),
    Behaviour("node with no task answers", "mesh", equal, "every connection answered"),
    Behaviour("UDP split per node", "udp", equal, "exact rr on every node, none lost"),
    Behaviour("ingress subnet and VIP", "addresses", equal,
              "the same subnet, sandbox addresses, VIP and task addresses"),
    Behaviour("ingress + dnsrr refused", "dnsrr", equal, "both refuse"),
    Behaviour("stack name prefix", "stack", equal, "the same service names"),
    Behaviour("reused client port", "reuse", within(0.05),
              "share of reuses that moved, within 0.05"),
    Behaviour("long-lived connections across a scale and a kill", "longlived", equal,
              "the others all kept, the killed task's all broke"),
    Behaviour("scale up: new task answers through every node", "scale", within(2.0, 0.5),
              "within 2 s or 50 %"),
    Behaviour("kill container: most failed per node", "kill_container", within(2),
              "within 2 connections"),
    Behaviour("kill container: last failure starts", "kill_container", within(1.0, 0.5),
              "within 1 s or 50 %"),
    Behaviour("kill container: replacement answers", "kill_container", within(3.0, 0.5),
              "within 3 s or 50 %"),
    Behaviour("node down: its task leaves every rotation (last failure)", "node_down",
              within(3.0, 0.5), "within 3 s or 50 %"),
    Behaviour("node down: rescheduled task answers", "node_down", within(5.0, 0.5),
              "within 5 s or 50 %"),
    Behaviour("kill app: most failed per node", "kill_app", within(2), "within 2 connections"),
    Behaviour("kill app: last failure starts", "kill_app", within(1.0, 0.5),
              "within 1 s or 50 %"),
    Behaviour("east-west: a VIP service's name answers", "eastwest", equal, "both the VIP"),
    Behaviour("east-west: split over the tasks through the VIP", "eastwest", equal,
              "exact rr, counts within 1, none failed"),
    Behaviour("east-west: source the task sees", "eastwest", equal,
              "the same kind of address"),
    Behaviour("east-west: tasks.<service> answers", "eastwest", equal,
              "every answer the task addresses; the same order behaviour"),
    Behaviour("east-west: dnsrr service answers", "eastwest", equal,
              "every answer the task addresses; the same order behaviour"),
    Behaviour("health check: unhealthy task leaves the rotation (last answer)", "health",
              within(2.0, 0.5), "within 2 s or 50 %"),
    Behaviour("health check: failed connections meanwhile", "health", within(3),
              "within 3 connections"),
    Behaviour("health check: replacement answers", "health", within(3.0, 0.5),
              "within 3 s or 50 %"),
    *(b for order in ("stop-first", "start-first") for b in (
        Behaviour(f"rolling update {order}: order", "update", equal,
                  "the same order of slots leaving and answering"),
        Behaviour(f"rolling update {order}: gap per slot (out to in)", "update",
                  within(2.0, 0.5), "within 2 s or 50 %"),
        Behaviour(f"rolling update {order}: between the slots", "update", within(3.0, 0.5),
                  "within 3 s or 50 %"),
        Behaviour(f"rolling update {order}: failed connections", "update", within(3),
                  "within 3 connections"))),
    Behaviour("east-west VIP latency against direct", "overhead", within(0.25, 0.2),
              "ratios within 0.25 or 20 %"),
    Behaviour("east-west VIP new connections/s against direct", "overhead",
              within(0.25, 0.2), "ratios within 0.25 or 20 %"),
    *(Behaviour(f"ingress {what} against host mode, entry node {entry}", "ingress_overhead",
                within(0.25, 0.2), "ratios within 0.25 or 20 %")
      for entry in ("with the task", "without the task")
      for what in ("latency", "new connections/s")),
)
SCENARIOS: tuple[str, ...] = tuple(dict.fromkeys(b.scenario for b in BEHAVIOURS))
CI_SCENARIOS = ("mesh", "udp", "addresses", "dnsrr", "stack")
"""The subset for CI: one build per engine and no timed scenario."""


def select(names: str | None) -> tuple[str, ...]:
    """The scenarios ``--behaviours`` names (comma-separated scenario names, ``ci``, or
    ``all``), in the list's order; an unknown name raises ValueError naming it."""
    if names in (None, "", "all"):
        return SCENARIOS
    if names == "ci":
        return CI_SCENARIOS
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenario {unknown[0]!r} (known: all, ci, "
                         f"{', '.join(SCENARIOS)})")
    return tuple(s for s in SCENARIOS if s in wanted)


def rows(figures: Mapping[str, Mapping[str, Figure]],
         scenarios: Sequence[str]) -> list[dict]:
    """The table: one row per behaviour of the chosen scenarios.  ``figures``: per engine
    (``swarm``, ``emulated``), per behaviour name, its Figure (missing: not run)."""
    out = []
    for b in BEHAVIOURS:
        if b.scenario not in scenarios:
            continue
        s = figures.get("swarm", {}).get(b.name) or Figure.not_run("no figure")
        e = figures.get("emulated", {}).get(b.name) or Figure.not_run("no figure")
        verdict, rule = compare(s, e, b.rule)
        out.append({"behaviour": b.name, "scenario": b.scenario, "swarm": s.text,
                    "emulated": e.text, "verdict": verdict,
                    "detail": {"tolerance": b.tolerance, "rule": rule,
                               "swarm": s.value, "emulated": e.value}})
    return out


def counts(table: Sequence[Mapping]) -> dict[str, int]:
    """How many rows are same, differ, not compared."""
    c = Counter("differs" if r["verdict"].startswith("differs") else r["verdict"]
                for r in table)
    return {k: c.get(k, 0) for k in (SAME, "differs", NOT_COMPARED)}
