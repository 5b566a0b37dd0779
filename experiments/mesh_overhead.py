#!/usr/bin/env python3
"""What the routing mesh costs: the same service reached four ways, in one run.

From the external client ``c1`` on the underlay, to the quick service ``app``
(published 8000 -> target 80):

* ``direct``: straight at a task's ingress address and target port.  A task
  has no address on the underlay, so ``c1`` routes the ingress subnet via
  the balancer host ``lb1``, which only forwards (no NAT): one kernel IP hop.
  The tasks take turns, one per repeat.
* ``mesh_task_node``: ``<node with a task>:8000``, the routing mesh; its rr
  sends connections to the local task and over VXLAN to the others.
* ``mesh_empty_node``: ``<node with no task>:8000``: every connection
  crosses the overlay.
* ``nft_lb``: ``lb1:8000``, a kernel nftables DNAT load balancer (``numgen
  inc`` round robin + masquerade, kube-proxy-iptables style) on the underlay,
  routing to the tasks over its own backend network (swarmmesh/l4lb.py).

And Swarm's own data plane as a reference, where the kernel has ``ip_vs`` (``--ipvs``,
default ``auto``): a second cluster, the same in every other way, built with a real ingress
sandbox per node (mangle mark, IPVS rr on the fwmark, SNAT with ``-m ipvs``;
``swarmmesh.dataplane.ipvs``), measured the same way in the same run: ``ipvs_direct`` (the
direct path again, that cluster's own baseline), ``ipvs_task_node`` and ``ipvs_empty_node``.
The summary's ``reference`` compares the two mechanisms path by path: the rr order per node
(each repeat's connections in start order), the source the task saw, latency and
connections/s.  Where ``ip_vs`` is missing that part is skipped with one line saying why.

Two measurements per path, in rounds (each repeat visits the four paths in a
rotated order, so slow drift and contention spread over all of them):

* latency: the open-loop client (``swarmmesh.traffic.openloop``) starts
  ``--requests`` new connections at ``--rate``/s; connect, first byte and
  total time of every request (distributions);
* connection rate: ``ab -n --ab-requests -c --concurrency`` (a new connection
  per request), once per repeat: requests/s with its spread over repeats.

    sudo .venv/bin/python experiments/mesh_overhead.py --repeats 5
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from swarmmesh.runs import experiment, flags, runfolder as results, stackargs
from swarmmesh.runs.meshpaths import (AB_COLUMNS, ALL_LABELS, IPVS_PATHS, LAT_COLUMNS, PATHS,
                                      SAME_AS, TABLE_COLUMNS, reference, summarise)
from swarmmesh.runs.meshpaths_report import paths_figure, write_report
from swarmmesh.model import Cluster, InvalidConfigError

NAME = "mesh_overhead"
DESCRIPTION = ("latency and connection rate of one service reached directly, through a node "
               "with a task, through a node with none, and through an nftables DNAT balancer")

PUBLISHED, TARGET = 8000, 80

WHY = {
    "latency": "open-loop Python client (swarmmesh.traffic.openloop): requests start at a "
               "fixed rate, each on a new TCP connection, with connect / first-byte / total "
               "time per request, so the latency is a distribution at a known, light load",
    "connection_rate": "ab (ApacheBench) without -k: a new TCP connection per request, so "
                       "requests/s is the connection rate the path sustains; repeated for spread",
    "check": "curl, one request per path before measuring: the path answers, and who answered",
}


def add_arguments(ap: argparse.ArgumentParser, ipvs: bool = True) -> None:
    """The flags; ``ipvs``: with ``--ipvs`` (the benchmark takes the others only)."""
    stackargs.add_size_arguments(ap, nodes=3, replicas=2,
                                 replicas_help="replicas of `app`; at least one node must run "
                                               "none")
    ap.add_argument("--requests", type=int, default=100,
                    help="open-loop requests per path per repeat (latency samples)")
    ap.add_argument("--rate", type=float, default=50.0, help="open-loop start rate, requests/s")
    ap.add_argument("--repeats", type=int, default=5, help="rounds over the four paths")
    ap.add_argument("--ab-requests", type=int, default=500,
                    help="ab requests (new connections) per path per repeat")
    ap.add_argument("--concurrency", type=int, default=4, help="ab concurrency")
    ap.add_argument("--timeout", type=float, default=2.0, help="per-request timeout, seconds")
    if not ipvs:
        return
    ap.add_argument("--ipvs", choices=("auto", "on", "off"), default="auto",
                    help="Swarm's own IPVS as a reference path on a second cluster: auto "
                         "(where the kernel has ip_vs; else skipped with a line), on (an error "
                         "where it is missing), off")


def ipvs_plan(choice: str, cluster: Cluster) -> str | None:
    """Why the IPVS reference path is not measured (None: it is)."""
    from swarmmesh.dataplane import ipvs
    from swarmmesh.machine.datapath import ipvs_missing
    if choice == "off":
        return "--ipvs off"
    why = ipvs_missing()
    if why and choice == "on":
        raise InvalidConfigError("ipvs", f"on: the IPVS reference path cannot run: {why}")
    ipvs.check_supported(cluster)
    return why


def validate(args) -> dict:
    for name, low in (("nodes", 2), ("replicas", 1), ("requests", 10), ("repeats", 1),
                      ("ab_requests", 10), ("concurrency", 1)):
        flags.at_least(args, name, low)
    flags.number(args, "rate", most=1000, unit=" requests/s")
    flags.seconds(args, "timeout")
    if args.concurrency > args.ab_requests:
        raise InvalidConfigError("concurrency", f"must be <= --ab-requests ({args.ab_requests})")
    cluster = Cluster.quick(nodes=args.nodes, replicas=args.replicas, published=PUBLISHED,
                            target=TARGET)
    busy = [n.name for n in cluster.nodes if cluster.tasks_on(n.name)]
    empty = [n.name for n in cluster.nodes if not cluster.tasks_on(n.name)]
    if not empty:
        raise InvalidConfigError("replicas", f"path (c) needs a node with no task: with "
                                 f"{args.replicas} replicas on {args.nodes} nodes every node "
                                 "runs one; use fewer replicas or more nodes")
    from swarmmesh.testbed import l4lb
    l4lb.backend_network(cluster)                    # raises naming the field if none fits
    return {"cluster": cluster, "task_node": busy[0], "empty_node": empty[0],
            "ipvs_skipped": ipvs_plan(getattr(args, "ipvs", "off"), cluster)}


def _targets(cluster: Cluster, plan: dict, lb_ip: str) -> dict:
    """Per path: a function of the repeat number giving (label, ip, port)."""
    tasks = cluster.tasks_of("app")
    tn, en = cluster.node(plan["task_node"]), cluster.node(plan["empty_node"])
    out = {
        "direct": lambda r: (f"{tasks[r % len(tasks)].name}", str(
            tasks[r % len(tasks)].addresses["ingress"]), TARGET),
        "mesh_task_node": lambda r: (tn.name, str(tn.underlay_ip), PUBLISHED),
        "mesh_empty_node": lambda r: (en.name, str(en.underlay_ip), PUBLISHED),
        "nft_lb": lambda r: ("lb1", lb_ip, PUBLISHED),
    }
    return {**out, **{p: out[same] for p, same in SAME_AS.items()}}


def measure_paths(tb, plan, args, ctx, paths: tuple[str, ...] = PATHS
                  ) -> tuple[list[dict], list[dict], dict, dict]:
    """On a running testbed of ``plan["cluster"]``: add the nftables balancer ``lb1``
    and the client's direct route, check that the paths (default the four) answer, then
    measure them (:func:`measure`).  Returns the latency rows, the ab rows, the checks
    and one command of each tool; the balancer and the route go into ``ctx.summary``.
    Also called by the benchmark experiment."""
    from swarmmesh.testbed import l4lb
    cluster: Cluster = plan["cluster"]
    client = cluster.clients[0].name
    ctx.progress.phase("building load balancer")
    lb = l4lb.build(tb, cluster, "app", PUBLISHED, TARGET)
    route = l4lb.route_client_to_tasks(tb, client, cluster, lb)
    ctx.summary["load_balancer"] = lb.describe()
    ctx.summary["direct_route"] = f"{client}: ip route {route} (lb1 only forwards, no NAT)"
    targets = _targets(cluster, plan, lb.ip)
    c1 = tb.host(client)
    checks = check_paths(c1, targets, args, tb.state.register, ctx, paths)
    lat_rows, ab_rows, commands = measure(c1, targets, args, tb.state.register, ctx, paths)
    return lat_rows, ab_rows, checks, commands


def run(args, plan, ctx) -> None:
    cluster: Cluster = plan["cluster"]
    ctx.summary["load_average_start"] = os.getloadavg()
    with ctx.testbed(cluster) as tb:
        lat_rows, ab_rows, checks, commands = measure_paths(tb, plan, args, ctx)
    if plan.get("ipvs_skipped"):
        ctx.progress.note(f"IPVS reference path skipped: {plan['ipvs_skipped']}")
        ctx.summary["ipvs_reference"] = {"skipped": plan["ipvs_skipped"]}
    else:
        lat2, ab2, checks2, ipvs_state = measure_ipvs(plan, args, ctx)
        lat_rows, ab_rows, checks = lat_rows + lat2, ab_rows + ab2, {**checks, **checks2}
        ctx.summary["ipvs_reference"] = {"ipvsadm": ipvs_state}
    ctx.write_csv("latency.csv", lat_rows, LAT_COLUMNS)
    ctx.write_csv("connection_rate.csv", ab_rows, AB_COLUMNS)
    ctx.summary["load_average_end"] = os.getloadavg()
    ctx.summary["check"] = checks
    ctx.summary["tools"] = {k: {"tool": {"latency": "openloop", "connection_rate": "ab",
                                         "check": "curl"}[k],
                                "command_example": commands.get(k) or checks["direct"]["command"],
                                "why": WHY[k]} for k in WHY}
    ctx.summary["paths"] = {p: ALL_LABELS[p] for p in dict.fromkeys(r["path"] for r in lat_rows)}
    ctx.summary["placement"] = {t.name: t.node for t in cluster.tasks_of("app")}
    ctx.summary["task_node"], ctx.summary["empty_node"] = plan["task_node"], plan["empty_node"]
    table = summarise(_as_text(lat_rows), _as_text(ab_rows))
    ctx.summary["results"] = {row["path"]: row for row in table}
    if any(r["path"] in IPVS_PATHS for r in lat_rows):
        ctx.summary["reference"] = reference(_as_text(lat_rows), table)
    failed = sum(1 for x in lat_rows if not x["ok"]) + sum(x["failed"] for x in ab_rows)
    ctx.summary["failed"] = failed
    for row in table:
        ctx.progress.note(f"{row['path']}: latency median {row['latency_median_ms']:.3f} ms "
                          f"(x{row['latency_ratio_to_direct']:.2f}), "
                          f"{row['rps_median']:.0f} conn/s (x{row['rps_ratio_to_direct']:.2f})")
    if failed:
        ctx.failed = f"{failed} requests failed"


def measure_ipvs(plan, args, ctx) -> tuple[list[dict], list[dict], dict, dict]:
    """The same cluster again with Swarm's own ingress sandbox (kernel IPVS) on every node,
    its three paths measured as the others; and every node's ``ipvsadm -L -n --stats``."""
    cluster: Cluster = plan["cluster"]
    ctx.progress.note("IPVS reference path: a second cluster with Swarm's ingress sandbox")
    with ctx.testbed(cluster, run_dir=ctx.run_dir / "ipvs", ingress="ipvs") as tb:
        lat, ab, checks, _ = measure_paths(tb, plan, args, ctx, IPVS_PATHS)
        state = {n.name: tb.host(n.name).sandbox.ipvsadm("--stats") for n in cluster.nodes}
    return lat, ab, checks, state


def check_paths(c1, targets: dict, args, reg, ctx, paths: tuple[str, ...] = PATHS) -> dict:
    """One curl per path before measuring: each must answer (RuntimeError naming
    the ones that do not, their checks in the summary)."""
    from swarmmesh.traffic import tools
    checks = {}
    ctx.progress.phase("warming up", total=len(paths))
    for path in paths:
        _, ip, port = targets[path](0)
        res = tools.curl(c1, f"http://{ip}:{port}/", timeout=args.timeout, register=reg)
        checks[path] = {"command": res.command, "ok": res.data["ok"],
                        "error": res.data.get("error"),
                        "answer": res.data.get("body"), "total_ms": res.data["total_ms"]}
        ctx.progress.advance()
    bad = [p for p, c in checks.items() if not c["ok"]]
    if bad:
        ctx.summary["check"] = checks
        raise RuntimeError(f"paths not answering before measuring: {bad}: "
                           + "; ".join(str(checks[p]["error"]) for p in bad))
    return checks


def measure(c1, targets: dict, args, reg, ctx, paths: tuple[str, ...] = PATHS
            ) -> tuple[list[dict], list[dict], dict]:
    """``--repeats`` rounds over the paths, in a rotated order: the
    open-loop latency rows, the ab rows, and one command of each tool."""
    from swarmmesh.traffic import tools
    lat_rows, ab_rows, commands = [], [], {}
    ctx.progress.phase("sending", total=args.repeats * len(paths))
    for r in range(args.repeats):
        order = paths[r % len(paths):] + paths[:r % len(paths)]
        for path in order:
            name, ip, port = targets[path](r)
            ol = tools.open_loop(c1, ip, port, args.rate, args.requests,
                                 timeout=args.timeout, register=reg)
            commands.setdefault("latency", ol.command)
            for row in ol.data["requests"]:
                lat_rows.append({"repeat": r, "path": path, "target": name, **row})
            ab = tools.ab(c1, f"http://{ip}:{port}/", args.ab_requests, args.concurrency,
                          timeout=args.timeout, register=reg)
            commands.setdefault("connection_rate", ab.command)
            ab_rows.append(ab_row(r, path, name, args, ab.data))
            ctx.progress.advance()
    return lat_rows, ab_rows, commands


def ab_row(repeat: int, path: str, name: str, args, d: dict) -> dict:
    """One ab run as a row of ``connection_rate.csv``."""
    pct = d["percentiles_ms"]
    return {"repeat": repeat, "path": path, "target": name,
            "requests": args.ab_requests, "concurrency": args.concurrency,
            "complete": d["complete"], "failed": d["failed"],
            "non_2xx": d["non_2xx"], "rps": d["rps"],
            "mean_ms": d.get("mean_ms"), "p50_ms": pct.get(50),
            "p90_ms": pct.get(90), "p99_ms": pct.get(99),
            "duration_s": d.get("duration_s")}


def _as_text(rows: list[dict]) -> list[dict]:
    """Rows as they read back from CSV (so run() and plot() share one summary)."""
    return [{k: ("" if v is None else str(v)) for k, v in r.items()} for r in rows]


def plot(run_dir: Path) -> None:
    summary = experiment.read_summary(run_dir)
    lat = results.read_csv(run_dir / "latency.csv")
    ab = results.read_csv(run_dir / "connection_rate.csv")
    table = summarise(lat, ab)
    results.write_csv(run_dir / "paths.csv", table, TABLE_COLUMNS)
    p = summary["parameters"]
    what = (f"{p['nodes']} nodes, {p['replicas']} replicas; client c1 on the underlay; "
            f"{p['repeats']} repeats")
    fig_paths = paths_figure(run_dir, summary, lat, ab, what)
    write_report(run_dir, summary, what, table, lat, ab, fig_paths)


if __name__ == "__main__":
    sys.exit(experiment.main(sys.modules[__name__]))
