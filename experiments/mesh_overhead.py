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

from swarmmesh.runs import experiment, plots, report, runfolder as results, stackargs
from swarmmesh.model import Cluster, InvalidConfigError

NAME = "mesh_overhead"
DESCRIPTION = ("latency and connection rate of one service reached directly, through a node "
               "with a task, through a node with none, and through an nftables DNAT balancer")

PATHS = ("direct", "mesh_task_node", "mesh_empty_node", "nft_lb")
LABELS = {"direct": "(a) direct to a task",
          "mesh_task_node": "(b) mesh via a node with a task",
          "mesh_empty_node": "(c) mesh via a node with no task",
          "nft_lb": "(d) nftables DNAT load balancer"}
# Swarm's own IPVS (the reference path), on a second cluster of the same run.
IPVS_PATHS = ("ipvs_direct", "ipvs_task_node", "ipvs_empty_node")
IPVS_LABELS = {"ipvs_direct": "(a') direct to a task, IPVS cluster",
               "ipvs_task_node": "(e) Swarm's IPVS via a node with a task",
               "ipvs_empty_node": "(f) Swarm's IPVS via a node with no task"}
ALL_LABELS = {**LABELS, **IPVS_LABELS}
SAME_AS = {"ipvs_direct": "direct", "ipvs_task_node": "mesh_task_node",
           "ipvs_empty_node": "mesh_empty_node"}        # the same target, the other mechanism
BASELINE = {p: "ipvs_direct" for p in IPVS_PATHS}       # ratios within each cluster
LAT_COLUMNS = ["repeat", "path", "target", "seq", "sched_ms", "late_ms", "ok", "connect_ms",
               "ttfb_ms", "total_ms", "task", "node", "seen_source", "error"]
AB_COLUMNS = ["repeat", "path", "target", "requests", "concurrency", "complete", "failed",
              "non_2xx", "rps", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "duration_s"]
TABLE_COLUMNS = ["path", "label", "target", "latency_n", "latency_median_ms", "latency_p5_ms",
                 "latency_p95_ms", "connect_median_ms", "ttfb_median_ms", "failed",
                 "rps_repeats", "rps_median", "rps_min", "rps_max",
                 "latency_ratio_to_direct", "rps_ratio_to_direct"]
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
        if getattr(args, name) < low:
            raise InvalidConfigError(name.replace("_", "-"),
                                     f"must be >= {low}, got {getattr(args, name)}")
    if not 0 < args.rate <= 1000:
        raise InvalidConfigError("rate", f"must be in (0, 1000] requests/s, got {args.rate}")
    if args.timeout <= 0:
        raise InvalidConfigError("timeout", f"must be > 0, got {args.timeout}")
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


def _f(rows, key) -> list[float]:
    return [float(r[key]) for r in rows if r.get(key) not in ("", None)]


def present(rows: list[dict]) -> tuple[str, ...]:
    """The four paths, then the IPVS reference's where the run measured them."""
    have = {r["path"] for r in rows}
    return PATHS + tuple(p for p in IPVS_PATHS if p in have)


def summarise(lat_rows: list[dict], ab_rows: list[dict]) -> list[dict]:
    """One row per path (the table): latency spread, connection rate over
    repeats, and both as ratios to the direct path of the same cluster (medians)."""
    table = []
    for path in present(lat_rows):
        lat = [r for r in lat_rows if r["path"] == path]
        ok = [r for r in lat if r["ok"] == "True"]
        ab = [r for r in ab_rows if r["path"] == path]
        s = report.spread(_f(ok, "total_ms"))
        rps = report.spread(_f(ab, "rps"))
        table.append({
            "path": path, "label": ALL_LABELS[path],
            "target": " ".join(sorted({r["target"] for r in lat}, key=plots._natural)),
            "latency_n": s["n"], "latency_median_ms": s["median"], "latency_p5_ms": s["p5"],
            "latency_p95_ms": s["p95"],
            "connect_median_ms": report.spread(_f(ok, "connect_ms"))["median"],
            "ttfb_median_ms": report.spread(_f(ok, "ttfb_ms"))["median"],
            "failed": len(lat) - len(ok) + sum(int(r["failed"]) for r in ab),
            "rps_repeats": rps["n"], "rps_median": rps["median"], "rps_min": rps["min"],
            "rps_max": rps["max"]})
    by = {row["path"]: row for row in table}
    for row in table:
        base = by.get(BASELINE.get(row["path"], "direct"), table[0])
        row["latency_ratio_to_direct"] = _ratio(row["latency_median_ms"], base["latency_median_ms"])
        row["rps_ratio_to_direct"] = _ratio(row["rps_median"], base["rps_median"])
    return table


def rr_order(lat_rows: list[dict], path: str) -> dict:
    """The tasks one path's new connections reached: the split, and the first repeat's
    first two turns in start order.  (Not an exactness check: the open loop's connections
    overlap when a request takes longer than the interval, so they may reach the node in
    another order; ``routing_mesh``'s sequential connections check the order.)"""
    split: dict[str, int] = {}
    first: list[str] = []
    for r in sorted({x["repeat"] for x in lat_rows if x["path"] == path}, key=int):
        seq = [x["task"] for x in sorted((x for x in lat_rows if x["path"] == path
                                          and x["repeat"] == r and x["ok"] == "True"),
                                         key=lambda x: int(x["seq"]))]
        for t in seq:
            split[t] = split.get(t, 0) + 1
        first = first or seq[:2 * len(set(seq))]
    return {"split": dict(sorted(split.items())), "first_turns": first}


def reference(lat_rows: list[dict], table: list[dict]) -> dict:
    """The emulated mesh and Swarm's own IPVS side by side, path by path: the rr order,
    the sources the tasks saw, latency median and connections/s (median over repeats)."""
    by = {row["path"]: row for row in table}
    out = {}
    for ipvs_path, mesh_path in SAME_AS.items():
        out[mesh_path.replace("mesh_", "")] = {
            mech: {"path": p, **({} if p.endswith("direct") else rr_order(lat_rows, p)),
                   "seen_sources": sorted({x["seen_source"] for x in lat_rows
                                           if x["path"] == p and x["ok"] == "True"}),
                   "latency_median_ms": by[p]["latency_median_ms"],
                   "rps_median": by[p]["rps_median"]}
            for mech, p in (("emulated", mesh_path), ("ipvs", ipvs_path)) if p in by}
    return out


def _int(x) -> str:
    return "–" if x is None else f"{x:.0f}"


def _ratio(a, b):
    return a / b if a is not None and b else None


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


def paths_figure(run_dir: Path, summary: dict, lat: list[dict], ab: list[dict],
                 what: str) -> list[Path]:
    """Left: the latency CDF per path; right: ab's connection rate per path."""
    import matplotlib.pyplot as plt
    p = summary["parameters"]
    paths = present(lat)
    colours = dict(zip(PATHS + IPVS_PATHS, (plots.colour(i) for i in (7, 0, 1, 3, 5, 2, 4))))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12 + 2 * (len(paths) > 4), 4.8),
                                   gridspec_kw={"width_ratios": [1.5, 1]})
    latency_panel(ax1, lat, colours, p["rate"], paths)
    rate_panel(ax2, ab, colours, p["concurrency"], paths)
    fig.suptitle(plots.run_title(summary, f"Mesh overhead: {what}"), fontsize=10)
    return plots.save(fig, run_dir / "mesh_overhead")


def latency_panel(ax, lat: list[dict], colours: dict, rate: float,
                  paths: tuple[str, ...] = PATHS) -> None:
    import matplotlib.ticker
    for path in paths:
        xs = sorted(_f([r for r in lat if r["path"] == path and r["ok"] == "True"], "total_ms"))
        if xs:
            ax.step(xs, [(k + 1) / len(xs) for k in range(len(xs))], where="post",
                    color=colours[path],
                    label=f"{ALL_LABELS[path]} (n={len(xs)}, median "
                          f"{report.fmt(report.percentile(xs, 50))} ms)")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1, 2, 5)))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("request latency, new connection: connect to last byte (ms, log scale)")
    ax.set_ylabel("fraction of requests (CDF)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(f"Latency, open loop at {rate:g} req/s", fontsize=9)


TICKS = {"direct": "(a) direct", "mesh_task_node": "(b) mesh,\ntask node",
         "mesh_empty_node": "(c) mesh,\nempty node", "nft_lb": "(d) nft LB",
         "ipvs_direct": "(a') direct,\nIPVS cl.", "ipvs_task_node": "(e) IPVS,\ntask node",
         "ipvs_empty_node": "(f) IPVS,\nempty node"}


def rate_panel(ax, ab: list[dict], colours: dict, concurrency: int,
               paths: tuple[str, ...] = PATHS) -> None:
    groups = [_f([r for r in ab if r["path"] == path], "rps") for path in paths]
    bp = ax.boxplot(groups, whis=(0, 100), widths=0.55, patch_artist=True,
                    medianprops={"color": "black"})
    for patch, path in zip(bp["boxes"], paths):
        patch.set_facecolor(colours[path])
        patch.set_alpha(0.5)
    for i, (path, xs) in enumerate(zip(paths, groups), start=1):
        ax.scatter([i] * len(xs), xs, color=colours[path], s=14, zorder=3)
    ax.set_xticks(range(1, len(paths) + 1), [TICKS[p] for p in paths], fontsize=8)
    ax.set_ylabel("connection rate, ab (new connections/s)")
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(f"Connection rate, ab -c {concurrency}, one dot per repeat\n"
                 "(box p25-p75, line median, whiskers min-max)", fontsize=9)


def write_report(run_dir: Path, summary: dict, what: str, table: list[dict], lat: list[dict],
                 ab: list[dict], fig_paths: list[Path]) -> None:
    rep = report.Report(run_dir, f"Mesh overhead: {what}", summary)
    rep.text(intro(summary))
    rep.heading("All paths" if len(table) > len(PATHS) else "All four paths")
    rep.table(["path", "n", "latency median (ms)", "p5–p95 (ms)", "connect median (ms)",
               "first byte median (ms)", "latency / direct", "conn/s median (min–max)",
               "conn/s / direct"],
              [[t["label"], t["latency_n"], t["latency_median_ms"],
                f"{report.fmt(t['latency_p5_ms'])}–{report.fmt(t['latency_p95_ms'])}",
                t["connect_median_ms"], t["ttfb_median_ms"],
                f"×{report.fmt(t['latency_ratio_to_direct'])}",
                f"{_int(t['rps_median'])} ({_int(t['rps_min'])}–{_int(t['rps_max'])})",
                f"×{report.fmt(t['rps_ratio_to_direct'])}"]
               for t in table])
    rep.text("Ratios are medians over the direct path's median in the same cluster (latency: "
             "higher is slower; connection rate: lower is slower). The table is also in "
             "`paths.csv`.")
    if any(r["path"] in IPVS_PATHS for r in lat):        # redrawn from the CSVs alone
        reference_section(rep, reference(lat, table))
    elif (summary.get("ipvs_reference") or {}).get("skipped"):
        rep.text(f"Swarm's own IPVS (the reference path) was skipped: "
                 f"{summary['ipvs_reference']['skipped']}.")
    rep.figure(fig_paths, "Left: CDF of request latency per path (new connection per request, "
                          "open loop). Right: connections per second with ab, per repeat.")
    rep.heading("Spread")
    rep.numbers({ALL_LABELS[pth]: _f([r for r in lat if r["path"] == pth and r["ok"] == "True"],
                                     "total_ms") for pth in present(lat)},
                unit="ms", what="Request latency, connect to last byte", label="path")
    rep.numbers({ALL_LABELS[pth]: _f([r for r in ab if r["path"] == pth], "rps")
                 for pth in present(lat)},
                unit="conn/s", what="ab connection rate over repeats", label="path")
    rep.heading("Tools")
    for k, v in (summary.get("tools") or {}).items():
        cmd = v["command_example"].replace("\n", "\\n")
        rep.text(f"- **{k}**: {v['tool']} — {v['why']}. Command: `{cmd}`")
    rep.write()


def reference_section(rep, ref: dict) -> None:
    """The emulated mesh against Swarm's own IPVS, side by side."""
    rep.heading("The emulated mesh and Swarm's own IPVS, side by side")
    rep.text("The same cluster built twice in this run: the emulated pick (each node's "
             "nftables `numgen`) and Swarm's own ingress sandbox (mangle mark, IPVS rr on the "
             "fwmark, SNAT with `-m ipvs`, moby's IPVS sysctls). The split counts the "
             "open loop's connections per task; their order is checked by `routing_mesh` "
             "(`--ingress ipvs`), whose connections do not overlap.")
    rows = []
    for where, mechs in ref.items():
        for mech, d in mechs.items():
            split = ", ".join(f"{t} {k}" for t, k in d.get("split", {}).items()) or "–"
            rows.append([where, mech, split,
                         ", ".join(d["seen_sources"]), d["latency_median_ms"],
                         _int(d["rps_median"])])
    rep.table(["entry", "mechanism", "split", "source the task saw",
               "latency median (ms)", "conn/s median"], rows)


def intro(summary: dict) -> str:
    """The report's first paragraphs: the four paths, the run's conditions,
    what the ratios measure."""
    lb = summary.get("load_balancer", {})
    return (
        "The same service (`app`, published 8000 -> target 80) reached four ways from the "
        "external client c1, all in this run:\n\n"
        f"- **(a) direct**: c1 -> a task's ingress address :80; c1 routes the ingress subnet via "
        f"lb1 ({lb.get('address')}), which only forwards (no NAT). The tasks take turns by "
        "repeat.\n"
        f"- **(b)** c1 -> {summary.get('task_node')}:8000, a node that runs a task "
        "(the mesh's rr sends connections to its local task and over VXLAN to the others).\n"
        f"- **(c)** c1 -> {summary.get('empty_node')}:8000, a node that runs none "
        "(every connection crosses the overlay).\n"
        f"- **(d)** c1 -> lb1:8000: nftables `numgen inc` DNAT to the tasks' ingress addresses "
        f"+ masquerade, over its own backend network {lb.get('backend_network')} "
        "(a veth from lb1's bridge to every task; no OVS on this path).\n\n"
        f"Placement: {summary.get('placement')}. Failed requests: {summary.get('failed')}. "
        f"Load average at start / end: {summary.get('load_average_start')} / "
        f"{summary.get('load_average_end')} (the CPU is shared; timings under contention).\n\n"
        "What the ratios measure: (d) against (a) is the cost of a kernel DNAT + conntrack + "
        "masquerade on the same hop; (b) and (c) against (a) are the cost of the mesh *as "
        f"emulated here* (the entry node's kernel picks, DNATs and SNATs as Swarm's does; "
        f"then {summary.get('datapath')} Open vSwitch carries every packet, statelessly, "
        "through the entry node's vswitchd and, when the task is on another node, over VXLAN "
        "through that node's too), not of Swarm's kernel bridge and VXLAN.")


if __name__ == "__main__":
    sys.exit(experiment.main(sys.modules[__name__]))
