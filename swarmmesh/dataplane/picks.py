"""The balancing algorithms a service may choose (``--scheduler`` and ``x-swarmmesh``
call them schedulers, as IPVS does; Swarm's own scheduler, which places tasks on nodes,
is :mod:`swarmmesh.model.placement`), as pure functions: tasks in, the table the node's
kernel picks from out.  Nothing here knows nftables; ``kernel`` renders the
tables as maps, and the unit tests compute from the tables alone which share of client
flows moves when a task leaves or joins.

* ``rr``: Swarm's (IPVS rr): every task once, in order; the kernel's counter walks it.
* ``wrr``: IPVS's interleaved weighted round robin: over the sequence this module
  builds (a task of weight w appears w times, spread as IPVS's gcd-stepped walk
  spreads them); weight 0 takes no new connection.
* ``sh``: source hashing (IPVS sh): ``hash(client address) mod N`` over the tasks;
  a task that leaves or joins remaps about every flow (N changes).
* ``maglev``: a consistent hash: Google's Maglev lookup table (NSDI 2016, §3.4) of
  ``M`` entries (a prime, at least 100 × the tasks; kept the same while the task count
  stays under the same power of two, since a new M moves every client), filled from
  two hashes of each task's stable name; ``hash(client) mod M`` indexes it.  A task that
  leaves moves only its own flows plus a little (about 1/N in all).
* ``lc``: least connections cannot be picked per packet by nftables or OpenFlow
  without per-connection state in the controller; here it is approximated: the
  kernel's weighted walk, whose weights the testbed recomputes from the tasks' live
  connection counts (conntrack) every interval, as :func:`lc_weights` says.
"""

from __future__ import annotations

import hashlib
from math import gcd
from typing import Sequence

MAGLEV_MIN = 251                         # the smallest table, a prime


def rr(tasks: Sequence[str]) -> list[str]:
    """Swarm's round robin: every task once, in order."""
    return list(tasks)


def wrr(tasks: Sequence[str], weights: Sequence[int]) -> list[str]:
    """IPVS's weighted round robin as one cycle: the current weight steps down by the
    gcd of the weights from the largest; every task whose weight reaches it is taken,
    in order (``ip_vs_wrr.c``).  A task of weight w appears w/g times per cycle."""
    if len(tasks) != len(weights):
        raise ValueError("one weight per task")
    live = [w for w in weights if w > 0]
    if not live:
        return []
    g = 0
    for w in live:
        g = gcd(g, w)
    top = max(live)
    out = []
    cw = top
    while cw > 0:
        out += [t for t, w in zip(tasks, weights) if w >= cw]
        cw -= g
    return out


def _h(text: str, salt: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{salt}:{text}".encode()).digest()[:8], "big")


def source_hash(address: str, buckets: int) -> int:
    """The bucket of a client address (a stable hash; the kernel's is ``jhash``)."""
    return _h(address, "sh") % buckets


def sh(tasks: Sequence[str]) -> list[str]:
    """Source hashing's table: one bucket per task, indexed by hash mod N."""
    return list(tasks)


def _is_prime(n: int) -> bool:
    return n > 1 and all(n % d for d in range(2, int(n ** 0.5) + 1))


def maglev_size(tasks: int) -> int:
    """The table's size: the smallest prime >= max(251, 100 * tasks)."""
    m = max(MAGLEV_MIN, 100 * tasks)
    while not _is_prime(m):
        m += 1
    return m


def maglev_stable_size(tasks: int) -> int:
    """The size a node uses: Maglev's hash is mod M, so M must not change when a task
    leaves or joins; it is sized for the next power of two of tasks (at least 8), so
    it changes only when the service grows or shrinks past one."""
    n = 8
    while n < tasks:
        n *= 2
    return maglev_size(n)


def maglev(tasks: Sequence[str], size: int | None = None) -> list[str]:
    """Maglev's lookup table: each task, in turn, takes its next preferred free entry
    (its permutation: offset + j * skip mod M, from two hashes of its name), until the
    table is full.  Tasks named the same way get the same entries in any order."""
    if not tasks:
        return []
    m = size or maglev_size(len(tasks))
    if not _is_prime(m):
        raise ValueError(f"Maglev's table size must be prime, got {m}")
    perms = [(_h(t, "offset") % m, _h(t, "skip") % (m - 1) + 1) for t in tasks]
    nxt = [0] * len(tasks)
    table: list[str | None] = [None] * m
    filled = 0
    while True:
        for i, t in enumerate(tasks):
            offset, skip = perms[i]
            c = (offset + nxt[i] * skip) % m
            while table[c] is not None:
                nxt[i] += 1
                c = (offset + nxt[i] * skip) % m
            table[c] = t
            nxt[i] += 1
            filled += 1
            if filled == m:
                return [x for x in table if x is not None]


def table(scheduler: str, tasks: Sequence[str], weights: Sequence[int] = ()) -> list[str]:
    """The table a node's kernel picks from for ``scheduler`` (hashing schedulers are
    indexed by the client's hash, the others walked by a counter)."""
    if scheduler == "rr":
        return rr(tasks)
    if scheduler in ("wrr", "lc"):
        return wrr(tasks, list(weights) or [1] * len(tasks))
    if scheduler == "sh":
        return sh(tasks)
    if scheduler == "maglev":
        return maglev(tasks, maglev_stable_size(len(tasks)))
    raise ValueError(f"unknown scheduler {scheduler!r}")


def hashed(scheduler: str) -> bool:
    """Is the pick a hash of the client's address (else a counter's walk)?"""
    return scheduler in ("sh", "maglev")


def owner(tab: Sequence[str], address: str) -> str:
    """Which task a hashing table gives a client address."""
    return tab[source_hash(address, len(tab))]


def remap_share(before: Sequence[str], after: Sequence[str], clients: Sequence[str]) -> float:
    """The share of ``clients`` whose task changes between two hashing tables."""
    if not clients:
        return 0.0
    moved = sum(1 for c in clients if owner(before, c) != owner(after, c))
    return moved / len(clients)


def lc_weights(active: Sequence[int], scale: int = 10) -> list[int]:
    """Least connections, approximated by weights: a task's weight falls as its share
    of the live connections grows (the least loaded gets ``scale``, an idle cluster
    gives everyone the same); never 0, so every task stays in the walk."""
    if not active:
        return []
    most = max(active)
    if most == 0:
        return [1] * len(active)
    return [max(1, round(scale * (1 - a / (most + 1)))) for a in active]
