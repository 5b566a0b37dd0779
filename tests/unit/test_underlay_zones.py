"""Underlay conditions from the model alone: zones, bridges, the tc commands, crossings,
zone-aware HAProxy pools, and the userspace WAN link's schedule (delay, jitter, loss, FIFO)."""

from __future__ import annotations

import random

import pytest

from swarmmesh.agents.wanlink import Schedule
from swarmmesh.dataplane import extlb as lbplan, zones as zoneplan
from swarmmesh.model import Cluster, InvalidConfigError
from swarmmesh.model.nodes import NodeAttrs, NodeSetup

STACK = {"services": {"app": {"deploy": {"replicas": 2}, "ports": [
    {"target": 80, "published": 8000}, {"target": 80, "published": 8080, "mode": "host"}]}}}


def _cluster(labels):
    setup = NodeSetup(count=len(labels), attrs={
        i: NodeAttrs(role="manager" if i == 1 else "worker", labels=lab)
        for i, lab in enumerate(labels, 1)})
    return Cluster.from_stack(STACK, nodes=setup, clients=2, implicit_network=False)


@pytest.fixture
def two():
    return _cluster([{"zone": "a"}, {"zone": "b"}, {"zone": "a"}, {"zone": "b"}])


def test_zones_and_bridges(two):
    z = zoneplan.zone_of(two)
    assert z == {"node1": "a", "node2": "b", "node3": "a", "node4": "b", "c1": "a", "c2": "b"}
    assert zoneplan.bridges(z) == {"node1": "ul0", "node2": "ul1", "node3": "ul0",
                                   "node4": "ul1", "c1": "ul0", "c2": "ul1"}


@pytest.mark.parametrize("labels, words", [
    ([{"zone": "a"}, {}], "without a zone label"),
    ([{"zone": "a"}, {"zone": "b"}, {"zone": "c"}], "at most 2 zones"),
])
def test_bad_zones_name_the_field(labels, words):
    with pytest.raises(InvalidConfigError, match=words):
        zoneplan.zone_of(_cluster(labels))


@pytest.mark.parametrize("kw, field", [({"delay_ms": -1}, "delay-ms"), ({"loss": 1.0}, "loss"),
                                       ({"delay_ms": 1, "jitter_ms": 2}, "jitter-ms"),
                                       ({"rate_mbit": 0}, "rate-mbit")])
def test_bad_conditions_name_the_field(kw, field):
    with pytest.raises(InvalidConfigError, match=field):
        zoneplan.Conditions(**kw)


def test_tc_commands():
    assert zoneplan.tbf("wan1-a", 10) == ("tc qdisc replace dev wan1-a root tbf rate 10mbit "
                                          "burst 12500 latency 100ms")
    assert zoneplan.tbf("x", 1).split()[-3] == "3200"          # at least two frames
    c = zoneplan.Conditions(10, 1, 0.01, 50)
    assert zoneplan.netem("wan1-a", c) == ("tc qdisc replace dev wan1-a root netem delay 10ms "
                                           "1ms loss 1% rate 50mbit")
    assert c.describe(False)["delay_jitter_loss_by"].startswith("userspace WAN link")


def test_crossings():
    assert zoneplan.crossings("a", "b", "a") == 2                # the mesh's worst case
    assert zoneplan.crossings("a", "a", "b") == 1
    assert zoneplan.crossings("a", "a", "a", via_zone="a") == 0
    assert zoneplan.crossings("b", "a", "a", via_zone="b") == 1  # a backup in the other zone


def test_zone_pools_own_zone_first_the_others_as_backups(two):
    z = zoneplan.zone_of(two)
    pools = {p.name: p for p in lbplan.zone_pools(two, "app", z, "b")}
    assert [(s.name, s.backup) for s in pools["mesh"].servers] == [
        ("node2", False), ("node4", False), ("node1", True), ("node3", True)]
    assert pools["host"].port == 8080
    text = lbplan.config(list(pools.values()), "192.168.99.253")
    assert "    server node1 192.168.99.1:8080 backup\n" in text


def test_wan_schedule_delay_jitter_loss_and_order():
    s = Schedule(0.010)
    assert s.due(1.0) == pytest.approx(1.010)
    j = Schedule(0.010, 0.002, rng=random.Random(1))
    dues = [j.due(1.0 + k * 0.0001) for k in range(200)]
    assert dues == sorted(dues)                                    # FIFO
    assert all(1.008 <= d - 0.0001 * k <= 1.0121 or d == dues[k - 1]
               for k, d in enumerate(dues))
    lossy = Schedule(0.0, loss=0.25, rng=random.Random(2))
    lost = sum(lossy.due(0.0) is None for _ in range(4000))
    assert 900 < lost < 1100
    with pytest.raises(ValueError):
        Schedule(-1)
