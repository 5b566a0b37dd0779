"""The pick of a task as nftables text, for ingress ports and VIPs alike (pure): the
service's table (:mod:`picks`), walked by the kernel's counter or indexed by a hash of
the client's address, and ClientIP session affinity."""

from __future__ import annotations

from swarmmesh.dataplane import picks
from swarmmesh.model import Task
from swarmmesh.model.balancing import Balancing

HASH_SEED = 0x5EED                   # one seed on every node: a client hashes alike everywhere


def pick_expr(balancing: Balancing, size: int) -> str:
    """What indexes the table: the kernel's counter, or a hash of the client's address."""
    if picks.hashed(balancing.scheduler):
        return f"jhash ip saddr mod {size} seed {HASH_SEED:#x}"
    return f"numgen inc mod {size}"


def pick_table(balancing: Balancing, tasks: list[Task],
               lc: dict[str, int] | None = None) -> list[Task]:
    """The tasks in the order the kernel's map holds them (a task may appear many
    times): rr as Swarm, or the service's scheduler (:mod:`picks`); ``lc``: the
    weights this node's live connections give (task name -> weight)."""
    if balancing.scheduler == "rr":
        return list(tasks)
    by_name = {t.name: t for t in tasks}
    if balancing.scheduler == "wrr":
        weights = [balancing.weight(t.slot) for t in tasks]
    elif balancing.scheduler == "lc":
        weights = [(lc or {}).get(t.name, 1) for t in tasks]
    else:
        weights = []
    return [by_name[n] for n in picks.table(balancing.scheduler,
                                            [t.name for t in tasks], weights)]


def dnat_pick(head: str, table: list[Task], balancing: Balancing, address,
              to_port: str = "") -> str:
    """One rule that DNATs what ``head`` matches to the task the counter or the client's
    hash names in ``table`` (``to_port``: the port part, if the port changes)."""
    if not table:
        return f"{head} drop"
    entries = ", ".join(f"{k} : {address(t)}" for k, t in enumerate(table))
    return f"{head} dnat to {pick_expr(balancing, len(table))} map {{ {entries} }}{to_port}"


def sticky_rules(set_of, head: str, tasks: list[Task], balancing: Balancing, to
                 ) -> tuple[list[str], list[str], dict[str, list[str]]]:
    """Session affinity for what ``head`` matches: ``set_of(task)`` names a task's set
    and chain, ``to(task)`` what follows ``dnat to``."""
    timeout = f"{int(balancing.affinity)}s"
    sets = [f" set {set_of(t)} {{ type ipv4_addr; flags dynamic,timeout; "
            f"timeout {timeout}; }}" for t in tasks]
    rules_ = [f"{head} ip saddr @{set_of(t)} update @{set_of(t)} "
              f"{{ ip saddr }} dnat to {to(t)}" for t in tasks]
    table = pick_table(balancing, tasks)
    if not table:
        return sets, rules_ + [f"{head} drop"], {}
    jumps = ", ".join(f"{k} : jump {set_of(t)}" for k, t in enumerate(table))
    rules_.append(f"{head} {pick_expr(balancing, len(table))} vmap {{ {jumps} }}")
    chains = {set_of(t): [f"update @{set_of(t)} {{ ip saddr }}", f"{head} dnat to {to(t)}"]
              for t in tasks}
    return sets, rules_, chains
