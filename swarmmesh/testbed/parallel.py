"""Hosts configured several at a time (a 500-task build spent 41 of its 51 s
waiting on one host's shell at a time).

Mininet configures its hosts one after the other (``Mininet.configHosts``).  A swarm
node's configuration is a few round trips to its own shell (links, VXLAN, nftables, its
vswitchd and DNS) and a task's is one round trip and a process start; most of that time is
the host's shell and the processes it starts, not this process.  Every host has its own
shell, and no host's configuration reads another's (the links they configure all exist
once the topology is built), so they can run side by side: each host is configured by
exactly one thread, and this process waits for all of them before going on, even when one
fails, so that nothing is still being configured when the teardown starts.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable

# Hosts configured at once.  Measured on 2 cores (50 nodes x 10 tasks): more threads than
# this add nothing, the shells' processes then compete for the CPUs.
WORKERS_ENV = "SWARMMESH_CONFIG_WORKERS"
DEFAULT_WORKERS = 8


def workers() -> int:
    """How many hosts to configure at once (``SWARMMESH_CONFIG_WORKERS``, default 8;
    1 is Mininet's own serial order)."""
    raw = os.environ.get(WORKERS_ENV, "")
    if not raw:
        return DEFAULT_WORKERS
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{WORKERS_ENV}: a whole number of at least 1, not {raw!r}")
    return n


def configure(host) -> None:
    """One host as ``Mininet.configHosts`` configures it."""
    if host.defaultIntf():
        host.configDefault()
    else:                                   # no interface: nothing to address
        host.configDefault(ip=None, mac=None)


def configure_all(hosts: Iterable, n_workers: int) -> None:
    """Configure ``hosts``, ``n_workers`` at a time, in their order; waits for every
    one, then raises the first failure (in host order), if any."""
    hosts = list(hosts)
    if n_workers <= 1:
        for h in hosts:
            configure(h)
        return
    pool = ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="config")
    try:
        futures = [pool.submit(configure, h) for h in hosts]
        errors = [f.exception() for f in futures]
    except BaseException:                   # Ctrl-C / SIGTERM: start no more hosts
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    first = next((e for e in errors if e is not None), None)
    if first is not None:
        raise first


def mininet_class(n_workers: int):
    """Mininet, with its hosts configured ``n_workers`` at a time."""
    from mininet.net import Mininet

    class ParallelConfigMininet(Mininet):
        def configHosts(self):
            configure_all(self.hosts, n_workers)

    return ParallelConfigMininet
