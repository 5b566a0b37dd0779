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

import os
import signal
import sys
import time
from pathlib import Path

from swarmmesh.runs import experiment, flags, meshpaths, report, runfolder as results, stackargs
from swarmmesh.runs.benchreport import build_figure, load_figure, num, ratios_figure, write_report
from swarmmesh.runs.benchbuilds import load_1min, measure_builds
from swarmmesh.runs.benchtables import (BUILD_COLUMNS, MEMORY_COLUMNS, TABLE_COLUMNS,
                                        THR_COLUMNS, THR_PATHS, summarise_run)
from swarmmesh.model import Cluster, InvalidConfigError
from swarmmesh.model.stack import ingress_subnet
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
# The builds' ingress network: past 10.0.0.0/24's 253 addresses (50 x 10 has 500 tasks), as a
# user of a large swarm re-creates it (this is the subnet Docker 1.12 and 1.13 gave it).
BUILD_INGRESS = "10.255.0.0/16"
BULK, BULK_PORT, UNDERLAY_PORT = "bulk", 5201, 5301


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
    stackargs.add_ingress_subnet(build, default=BUILD_INGRESS)
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
    if args.iperf_repeats is not None:
        flags.positive(args, "iperf_repeats")
    flags.seconds(args, "iperf_seconds", most=60)
    plan["streams"] = flags.int_list(args.streams, "streams", 1, 128)
    plan["concurrencies"] = loadsweep.parse_concurrencies(args.load_concurrency)
    flags.positive(args, "load_repeats")
    flags.int_in(args, "load_seconds", 1, 60)        # wrk takes whole seconds
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
    plan["sizes"] = flags.sizes(args.sizes, tasks_word="tasks per node")
    ingress_subnet(args.ingress_subnet)          # its own errors first (naming the flag)
    for n, t in plan["sizes"]:                   # every size fits, before anything is built
        try:
            Cluster.quick(nodes=n, replicas=n * t, ingress_subnet=args.ingress_subnet)
        except InvalidConfigError as e:
            raise InvalidConfigError("sizes", f"{n}x{t}: {e}") from None
    flags.positive(args, "build_repeats")
    flags.seconds(args, "settle_timeout", zero=True)
    flags.seconds(args, "ready_timeout")
    return plan


# -- running ------------------------------------------------------------------------
def _as_text(rows: list[dict]) -> list[dict]:
    """Rows as they read back from CSV (run() and plot() share one summary)."""
    return [{k: ("" if v is None else str(v)) for k, v in r.items()} for r in rows]


def run(args, plan, ctx) -> None:
    ctx.summary["load_average"] = {"start": os.getloadavg()}
    ctx.summary["userspace_tso_requested"] = bool(args.userspace_tso)
    thr_rows: list[dict] = []
    if not (args.skip_mesh and args.skip_throughput):
        cluster: Cluster = plan["cluster"]
        ctx.summary["placement"] = {t.name: t.node for t in cluster.tasks}
        ctx.summary["task_node"], ctx.summary["empty_node"] = plan["task_node"], plan["empty_node"]
        ctx.summary["paths"] = dict(meshpaths.LABELS)
        with ctx.testbed(cluster) as tb:
            if not args.skip_mesh:
                ctx.summary["load_average"]["mesh"] = os.getloadavg()
                lat, ab, checks, commands = mesh_overhead.measure_paths(tb, plan, args, ctx)
                ctx.write_csv("latency.csv", lat, meshpaths.LAT_COLUMNS)
                ctx.write_csv("connection_rate.csv", ab, meshpaths.AB_COLUMNS)
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
    return loadsweep.measure(tb.host(cluster.clients[0].name), targets, meshpaths.PATHS,
                             plan["concurrencies"], args.load_repeats, args.ab_requests,
                             args.load_seconds, args.timeout, tb.state.register,
                             ctx.progress, load_1min)


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
                       "target": target, "load_1min": load_1min(), "error": ""}
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


# -- summaries (pure: from the CSV rows) ---------------------------------------------


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


if __name__ == "__main__":
    sys.exit(experiment.main(sys.modules[__name__]))
