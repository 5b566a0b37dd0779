"""Who sends what to whom: the spoofed sources and the requests of a run.

A *source plan* gives every request its own spoofed source address and port,
drawn without repetition from a seeded RNG inside ``SPOOF_PREFIX``
(198.18.0.0/15, the RFC 2544 benchmarking range: nothing in the testbed
uses it).  Request ``i`` goes to target ``i % len(targets)`` (a node's
underlay address and a published port), so every node sees the same
number of new flows, interleaved over the whole run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Sequence

SPOOF_PREFIX = IPv4Network("198.18.0.0/15")
PORT_RANGE = (1024, 65535)


@dataclass(frozen=True)
class Target:
    """A published port on a node's underlay address, and the node's MAC."""
    node: str
    ip: str
    mac: str
    port: int


@dataclass(frozen=True)
class Request:
    seq: int
    src_ip: str
    src_port: int
    target: Target
    isn: int = 0             # TCP initial sequence number

    @property
    def key(self) -> tuple[str, int]:
        return (self.src_ip, self.src_port)


def source_plan(count: int, seed: int, prefix: IPv4Network = SPOOF_PREFIX,
                ports: tuple[int, int] = PORT_RANGE) -> list[tuple[str, int]]:
    """``count`` distinct (address, port) pairs from ``prefix``, reproducible
    for a seed.  The network and broadcast addresses are never used; pairs
    are drawn without replacement, so thousands of sources are mostly
    distinct addresses as well."""
    hosts = prefix.num_addresses - 2
    nports = ports[1] - ports[0] + 1
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if count > hosts * nports:
        raise ValueError(f"{count} sources do not fit {prefix} x ports {ports}")
    base = int(prefix.network_address) + 1
    rng = random.Random(seed)
    return [(str(IPv4Address(base + k // nports)), ports[0] + k % nports)
            for k in rng.sample(range(hosts * nports), count)]


def plan_requests(targets: Sequence[Target], sources: int, seed: int,
                  prefix: IPv4Network = SPOOF_PREFIX) -> list[Request]:
    """One request per source; request ``i`` goes to ``targets[i % n]``."""
    if not targets:
        raise ValueError("at least one target is needed")
    rng = random.Random(f"isn-{seed}")
    return [Request(i, ip, port, targets[i % len(targets)], rng.getrandbits(32))
            for i, (ip, port) in enumerate(source_plan(sources, seed, prefix))]
