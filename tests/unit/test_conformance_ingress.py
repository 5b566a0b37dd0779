"""Conformance of the ingress path's cost: ratios of the routing mesh against a host-mode
port of the same task, the rounds' order, the verdict rule and the stack's ``edge``
(no switch, no root)."""

from __future__ import annotations

import argparse

from swarmmesh.runs import conformance as conf
from swarmmesh.runs import conformance_ew as ew
from swarmmesh.runs import conformance_ingress as ingress
from swarmmesh_experiments import conformance as exp


def test_rounds_alternate_the_order_of_the_paths():
    assert ew.alternating(3, ["direct", "with", "without"]) == [
        "direct", "with", "without", "without", "with", "direct",
        "direct", "with", "without"]
    assert ew.alternating(0, ["a", "b"]) == []


def test_each_path_is_a_ratio_against_the_direct_path_of_the_same_run():
    stats = {"direct": ew.path_stats([2.0, 2.0, 2.0]),            # 2 ms, 500/s
             "with": ew.path_stats([3.0, 3.0, 3.0]),              # 3 ms, 333/s
             "without": ew.path_stats([4.0, 4.0, None])}          # 4 ms, 250/s, 1 failed
    figs = ew.against_direct(stats, "direct", ingress.PATHS, against="host mode")
    lat = figs["ingress latency against host mode, entry node with the task"]
    rate = figs["ingress new connections/s against host mode, entry node with the task"]
    assert lat.value == 1.5 and lat.text == "1.50x host mode (3 vs 2)"
    assert rate.value == 0.67 and rate.text == "0.67x host mode (333 vs 500)"
    assert conf.ratio(2182.0, 5434.3, "rate").text == "0.40x direct (2182 vs 5434)"
    far = figs["ingress latency against host mode, entry node without the task"]
    assert far.value == 2.0 and far.text.endswith(", 1 failed")
    assert set(figs) == {b.name for b in conf.BEHAVIOURS if b.scenario == ingress.SCENARIO}


def test_a_path_with_nothing_answered_is_not_run_and_not_compared():
    stats = {"direct": ew.path_stats([2.0]), "with": ew.path_stats([None, None])}
    figs = ew.against_direct(stats, "direct", {"with": ingress.PATHS["with"]})
    f = figs["ingress latency against host mode, entry node with the task"]
    assert f.skipped == "no latency measured"
    assert conf.compare(f, conf.Figure("1.0x", 1.0), conf.within(0.25, 0.2))[0] == \
        conf.NOT_COMPARED


def test_the_verdict_is_the_vip_rows_rule_within_a_quarter_or_a_fifth():
    [rule] = {b.rule for b in conf.BEHAVIOURS
              if b.name == "ingress latency against host mode, entry node without the task"}
    assert rule(1.3, 1.5)[0] == conf.SAME                  # 0.2 apart
    assert rule(3.0, 3.5)[0] == conf.SAME                  # 14 %
    assert rule(1.0, 1.5)[0] == "differs (+0.5, +50%)"


def _args(behaviours: str) -> argparse.Namespace:
    return argparse.Namespace(behaviours=behaviours, engines="emulated", requests=12,
                              rate=20.0)


def test_edge_publishes_one_task_through_the_mesh_and_in_host_mode_only_when_chosen():
    plain, _, _ = exp.validate(_args("overhead"))
    assert "edge" not in plain.services
    cluster, chosen, _ = exp.validate(_args("ingress_overhead"))
    assert chosen == ("ingress_overhead",)
    edge = cluster.service("edge")
    assert edge.replicas == 1
    assert sorted((p.published, p.target, p.mode) for p in edge.ports) == [
        (8001, 80, "ingress"), (8002, 80, "host")]
    assert [s.name for s in cluster.ingress_services()] == ["web", "edge"]
    assert "ingress_overhead" in exp.TIMED                 # settled: the task's node read back
