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

from swarmmesh.runs import experiment, plots, report, runfolder as results
from swarmmesh.model import Cluster, InvalidConfigError

NAME = "mesh_overhead"
DESCRIPTION = ("latency and connection rate of one service reached directly, through a node "
               "with a task, through a node with none, and through an nftables DNAT balancer")

PATHS = ("direct", "mesh_task_node", "mesh_empty_node", "nft_lb")
LABELS = {"direct": "(a) direct to a task",
          "mesh_task_node": "(b) mesh via a node with a task",
          "mesh_empty_node": "(c) mesh via a node with no task",
          "nft_lb": "(d) nftables DNAT load balancer"}
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


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--nodes", type=int, default=3, help="swarm nodes")
    ap.add_argument("--replicas", type=int, default=2,
                    help="replicas of `app`; at least one node must run none")
    ap.add_argument("--requests", type=int, default=100,
                    help="open-loop requests per path per repeat (latency samples)")
    ap.add_argument("--rate", type=float, default=50.0, help="open-loop start rate, requests/s")
    ap.add_argument("--repeats", type=int, default=5, help="rounds over the four paths")
    ap.add_argument("--ab-requests", type=int, default=500,
                    help="ab requests (new connections) per path per repeat")
    ap.add_argument("--concurrency", type=int, default=4, help="ab concurrency")
    ap.add_argument("--timeout", type=float, default=2.0, help="per-request timeout, seconds")


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
    return {"cluster": cluster, "task_node": busy[0], "empty_node": empty[0]}


def _targets(cluster: Cluster, plan: dict, lb_ip: str) -> dict:
    """Per path: a function of the repeat number giving (label, ip, port)."""
    tasks = cluster.tasks_of("app")
    tn, en = cluster.node(plan["task_node"]), cluster.node(plan["empty_node"])
    return {
        "direct": lambda r: (f"{tasks[r % len(tasks)].name}", str(
            tasks[r % len(tasks)].addresses["ingress"]), TARGET),
        "mesh_task_node": lambda r: (tn.name, str(tn.underlay_ip), PUBLISHED),
        "mesh_empty_node": lambda r: (en.name, str(en.underlay_ip), PUBLISHED),
        "nft_lb": lambda r: ("lb1", lb_ip, PUBLISHED),
    }


def measure_paths(tb, plan, args, ctx) -> tuple[list[dict], list[dict], dict, dict]:
    """On a running testbed of ``plan["cluster"]``: add the nftables balancer ``lb1``
    and the client's direct route, check that the four paths answer, then measure them
    (:func:`measure`).  Returns the latency rows, the ab rows, the checks and one
    command of each tool; the balancer and the route go into ``ctx.summary``.  Also
    called by the benchmark experiment."""
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
    checks = check_paths(c1, targets, args, tb.state.register, ctx)
    lat_rows, ab_rows, commands = measure(c1, targets, args, tb.state.register, ctx)
    return lat_rows, ab_rows, checks, commands


def run(args, plan, ctx) -> None:
    cluster: Cluster = plan["cluster"]
    ctx.summary["load_average_start"] = os.getloadavg()
    with ctx.testbed(cluster) as tb:
        lat_rows, ab_rows, checks, commands = measure_paths(tb, plan, args, ctx)
    ctx.write_csv("latency.csv", lat_rows, LAT_COLUMNS)
    ctx.write_csv("connection_rate.csv", ab_rows, AB_COLUMNS)
    ctx.summary["load_average_end"] = os.getloadavg()
    ctx.summary["check"] = checks
    ctx.summary["tools"] = {k: {"tool": {"latency": "openloop", "connection_rate": "ab",
                                         "check": "curl"}[k],
                                "command_example": commands.get(k) or checks["direct"]["command"],
                                "why": WHY[k]} for k in WHY}
    ctx.summary["paths"] = {p: LABELS[p] for p in PATHS}
    ctx.summary["placement"] = {t.name: t.node for t in cluster.tasks_of("app")}
    ctx.summary["task_node"], ctx.summary["empty_node"] = plan["task_node"], plan["empty_node"]
    table = summarise(_as_text(lat_rows), _as_text(ab_rows))
    ctx.summary["results"] = {row["path"]: row for row in table}
    failed = sum(1 for x in lat_rows if not x["ok"]) + sum(x["failed"] for x in ab_rows)
    ctx.summary["failed"] = failed
    for row in table:
        ctx.progress.note(f"{row['path']}: latency median {row['latency_median_ms']:.3f} ms "
                          f"(x{row['latency_ratio_to_direct']:.2f}), "
                          f"{row['rps_median']:.0f} conn/s (x{row['rps_ratio_to_direct']:.2f})")
    if failed:
        ctx.failed = f"{failed} requests failed"


def check_paths(c1, targets: dict, args, reg, ctx) -> dict:
    """One curl per path before measuring: each must answer (RuntimeError naming
    the ones that do not, their checks in the summary)."""
    from swarmmesh.traffic import tools
    checks = {}
    ctx.progress.phase("warming up", total=len(PATHS))
    for path in PATHS:
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


def measure(c1, targets: dict, args, reg, ctx) -> tuple[list[dict], list[dict], dict]:
    """``--repeats`` rounds over the four paths, in a rotated order: the
    open-loop latency rows, the ab rows, and one command of each tool."""
    from swarmmesh.traffic import tools
    lat_rows, ab_rows, commands = [], [], {}
    ctx.progress.phase("sending", total=args.repeats * len(PATHS))
    for r in range(args.repeats):
        order = PATHS[r % len(PATHS):] + PATHS[:r % len(PATHS)]
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


def summarise(lat_rows: list[dict], ab_rows: list[dict]) -> list[dict]:
    """One row per path (the table): latency spread, connection rate over
    repeats, and both as ratios to the direct path (medians)."""
    table = []
    for path in PATHS:
        lat = [r for r in lat_rows if r["path"] == path]
        ok = [r for r in lat if r["ok"] == "True"]
        ab = [r for r in ab_rows if r["path"] == path]
        s = report.spread(_f(ok, "total_ms"))
        rps = report.spread(_f(ab, "rps"))
        table.append({
            "path": path, "label": LABELS[path],
            "target": " ".join(sorted({r["target"] for r in lat}, key=plots._natural)),
            "latency_n": s["n"], "latency_median_ms": s["median"], "latency_p5_ms": s["p5"],
            "latency_p95_ms": s["p95"],
            "connect_median_ms": report.spread(_f(ok, "connect_ms"))["median"],
            "ttfb_median_ms": report.spread(_f(ok, "ttfb_ms"))["median"],
            "failed": len(lat) - len(ok) + sum(int(r["failed"]) for r in ab),
            "rps_repeats": rps["n"], "rps_median": rps["median"], "rps_min": rps["min"],
            "rps_max": rps["max"]})
    base = table[0]
    for row in table:
        row["latency_ratio_to_direct"] = _ratio(row["latency_median_ms"], base["latency_median_ms"])
        row["rps_ratio_to_direct"] = _ratio(row["rps_median"], base["rps_median"])
    return table


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
    colours = dict(zip(PATHS, (plots.colour(i) for i in (7, 0, 1, 3))))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8),
                                   gridspec_kw={"width_ratios": [1.5, 1]})
    latency_panel(ax1, lat, colours, p["rate"])
    rate_panel(ax2, ab, colours, p["concurrency"])
    fig.suptitle(plots.run_title(summary, f"Mesh overhead: {what}"), fontsize=10)
    return plots.save(fig, run_dir / "mesh_overhead")


def latency_panel(ax, lat: list[dict], colours: dict, rate: float) -> None:
    import matplotlib.ticker
    for path in PATHS:
        xs = sorted(_f([r for r in lat if r["path"] == path and r["ok"] == "True"], "total_ms"))
        if xs:
            ax.step(xs, [(k + 1) / len(xs) for k in range(len(xs))], where="post",
                    color=colours[path],
                    label=f"{LABELS[path]} (n={len(xs)}, median "
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


def rate_panel(ax, ab: list[dict], colours: dict, concurrency: int) -> None:
    groups = [_f([r for r in ab if r["path"] == path], "rps") for path in PATHS]
    bp = ax.boxplot(groups, whis=(0, 100), widths=0.55, patch_artist=True,
                    medianprops={"color": "black"})
    for patch, path in zip(bp["boxes"], PATHS):
        patch.set_facecolor(colours[path])
        patch.set_alpha(0.5)
    for i, (path, xs) in enumerate(zip(PATHS, groups), start=1):
        ax.scatter([i] * len(xs), xs, color=colours[path], s=14, zorder=3)
    ax.set_xticks(range(1, len(PATHS) + 1), ["(a) direct", "(b) mesh,\ntask node",
                                             "(c) mesh,\nempty node", "(d) nft LB"], fontsize=8)
    ax.set_ylabel("connection rate, ab (new connections/s)")
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(f"Connection rate, ab -c {concurrency}, one dot per repeat\n"
                 "(box p25-p75, line median, whiskers min-max)", fontsize=9)


def write_report(run_dir: Path, summary: dict, what: str, table: list[dict], lat: list[dict],
                 ab: list[dict], fig_paths: list[Path]) -> None:
    rep = report.Report(run_dir, f"Mesh overhead: {what}", summary)
    rep.text(intro(summary))
    rep.heading("All four paths")
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
    rep.text("Ratios are medians over the direct path's median (latency: higher is slower; "
             "connection rate: lower is slower). The table is also in `paths.csv`.")
    rep.figure(fig_paths, "Left: CDF of request latency per path (new connection per request, "
                          "open loop). Right: connections per second with ab, per repeat.")
    rep.heading("Spread")
    rep.numbers({LABELS[pth]: _f([r for r in lat if r["path"] == pth and r["ok"] == "True"],
                                 "total_ms") for pth in PATHS},
                unit="ms", what="Request latency, connect to last byte", label="path")
    rep.numbers({LABELS[pth]: _f([r for r in ab if r["path"] == pth], "rps") for pth in PATHS},
                unit="conn/s", what="ab connection rate over repeats", label="path")
    rep.heading("Tools")
    for k, v in (summary.get("tools") or {}).items():
        cmd = v["command_example"].replace("\n", "\\n")
        rep.text(f"- **{k}**: {v['tool']} — {v['why']}. Command: `{cmd}`")
    rep.write()


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
