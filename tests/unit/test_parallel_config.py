"""Hosts are configured several at a time, each by one thread; the build waits for every
one and then raises the first failure in host order (no switch, no root)."""

from __future__ import annotations

import threading
import time

import pytest

from swarmmesh.testbed import parallel


class FakeHost:
    def __init__(self, name, intf=True, fail=False, delay=0.05, log=None):
        self.name, self.intf, self.fail, self.delay = name, intf, fail, delay
        self.log = log if log is not None else []
        self.params: dict = {}

    def defaultIntf(self):
        return "eth0" if self.intf else None

    def configDefault(self, **more):
        self.log.append(("start", self.name, threading.get_ident(), time.monotonic()))
        time.sleep(self.delay)
        self.params.update(more)
        self.log.append(("end", self.name, threading.get_ident(), time.monotonic()))
        if self.fail:
            raise RuntimeError(f"{self.name}: broken")


def test_hosts_are_configured_side_by_side_and_all_of_them():
    log: list = []
    hosts = [FakeHost(f"h{i}", log=log, delay=0.2) for i in range(8)]
    t0 = time.monotonic()
    parallel.configure_all(hosts, 8)
    assert time.monotonic() - t0 < 0.2 * 8 / 2          # serially it would take 1.6 s
    assert sorted(n for ev, n, *_ in log if ev == "end") == sorted(h.name for h in hosts)
    # each host by exactly one thread, start to end
    for h in hosts:
        (s, *_), = [e for e in log if e[1] == h.name and e[0] == "start"]
        threads = {e[2] for e in log if e[1] == h.name}
        assert len(threads) == 1


def test_a_host_without_an_interface_gets_no_address():
    h = FakeHost("client", intf=False)
    parallel.configure_all([h], 4)
    assert h.params == {"ip": None, "mac": None}


def test_every_host_finishes_before_the_first_failure_is_raised():
    log: list = []
    hosts = [FakeHost("a", log=log, delay=0.01), FakeHost("b", log=log, fail=True, delay=0.05),
             FakeHost("c", log=log, fail=True, delay=0.01), FakeHost("d", log=log, delay=0.3)]
    with pytest.raises(RuntimeError, match="^b: broken"):      # host order, not time order
        parallel.configure_all(hosts, 4)
    assert {n for ev, n, *_ in log if ev == "end"} == {"a", "b", "c", "d"}


def test_one_worker_is_mininets_own_order():
    log: list = []
    hosts = [FakeHost(f"h{i}", log=log, delay=0) for i in range(5)]
    parallel.configure_all(hosts, 1)
    assert [n for ev, n, *_ in log if ev == "start"] == [h.name for h in hosts]


def test_workers_from_the_environment(monkeypatch):
    monkeypatch.delenv(parallel.WORKERS_ENV, raising=False)
    assert parallel.workers() == parallel.DEFAULT_WORKERS
    monkeypatch.setenv(parallel.WORKERS_ENV, "3")
    assert parallel.workers() == 3
    for bad in ("0", "-2", "many"):
        monkeypatch.setenv(parallel.WORKERS_ENV, bad)
        with pytest.raises(ValueError, match=parallel.WORKERS_ENV):
            parallel.workers()


# -- the build side by side: which links may be made at once -----------------------------


def _check_groups(links, first, groups):
    assert sorted(first + [i for g in groups for i in g]) == list(range(len(links)))
    for g in groups:
        assert g == sorted(g)                      # each group in Mininet's own order
    hosts = [{h for i in g for h in links[i]} for g in groups]
    for i, a in enumerate(hosts):                  # no host in two groups
        for b in hosts[i + 1:]:
            assert not a & b


def test_the_underlays_links_come_first_then_one_group_per_node_and_its_tasks():
    links = [("node1", "underlay"), ("node2", "underlay"), ("c1", "underlay"),
             ("t1", "node1"), ("t2", "node2"), ("t3", "node1"), ("t3", "node1"),
             ("t4", "node2")]
    first, groups = parallel.link_groups(links)
    assert first == [0, 1, 2]
    assert sorted(groups) == [[3, 5, 6], [4, 7]]
    _check_groups(links, first, groups)


def test_a_host_linked_to_two_nodes_joins_their_groups():
    links = [("a", "hub"), ("b", "hub"), ("c", "hub"), ("x", "a"), ("x", "b"), ("y", "c")]
    first, groups = parallel.link_groups(links)
    assert first == [0, 1, 2]
    assert sorted(groups) == [[3, 4], [5]]
    _check_groups(links, first, groups)


def test_no_links_no_groups():
    assert parallel.link_groups([]) == ([], [])


def test_run_all_returns_in_order_and_raises_the_first_failure_in_order():
    assert parallel.run_all(lambda x: x * 2, [3, 1, 2], 3) == [6, 2, 4]

    def f(x):
        time.sleep(0.05 * (3 - x))
        raise ValueError(str(x))

    with pytest.raises(ValueError, match="^0$"):
        parallel.run_all(f, [0, 1, 2], 3)


def test_on_a_real_topology_every_host_gets_its_links_in_mininets_own_order(tmp_path):
    """So every interface gets the port Mininet's serial build gives it (a node's
    underlay leg stays its first, default, interface)."""
    from swarmmesh.model import Cluster
    from swarmmesh.testbed.runtime import RunState
    from swarmmesh.testbed.topology import SwarmTopo
    cluster = Cluster.from_stack({
        "services": {"web": {"deploy": {"replicas": 7}, "ports": ["8080:80"],
                             "networks": ["back"]},
                     "db": {"deploy": {"replicas": 2}, "networks": ["back"],
                            "ports": [{"target": 81, "published": 81, "mode": "host"}]}},
        "networks": {"back": {}}}, nodes=3)
    topo = SwarmTopo(cluster=cluster, state=RunState("t", root=tmp_path), datapath="netdev")
    links = [(a, b) for a, b, _ in topo.links(sort=True, withInfo=True)]
    first, groups = parallel.link_groups(links)
    assert len(groups) == 3                         # one per node, side by side
    _check_groups(links, first, groups)
    order = first + [i for g in groups for i in g]
    for h in topo.hosts():
        assert [i for i in order if h in links[i]] == [i for i, l in enumerate(links) if h in l]
