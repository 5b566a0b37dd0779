"""Least connections, approximated: every ``interval`` seconds each node
counts its live connections per task in its own conntrack (what the node balanced, as
IPVS lc counts its own), and the weights :func:`picks.lc_weights` gives them go
into that node's weighted table (``kernel.table(..., lc=...)``), reloaded only when they
change.  Between two counts the node walks the table as a wrr would: a burst of new
connections within one interval is spread by the last weights, not by the live counts.
"""

from __future__ import annotations

import subprocess
import threading

from swarmmesh.dataplane import picks
from swarmmesh.model import Cluster


def parse_counts(conntrack_text: str, addresses: dict[str, str]) -> dict[str, int]:
    """Established TCP connections per task from ``conntrack -L`` lines, by the reply
    direction's source (the task's address after the DNAT); ``addresses``: address -> task."""
    counts = {name: 0 for name in addresses.values()}
    for line in conntrack_text.splitlines():
        if "ESTABLISHED" not in line:
            continue
        sources = [f[4:] for f in line.split() if f.startswith("src=")]
        if len(sources) >= 2 and sources[1] in addresses:
            counts[addresses[sources[1]]] += 1
    return counts


def lc_services(cluster: Cluster) -> list[str]:
    """The services balanced by lc in a node's kernel: on a published port or a VIP."""
    return [s.name for s in cluster.services.values() if s.balancing.scheduler == "lc"
            and (s.ingress_ports() or s.vips)]


def task_addresses(cluster: Cluster) -> dict[str, str]:
    """Every address a node's kernel may DNAT to (ingress and VIP networks) -> its task."""
    return {str(a): t.name for t in cluster.tasks for a in t.addresses.values()}


def weights(cluster: Cluster, counts: dict[str, int]) -> dict[str, int]:
    """Task name -> weight, for every lc service's tasks."""
    out: dict[str, int] = {}
    for svc in lc_services(cluster):
        names = [t.name for t in cluster.tasks_of(svc)]
        out.update(zip(names, picks.lc_weights([counts.get(n, 0) for n in names])))
    return out


class LeastConnections:
    """The testbed's lc loop (a thread; a no-op when no service uses lc)."""

    def __init__(self, tb, interval: float = 1.0) -> None:
        self.tb, self.interval = tb, interval
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="lc", daemon=True)
        self.rounds = 0

    def __enter__(self) -> "LeastConnections":
        if lc_services(self.tb.cluster):
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join(timeout=5)

    def _loop(self) -> None:
        while not self.stopping.wait(self.interval):
            self.once()

    def once(self) -> None:
        """Count on every node and reload the nodes whose weights changed (against the
        model each node's kernel follows now, never ahead of its switches)."""
        for node in self.tb.cluster.nodes:
            host = self.tb.host(node.name)
            loaded = host.nft_cluster or self.tb.cluster
            addresses = task_addresses(loaded)
            proc = host.popen(["conntrack", "-L", "-p", "tcp"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
            out, _ = proc.communicate(timeout=10)
            host.sync_nft(lc=weights(loaded, parse_counts(out, addresses)))
        self.rounds += 1
