"""mesh_overhead / keepalive / l4lb without root: bad input names its field
before anything is built; the nftables ruleset and the address choices."""

from __future__ import annotations


import pytest

from swarmmesh_experiments import keepalive, mesh_overhead
from swarmmesh.runs import experiment
from swarmmesh.testbed import l4lb
from swarmmesh.model import Cluster, InvalidConfigError


def _args(module, *argv):
    return experiment.build_parser(module).parse_args(list(argv))


@pytest.mark.parametrize("argv, field", [
    (["--replicas", "3", "--nodes", "3"], "replicas"),       # no node without a task
    (["--nodes", "1"], "nodes"),
    (["--requests", "5"], "requests"),
    (["--rate", "0"], "rate"),
    (["--ab-requests", "5"], "ab-requests"),
    (["--concurrency", "600"], "concurrency"),
    (["--timeout", "0"], "timeout"),
])
def test_mesh_overhead_bad_input(argv, field):
    with pytest.raises(InvalidConfigError) as e:
        mesh_overhead.validate(_args(mesh_overhead, *argv))
    assert e.value.field == field


def test_mesh_overhead_plan_names_a_busy_and_an_empty_node():
    plan = mesh_overhead.validate(_args(mesh_overhead, "--nodes", "4", "--replicas", "2"))
    c = plan["cluster"]
    assert c.tasks_on(plan["task_node"]) and not c.tasks_on(plan["empty_node"])


@pytest.mark.parametrize("argv, field", [
    (["--replicas", "1"], "replicas"),
    (["--node", "node9"], "node"),
    (["--wrk-seconds", "-1"], "wrk-seconds"),
    (["--rate", "5000"], "rate"),
])
def test_keepalive_bad_input(argv, field):
    with pytest.raises(InvalidConfigError) as e:
        keepalive.validate(_args(keepalive, *argv))
    assert e.value.field == field


def test_keepalive_summary_detects_pinning_and_uneven_split():
    tasks = ["app.1", "app.2"]
    rows = [{"mode": "keepalive", "ok": "True", "task": "app.2", "local_port": "5"}] * 4 + \
           [{"mode": "new_connection", "ok": "True", "task": t, "local_port": str(i)}
            for i, t in enumerate(["app.1", "app.1", "app.1", "app.2"])]
    s = keepalive.summarise(rows, tasks)
    assert s["keepalive_pinned"] and s["connections"]["keepalive"] == 1
    assert s["counts"]["new_connection"] == {"app.1": 3, "app.2": 1}
    assert not s["new_connection_even"] and s["new_connection_max_minus_min"] == 2


def test_nft_ruleset_round_robin_dnat_and_masquerade_only_for_dnat():
    text = l4lb.nft_ruleset("192.168.99.254", 8000, 80, ["10.0.0.6", "10.0.0.7"])
    assert ("ip daddr 192.168.99.254 tcp dport 8000 dnat to numgen inc mod 2 map "
            "{ 0 : 10.0.0.6, 1 : 10.0.0.7 } : 80") in text
    assert 'ct status dnat oifname "be0" masquerade' in text
    with pytest.raises(ValueError):
        l4lb.nft_ruleset("192.168.99.254", 8000, 80, [])


def test_lb_addresses_avoid_the_cluster():
    c = Cluster.quick(nodes=3, replicas=2)
    assert l4lb.free_underlay_ip(c) == "192.168.99.254"
    net = l4lb.backend_network(c)
    assert not any(net.overlaps(n.subnet) for n in c.networks.values())


def _lat(path: str, tasks: list[str], source: str, ms: float = 1.0, repeat: int = 0):
    return [{"repeat": str(repeat), "path": path, "target": "x", "seq": str(i), "ok": "True",
             "connect_ms": "0.5", "ttfb_ms": "0.8", "total_ms": str(ms), "task": t,
             "node": "node1", "seen_source": source, "error": ""} for i, t in enumerate(tasks)]


def test_mesh_overhead_sets_the_emulated_mesh_beside_swarms_ipvs():
    """The IPVS reference's paths get their own rows, ratios to their own cluster's direct
    path, and the side-by-side: split, first turns, source seen, latency, connections/s."""
    rr, off = ["app.2", "app.1"] * 3, ["app.1", "app.1", "app.2", "app.2"]
    lat = (_lat("direct", ["app.1"] * 4, "192.168.99.201", 1.0)
           + _lat("mesh_task_node", rr, "10.0.0.2", 3.0)
           + _lat("mesh_empty_node", rr, "10.0.0.4", 4.0)
           + _lat("nft_lb", rr, "10.254.0.1", 1.0)
           + _lat("ipvs_direct", ["app.1"] * 4, "192.168.99.201", 2.0)
           + _lat("ipvs_task_node", rr, "10.0.0.2", 3.0)
           + _lat("ipvs_empty_node", off, "10.0.0.4", 5.0))
    ab = [{"path": p, "rps": str(r), "failed": "0"} for p, r in (
        ("direct", 1000), ("mesh_task_node", 500), ("mesh_empty_node", 400), ("nft_lb", 900),
        ("ipvs_direct", 800), ("ipvs_task_node", 600), ("ipvs_empty_node", 400))]
    table = mesh_overhead.summarise(lat, ab)
    assert [r["path"] for r in table] == [*mesh_overhead.PATHS, *mesh_overhead.IPVS_PATHS]
    by = {r["path"]: r for r in table}
    assert by["ipvs_empty_node"]["latency_ratio_to_direct"] == 2.5      # 5 / 2, its own cluster
    assert by["mesh_empty_node"]["latency_ratio_to_direct"] == 4.0
    ref = mesh_overhead.reference(lat, table)
    assert ref["empty_node"]["ipvs"]["split"] == {"app.1": 2, "app.2": 2}
    assert ref["task_node"]["ipvs"]["split"] == {"app.1": 3, "app.2": 3}
    assert ref["task_node"]["ipvs"]["first_turns"] == ["app.2", "app.1", "app.2", "app.1"]
    assert ref["empty_node"]["ipvs"]["seen_sources"] == ["10.0.0.4"]
    assert ref["direct"]["ipvs"]["rps_median"] == 800
    # Without the reference's rows, the table is the four paths as before.
    four = [r for r in lat if r["path"] in mesh_overhead.PATHS]
    assert [r["path"] for r in mesh_overhead.summarise(four, ab)] == list(mesh_overhead.PATHS)


def test_mesh_overhead_ipvs_on_is_an_error_where_ip_vs_is_missing(monkeypatch):
    from swarmmesh.machine import datapath
    monkeypatch.setattr(datapath, "ipvs_missing", lambda: "this kernel has no ip_vs")
    plan = mesh_overhead.validate(_args(mesh_overhead))
    assert plan["ipvs_skipped"] == "this kernel has no ip_vs"         # auto: skipped, said why
    with pytest.raises(InvalidConfigError) as e:
        mesh_overhead.validate(_args(mesh_overhead, "--ipvs", "on"))
    assert e.value.field == "ipvs"
    assert mesh_overhead.validate(_args(mesh_overhead, "--ipvs", "off"))["ipvs_skipped"]
