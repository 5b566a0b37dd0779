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
from typing import Callable, Iterable, Sequence

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


def run_all(fn: Callable, items: Sequence, n_workers: int) -> list:
    """``fn`` of every item, ``n_workers`` at a time; waits for every one, then raises
    the first failure (in the items' order), if any; else the results in that order."""
    if n_workers <= 1:
        return [fn(x) for x in items]
    pool = ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="build")
    try:
        futures = [pool.submit(fn, x) for x in items]
        errors = [f.exception() for f in futures]
    except BaseException:                   # Ctrl-C / SIGTERM: start no more
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    first = next((e for e in errors if e is not None), None)
    if first is not None:
        raise first
    return [f.result() for f in futures]


def configure_all(hosts: Iterable, n_workers: int) -> None:
    """Configure ``hosts``, ``n_workers`` at a time, in their order; waits for every
    one, then raises the first failure (in host order), if any."""
    run_all(configure, list(hosts), n_workers)


def link_groups(links: Sequence[tuple[str, str]]) -> tuple[list[int], list[list[int]]]:
    """The links (their two hosts each) as Mininet would make them one after the other,
    cut for making them side by side: first, one by one, every link of the hub (the
    underlay); then groups that share no host (a node, its tasks and
    their links), each in its own order. Indices into ``links``; every host's links keep
    their order, so its interfaces get the ports they would get serially."""
    near: dict[str, set[str]] = {}
    for a, b in links:
        near.setdefault(a, set()).add(b)
        near.setdefault(b, set()).add(a)
    # The hub: the host with the most neighbours that have neighbours of their own (the
    # underlay's are nodes; a node's are tasks, linked to it alone).
    hub = max(near, key=lambda h: sum(len(near[n]) > 1 for n in near[h]), default=None)
    first = [i for i, (a, b) in enumerate(links) if hub in (a, b)]
    parent: dict[str, str] = {}

    def root(h: str) -> str:
        while parent.setdefault(h, h) != h:
            parent[h] = parent[parent[h]]
            h = parent[h]
        return h

    rest = [i for i, (a, b) in enumerate(links) if hub not in (a, b)]
    for i in rest:
        parent[root(links[i][0])] = root(links[i][1])
    groups: dict[str, list[int]] = {}
    for i in rest:
        groups.setdefault(root(links[i][0]), []).append(i)
    return first, list(groups.values())


def mininet_class(n_workers: int, build: bool = False):
    """Mininet, with its hosts configured ``n_workers`` at a time; with ``build``, also
    its hosts (their shells) started and its links made side by side
    (:func:`build_side_by_side`; hosts of this machine only)."""
    from mininet.net import Mininet

    class ParallelConfigMininet(Mininet):
        def configHosts(self):
            configure_all(self.hosts, n_workers)

        def buildFromTopo(self, topo=None):
            if not build or n_workers <= 1 or self.controller or topo.switches():
                return super().buildFromTopo(topo)
            build_side_by_side(self, topo, n_workers)

    return ParallelConfigMininet


def build_side_by_side(net, topo, n_workers: int) -> None:
    """Mininet's ``buildFromTopo`` for a topology of hosts and links only: every host's
    shell started ``n_workers`` at a time (a shell start is a namespace and a process,
    about 9 ms each here), then the links of :func:`link_groups`. ``net.hosts`` and
    ``net.links`` end in the topology's order, as Mininet's own build leaves them."""
    names = list(topo.hosts())
    params = [host_params(net, topo.nodeInfo(n)) for n in names]     # (in order: nextIP)
    made_hosts: dict[int, object] = {}

    def new_host(i: int) -> None:
        made_hosts[i] = _new_host(net, names[i], params[i])

    try:
        run_all(new_host, range(len(names)), n_workers)
    finally:                          # (the teardown stops whatever was started)
        for i in sorted(made_hosts):
            net.hosts.append(made_hosts[i])
            net.nameToNode[names[i]] = made_hosts[i]
    links = list(topo.links(sort=True, withInfo=True))
    first, groups = link_groups([(a, b) for a, b, _ in links])
    made: dict[int, object] = {}
    for i in first:
        made[i] = net.addLink(**links[i][2])

    def group(idx: list[int]) -> None:
        for i in idx:
            made[i] = net.addLink(**links[i][2])

    run_all(group, groups, n_workers)
    net.links = [made[i] for i in range(len(links))]


def host_params(net, params: dict) -> dict:
    """A host's parameters as ``Mininet.addHost`` completes them (the next address of
    the net's range unless given; the net's MACs and cores if it sets them)."""
    from mininet.util import ipAdd, macColonHex
    defaults = {"ip": ipAdd(net.nextIP, ipBaseNum=net.ipBaseNum, prefixLen=net.prefixLen)
                + f"/{net.prefixLen}"}
    if net.autoSetMacs:
        defaults["mac"] = macColonHex(net.nextIP)
    if net.autoPinCpus:
        defaults["cores"] = net.nextCore
        net.nextCore = (net.nextCore + 1) % net.numCores
    net.nextIP += 1
    return {**defaults, **params}


def _new_host(net, name: str, params: dict):
    params = dict(params)
    cls = params.pop("cls", None) or net.host
    return cls(name, **params)
