#!/usr/bin/env python3
"""The benchmark's whole table in one run, every figure a ratio to a baseline of the same run.

Three parts (each can be skipped):

* **mesh** (latency and connections/s): ``mesh_overhead``'s own measurement
  (:func:`swarmmesh_experiments.mesh_overhead.measure_paths`) on one cluster: (a) direct
  to a task, (b) the mesh via a node with a task, (c) via a node with none, (d) an
  nftables DNAT balancer; open-loop latency and ``ab`` per repeat, ratios to (a).
* **throughput** (iperf3, TCP, ``--streams`` 1 and 4 by default), on the same cluster:
  a one-replica service ``bulk`` (published 5201, on the node of (b)) whose task runs
  the iperf3 server, from the client c1 through the mesh entering at that node and at
  the node with no task; the baseline is the underlay alone (c1 to the node itself, no
  mesh, port 5301).  With ``--userspace-tso`` the same again on a second cluster whose
  vswitchds start with ``other_config:userspace-tso-enable=true`` and whose legs keep
  their checksum offload (every host's kernel may then hand over 64 KiB segments, the
  underlay baseline's too), so both configurations are in the table.
* **load sweep** (``--load-concurrency``, 1, 4 and 16 by default), on the same cluster:
  ``ab -c C`` (new connections/s) and ``wrk -c C`` (keep-alive requests/s) per path,
  each a ratio to the direct path at the same tool, concurrency and repeat
  (:mod:`swarmmesh.runs.loadsweep`).
* **build** (``--sizes``, NODESxTASKS_PER_NODE): for each size and repeat, the testbed's
  build (``Testbed.__enter__``: controller, Mininet hosts and links, every node's
  kernel, OVS and DNS, the task servers, every switch programmed, every DNS serving)
  and teardown, against Mininet's bare build of the same hosts and links (plain hosts
  and veths, ``net.stop()``); the time per build step; after each build the PSS and
  RSS of every process of ours, summed per kind, per node and per task.

    sudo .venv/bin/swarmmesh run benchmark [--sizes 3x2,10x20,50x10,100x5] [--userspace-tso]
    sudo make benchmark

Writes ``latency.csv`` and ``connection_rate.csv`` (mesh_overhead's columns),
``load.csv``, ``throughput.csv``, ``builds.csv``, ``memory.csv``, ``table.csv`` (the issue's table with
the targets), ``summary.json``, ``benchmark_ratios.png``/``.pdf``,
``benchmark_build.png``/``.pdf``, ``benchmark_load.png``/``.pdf`` and ``report.md``; ``swarmmesh replot`` redraws them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import tempfile
import time
from pathlib import Path

from swarmmesh.runs import experiment, plots, report, runfolder as results
from swarmmesh.model import Cluster, InvalidConfigError
from swarmmesh.model.objects import MAX_NODES
from swarmmesh.runs import loadsweep

try:                                   # installed (swarmmesh run) or from the checkout
    from swarmmesh_experiments import mesh_overhead
except ImportError:                    # pragma: no cover - experiments/benchmark.py by path
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import mesh_overhead               # type: ignore[no-redef]

NAME = "benchmark"
DESCRIPTION = ("the benchmark table in one run: latency, connections/s and iperf3 throughput "
               "through the mesh as ratios to direct and underlay baselines; build and "
               "teardown time against cluster size with bare Mininet as the baseline; "
               "memory per node and per task")

DEFAULT_SIZES = "3x2,10x20,50x10,100x5"
BULK, BULK_PORT, UNDERLAY_PORT = "bulk", 5201, 5301
THR_PATHS = ("underlay", "mesh_task_node", "mesh_empty_node")
THR_LABELS = {"underlay": "underlay alone: c1 -> node (baseline)",
              "mesh_task_node": "mesh via the node with the task",
              "mesh_empty_node": "mesh via a node with no task"}
CONFIGS = {"default": "checksum offload off, no TSO (the testbed's default)",
           "userspace_tso": "userspace-tso-enable=true, offload kept on every leg"}
THR_COLUMNS = ["config", "repeat", "path", "streams", "target", "mbps", "sent_mbps",
               "retransmits", "load_1min", "error"]
BUILD_COLUMNS = ["repeat", "size", "nodes", "tasks_per_node", "tasks", "hosts", "build",
                 "up_s", "down_s", "idle_after_s", "load_1min", "phases", "error"]
MEMORY_COLUMNS = ["size", "repeat", "build", "kind", "host", "pid", "pss_kb", "rss_kb"]
TABLE_COLUMNS = ["section", "measure", "path", "value", "unit", "baseline", "ratio",
                 "ratio_min", "ratio_max", "n", "target", "met", "ratio_to_default_underlay"]
BUILDS = {"swarmmesh": "this testbed", "mininet": "Mininet alone (bare hosts and links)"}
# Testbed progress messages -> the build step they start.
STEPS = {"starting controller": "controller",
         "building network": "hosts, links, kernels, OVS, DNS",
         "waiting for the task servers": "task servers",
         "waiting for the controller to program every node": "switches programmed, DNS"}

# The targets: (measure, path or size, comparison, limit).
TARGETS = {
    ("latency", "mesh_task_node"): ("<=", 2.0),
    ("latency", "mesh_empty_node"): ("<=", 2.0),
    ("connection_rate", "mesh_empty_node"): (">=", 0.5),
    ("throughput", "mesh_task_node"): (">=", 0.5),
    ("throughput", "mesh_empty_node"): (">=", 0.5),
    ("build_up", "50x10"): ("<=", 45.0),
    ("build_down", "50x10"): ("<=", 15.0),
}


# -- flags --------------------------------------------------------------------------
def add_arguments(ap) -> None:
    mesh = ap.add_argument_group("latency and connection rate (mesh_overhead's flags)")
    mesh_overhead.add_arguments(mesh, ipvs=False)
    load = ap.add_argument_group("load sweep (ab and wrk at several concurrencies)")
    load.add_argument("--load-concurrency", default="1,4,16",
                      help="concurrencies, a list (ab -c and wrk -c)")
    load.add_argument("--load-repeats", type=int, default=2,
                      help="rounds over the paths, every concurrency in each")
    load.add_argument("--load-seconds", type=int, default=2,
                      help="whole seconds per wrk run (ab sends --ab-requests)")
    thr = ap.add_argument_group("throughput (iperf3)")
    thr.add_argument("--iperf-seconds", type=float, default=3.0,
                     help="seconds per iperf3 run")
    thr.add_argument("--streams", default="1,4", help="iperf3 parallel streams, a list")
    thr.add_argument("--iperf-repeats", type=int, default=None,
                     help="rounds over the throughput paths (default: --repeats)")
    thr.add_argument("--userspace-tso", action="store_true",
                     help="also measure throughput on a second cluster whose vswitchds run "
                          "with other_config:userspace-tso-enable=true (offload kept on)")
    build = ap.add_argument_group("build and teardown")
    build.add_argument("--sizes", default=DEFAULT_SIZES,
                       help="cluster sizes, NODESxTASKS_PER_NODE[,...]")
    build.add_argument("--build-repeats", type=int, default=2,
                       help="builds of each size (ours and bare Mininet's each)")
    build.add_argument("--settle-timeout", type=float, default=120.0,
                       help="seconds to wait at most, before each build and after each "
                            "teardown, for the CPUs to be 90%% idle (0: no wait)")
    build.add_argument("--ready-timeout", type=float, default=300.0,
                       help="seconds a build may take to be programmed and serve DNS")
    skip = ap.add_argument_group("parts")
    skip.add_argument("--skip-mesh", action="store_true",
                      help="no latency / connection-rate measurement")
    skip.add_argument("--skip-throughput", action="store_true", help="no iperf3")
    skip.add_argument("--skip-load", action="store_true", help="no load sweep (ab and wrk)")
    skip.add_argument("--skip-build", action="store_true",
                      help="no build / teardown / memory measurement")


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """``"3x2,50x10"`` -> ``[(3, 2), (50, 10)]`` (nodes, tasks per node); errors name
    ``sizes``."""
    sizes: list[tuple[int, int]] = []
    for item in str(text).split(","):
        m = re.fullmatch(r"\s*(\d+)\s*[x×]\s*(\d+)\s*", item)
        if not m:
            raise InvalidConfigError("sizes", f"expected NODESxTASKS_PER_NODE[,...], "
                                              f"got {item.strip()!r}")
        n, t = int(m.group(1)), int(m.group(2))
        if not 1 <= n <= MAX_NODES:
            raise InvalidConfigError("sizes", f"{item.strip()}: nodes must be in 1..{MAX_NODES}")
        if not 1 <= t <= 100:
            raise InvalidConfigError("sizes", f"{item.strip()}: tasks per node must be in 1..100")
        if (n, t) in sizes:
            raise InvalidConfigError("sizes", f"{item.strip()} is given twice")
        sizes.append((n, t))
    return sizes


def size_tag(nodes: int, tasks_per_node: int) -> str:
    return f"{nodes}x{tasks_per_node}"


def parse_streams(text: str) -> list[int]:
    """``"1,4"`` -> ``[1, 4]``; errors name ``streams``."""
    out: list[int] = []
    for item in str(text).split(","):
        if not item.strip().isdigit() or not 1 <= int(item) <= 128:
            raise InvalidConfigError("streams", f"expected integers in 1..128, got {item.strip()!r}")
        if int(item) in out:
            raise InvalidConfigError("streams", f"{int(item)} is given twice")
        out.append(int(item))
    return out


def bench_cluster(nodes: int, replicas: int, bulk_node: str) -> Cluster:
    """mesh_overhead's cluster (``app``, published 8000 -> 80) plus a one-replica
    ``bulk`` (published 5201 -> 5201) placed on ``bulk_node`` (a node with a task of app)."""
    stack = {"services": {
        "app": {"deploy": {"replicas": replicas},
                "ports": [{"target": mesh_overhead.TARGET, "published": mesh_overhead.PUBLISHED,
                           "protocol": "tcp", "mode": "ingress"}]},
        BULK: {"deploy": {"replicas": 1,
                          "placement": {"constraints": [f"node.hostname=={bulk_node}"]}},
               "ports": [{"target": BULK_PORT, "published": BULK_PORT, "protocol": "tcp",
                          "mode": "ingress"}]}}}
    return Cluster.from_stack(stack, nodes=nodes, implicit_network=False)


def validate(args) -> dict:
    if args.skip_mesh and args.skip_throughput and args.skip_build:
        raise InvalidConfigError("skip-build", "every part is skipped: nothing to measure")
    plan: dict = {"sizes": [], "streams": []}
    if args.iperf_repeats is not None and args.iperf_repeats < 1:
        raise InvalidConfigError("iperf-repeats", f"must be >= 1, got {args.iperf_repeats}")
    if not 0 < args.iperf_seconds <= 60:
        raise InvalidConfigError("iperf-seconds", f"must be in (0, 60], got {args.iperf_seconds}")
    plan["streams"] = parse_streams(args.streams)
    plan["concurrencies"] = loadsweep.parse_concurrencies(args.load_concurrency)
    if args.load_repeats < 1:
        raise InvalidConfigError("load-repeats", f"must be >= 1, got {args.load_repeats}")
    if not 1 <= args.load_seconds <= 60:            # wrk takes whole seconds
        raise InvalidConfigError("load-seconds", f"must be 1..60, got {args.load_seconds}")
    if args.userspace_tso and args.skip_throughput:
        raise InvalidConfigError("userspace-tso", "measures throughput: not with --skip-throughput")
    if not (args.skip_mesh and args.skip_throughput):
        base = mesh_overhead.validate(args)           # errors name mesh_overhead's flags
        cluster = bench_cluster(args.nodes, args.replicas, base["task_node"])
        app = {t.name: t.node for t in cluster.tasks_of("app")}
        if (app != {t.name: t.node for t in base["cluster"].tasks_of("app")}
                or cluster.tasks_on(base["empty_node"])):
            raise InvalidConfigError("replicas", f"with {BULK} on {base['task_node']} the "
                                     f"tasks of app move ({app}); use more nodes")
        plan.update(base, cluster=cluster)
    plan["sizes"] = parse_sizes(args.sizes)
    if args.build_repeats < 1:
        raise InvalidConfigError("build-repeats", f"must be >= 1, got {args.build_repeats}")
    if args.settle_timeout < 0:
        raise InvalidConfigError("settle-timeout", f"must be >= 0, got {args.settle_timeout}")
    if args.ready_timeout <= 0:
        raise InvalidConfigError("ready-timeout", f"must be > 0, got {args.ready_timeout}")
    return plan


# -- running ------------------------------------------------------------------------
def _as_text(rows: list[dict]) -> list[dict]:
    """Rows as they read back from CSV (run() and plot() share one summary)."""
    return [{k: ("" if v is None else str(v)) for k, v in r.items()} for r in rows]


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def run(args, plan, ctx) -> None:
    ctx.summary["load_average"] = {"start": os.getloadavg()}
    ctx.summary["userspace_tso_requested"] = bool(args.userspace_tso)
    thr_rows: list[dict] = []
    if not (args.skip_mesh and args.skip_throughput):
        cluster: Cluster = plan["cluster"]
        ctx.summary["placement"] = {t.name: t.node for t in cluster.tasks}
        ctx.summary["task_node"], ctx.summary["empty_node"] = plan["task_node"], plan["empty_node"]
        ctx.summary["paths"] = dict(mesh_overhead.LABELS)
        with ctx.testbed(cluster) as tb:
            if not args.skip_mesh:
                ctx.summary["load_average"]["mesh"] = os.getloadavg()
                lat, ab, checks, commands = mesh_overhead.measure_paths(tb, plan, args, ctx)
                ctx.write_csv("latency.csv", lat, mesh_overhead.LAT_COLUMNS)
                ctx.write_csv("connection_rate.csv", ab, mesh_overhead.AB_COLUMNS)
                ctx.summary["check"] = checks
                ctx.summary["tools"] = {"latency": commands.get("latency"),
                                        "connection_rate": commands.get("connection_rate")}
                if not args.skip_load:
                    ctx.write_csv("load.csv", measure_load(tb, plan, args, ctx),
                                  loadsweep.COLUMNS)
            if not args.skip_throughput:
                thr_rows += measure_throughput(tb, plan, args, ctx, "default")
        if args.userspace_tso:
            with ctx.testbed(cluster, run_dir=ctx.run_dir / "userspace_tso",
                             userspace_tso=True) as tb:
                ctx.summary["userspace_tso_log"] = tso_log_lines(tb)
                thr_rows += measure_throughput(tb, plan, args, ctx, "userspace_tso")
        if thr_rows:
            ctx.write_csv("throughput.csv", thr_rows, THR_COLUMNS)
    if not args.skip_build:
        builds, memory = measure_builds(plan["sizes"], args, ctx)
        ctx.write_csv("builds.csv", builds, BUILD_COLUMNS)
        ctx.write_csv("memory.csv", memory, MEMORY_COLUMNS)
    ctx.summary["load_average"]["end"] = os.getloadavg()
    tables = summarise_run(ctx.run_dir)
    ctx.summary.update(tables)
    for row in tables["table"]:
        verdict = (f" (target {row['target']}: {'met' if row['met'] else 'missed'})"
                   if row["target"] else "")
        ctx.progress.note(f"{row['section']}: {row['measure']} {row['path']}: "
                          f"{num(row['value'])} {row['unit']} x{report.fmt(row['ratio'])}"
                          + verdict)
    problems = tables["failures"]
    if problems:
        ctx.failed = "; ".join(problems[:5])


def measure_load(tb, plan, args, ctx) -> list[dict]:
    """The load sweep over mesh_overhead's paths (after its measurement, which built the
    nftables balancer the fourth path needs)."""
    cluster: Cluster = plan["cluster"]
    targets = mesh_overhead._targets(cluster, plan, ctx.summary["load_balancer"]["address"])
    return loadsweep.measure(tb.host(cluster.clients[0].name), targets, mesh_overhead.PATHS,
                             plan["concurrencies"], args.load_repeats, args.ab_requests,
                             args.load_seconds, args.timeout, tb.state.register,
                             ctx.progress, _load)


def tso_log_lines(tb) -> list[str]:
    """The vswitchds' own word that userspace TSO is on (one line per node)."""
    out = []
    for n in tb.cluster.nodes:
        d = tb.host(n.name).ovs_dir
        log = (d / "ovs-vswitchd.log") if d else None
        text = log.read_text() if log and log.exists() else ""
        out += [f"{n.name}: {line.split('|')[-1]}" for line in text.splitlines()
                if "userspace_tso" in line]
    if len(out) < len(tb.cluster.nodes):
        raise RuntimeError(f"userspace TSO not reported enabled by every vswitchd: {out}")
    return out


def measure_throughput(tb, plan, args, ctx, config: str) -> list[dict]:
    """iperf3 from c1: to the task node itself (underlay), and to the bulk task through
    the mesh entering at its node and at the node with no task; ``--iperf-repeats``
    rounds in a rotated order, every stream count in each."""
    from swarmmesh.traffic import tools
    cluster: Cluster = plan["cluster"]
    task = cluster.tasks_of(BULK)[0]
    th = tb.task_host(task)
    # The task's own server closes its listeners (as a dead app) so iperf3 takes its port.
    th.signal_server(signal.SIGUSR2)
    deadline = time.monotonic() + 5
    while f":{BULK_PORT} " in th.cmd(f"ss -Htln sport = :{BULK_PORT}"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{task.name}: its server still listens on {BULK_PORT}")
        time.sleep(0.05)
    tn, en = cluster.node(plan["task_node"]), cluster.node(plan["empty_node"])
    paths = {"underlay": (tb.host(tn.name), str(tn.underlay_ip), UNDERLAY_PORT, tn.name),
             "mesh_task_node": (th, str(tn.underlay_ip), BULK_PORT, f"{tn.name}:{BULK_PORT}"),
             "mesh_empty_node": (th, str(en.underlay_ip), BULK_PORT, f"{en.name}:{BULK_PORT}")}
    c1 = tb.host(cluster.clients[0].name)
    repeats = args.iperf_repeats or args.repeats
    rows: list[dict] = []
    ctx.progress.phase(f"iperf3 ({config})", total=repeats * len(paths) * len(plan["streams"]))
    for r in range(repeats):
        order = THR_PATHS[r % len(THR_PATHS):] + THR_PATHS[:r % len(THR_PATHS)]
        for path in order:
            server, ip, port, target = paths[path]
            for streams in plan["streams"]:
                row = {"config": config, "repeat": r, "path": path, "streams": streams,
                       "target": target, "load_1min": _load(), "error": ""}
                try:
                    res = tools.iperf3(c1, server, ip, seconds=args.iperf_seconds, port=port,
                                       streams=streams, register=tb.state.register)
                    ctx.summary.setdefault("iperf3_command", res.command)
                    row.update(mbps=res.data["received_mbps"], sent_mbps=res.data["sent_mbps"],
                               retransmits=res.data["retransmits"])
                except (tools.ToolFailed, OSError) as e:
                    row.update(mbps="", sent_mbps="", retransmits="", error=str(e)[:300])
                rows.append(row)
                ctx.progress.advance()
    return rows


class _Steps:
    """The Testbed's progress messages, timed: the seconds of each build step."""

    def __init__(self, progress) -> None:
        self.progress, self.marks = progress, []

    def __call__(self, msg: str) -> None:
        self.marks.append((msg, time.monotonic()))

    def durations(self, end: float) -> dict[str, float]:
        out: dict[str, float] = {}
        for (msg, t), nxt in zip(self.marks, [m[1] for m in self.marks[1:]] + [end]):
            key = STEPS.get(msg, msg)
            out[key] = round(out.get(key, 0.0) + nxt - t, 3)
        return out


def measure_builds(sizes, args, ctx) -> tuple[list[dict], list[dict]]:
    """Every size, ``--build-repeats`` times: the testbed's build and teardown and bare
    Mininet's (the two alternate which goes first), and the memory after each build."""
    from swarmmesh.testbed import footprint
    from swarmmesh.testbed.runtime import RunState
    builds: list[dict] = []
    memory: list[dict] = []
    state = RunState(f"benchmark-bare-{os.getpid()}")
    ctx.progress.phase("builds", total=len(sizes) * args.build_repeats * 2)
    try:
        for r in range(args.build_repeats):
            for n, t in sizes:
                kinds = ("mininet", "swarmmesh") if r % 2 == 0 else ("swarmmesh", "mininet")
                for kind in kinds:
                    ctx.progress.note(f"repeat {r + 1}: {size_tag(n, t)} ({n * t} tasks), "
                                      f"{BUILDS[kind]}, load {_load()}")
                    # each build starts on an idle machine
                    footprint.wait_quiet(timeout=args.settle_timeout)
                    row, mem = (_bare(n, t, state) if kind == "mininet"
                                else _ours(n, t, args, ctx))
                    # The kernel destroys the namespaces after the last process exits: the
                    # teardown's real end is when the machine is idle again.
                    row["idle_after_s"] = round(footprint.wait_quiet(
                        timeout=args.settle_timeout), 1) if args.settle_timeout else ""
                    row.update(repeat=r, size=size_tag(n, t), nodes=n, tasks_per_node=t,
                               tasks=n * t, build=kind)
                    builds.append(row)
                    memory += [{"size": size_tag(n, t), "repeat": r, "build": kind, **m}
                               for m in mem]
                    ctx.progress.note(f"  up {report.fmt(row['up_s'])} s, down "
                                      f"{report.fmt(row['down_s'])} s, idle again "
                                      f"{row['idle_after_s']} s later {row['error']}")
                    ctx.progress.advance()
    finally:
        state.clean()
    return builds, memory


def _bare(n: int, t: int, state) -> tuple[dict, list[dict]]:
    from swarmmesh.testbed import footprint
    load = _load()
    try:
        res = footprint.bare_mininet(n, t, state, measure=True)
    except Exception as e:                                    # noqa: BLE001 - recorded
        state.clean()
        return {"up_s": "", "down_s": "", "hosts": "", "load_1min": load, "phases": "",
                "error": f"{type(e).__name__}: {e}"[:300]}, []
    return ({"up_s": round(res["up_s"], 3), "down_s": round(res["down_s"], 3),
             "hosts": res["hosts"], "load_1min": load, "phases": "", "error": ""},
            [{"kind": "other shell", **{k: m[k] for k in ("host", "pid", "pss_kb", "rss_kb")}}
             for m in res["memory"]])


def _ours(n: int, t: int, args, ctx) -> tuple[dict, list[dict]]:
    from swarmmesh.testbed import footprint
    from swarmmesh.testbed.testbed import Testbed
    cluster = Cluster.quick(nodes=n, replicas=n * t)
    hosts = 1 + n + len(cluster.clients) + len(cluster.tasks)
    load = _load()
    steps = _Steps(ctx.progress)
    row = {"hosts": hosts, "load_1min": load, "up_s": "", "down_s": "", "phases": "",
           "error": ""}
    mem: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="swarmmesh-benchmark-") as tmp:
        tb = Testbed(cluster, Path(tmp), datapath=args.datapath, progress=steps,
                     ready_timeout=args.ready_timeout)
        t0 = time.monotonic()
        try:
            tb.__enter__()
        except Exception as e:                                # noqa: BLE001 - recorded
            row["error"] = f"{type(e).__name__}: {e}"[:300]
            return row, mem
        up = time.monotonic()
        ctx.summary["datapath"] = tb.datapath         # also when the builds run alone
        row["up_s"] = round(up - t0, 3)
        row["phases"] = json.dumps(steps.durations(up))
        try:
            mem = footprint.measure_memory(footprint.testbed_processes(tb))
        finally:
            t1 = time.monotonic()
            tb.__exit__(None, None, None)
            row["down_s"] = round(time.monotonic() - t1, 3)
    return row, mem


# -- summaries (pure: from the CSV rows) ---------------------------------------------
def _f(x) -> float | None:
    return None if x in ("", None) else float(x)


def ratio(value, baseline) -> float | None:
    """``value / baseline``, None if either is missing or the baseline is 0."""
    return value / baseline if value is not None and baseline else None


def per_repeat_ratios(values: dict[tuple, float], base_key, key) -> list[float]:
    """``values`` maps (group..., repeat) -> a number; the ratio of ``key``'s to
    ``base_key``'s value in every repeat where both exist (``key``, ``base_key``: the
    group part)."""
    repeats = sorted({k[-1] for k in values if k[:-1] == key}
                     & {k[-1] for k in values if k[:-1] == base_key})
    return [r for r in (ratio(values[(*key, rep)], values[(*base_key, rep)]) for rep in repeats)
            if r is not None]


def meets(value, comparison: str, limit: float) -> bool | None:
    if value is None:
        return None
    return value <= limit if comparison == "<=" else value >= limit


def _target(measure: str, path: str) -> tuple[str, float] | None:
    return TARGETS.get((measure, path))


RATIO_MEASURES = ("latency", "connection_rate", "throughput")


def _row(section, measure, path, value, unit, baseline, r, ratios, n, target_key=None):
    """One line of the table; ``target_key`` (measure, path or size) names its target
    in :data:`TARGETS`, checked on the ratio for the ratio measures, else on the value."""
    t = _target(*target_key) if target_key else None
    on_ratio = bool(target_key) and target_key[0] in RATIO_MEASURES
    checked = r if on_ratio else value
    return {"section": section, "measure": measure, "path": path, "value": value, "unit": unit,
            "baseline": baseline, "ratio": r,
            "ratio_min": min(ratios) if ratios else None,
            "ratio_max": max(ratios) if ratios else None, "n": n,
            "target": (f"{t[0]} {report.fmt(t[1])}" + ("×" if on_ratio else " s")) if t else "",
            "met": meets(checked, *t) if t else ""}


def per_repeat(lat: list[dict], ab: list[dict]) -> tuple[dict, dict]:
    """(path, repeat) -> the median latency of the answered requests, and -> ab's rate."""
    lat_med = {}
    for (path, rep) in {(r["path"], int(r["repeat"])) for r in lat}:
        xs = [float(r["total_ms"]) for r in lat if r["path"] == path
              and int(r["repeat"]) == rep and r["ok"] == "True" and r["total_ms"] != ""]
        if xs:
            lat_med[(path, rep)] = report.spread(xs)["median"]
    rps = {(r["path"], int(r["repeat"])): float(r["rps"]) for r in ab if r["rps"] != ""}
    return lat_med, rps


def mesh_table(lat: list[dict], ab: list[dict]) -> list[dict]:
    """Latency (median) and connections/s (median over repeats) per path, as ratios
    to (a) direct, with the per-repeat ratios' min and max."""
    paths = mesh_overhead.summarise(lat, ab)
    lat_med, rps = per_repeat(lat, ab)
    rows = []
    for p in paths:
        if p["path"] == "direct":
            continue
        lr = per_repeat_ratios(lat_med, ("direct",), (p["path"],))
        cr = per_repeat_ratios(rps, ("direct",), (p["path"],))
        rows.append(_row("mesh", "latency", p["path"], p["latency_median_ms"], "ms",
                         paths[0]["latency_median_ms"], p["latency_ratio_to_direct"], lr,
                         p["latency_n"], ("latency", p["path"])))
        rows.append(_row("mesh", "connection_rate", p["path"], p["rps_median"], "conn/s",
                         paths[0]["rps_median"], p["rps_ratio_to_direct"], cr,
                         p["rps_repeats"], ("connection_rate", p["path"])))
    return rows


def throughput_table(thr: list[dict]) -> list[dict]:
    """Median Mbit/s per configuration, path and stream count, as ratios to the
    underlay's median of the same configuration and stream count."""
    rows = []
    vals = {(r["config"], r["path"], int(r["streams"]), int(r["repeat"])): float(r["mbps"])
            for r in thr if r["mbps"] != ""}
    for config in [c for c in CONFIGS if any(r["config"] == c for r in thr)]:
        for streams in sorted({int(r["streams"]) for r in thr if r["config"] == config}):
            def med(path):
                return report.spread([v for k, v in vals.items()
                                      if k[:3] == (config, path, streams)])
            base = med("underlay")
            measure = f"throughput, {streams} stream{'s' * (streams > 1)}"
            rows.append(_row(f"throughput ({config})", measure, "underlay",
                             base["median"], "Mbit/s", None, 1.0 if base["n"] else None, [],
                             base["n"]))
            for path in THR_PATHS[1:]:
                s = med(path)
                rs = per_repeat_ratios(vals, (config, "underlay", streams),
                                       (config, path, streams))
                rows.append(_row(f"throughput ({config})", measure, path,
                                 s["median"], "Mbit/s", base["median"],
                                 ratio(s["median"], base["median"]), rs, s["n"],
                                 ("throughput", path)))
                if config != "default":       # against the default build's underlay too
                    rows[-1]["ratio_to_default_underlay"] = ratio(
                        s["median"], report.spread([v for k, v in vals.items() if k[:3] ==
                                                    ("default", "underlay", streams)])["median"])
    return rows


def build_table(builds: list[dict]) -> list[dict]:
    """Per size: the testbed's median up and down seconds against bare Mininet's."""
    rows = []
    for size in dict.fromkeys(r["size"] for r in builds):
        def by(kind, key):
            return {int(r["repeat"]): float(r[key]) for r in builds
                    if r["size"] == size and r["build"] == kind and r.get(key, "") != ""}
        def until_idle(kind):
            """The teardown until the CPUs went idle (the wait's own check taken off)."""
            from swarmmesh.testbed.footprint import QUIET_CHECK_S
            down, idle = by(kind, "down_s"), by(kind, "idle_after_s")
            return {k: v + max(0.0, idle[k] - QUIET_CHECK_S) for k, v in down.items()
                    if k in idle}
        for key, measure in (("up_s", "build_up"), ("down_s", "build_down"),
                             ("down_idle", "build_down_until_idle")):
            if key == "down_idle":
                ours, bare = until_idle("swarmmesh"), until_idle("mininet")
                if not ours:
                    continue
            else:
                ours, bare = by("swarmmesh", key), by("mininet", key)
            so, sb = report.spread(ours.values()), report.spread(bare.values())
            vals = {("swarmmesh", k): v for k, v in ours.items()}
            vals.update({("mininet", k): v for k, v in bare.items()})
            rs = per_repeat_ratios(vals, ("mininet",), ("swarmmesh",))
            tasks = next(r["tasks"] for r in builds if r["size"] == size)
            rows.append(_row("build", measure, f"{size} ({tasks} tasks)", so["median"], "s",
                             sb["median"], ratio(so["median"], sb["median"]), rs, so["n"],
                             (measure, size)))
    return rows


def memory_table(memory: list[dict], builds: list[dict]) -> list[dict]:
    """Per size (median over repeats): our processes' PSS and RSS per node, per task and
    per run, and bare Mininet's per host."""
    from swarmmesh.testbed import footprint
    out = []
    for size in dict.fromkeys(r["size"] for r in builds):
        b = next(r for r in builds if r["size"] == size)
        nodes, tasks = int(b["nodes"]), int(b["tasks"])
        per: dict[str, list] = {}
        for rep in sorted({int(r["repeat"]) for r in memory if r["size"] == size}):
            ours = [r for r in memory if r["size"] == size and int(r["repeat"]) == rep
                    and r["build"] == "swarmmesh"]
            bare = [r for r in memory if r["size"] == size and int(r["repeat"]) == rep
                    and r["build"] == "mininet"]
            if ours:
                s = footprint.sum_memory(ours, nodes, tasks)
                for k in ("per_node", "per_task", "per_run"):
                    for m in ("pss_mib", "rss_mib", "processes"):
                        per.setdefault(f"{k}_{m}", []).append(s[k][m])
                for kind, v in s["kinds"].items():
                    per.setdefault(f"{kind}|pss_mib", []).append(v["pss_mib"] / v["processes"])
                    per.setdefault(f"{kind}|rss_mib", []).append(v["rss_mib"] / v["processes"])
            if bare:
                s = footprint.sum_memory(bare, 1, 1)
                n = s["kinds"]["other shell"]["processes"]
                per.setdefault("bare_host_pss_mib", []).append(s["total_pss_mib"] / n)
                per.setdefault("bare_host_rss_mib", []).append(s["total_rss_mib"] / n)
        out.append({"size": size, "nodes": nodes, "tasks": tasks,
                    **{k: report.spread(v)["median"] for k, v in per.items()}})
    return out


def summarise_run(run_dir: Path) -> dict:
    """Every table of a run folder, from its CSV files alone."""
    run_dir = Path(run_dir)

    def rows(name):
        p = run_dir / name
        return results.read_csv(p) if p.exists() else []
    lat, ab, thr = rows("latency.csv"), rows("connection_rate.csv"), rows("throughput.csv")
    builds, memory = rows("builds.csv"), rows("memory.csv")
    table = (mesh_table(lat, ab) if lat else []) + throughput_table(thr) + build_table(builds)
    failures = []
    failed_mesh = sum(1 for r in lat if r["ok"] != "True") + sum(int(r["failed"]) for r in ab)
    if failed_mesh:
        failures.append(f"{failed_mesh} requests failed (latency/ab)")
    failures += [f"iperf3 {r['config']} {r['path']} -P {r['streams']}: {r['error']}"
                 for r in thr if r["error"]]
    failures += [f"build {r['size']} ({r['build']}, repeat {r['repeat']}): {r['error']}"
                 for r in builds if r["error"]]
    load = rows("load.csv")
    failures += [f"{r['tool']} -c {r['concurrency']} {r['path']} (repeat {r['repeat']}): "
                 f"{r['error']}" for r in load if r["error"]]
    failed_load = sum(int(r["errors"] or 0) for r in load)
    if failed_load:
        failures.append(f"{failed_load} requests failed in the load sweep")
    works = {s: all(not r["error"] for r in builds if r["size"] == s and r["build"] == "swarmmesh")
             for s in dict.fromkeys(r["size"] for r in builds)}
    return {"table": table, "load": loadsweep.table(load) if load else [],
            "memory": memory_table(memory, builds) if builds else [],
            "sizes_built": works, "failures": failures}


# -- figures and report ----------------------------------------------------------------
def plot(run_dir: Path) -> None:
    run_dir = Path(run_dir)
    summary = experiment.read_summary(run_dir)
    tables = summarise_run(run_dir)
    results.write_csv(run_dir / "table.csv", tables["table"], TABLE_COLUMNS)
    figs = {}
    if any(r["section"] != "build" for r in tables["table"]):
        figs["ratios"] = ratios_figure(run_dir, summary)
    if (run_dir / "load.csv").exists():
        figs["load"] = load_figure(run_dir, summary)
    if (run_dir / "builds.csv").exists():
        figs["build"] = build_figure(run_dir, summary, tables["memory"])
    write_report(run_dir, summary, tables, figs)


def _ratio_groups(run_dir: Path) -> dict[str, dict[str, list[float]]]:
    """Per panel, per label: the per-repeat ratios."""
    out: dict[str, dict[str, list[float]]] = {"latency": {}, "connection_rate": {},
                                              "throughput": {}}
    lat = results.read_csv(run_dir / "latency.csv") if (run_dir / "latency.csv").exists() else []
    ab = (results.read_csv(run_dir / "connection_rate.csv")
          if (run_dir / "connection_rate.csv").exists() else [])
    if lat:
        short = {"mesh_task_node": "(b) mesh,\ntask node", "mesh_empty_node": "(c) mesh,\nempty node",
                 "nft_lb": "(d) nft LB"}
        lat_med, rps = per_repeat(lat, ab)
        for path, label in short.items():
            out["latency"][label] = per_repeat_ratios(lat_med, ("direct",), (path,))
            out["connection_rate"][label] = per_repeat_ratios(rps, ("direct",), (path,))
    if (run_dir / "throughput.csv").exists():
        thr = results.read_csv(run_dir / "throughput.csv")
        vals = {(r["config"], r["path"], int(r["streams"]), int(r["repeat"])): float(r["mbps"])
                for r in thr if r["mbps"] != ""}
        for config in [c for c in CONFIGS if any(r["config"] == c for r in thr)]:
            for streams in sorted({int(r["streams"]) for r in thr if r["config"] == config}):
                for path, short in (("mesh_task_node", "(b) task"), ("mesh_empty_node", "(c) empty")):
                    label = f"{short}\n-P {streams}" + ("\nTSO" if config != "default" else "")
                    out["throughput"][label] = per_repeat_ratios(
                        vals, (config, "underlay", streams), (config, path, streams))
    return out


def ratios_figure(run_dir: Path, summary: dict) -> list[Path]:
    """Three panels of per-repeat ratios (a dot per repeat, the box over them) with the
    issue's target as a dashed line."""
    import matplotlib.pyplot as plt
    groups = _ratio_groups(run_dir)
    panels = [(k, v) for k, v in groups.items() if any(v.values())]
    widths = [max(3, len(v)) for _, v in panels]
    fig, axes = plt.subplots(1, len(panels), figsize=(0.95 * sum(widths) + 2, 4.8),
                             squeeze=False, gridspec_kw={"width_ratios": widths})
    titles = {"latency": ("latency ÷ direct (median per repeat)", 2.0, "target ≤ 2×"),
              "connection_rate": ("connections/s ÷ direct (ab, per repeat)", 0.5,
                                  "target ≥ 0.5× (empty node)"),
              "throughput": ("iperf3 Mbit/s ÷ underlay alone (per repeat)", 0.5,
                             "target ≥ 0.5×")}
    for ax, (key, g) in zip(axes[0], panels):
        labels = [k for k, v in g.items() if v]
        data = [g[k] for k in labels]
        bp = ax.boxplot(data, whis=(0, 100), widths=0.55, patch_artist=True,
                        medianprops={"color": "black"})
        for i, (patch, xs, label) in enumerate(zip(bp["boxes"], data, labels)):
            c = plots.colour(0 if label.startswith("(b)") else 1 if label.startswith("(c)") else 3)
            patch.set_facecolor(c)
            patch.set_alpha(0.2 if "TSO" in label else 0.5)
            if "TSO" in label:
                patch.set_hatch("//")
            ax.scatter([i + 1] * len(xs), xs, color=c, s=14, zorder=3)
        title, limit, tlabel = titles[key]
        ax.axhline(limit, color="red", ls="--", lw=1, label=tlabel)
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_xticks(range(1, len(labels) + 1), labels, fontsize=7)
        ax.set_ylim(bottom=0)
        ax.set_title(title, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, loc="upper right")
    p = summary["parameters"]
    fig.suptitle(plots.run_title(summary, f"Benchmark: the mesh against its baselines "
                                          f"({p['nodes']} nodes, {p['replicas']} replicas)"),
                 fontsize=10)
    return plots.save(fig, run_dir / "benchmark_ratios")


def load_figure(run_dir: Path, summary: dict) -> list[Path]:
    rows = results.read_csv(run_dir / "load.csv")
    p = summary["parameters"]
    fig = loadsweep.figure(rows, mesh_overhead.LABELS,
                           plots.run_title(summary, f"Load sweep: the mesh against direct "
                                                    f"({p['nodes']} nodes, {p['replicas']} "
                                                    f"replicas)"))
    return plots.save(fig, run_dir / "benchmark_load")


def build_figure(run_dir: Path, summary: dict, memory: list[dict]) -> list[Path]:
    """Seconds to build and to tear down against the hosts built, i.e. the tasks plus
    the nodes (ours and bare Mininet's, a dot per repeat, the medians joined; each size
    labelled with its tasks), the issue's limits at 50x10; memory per node and per task
    against size."""
    import matplotlib.pyplot as plt
    builds = results.read_csv(run_dir / "builds.csv")
    sizes = list(dict.fromkeys(r["size"] for r in builds))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    hosts = {r["size"]: int(r["hosts"]) for r in builds if r["hosts"] != ""}
    for ax, key, limit, title in ((axes[0], "up_s", 45.0, "build (up)"),
                                  (axes[1], "down_s", 15.0, "teardown (down)")):
        for kind, label in BUILDS.items():
            pts = [(hosts[r["size"]], float(r[key]), r["size"]) for r in builds
                   if r["build"] == kind and r[key] != "" and r["size"] in hosts]
            if not pts:
                continue
            c = plots.colour(0 if kind == "swarmmesh" else 7)
            ax.scatter([x for x, _, _ in pts], [y for _, y, _ in pts], color=c, s=16, zorder=3)
            med = sorted((hosts[s], report.spread([y for _, y, sz in pts if sz == s])["median"], s)
                         for s in sizes if any(sz == s for _, _, sz in pts))
            ax.plot([m[0] for m in med], [m[1] for m in med], "-o", color=c, label=label, ms=4)
            if kind == "swarmmesh":
                tasks = {r["size"]: r["tasks"] for r in builds}
                right = max(m[0] for m in med) / 2
                for x, y, s in med:
                    ax.annotate(f"{s} ({tasks[s]} tasks)", (x, y), textcoords="offset points",
                                xytext=(-6 if x > right else 6, 6), fontsize=7,
                                ha="right" if x > right else "left")
        if "50x10" in hosts:
            ax.scatter([hosts["50x10"]], [limit], marker="_", s=400, color="red", zorder=4,
                       label=f"target: 50x10 ≤ {limit:g} s")
        ax.set_xlabel("hosts built: nodes + tasks + underlay + client")
        ax.set_ylabel("seconds")
        ax.set_ylim(bottom=0)
        ax.set_xlim(left=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
        ax.set_title(f"{title}, a dot per repeat, line through the medians", fontsize=9)
    ax = axes[2]
    labels = [m["size"] for m in memory]
    xs = range(len(labels))
    w = 0.38
    node = [m.get("per_node_pss_mib") or 0 for m in memory]
    task = [m.get("per_task_pss_mib") or 0 for m in memory]
    b1 = ax.bar([x - w / 2 for x in xs], node, w, color=plots.colour(0), alpha=0.8,
                label="per node (vswitchd, ovsdb, DNS, shell)")
    b2 = ax.bar([x + w / 2 for x in xs], task, w, color=plots.colour(1), alpha=0.8,
                label="per task (server, shell)")
    ax.bar_label(b1, labels=[f"{v:.1f}" for v in node], fontsize=7)
    ax.bar_label(b2, labels=[f"{v:.1f}" for v in task], fontsize=7)
    ax.set_xticks(list(xs), labels, fontsize=8)
    ax.set_xlabel("nodes x tasks per node")
    ax.set_ylabel("PSS, MiB")
    ax.set_ylim(0, 1.3 * max(node + task + [1]))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title("memory after the build (PSS, median over repeats)", fontsize=9)
    fig.suptitle(plots.run_title(summary, "Benchmark: build and teardown against cluster "
                                          "size, Mininet alone as the baseline"), fontsize=10)
    return plots.save(fig, run_dir / "benchmark_build")


def num(x) -> str:
    """A figure for the table: thousands grouped, 3 significant digits below."""
    if x in (None, ""):
        return "–"
    x = float(x)
    return f"{x:,.0f}".replace(",", "\u202f") if abs(x) >= 1000 else report.fmt(x)


def _yes(met) -> str:
    return {True: "**met**", False: "missed", "": "–", None: "–"}.get(met, str(met))


def _short_by(row) -> str:
    """By how much a target is missed: the factor between the figure and the limit."""
    if row["met"] is not False or not row["target"]:
        return ""
    comp, limit = row["target"].split()[0], float(re.sub(r"[^\d.]", "", row["target"]))
    v = row["ratio"] if row["target"].endswith("×") else row["value"]
    if not v:
        return ""
    return f"×{report.fmt(limit / v if comp == '>=' else v / limit)} short"


def load_section(rep, summary: dict, load: list[dict], fig) -> None:
    p = summary["parameters"]
    rep.heading("Load sweep: ab and wrk at several concurrencies")
    rep.text(f"Per path and concurrency C: `ab -n {p['ab_requests']} -c C` (a new connection "
             f"per request) and `wrk -t 1 -c C -d {report.fmt(p['load_seconds'])}s` (C "
             f"keep-alive connections), {p['load_repeats']} rounds; the ratio is to (a) direct "
             "at the same tool, C and round (median, then the per-round min–max).")
    rep.table(["tool", "C", "path", "rate (median)", "÷ direct (min–max)", "p99 ms", "n",
               "errors"],
              [[r["tool"], r["concurrency"], mesh_overhead.LABELS.get(r["path"], r["path"]),
                num(r["rps"]), f"×{report.fmt(r['ratio'])}" + (
                    f" ({report.fmt(r['ratio_min'])}–{report.fmt(r['ratio_max'])})"
                    if r["ratio_min"] is not None else ""),
                report.fmt(r["p99_ms"]), r["n"], r["errors"]] for r in load])
    if fig:
        rep.figure(fig, "Rate against concurrency, one line per path (median), a dot per "
                        "round; left ab (new connections), right wrk (keep-alive).")


def write_report(run_dir: Path, summary: dict, tables: dict, figs: dict) -> None:
    p = summary["parameters"]
    rep = report.Report(run_dir, "Benchmark", summary)
    load = summary.get("load_average") or {}
    rep.text("Every figure below is a ratio to a baseline measured in this run. Load "
             f"average (1, 5, 15 min) at the start {load.get('start')}, before the mesh "
             f"part {load.get('mesh')}, at the end {load.get('end')}; each build's and "
             "iperf3 run's own is in builds.csv / throughput.csv.")
    rep.heading("The table")
    rep.table(["measure", "path / size", "this run", "baseline (same run)",
               "ratio (per-repeat min–max)", "n", "target", "", "short by"],
              [[r["measure"].replace("_", " ") + (" (userspace TSO)" if "tso" in r["section"]
                                                  else ""),
                mesh_overhead.LABELS.get(r["path"],
                                                  THR_LABELS.get(r["path"], r["path"])),
                f"{num(r['value'])} {r['unit']}",
                f"{num(r['baseline'])} {r['unit']}" if r["baseline"] is not None else "–",
                f"×{report.fmt(r['ratio'])}" + (f" ({report.fmt(r['ratio_min'])}–"
                                                  f"{report.fmt(r['ratio_max'])})"
                                                  if r["ratio_min"] is not None else ""),
                r["n"], r["target"] or "–", _yes(r["met"]), _short_by(r)]
               for r in tables["table"]])
    other = [r for r in tables["table"] if r.get("ratio_to_default_underlay") is not None]
    if other:
        rep.text("With userspace TSO, against the *default* build's underlay (c1's checksum "
                 "offload off, as the issue's 3.0 Gbit/s baseline was measured): " + "; ".join(
                     f"{mesh_overhead.LABELS.get(r['path'], r['path'])}, {r['measure']}: "
                     f"×{report.fmt(r['ratio_to_default_underlay'])}" for r in other) + ".")
    rep.text("Baselines: latency and connections/s against (a) direct to a task (c1 routes "
             "via lb1, which only forwards); throughput against the underlay alone (c1 -> "
             "the task's node, no mesh); build and teardown against Mininet alone building "
             "the same hosts and links. Table also in `table.csv`.")
    if "ratios" in figs:
        rep.figure(figs["ratios"], "Per-repeat ratios to the same run's baselines; dashed: "
                                   "the targets.")
    if tables["load"]:
        load_section(rep, summary, tables["load"], figs.get("load"))
    if tables["memory"]:
        rep.heading("Memory after the build (median over repeats)")
        rep.table(["size", "nodes", "tasks", "per node PSS (RSS), MiB",
                   "per task PSS (RSS), MiB", "controller + other shells PSS, MiB",
                   "bare Mininet per host PSS (RSS), MiB"],
                  [[m["size"], m["nodes"], m["tasks"],
                    f"{report.fmt(m.get('per_node_pss_mib'))} ({report.fmt(m.get('per_node_rss_mib'))})",
                    f"{report.fmt(m.get('per_task_pss_mib'))} ({report.fmt(m.get('per_task_rss_mib'))})",
                    report.fmt(m.get("per_run_pss_mib")),
                    f"{report.fmt(m.get('bare_host_pss_mib'))} ({report.fmt(m.get('bare_host_rss_mib'))})"]
                   for m in tables["memory"]])
        kinds = sorted({k.split("|")[0] for m in tables["memory"] for k in m if "|" in k})
        rep.text("Per process, PSS (RSS) MiB, by kind and size:")
        rep.table(["process"] + [m["size"] for m in tables["memory"]],
                  [[k] + [f"{report.fmt(m.get(k + '|pss_mib'))} ({report.fmt(m.get(k + '|rss_mib'))})"
                          for m in tables["memory"]] for k in kinds])
    if "build" in figs:
        rep.heading("Build and teardown")
        rep.figure(figs["build"], "Seconds against tasks, this testbed and Mininet alone; "
                                  "memory per node and per task.")
        builds = results.read_csv(run_dir / "builds.csv")
        steps = [r for r in builds if r["build"] == "swarmmesh" and r["phases"]]
        if steps:
            names = list(dict.fromkeys(k for r in steps for k in json.loads(r["phases"])))
            rep.text("Where the build's time goes (seconds per step, each build); *idle after*: "
                     "the wait after the teardown returned until the CPUs had been 90 % idle "
                     "for 2 s (2.0: idle at once; the kernel destroys the namespaces after "
                     "their last process exits):")
            rep.table(["size", "repeat", "up", "down", "idle after"] + names,
                      [[r["size"], r["repeat"], r["up_s"], r["down_s"], r.get("idle_after_s")]
                       + [json.loads(r["phases"]).get(n) for n in names] for r in steps])
            bare = [r for r in builds if r["build"] == "mininet" and r["up_s"]]
            rep.text("Bare Mininet (seconds): " + "; ".join(
                f"{r['size']} r{r['repeat']}: up {r['up_s']}, down {r['down_s']}, idle after "
                f"{r.get('idle_after_s') or '–'}" for r in bare) + ".")
        built = tables.get("sizes_built") or {}
        rep.text("Built and torn down without error: " + ", ".join(
            f"{s} {'yes' if ok else '**no**'}" for s, ok in built.items()) + ".")
    if (run_dir / "throughput.csv").exists():
        rep.heading("Throughput")
        thr = results.read_csv(run_dir / "throughput.csv")
        rep.text("Configurations: " + "; ".join(f"**{k}**: {v}" for k, v in CONFIGS.items()
                                                if any(r["config"] == k for r in thr)) + ". "
                 f"iperf3 for {p['iperf_seconds']} s per run; command "
                 f"`{summary.get('iperf3_command', '')}`.")
        if summary.get("userspace_tso_log"):
            rep.text("vswitchd: " + "; ".join(summary["userspace_tso_log"][:3]) + " …")
        rep.numbers({f"{r_c} {THR_LABELS[path]} -P {s}": [r["mbps"] for r in thr
                                                           if r["config"] == r_c
                                                           and r["path"] == path
                                                           and int(r["streams"]) == s]
                     for r_c in CONFIGS for s in sorted({int(r["streams"]) for r in thr})
                     for path in THR_PATHS if any(r["config"] == r_c for r in thr)},
                    unit="Mbit/s", what="iperf3 received throughput", label="path")
        retr = {f"{r_c} {path} -P {s}": [r["retransmits"] for r in thr if r["config"] == r_c
                                         and r["path"] == path and int(r["streams"]) == s]
                for r_c in CONFIGS for s in sorted({int(r["streams"]) for r in thr})
                for path in THR_PATHS if any(r["config"] == r_c for r in thr)}
        rep.numbers(retr, unit="segments", what="TCP retransmits per run", label="path")
    if tables["failures"]:
        rep.heading("Failures")
        rep.text("\n".join(f"- {f}" for f in tables["failures"]))
    rep.write()


if __name__ == "__main__":
    sys.exit(experiment.main(sys.modules[__name__]))
