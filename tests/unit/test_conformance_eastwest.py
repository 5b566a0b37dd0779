"""Conformance from inside the cluster: the east-west, health-check and overhead figures
from raw rows, and the stack the chosen scenarios deploy (no switch, no root)."""

from __future__ import annotations

import argparse

from swarmmesh.runs import conformance as conf
from swarmmesh.runs import conformance_ew as ew
from swarmmesh_experiments import conformance as exp

TASKS = ["10.0.1.3", "10.0.1.4"]


def test_a_vip_name_answers_one_address_that_is_no_tasks():
    assert ew.vip_answer([["10.0.1.2"]] * 3, TASKS).value == "the VIP"
    assert ew.vip_answer([TASKS, TASKS], TASKS).value == "not one VIP"
    assert ew.vip_answer([["10.0.1.3"]], TASKS).value == "not one VIP"   # a task's own
    assert ew.vip_answer([["10.0.1.2"], []], TASKS).text == "no answer to 1 of 2"


def test_the_east_west_split_is_exact_rr_and_counts_failures():
    f = ew.ew_split(["web.1", "web.2"] * 4)
    assert f.value == [True, True, True]
    assert f.text == "exact rr over 2 tasks, 0 failed, counts within 0"
    assert ew.ew_split(["web.1", "web.1", "web.2", "web.2"]).value == [False, True, True]
    assert ew.ew_split(["web.1", "", "web.1"]).value == [False, True, False]


def test_the_source_a_task_sees_is_named_by_its_kind():
    assert ew.ew_source(["10.0.1.9"] * 3, "10.0.1.9", "10.0.1.2").value == \
        "the client's own address"
    assert ew.ew_source(["10.0.1.2"], "10.0.1.9", "10.0.1.2").value == "the VIP"
    both = ew.ew_source(["10.0.1.2", "10.0.1.9", "172.18.0.3"], "10.0.1.9", "10.0.1.2")
    assert both.value == ["other (172.18.0.3)", "the VIP", "the client's own address"]
    assert ew.ew_source([], "10.0.1.9", None).value is None
    lbs = {"node1": "10.0.1.10", "node3": "10.0.1.11"}
    assert ew.ew_source(["10.0.1.11"], "10.0.1.9", "10.0.1.2", lbs, "node3").value == \
        "the client node's load-balancer address"
    assert ew.ew_source(["10.0.1.10"], "10.0.1.9", "10.0.1.2", lbs, "node3").value == \
        "another node's load-balancer address"


def test_the_order_of_repeated_answers():
    a, b, c = "10.0.1.3", "10.0.1.4", "10.0.1.5"
    assert ew.answer_order([[a, b]] * 4) == "one order"
    assert ew.answer_order([[a, b, c], [b, c, a], [c, a, b]]) == "rotates"
    assert ew.answer_order([[a, b], [a, b], [b, a]]) == "varies"
    assert ew.answer_order([]) == "one order"


def test_a_name_that_answers_the_task_addresses():
    f = ew.name_answers([TASKS, TASKS, TASKS[::-1]], TASKS)
    assert f.value == [True, "varies"]
    assert f.text.startswith("3/3 answers the 2 task addresses; order varies")
    assert ew.name_answers([TASKS, TASKS[:1]], TASKS).value == [False, "varies"]
    assert ew.name_answers([], TASKS).value == [False, "one order"]


def _row(task: str, t: float, ok: bool = True) -> dict:
    return {"ingress_node": "client", "task": task if ok else "", "ok": ok, "t_send": t}


def test_the_health_window_stops_at_the_replacement_under_the_same_name():
    rows = ([_row("checked.1", t / 10) for t in range(10, 52)]   # answers until 5.1 s
            + [_row("", 5.3, ok=False), _row("", 5.4, ok=False)]
            + [_row("checked.1", t) for t in (16.0, 17.0)])     # Swarm's replacement
    stats = ew.health_window(rows, "checked.1", 2.0)
    assert stats == {"last_answer_s": 3.1, "failed": 2, "last_failure_s": 3.4,
                     "second_life_s": 14.0}
    assert ew.seconds(stats["last_answer_s"], "answer").text == "3.1 s after"
    assert ew.failed(stats).text == "2 failed, the last 3.4 s after"
    quiet = ew.health_window([_row("checked.1", 1.0)], "checked.1", 2.0)
    assert quiet["last_answer_s"] is None and ew.failed(quiet).value == 0


def test_path_stats_give_median_latency_and_closed_loop_rate():
    s = ew.path_stats([1.0, 2.0, 3.0, None])
    assert s == {"median_ms": 2.0, "conn_per_s": 500.0, "failed": 1}
    assert ew.path_stats([None])["conn_per_s"] is None
    r = conf.ratio(3.0, 2.0, "latency")
    assert r.value == 1.5 and r.text.startswith("1.50x direct")


def _args(behaviours: str) -> argparse.Namespace:
    return argparse.Namespace(behaviours=behaviours, engines="emulated", requests=12,
                              rate=20.0)


def test_the_stack_gains_the_client_and_services_only_for_the_scenarios_that_call_them():
    plain, _, _ = exp.validate(_args("ci"))
    assert set(plain.services) == {"web"} and set(plain.networks) == {"ingress"}
    cluster, chosen, _ = exp.validate(_args("eastwest,health"))
    assert chosen == ("eastwest", "health")
    assert set(cluster.services) == {"web", "client", "names", "checked"}
    assert cluster.service("names").endpoint_mode == "dnsrr"
    assert all("back" in cluster.service(s).networks for s in cluster.services)
    hc = cluster.service("checked").healthcheck
    assert (hc.interval, hc.timeout, hc.retries) == (5.0, 20.0, 3)
    assert [s.name for s in cluster.ingress_services()] == ["web"]
    only, _, _ = exp.validate(_args("overhead"))
    assert set(only.services) == {"web", "client"}


def _answers(task: str, node: str, start: float, end: float) -> list[dict]:
    return [{"task": task, "task_node": node, "ok": True, "t_send": t / 10}
            for t in range(int(start * 10), int(end * 10))]


def test_a_stop_first_update_seen_from_the_answers_swarms_names_reused():
    rows = (_answers("web.1", "node1", 0, 4.0) + _answers("web.1", "node1", 7.0, 30)
            + _answers("web.2", "node2", 0, 12.0) + _answers("web.2", "node3", 15.0, 30))
    stats = ew.update_order(rows, 2.0, 30.0)
    assert stats["pattern"] == ["A out", "A in", "B out", "B in"]
    assert stats["gaps_s"] == [3.1, 3.1] and stats["between_s"] == 8.0
    assert ew.order_figure(stats).text == "A out, A in, B out, B in"
    assert ew.gap_figure(stats).value == 3.1


def test_a_start_first_update_overlaps_and_the_emulations_names_are_slots():
    rows = (_answers("web.2", "node1", 0, 6.0) + _answers("web.2.t5", "node3", 5.0, 30)
            + _answers("web.1", "node2", 0, 14.0) + _answers("web.1.t6", "node1", 13.0, 30))
    stats = ew.update_order(rows, 2.0, 30.0)
    assert stats["pattern"] == ["A in", "A out", "B in", "B out"]
    assert stats["gaps_s"] == [-0.9, -0.9]
    early = _answers("web.1", "node1", 0, 1.6) + _answers("web.1.t5", "node2", 4.0, 30)
    assert ew.update_order(early, 2.0, 30.0)["pattern"] == ["A out", "A in"]   # beat the command
    assert ew.slot_of("web.1.t6") == "web.1" and ew.slot_of("web.1") == "web.1"
    assert ew.gap_figure({"gaps_s": []}).value is None
