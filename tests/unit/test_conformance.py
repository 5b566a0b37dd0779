"""Conformance: the verdicts, the figures drawn from raw rows, the scenario list, the table
and its figure, and the experiment's flags (no switch, no root)."""

from __future__ import annotations

import argparse
import json

import pytest

from swarmmesh.model import InvalidConfigError
from swarmmesh.runs import conformance as conf
from swarmmesh_experiments import conformance as exp


def _rows(node: str, tasks: list[str], seen: str = "10.0.0.2", ok: bool = True) -> list[dict]:
    return [{"ingress_node": node, "seq": i, "task": t, "seen_source": seen, "port": 80,
             "ok": ok, "error": "" if ok else "refused"} for i, t in enumerate(tasks)]


# -- verdicts ------------------------------------------------------------------------------

def test_equal_says_same_or_differs_naming_both_figures():
    assert conf.equal("10.0.0.0/24", "10.0.0.0/24") == (conf.SAME, "equal")
    verdict, _ = conf.equal(["shop_web"], ["web"])
    assert verdict == "differs (shop_web on Swarm; web emulated)"
    verdict, _ = conf.equal(["A out", "B out"], ["A out", "A in"])
    assert verdict == "differs (A out, B out on Swarm; A out, A in emulated)"
    assert conf.equal([True, False], [True, True])[0] == \
        "differs ([True, False] on Swarm; [True, True] emulated)"


@pytest.mark.parametrize("swarm, emulated, verdict", [
    (14.0, 14.0, "same"),
    (14.0, 16.9, "same"),                 # within 3 s
    (14.0, 20.0, "same"),                 # 6 s but within 50 % of 20
    (14.0, 2.1, "differs (-11.9, -85%)"),
    (0.0, 5.0, "differs (+5)"),           # no percentage against zero
])
def test_within_states_the_difference_and_its_percentage(swarm, emulated, verdict):
    assert conf.within(3.0, 0.5)(swarm, emulated)[0] == verdict
    assert conf.within(3.0, 0.5)(swarm, emulated)[1] == "within 3 or 50%"


def test_a_side_not_run_is_never_compared():
    s = conf.Figure.not_run("no ip_vs in this kernel")
    e = conf.Figure("1.0 s", 1.0)
    assert s.text == "not run: no ip_vs in this kernel" and s.value is None
    assert conf.compare(s, e, conf.within(1.0)) == (conf.NOT_COMPARED, "Swarm not run")
    assert conf.compare(e, s, conf.equal) == (conf.NOT_COMPARED, "emulated not run")


# -- figures from rows ---------------------------------------------------------------------

def test_exact_round_robin():
    assert conf.exact_rr(["a", "b", "a", "b"])
    assert conf.exact_rr(["b", "c", "a", "b", "c", "a", "b"])
    assert not conf.exact_rr(["a", "a", "b", "b"])
    assert not conf.exact_rr(["a", "", "a"])
    assert not conf.exact_rr([])


def test_split_and_rotation_starts_per_node():
    rows = _rows("node1", ["app.1", "app.2"] * 3) + _rows("node2", ["app.2", "app.1"] * 3)
    split = conf.split_per_node(rows)
    assert split.value == [True, True] and split.text.startswith("exact rr on 2/2 nodes")
    starts = conf.rotation_starts(rows)
    assert starts.value == "own start per node"
    assert starts.text == "node1 app.1, node2 app.2 (own start per node)"
    same = conf.rotation_starts(_rows("node1", ["app.1", "app.2"]) +
                                _rows("node2", ["app.1", "app.2"]))
    assert same.value == "one start for every node"
    broken = conf.split_per_node(_rows("node1", ["app.1", "app.1", "app.2"]))
    assert broken.value == [False, True]


def test_seen_sources_target_and_the_node_without_a_task():
    rows = _rows("node1", ["app.1"] * 2, "10.0.0.2") + _rows("node3", ["app.2"] * 2, "10.0.0.4")
    assert conf.seen_sources(rows).value == {"node1": ["10.0.0.2"], "node3": ["10.0.0.4"]}
    assert conf.target_ports(rows, 8000).text == "8000 → 80"
    assert conf.node_without_task(rows, ["node3"]).value is True
    failing = rows + _rows("node3", ["", ""], ok=False)
    assert conf.node_without_task(failing, ["node3"]).text == "2/4 answered through node3"
    assert conf.node_without_task(rows, []).skipped == "every node runs a task"


def test_timed_figures_on_the_loads_clock():
    rows = [{"ingress_node": n, "task": t, "ok": ok, "t_send": ts, "error": "" if ok else "refused"}
            for n, t, ok, ts in [
                ("node1", "app.1", True, 1.0), ("node2", "app.1", False, 2.2),
                ("node1", "app.1", False, 2.9), ("node1", "app.3", True, 6.5),
                ("node2", "app.3", True, 7.0), ("node3", "app.3", True, 9.0)]]
    new = conf.first_answer_everywhere(rows, "app.3", 2.0, ["node1", "node2", "node3"])
    assert new.value == 7.0 and new.text == "7.0 s (app.3)"
    partial = conf.first_answer_everywhere(rows, "app.3", 2.0, ["node1", "node4"])
    assert partial.value is None and "node4" in partial.text
    stats = conf.failures_after(rows, 2.0, ["node1", "node2", "node3"])
    assert stats == {"failed": 2, "per_node": {"node1": 1, "node2": 1, "node3": 0},
                     "last_failure_s": 0.9, "errors": {"refused": 2}}
    assert conf.failed_per_node(stats).value == 1
    assert conf.last_failure(stats).value == 0.9
    assert conf.last_failure(conf.failures_after(rows, 10.0, ["node1"])).text == "no failure"


def test_refusal_and_names():
    assert conf.refused("port published with ingress mode can't be used with dnsrr mode"
                        ).value == "refused"
    assert conf.refused(None).value == "accepted"
    assert conf.service_names(["web", "api"]).value == ["api", "web"]


# -- the scenario list and the table -------------------------------------------------------

def test_every_behaviour_of_a_scenario_has_its_own_name_and_tolerance():
    names = [b.name for b in conf.BEHAVIOURS]
    assert len(names) == len(set(names))
    assert all(b.tolerance and b.scenario in conf.SCENARIOS for b in conf.BEHAVIOURS)
    assert set(conf.CI_SCENARIOS) <= set(conf.SCENARIOS)
    assert set(exp.SCENARIOS) == set(conf.SCENARIOS)  # each listed scenario is carried out


def test_select_by_name_keeps_the_lists_order_and_names_an_unknown_one():
    assert conf.select(None) == conf.SCENARIOS and conf.select("all") == conf.SCENARIOS
    assert conf.select("ci") == conf.CI_SCENARIOS
    assert conf.select("udp,mesh") == ("mesh", "udp")
    with pytest.raises(ValueError, match="unknown scenario 'mesh2'"):
        conf.select("mesh,mesh2")


def test_rows_give_one_row_per_behaviour_with_both_figures_and_the_verdict():
    figs = {"swarm": {"stack name prefix": conf.service_names(["shop_web"])},
            "emulated": {"stack name prefix": conf.service_names(["web"]),
                         "ingress + dnsrr refused": conf.refused("no")}}
    table = conf.rows(figs, ("dnsrr", "stack"))
    assert [r["behaviour"] for r in table] == ["ingress + dnsrr refused", "stack name prefix"]
    dnsrr, stack = table
    assert dnsrr["swarm"] == "not run: no figure" and dnsrr["verdict"] == conf.NOT_COMPARED
    assert stack["swarm"] == "shop_web" and stack["emulated"] == "web"
    assert stack["verdict"].startswith("differs")
    assert set(stack) == {"behaviour", "scenario", "swarm", "emulated", "verdict", "detail"}
    json.dumps(table)                                    # summary.json-ready
    assert conf.counts(table) == {"same": 0, "differs": 1, "not compared": 1}


# -- the experiment's flags and its figure ---------------------------------------------------

def _args(**kw) -> argparse.Namespace:
    base = {"behaviours": "all", "engines": "swarm,emulated", "requests": 12, "rate": 20.0}
    return argparse.Namespace(**{**base, **kw})


@pytest.mark.parametrize("kw, field", [
    ({"behaviours": "mesh,nope"}, "behaviours"), ({"engines": "kvm"}, "engines"),
    ({"engines": ""}, "engines"), ({"requests": 1}, "requests"), ({"rate": 0}, "rate")])
def test_bad_flags_are_refused_naming_the_flag(kw, field):
    with pytest.raises(InvalidConfigError) as err:
        exp.validate(_args(**kw))
    assert err.value.field == field


def test_the_cluster_is_the_shop_stacks_web_on_three_nodes():
    cluster, chosen, engines = exp.validate(_args(behaviours="ci", engines="emulated"))
    assert chosen == conf.CI_SCENARIOS and engines == ("emulated",)
    assert len(cluster.nodes) == 3 and [t.name for t in cluster.tasks] == ["web.1", "web.2"]
    assert {p.protocol for p in cluster.service("web").ingress_ports()} == {"tcp", "udp"}


def test_the_table_figure_is_drawn_from_the_rows(tmp_path):
    figs = {"swarm": {"stack name prefix": conf.service_names(["shop_web"])},
            "emulated": {"stack name prefix": conf.service_names(["web"])}}
    paths = exp.table_figure(conf.rows(figs, ("stack",)), tmp_path / "conformance",
                             "real Swarm", "title")
    assert all(p.stat().st_size > 5_000 for p in paths)


def test_a_reused_port_that_reaches_another_task_counts_as_moved():
    rows = [{"client_port": p, "task": t, "ok": "True"} for p, t in [
        (40100, "app.1"), (40101, "app.2"), (40100, "app.1"), (40101, "app.1"),
        (40100, "app.2")]]
    f = conf.reused_ports(rows)
    assert (f.text, f.value) == ("2 of 3 reuses moved to another task", 0.67)
    assert conf.reused_ports(rows[:2]).value is None


def test_long_lived_connections_on_other_tasks_are_kept_and_the_killed_ones_break():
    conns = [{"first_task": "web.2", "tasks": ["web.2"], "tcp_connections": 1, "failed": 0},
             {"first_task": "web.1", "tasks": ["web.1", "web.2"], "tcp_connections": 2,
              "failed": 1}]
    f = conf.long_lived(conns, "web.1")
    assert f.value == [True, True]
    assert f.text == "1/1 on other tasks kept; 1/1 on the killed task broke"
    conns[0]["tcp_connections"] = 2                 # moved by the scale: not Swarm's
    assert conf.long_lived(conns, "web.1").value == [False, True]


def test_a_replacement_under_the_same_name_is_found_after_a_silence():
    rows = [{"task": "web.1", "ok": True, "t_send": t} for t in (1.0, 2.4, 2.5, 16.0, 16.3)]
    assert conf.second_life(rows, "web.1", 2.0) == 16.0      # 2.4, 2.5: before it died
    assert conf.second_life(rows[:3], "web.1", 2.0) is None
    assert conf.second_life(rows, "web.1", 2.0, silence=20.0) is None
