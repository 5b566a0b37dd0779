"""The benchmark experiment without root: its flags fail naming the field, the sizes
and stream lists parse, the ratios and verdicts come out of given rows, the memory is
summed per kind, per node and per task, and the bare Mininet topology has the
cluster's hosts and links."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from swarmmesh.model import InvalidConfigError
from swarmmesh.runs import benchbuilds, benchreport, benchtables, experiment, flags, metrics
from swarmmesh.testbed import footprint
from swarmmesh_experiments import benchmark as bm

REPO = Path(__file__).resolve().parents[2]


def _args(*argv):
    return experiment.build_parser(bm).parse_args(list(argv))


# -- flags -------------------------------------------------------------------------------
def test_sizes_parse_as_nodes_by_tasks_per_node():
    assert flags.sizes("3x2,10x20, 50x10 ,100×5") == [(3, 2), (10, 20), (50, 10), (100, 5)]
    assert flags.size_tag(50, 10) == "50x10"


@pytest.mark.parametrize("text", ["3", "3x", "x2", "3x2x1", "0x2", "3x0", "201x1", "3x101",
                                  "3x2,3x2", "3 by 2", ""])
def test_bad_sizes_name_the_field(text):
    with pytest.raises(InvalidConfigError) as e:
        flags.sizes(text)
    assert e.value.field == "sizes"


def test_streams_parse():
    assert flags.int_list("1,4", "streams", 1, 128) == [1, 4]
    for bad in ("0", "1,1", "a", "129", ""):
        with pytest.raises(InvalidConfigError) as e:
            flags.int_list(bad, "streams", 1, 128)
        assert e.value.field == "streams"


@pytest.mark.parametrize("argv, field", [
    (["--sizes", "3y2"], "sizes"),
    (["--streams", "0"], "streams"),
    (["--iperf-seconds", "0"], "iperf-seconds"),
    (["--iperf-repeats", "0"], "iperf-repeats"),
    (["--build-repeats", "0"], "build-repeats"),
    (["--ready-timeout", "0"], "ready-timeout"),
    (["--settle-timeout", "-1"], "settle-timeout"),
    (["--skip-mesh", "--skip-throughput", "--skip-build"], "skip-build"),
    (["--userspace-tso", "--skip-throughput"], "userspace-tso"),
    (["--nodes", "3", "--replicas", "3"], "replicas"),     # mesh_overhead's own check
    (["--requests", "5"], "requests"),
    (["--skip-mesh", "--skip-throughput", "--sizes", "50x10", "--ingress-subnet",
      "10.0.0.0/24"], "sizes"),                            # 500 tasks: past 253 addresses
    (["--skip-mesh", "--skip-throughput", "--ingress-subnet", "10.0.0.0/30"],
     "ingress-subnet"),
])
def test_bad_input_names_the_field(argv, field):
    with pytest.raises(InvalidConfigError) as e:
        bm.validate(_args(*argv))
    assert e.value.field == field


def test_bad_input_exits_2_before_anything_is_built(tmp_path):
    r = subprocess.run([sys.executable, "-m", "swarmmesh.ui.cli", "run", "benchmark",
                        "--sizes", "3x2,oops", "--out", str(tmp_path)],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: sizes"), r.stderr
    assert list(tmp_path.iterdir()) == []


def test_plan_puts_bulk_on_the_task_node_and_keeps_the_empty_node_empty():
    plan = bm.validate(_args("--nodes", "3", "--replicas", "2"))
    c = plan["cluster"]
    bulk = c.tasks_of(bm.BULK)
    assert len(bulk) == 1 and bulk[0].node == plan["task_node"]
    assert not c.tasks_on(plan["empty_node"])
    assert {t.node for t in c.tasks_of("app")} >= {plan["task_node"]}
    assert plan["sizes"] == flags.sizes(bm.DEFAULT_SIZES) and plan["streams"] == [1, 4]


def test_the_builds_ingress_network_holds_the_default_sizes_and_100x10():
    """Docker's 10.0.0.0/24 holds 253 sandboxes, VIPs and tasks: the builds re-create the
    ingress network larger, as a user of a large swarm does."""
    args = _args("--skip-mesh", "--skip-throughput", "--sizes", bm.DEFAULT_SIZES + ",100x10")
    assert args.ingress_subnet == "10.255.0.0/16"
    assert (100, 10) in bm.validate(args)["sizes"]


def test_skip_mesh_and_throughput_needs_no_cluster():
    plan = bm.validate(_args("--skip-mesh", "--skip-throughput", "--sizes", "2x1"))
    assert "cluster" not in plan and plan["sizes"] == [(2, 1)]


# -- ratios and verdicts -------------------------------------------------------------------
def test_per_repeat_ratios_pair_repeats_and_skip_missing_ones():
    vals = {("direct", 0): 2.0, ("direct", 1): 4.0, ("direct", 2): 0.0,
            ("mesh", 0): 4.0, ("mesh", 1): 6.0, ("mesh", 2): 1.0, ("mesh", 3): 9.0}
    assert metrics.per_repeat_ratios(vals, ("direct",), ("mesh",)) == [2.0, 1.5]
    assert metrics.ratio(None, 2) is None and metrics.ratio(1, 0) is None and metrics.ratio(3, 2) == 1.5


def _lat(path, rep, ms, ok=True):
    return {"repeat": str(rep), "path": path, "target": "x", "ok": str(ok),
            "total_ms": str(ms), "connect_ms": "0.1", "ttfb_ms": "0.2"}


def _ab(path, rep, rps):
    return {"repeat": str(rep), "path": path, "rps": str(rps), "failed": "0"}


def test_mesh_table_ratios_to_direct_with_targets():
    lat, ab = [], []
    for rep, (d, b, c, n) in enumerate([(1.0, 3.0, 4.0, 1.1), (2.0, 3.0, 4.0, 2.0)]):
        for path, ms in (("direct", d), ("mesh_task_node", b), ("mesh_empty_node", c),
                         ("nft_lb", n)):
            lat += [_lat(path, rep, ms)] * 3
        ab += [_ab("direct", rep, 1000), _ab("mesh_task_node", rep, 600),
               _ab("mesh_empty_node", rep, 400 + 200 * rep), _ab("nft_lb", rep, 900)]
    rows = {(r["measure"], r["path"]): r for r in benchtables.mesh_table(lat, ab)}
    c_lat = rows[("latency", "mesh_empty_node")]
    assert c_lat["baseline"] == 1.5 and c_lat["value"] == 4.0
    assert c_lat["ratio"] == pytest.approx(4 / 1.5)
    assert (c_lat["ratio_min"], c_lat["ratio_max"]) == (2.0, 4.0)
    assert c_lat["target"] == "<= 2×" and c_lat["met"] is False
    c_rate = rows[("connection_rate", "mesh_empty_node")]
    assert c_rate["ratio"] == 0.5 and c_rate["met"] is True            # >= 0.5x: met at 0.5
    assert (c_rate["ratio_min"], c_rate["ratio_max"]) == (0.4, 0.6)
    assert rows[("connection_rate", "mesh_task_node")]["target"] == ""  # the issue sets none
    assert rows[("latency", "nft_lb")]["met"] == ""
    assert benchreport._short_by(c_lat) == "×1.33 short"
    assert benchreport._short_by(rows[("connection_rate", "mesh_task_node")]) == ""


def _thr(config, path, streams, rep, mbps, error=""):
    return {"config": config, "path": path, "streams": str(streams), "repeat": str(rep),
            "mbps": "" if error else str(mbps), "error": error}


def test_throughput_table_against_the_same_configs_underlay_and_the_default_one():
    thr = []
    for rep in range(2):
        thr += [_thr("default", "underlay", 1, rep, 2000), _thr("default", "mesh_task_node", 1, rep, 500),
                _thr("default", "mesh_empty_node", 1, rep, 300 + 100 * rep),
                _thr("userspace_tso", "underlay", 1, rep, 8000),
                _thr("userspace_tso", "mesh_task_node", 1, rep, 4400),
                _thr("userspace_tso", "mesh_empty_node", 1, rep, 2000)]
    thr.append(_thr("default", "mesh_task_node", 1, 2, 0, error="iperf3 timed out"))
    rows = benchtables.throughput_table(thr)
    assert [(r["section"], r["path"]) for r in rows] == [
        ("throughput (default)", "underlay"), ("throughput (default)", "mesh_task_node"),
        ("throughput (default)", "mesh_empty_node"), ("throughput (userspace_tso)", "underlay"),
        ("throughput (userspace_tso)", "mesh_task_node"),
        ("throughput (userspace_tso)", "mesh_empty_node")]
    assert all(r["measure"] == "throughput, 1 stream" for r in rows)
    task = rows[1]
    assert task["ratio"] == 0.25 and task["met"] is False and task["n"] == 2
    empty = rows[2]
    assert empty["value"] == 350 and (empty["ratio_min"], empty["ratio_max"]) == (0.15, 0.2)
    tso = rows[4]
    assert tso["ratio"] == 0.55 and tso["met"] is True
    assert tso["ratio_to_default_underlay"] == 2.2
    assert "ratio_to_default_underlay" not in task


def test_build_table_against_bare_mininet_and_the_50x10_limits():
    builds = []
    for rep, (ours_up, ours_down, bare_up) in enumerate([(40.0, 5.0, 20.0), (50.0, 7.0, 25.0)]):
        builds += [{"repeat": str(rep), "size": "50x10", "tasks": "500", "build": "swarmmesh",
                    "up_s": str(ours_up), "down_s": str(ours_down), "error": ""},
                   {"repeat": str(rep), "size": "50x10", "tasks": "500", "build": "mininet",
                    "up_s": str(bare_up), "down_s": "10.0", "error": ""}]
    builds.append({"repeat": "0", "size": "3x2", "tasks": "6", "build": "swarmmesh",
                   "up_s": "2.0", "down_s": "0.2", "error": ""})
    rows = benchtables.build_table(builds)
    assert [r["measure"] for r in rows] == ["build_up", "build_down", "build_up", "build_down"]
    up, down = rows[0], rows[1]
    assert up["path"] == "50x10 (500 tasks)" and up["value"] == 45.0 and up["baseline"] == 22.5
    assert up["ratio"] == 2.0 and (up["ratio_min"], up["ratio_max"]) == (2.0, 2.0)
    assert up["target"] == "<= 2×" and up["met"] is True    # on the ratio: 45 / 22.5 <= 2
    assert down["value"] == 6.0 and down["ratio"] == 0.6 and down["target"] == ""
    assert rows[2]["target"] == "" and rows[2]["baseline"] is None and rows[2]["ratio"] is None
    over = dict(up, ratio=2.8, met=False)
    assert benchreport._short_by(over) == "×1.4 short"


def test_the_100x10_build_is_held_to_45_s_up_and_10_s_down():
    builds = [{"repeat": "0", "size": "100x10", "tasks": "1000", "build": b, "up_s": u,
               "down_s": d, "error": ""}
              for b, u, d in (("swarmmesh", "50.0", "6.0"), ("mininet", "19.0", "30.0"))]
    up, down = benchtables.build_table(builds)[:2]
    assert up["target"] == "<= 45 s" and up["met"] is False
    assert benchreport._short_by(up) == "×1.11 short"
    assert down["target"] == "<= 10 s" and down["met"] is True
    hosts = {"100x10": 1102}
    assert benchreport._limits(builds, "up_s", "build_up", hosts) == [
        ("100x10", 45.0, "100x10 ≤ 45 s")]


def test_a_target_on_the_ratio_is_drawn_at_that_ratio_of_bare_mininet():
    builds = [{"repeat": "0", "size": "50x10", "tasks": "500", "build": b, "up_s": u,
               "down_s": "1", "error": ""} for b, u in (("swarmmesh", "24"), ("mininet", "10"))]
    assert benchreport._limits(builds, "up_s", "build_up", {"50x10": 552}) == [
        ("50x10", 20.0, "50x10 ≤ 2× bare Mininet (20 s)")]


def test_teardown_until_idle_adds_the_kernels_cleanup():
    builds = [{"repeat": "0", "size": "2x1", "tasks": "2", "build": b, "up_s": "1.0",
               "down_s": d, "idle_after_s": i, "error": ""}
              for b, d, i in (("swarmmesh", "0.5", "4.5"), ("mininet", "1.0", "2.0"))]
    rows = {r["measure"]: r for r in benchtables.build_table(builds)}
    idle = rows["build_down_until_idle"]       # the wait's own 2 s check taken off
    assert idle["value"] == 3.0 and idle["baseline"] == 1.0 and idle["ratio"] == 3.0
    assert idle["target"] == "" and rows["build_down"]["value"] == 0.5


def test_idle_fraction_from_proc_stat():
    a = footprint.parse_cpu_times("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4\n")
    b = footprint.parse_cpu_times("cpu  150 0 50 1700 50 0 0 0 0 0\n")
    assert a == (850, 1000) and b == (1750, 1950)
    assert footprint.idle_fraction(a, b) == pytest.approx(900 / 950)
    assert footprint.idle_fraction(a, a) == 1.0
    with pytest.raises(ValueError):
        footprint.parse_cpu_times("intr 1 2 3")


def test_meets():
    assert benchtables.meets(2.0, "<=", 2.0) and not benchtables.meets(2.01, "<=", 2.0)
    assert benchtables.meets(0.5, ">=", 0.5) and not benchtables.meets(0.49, ">=", 0.5)
    assert benchtables.meets(None, ">=", 0.5) is None


def test_steps_time_each_build_step():
    steps = benchbuilds._Steps(None)
    steps.marks = [("starting controller", 0.0), ("building network", 0.5),
                   ("waiting for the task servers", 3.0),
                   ("waiting for the controller to program every node", 3.5)]
    assert steps.durations(4.0) == {"controller": 0.5, "hosts, links, kernels, OVS, DNS": 2.5,
                                    "task servers": 0.5, "switches programmed, DNS": 0.5}


# -- memory ---------------------------------------------------------------------------------
SMAPS = """55d0c0a00000-7ffd5f1ff000 ---p 00000000 00:00 0                          [rollup]
Rss:               18432 kB
Pss:               11673 kB
Pss_Dirty:          8000 kB
Pss_Anon:           7000 kB
Shared_Clean:       6000 kB
"""


def test_smaps_rollup_parse():
    assert footprint.parse_smaps_rollup(SMAPS) == {"pss_kb": 11673, "rss_kb": 18432}
    assert footprint.parse_smaps_rollup("") == {"pss_kb": 0, "rss_kb": 0}


def test_memory_summed_per_kind_per_node_and_per_task():
    rows = ([{"kind": "ovs-vswitchd", "pss_kb": 10240, "rss_kb": 20480}] * 2
            + [{"kind": "ovsdb-server", "pss_kb": 2048, "rss_kb": 4096}] * 2
            + [{"kind": "dns", "pss_kb": 1024, "rss_kb": 1024}] * 2
            + [{"kind": "node shell", "pss_kb": 512, "rss_kb": 3072}] * 2
            + [{"kind": "task server", "pss_kb": 7168, "rss_kb": 12288}] * 4
            + [{"kind": "task shell", "pss_kb": 512, "rss_kb": 3072}] * 4
            + [{"kind": "controller", "pss_kb": 35840, "rss_kb": 46080},
               {"kind": "other shell", "pss_kb": 512, "rss_kb": 3072}])
    s = footprint.sum_memory(rows, nodes=2, tasks=4)
    assert s["kinds"]["ovs-vswitchd"] == {"per": "node", "processes": 2, "pss_mib": 20.0,
                                          "rss_mib": 40.0}
    assert s["per_node"] == {"processes": 4.0, "pss_mib": 13.5, "rss_mib": 28.0}
    assert s["per_task"] == {"processes": 2.0, "pss_mib": 7.5, "rss_mib": 15.0}
    assert s["per_run"] == {"processes": 2.0, "pss_mib": 35.5, "rss_mib": 48.0}
    assert s["total_pss_mib"] == pytest.approx(2 * 13.5 + 4 * 7.5 + 35.5)
    with pytest.raises(ValueError, match="unknown process kind"):
        footprint.sum_memory([{"kind": "iperf3", "pss_kb": 1, "rss_kb": 1}], 1, 1)


def test_memory_table_medians_over_repeats_and_bare_per_host():
    builds = [{"size": "2x1", "nodes": "2", "tasks": "2", "repeat": "0"}]
    memory = []
    for rep, pss in enumerate((1024, 3072)):
        memory += [{"size": "2x1", "repeat": str(rep), "build": "swarmmesh", "kind": k,
                    "pss_kb": str(pss), "rss_kb": str(2 * pss)}
                   for k in ("ovs-vswitchd", "ovs-vswitchd", "task server", "task server",
                             "controller")]
        memory += [{"size": "2x1", "repeat": str(rep), "build": "mininet", "kind": "other shell",
                    "pss_kb": "512", "rss_kb": "1024"}] * 6
    (m,) = benchtables.memory_table(memory, builds)
    assert m["per_node_pss_mib"] == 2.0 and m["per_task_rss_mib"] == 4.0
    assert m["ovs-vswitchd|pss_mib"] == 2.0 and m["per_run_pss_mib"] == 2.0
    assert m["bare_host_pss_mib"] == 0.5 and m["bare_host_rss_mib"] == 1.0


# -- the bare baseline's topology --------------------------------------------------------------
def test_bare_topology_has_the_clusters_hosts_and_links():
    topo = footprint.bare_topo(3, 2)
    assert len(topo.hosts()) == 1 + 3 + 3 * 2 + 1          # underlay, nodes, tasks, client
    assert len(topo.links()) == 3 + 3 * 2 + 1
    links = footprint.planned_links(topo)
    assert len(links) == 2 * len(topo.links()) and len(set(links)) == len(links)
    assert "bul-eth0" in links and "bn3t2-eth0" in links and all(len(n) <= 15 for n in links)
    assert not any(h.startswith(("node", "t", "c1", "underlay")) for h in topo.hosts())


def test_a_run_folder_without_runs_csvs_summarises_to_nothing(tmp_path):
    s = benchtables.summarise_run(tmp_path)
    assert s == {"table": [], "load": [], "memory": [], "sizes_built": {}, "failures": []}
