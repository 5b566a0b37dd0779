"""Underlay conditions as plain data: zones of nodes, the link between two zones, and what
each request crossed.  Pure (no Mininet): ``swarmmesh.testbed.zones`` carries it out.

Two zones at most: the first keeps the underlay bridge ``ul0``, the second gets ``ul1``
in the same namespace, and one WAN host joins them (a third zone would need a router,
not one more L2 link: two bridges joined twice make a loop).  The WAN link's delay,
jitter and loss are netem's where the kernel has ``sch_netem``; here it has none, so a
userspace link (``swarmmesh.agents.wanlink``) does them, and its bandwidth is a kernel
``tbf`` on each of its legs, which this kernel has (``swarmmesh doctor`` says which).
A single node's own link can be given a bandwidth (``tbf``) the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from swarmmesh.model import Cluster, InvalidConfigError

BRIDGES = ("ul0", "ul1")


@dataclass(frozen=True)
class Conditions:
    """One link's conditions, each direction: one-way delay and jitter (ms), loss
    (probability per frame), bandwidth (Mbit/s, None: unlimited)."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0
    rate_mbit: float | None = None

    def __post_init__(self) -> None:
        for name in ("delay_ms", "jitter_ms"):
            if getattr(self, name) < 0:
                raise InvalidConfigError(name.replace("_", "-"), f"must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.loss < 1:
            raise InvalidConfigError("loss", f"must be in [0, 1), got {self.loss}")
        if self.jitter_ms > self.delay_ms:
            raise InvalidConfigError("jitter-ms", f"must be <= the delay ({self.delay_ms} ms)")
        if self.rate_mbit is not None and self.rate_mbit <= 0:
            raise InvalidConfigError("rate-mbit", f"must be > 0, got {self.rate_mbit}")

    def describe(self, netem: bool) -> dict:
        return {**vars(self), "delay_jitter_loss_by": "netem" if netem else
                "userspace WAN link (swarmmesh.agents.wanlink): this kernel has no sch_netem",
                "bandwidth_by": "tbf" if self.rate_mbit else None}


def zone_of(cluster: Cluster, label: str = "zone") -> dict[str, str]:
    """Every node's and client's zone: nodes by their ``label``; clients ``c1``, ``c2``, ...
    by turn over the zones in order (c1 in the first)."""
    zones = {n.name: n.labels.get(label, "") for n in cluster.nodes}
    names = sorted(set(zones.values()))
    if "" in names:
        missing = sorted(n for n, z in zones.items() if not z)
        raise InvalidConfigError("node_label", f"nodes without a {label} label: {missing}")
    if len(names) > len(BRIDGES):
        raise InvalidConfigError("node_label", f"at most {len(BRIDGES)} zones, got {names}")
    for i, c in enumerate(cluster.clients):
        zones[c.name] = names[i % len(names)]
    return zones


def bridges(zones: dict[str, str]) -> dict[str, str]:
    """host -> the underlay bridge its leg joins (the first zone in order keeps ul0)."""
    order = sorted(set(zones.values()))
    return {h: BRIDGES[order.index(z)] for h, z in zones.items()}


def tbf(intf: str, rate_mbit: float) -> str:
    """The tc command that limits ``intf``'s egress to ``rate_mbit`` (burst: 10 ms of it,
    at least 2 frames; at most 100 ms queued)."""
    burst = max(int(rate_mbit * 1e6 / 8 * 0.01), 3200)
    return f"tc qdisc replace dev {intf} root tbf rate {rate_mbit:g}mbit burst {burst} latency 100ms"


def netem(intf: str, c: Conditions) -> str:
    """The tc command netem would take (where ``sch_netem`` exists)."""
    cmd = f"tc qdisc replace dev {intf} root netem delay {c.delay_ms:g}ms"
    if c.jitter_ms:
        cmd += f" {c.jitter_ms:g}ms"
    if c.loss:
        cmd += f" loss {c.loss * 100:g}%"
    if c.rate_mbit:
        cmd += f" rate {c.rate_mbit:g}mbit"
    return cmd


def crossings(client_zone: str, entry_zone: str, task_zone: str, via_zone: str | None = None
              ) -> int:
    """How many times one request crossed between zones: client -> (a balancer in
    ``via_zone``) -> the entry node -> the task."""
    hops = [client_zone] + ([via_zone] if via_zone else []) + [entry_zone, task_zone]
    return sum(1 for x, y in zip(hops, hops[1:]) if x != y)
