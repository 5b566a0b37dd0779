#!/usr/bin/env python3
"""Why "the mesh always hits the same container": an L4 balancer pins a connection.

One client sends ``--requests`` HTTP requests to one node's published port,
twice, with the open-loop client at ``--rate``/s:

* ``keepalive``: all requests on one persistent HTTP/1.1 connection.  The
  mesh (like IPVS) balances *connections*: the connection was given to one
  task when it opened, and every request on it goes there.
* ``new_connection``: a new TCP connection per request: the node's
  round robin spreads them exactly over the replicas.

Then wrk, the keep-alive load tool, with 1 connection and with
``--replicas`` connections for ``--wrk-seconds`` each: with one connection
every request goes to one task, with R connections each connection sticks
to the task it got (its Lua script counts who answered).

    sudo .venv/bin/python experiments/keepalive.py --replicas 3 --requests 60
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from swarmmesh.runs import experiment, flags, plots, report, runfolder as results, stackargs
from swarmmesh.model import Cluster, InvalidConfigError

NAME = "keepalive"
DESCRIPTION = ("1 client, HTTP keep-alive against N replicas vs a new connection per request: "
               "an L4 balancer pins a connection to one task")

MODES = ("keepalive", "new_connection")
MODE_LABELS = {"keepalive": "keep-alive, 1 connection",
               "new_connection": "new connection per request"}
REQ_COLUMNS = ["mode", "seq", "sched_ms", "late_ms", "ok", "status", "connect_ms", "ttfb_ms",
               "total_ms", "task", "node", "seen_source", "local_port", "error"]
WRK_COLUMNS = ["connections", "task", "requests", "total_requests", "rps", "duration_s",
               "p50_ms", "p99_ms", "socket_errors", "non_2xx"]
PUBLISHED, TARGET = 8000, 80


def add_arguments(ap: argparse.ArgumentParser) -> None:
    stackargs.add_size_arguments(ap, nodes=3, replicas=3, replicas_help="replicas of `app`")
    ap.add_argument("--requests", type=int, default=60,
                    help="requests per mode (a multiple of --replicas gives an exact split)")
    ap.add_argument("--rate", type=float, default=50.0, help="open-loop start rate, requests/s")
    ap.add_argument("--node", default="node1",
                    help="the node the client connects to (its published port)")
    ap.add_argument("--wrk-seconds", type=float, default=3.0,
                    help="duration of each wrk run (0: no wrk)")
    ap.add_argument("--timeout", type=float, default=2.0, help="per-request timeout, seconds")


def validate(args) -> Cluster:
    for name, low in (("nodes", 1), ("replicas", 2), ("requests", 2)):
        flags.at_least(args, name, low)
    flags.number(args, "rate", most=1000, unit=" requests/s")
    flags.seconds(args, "timeout")
    flags.seconds(args, "wrk_seconds", zero=True)
    cluster = Cluster.quick(nodes=args.nodes, replicas=args.replicas, published=PUBLISHED,
                            target=TARGET)
    names = [n.name for n in cluster.nodes]
    if args.node not in names:
        raise InvalidConfigError("node", f"no such node {args.node!r} (nodes: {', '.join(names)})")
    return cluster


def run(args, cluster: Cluster, ctx) -> None:
    from swarmmesh.traffic import tools
    client = cluster.clients[0].name
    ip = str(cluster.node(args.node).underlay_ip)
    rows, wrk_rows, commands = [], [], {}
    with ctx.testbed(cluster) as tb:
        reg = tb.state.register
        c1 = tb.host(client)
        ctx.progress.phase("sending", total=len(MODES) + (2 if args.wrk_seconds else 0))
        for mode in MODES:
            res = tools.open_loop(c1, ip, PUBLISHED, args.rate, args.requests,
                                  keepalive=(mode == "keepalive"), timeout=args.timeout,
                                  register=reg)
            commands[mode] = res.command
            rows += [{"mode": mode, **r} for r in res.data["requests"]]
            ctx.progress.advance()
        if args.wrk_seconds:
            for conns in sorted({1, args.replicas}):
                w = tools.wrk(c1, f"http://{ip}:{PUBLISHED}/", args.wrk_seconds, conns, 1,
                              timeout=args.timeout, register=reg)
                commands[f"wrk_{conns}"] = w.command
                d = w.data
                for task, n in sorted((d.get("tasks") or {"": 0}).items()):
                    wrk_rows.append({"connections": conns, "task": task, "requests": n,
                                     "total_requests": d["requests"], "rps": d["rps"],
                                     "duration_s": d["duration_s"],
                                     "p50_ms": d["percentiles_ms"].get(50.0),
                                     "p99_ms": d["percentiles_ms"].get(99.0),
                                     "socket_errors": sum(d["socket_errors"].values()),
                                     "non_2xx": d["non_2xx"]})
                ctx.progress.advance()
    ctx.write_csv("requests.csv", rows, REQ_COLUMNS)
    ctx.write_csv("wrk.csv", wrk_rows, WRK_COLUMNS)
    facts = summarise([{k: "" if v is None else str(v) for k, v in r.items()} for r in rows],
                      [t.name for t in cluster.tasks_of("app")])
    ctx.summary.update(facts)
    ctx.summary["placement"] = {t.name: t.node for t in cluster.tasks_of("app")}
    ctx.summary["ingress_node"] = args.node
    ctx.summary["wrk"] = {str(c): dict(Counter({r["task"]: int(r["requests"]) for r in wrk_rows
                                                if r["connections"] == c}))
                          for c in sorted({r["connections"] for r in wrk_rows})}
    ctx.summary["tools"] = {
        "per_request": {"tool": "openloop", "commands": {m: commands[m] for m in MODES},
                        "why": "records, for every request, the task that answered and the "
                               "client port (= the TCP connection) it went on, in both modes"},
        "keepalive_load": {"tool": "wrk", "commands": {k: v for k, v in commands.items()
                                                       if k.startswith("wrk")},
                           "why": "a standard keep-alive load tool; its Lua script counts the "
                                  "answering task per request, so the pinning shows under load "
                                  "with 1 and with R persistent connections"},
    }
    for mode in MODES:
        ctx.progress.note(f"{mode}: {facts['counts'][mode]} over "
                          f"{facts['connections'][mode]} connection(s)")
    wrk_failed = {r["connections"]: r["socket_errors"] + r["non_2xx"] for r in wrk_rows}
    ctx.summary["wrk_failed"] = sum(wrk_failed.values())
    failed = facts["failed"] + sum(wrk_failed.values())
    if failed:
        ctx.failed = f"{failed} requests failed"


def summarise(rows: list[dict], tasks: list[str]) -> dict:
    """Per mode: requests per task, connections used, whether keep-alive was
    pinned to one task and whether new connections split evenly."""
    counts, conns = {}, {}
    for mode in MODES:
        ok = [r for r in rows if r["mode"] == mode and r["ok"] == "True"]
        c = Counter(r["task"] for r in ok)
        counts[mode] = {t: c.get(t, 0) for t in tasks}
        conns[mode] = len({r["local_port"] for r in ok})
    split = list(counts["new_connection"].values())
    return {
        "counts": counts,
        "connections": conns,
        "failed": sum(1 for r in rows if r["ok"] != "True"),
        "keepalive_tasks_hit": sum(1 for v in counts["keepalive"].values() if v),
        "keepalive_pinned": sum(1 for v in counts["keepalive"].values() if v) == 1,
        "new_connection_tasks_hit": sum(1 for v in split if v),
        "new_connection_max_minus_min": max(split) - min(split) if split else None,
        "new_connection_even": bool(split) and max(split) - min(split) <= 1,
    }


def plot(run_dir: Path) -> None:
    summary = experiment.read_summary(run_dir)
    rows = results.read_csv(run_dir / "requests.csv")
    wrk_rows = results.read_csv(run_dir / "wrk.csv")
    tasks = sorted(summary["placement"], key=plots._natural)
    facts = summarise(rows, tasks)
    p = summary["parameters"]
    what = (f"1 client -> {summary['ingress_node']}:{PUBLISHED}, {len(tasks)} replicas on "
            f"{p['nodes']} nodes")
    wrk_by = wrk_counts(wrk_rows)
    share = share_figure(run_dir, summary, tasks, bar_groups(facts, wrk_by), what)
    lat = {MODE_LABELS[m]: [r["total_ms"] for r in rows if r["mode"] == m and r["ok"] == "True"]
           for m in MODES}
    cdf = plots.cdf(lat, "request latency, send to last byte (ms, log scale)",
                    plots.run_title(summary, f"Request latency by connection mode: {what}"),
                    run_dir / "latency_cdf", log=True, unit="ms")
    write_report(run_dir, summary, what, facts, tasks, wrk_rows, wrk_by,
                 {"share": share, "cdf": cdf, "lat": lat})


def wrk_counts(wrk_rows: list[dict]) -> dict[int, dict]:
    """wrk's connections -> {task: requests it answered}."""
    wrk_by: dict[int, dict] = {}
    for r in wrk_rows:
        got = wrk_by.setdefault(int(r["connections"]), {})
        if r["task"]:
            got[r["task"]] = int(r["requests"])
    return wrk_by


def bar_groups(facts: dict, wrk_by: dict[int, dict]) -> dict[str, dict]:
    """The bar chart's groups (label -> {task: count}): each mode, then each wrk run."""
    groups = {MODE_LABELS[m] + f"\n({facts['connections'][m]} TCP connection"
              f"{'s' if facts['connections'][m] != 1 else ''})": facts["counts"][m] for m in MODES}
    for c, cnt in sorted(wrk_by.items()):
        groups[f"wrk keep-alive\n{c} connection{'s' if c != 1 else ''}"] = cnt
    return groups


def share_figure(run_dir: Path, summary: dict, tasks: list[str], groups: dict[str, dict],
                 what: str) -> list[Path]:
    """Share of requests per task in each group, one bar per task (count on it)."""
    import matplotlib.pyplot as plt
    colours = plots.colours_for(tasks)
    fig, ax = plt.subplots(figsize=(10, 4.8))
    width = 0.8 / len(tasks)
    for j, t in enumerate(tasks):
        xs = [i + (j - (len(tasks) - 1) / 2) * width for i in range(len(groups))]
        ys = [100.0 * g.get(t, 0) / max(1, sum(g.values())) for g in groups.values()]
        b = ax.bar(xs, ys, width, color=colours[t],
                   label=f"{t} (on {summary['placement'][t]})")
        ax.bar_label(b, labels=[str(g.get(t, 0)) for g in groups.values()], fontsize=7)
    ax.axhline(100.0 / len(tasks), color="grey", linestyle=":", label="even split")
    ax.set_xticks(range(len(groups)), list(groups), fontsize=8)
    ax.set_ylabel("share of requests answered (%); bar label = count")
    ax.set_ylim(0, 112)
    ax.legend(title="task", fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(plots.run_title(summary, f"Keep-alive vs new connections: {what}"), fontsize=10)
    return plots.save(fig, run_dir / "requests_per_task")


def write_report(run_dir: Path, summary: dict, what: str, facts: dict, tasks: list[str],
                 wrk_rows: list[dict], wrk_by: dict[int, dict], figs: dict) -> None:
    """report.md; ``figs``: the ``share`` and ``cdf`` figures, the latencies ``lat``."""
    rep = report.Report(run_dir, f"Keep-alive: {what}", summary)
    rep.text(
        f"Keep-alive, one connection: **{facts['keepalive_tasks_hit']}** task(s) answered all "
        f"{sum(facts['counts']['keepalive'].values())} requests "
        f"(pinned: **{facts['keepalive_pinned']}**). New connection per request: "
        f"**{facts['new_connection_tasks_hit']}** of {len(tasks)} tasks answered, counts differ "
        f"by at most {facts['new_connection_max_minus_min']} (even: "
        f"**{facts['new_connection_even']}**). Failed: {facts['failed']}.\n\n" + EXPLANATION)
    rep.heading("Requests per task")
    rep.table(["mode", "TCP connections", *[f"{t} (on {summary['placement'][t]})" for t in tasks]],
              [[MODE_LABELS[m], facts["connections"][m],
                *[facts["counts"][m][t] for t in tasks]] for m in MODES] +
              [[f"wrk keep-alive, {c} connection(s), {wrk_rps(wrk_rows, c):.0f} req/s",
                c, *[cnt.get(t, 0) for t in tasks]] for c, cnt in sorted(wrk_by.items())])
    rep.figure(figs["share"], "Share of requests per task for each connection mode "
                              "(count on each bar)")
    rep.heading("Latency")
    rep.numbers(figs["lat"], unit="ms",
                what="Request latency (keep-alive: no handshake after the first)", label="mode")
    rep.figure(figs["cdf"], "CDF of request latency per mode")
    rep.heading("Tools")
    for k, v in (summary.get("tools") or {}).items():
        cmds = "; ".join(f"`{c}`" for c in v["commands"].values())
        rep.text(f"- **{k}**: {v['tool']} — {v['why']}. Commands: {cmds}")
    rep.write()


def wrk_rps(wrk_rows: list[dict], connections: int) -> float:
    """The requests/s of the wrk run with that many connections."""
    return float(next(r["rps"] for r in wrk_rows if int(r["connections"]) == connections))


EXPLANATION = (
    "The mesh balances TCP connections, as IPVS does: the pick is made on a connection's "
    "first packet and conntrack keeps every later packet of it on that task. HTTP "
    "keep-alive (browsers, connection pools, gRPC) sends many requests on one connection, "
    "so they all reach one container. To spread requests, open more connections or "
    "balance at L7. In the wrk run with several connections, each connection was given "
    "its own task in turn; the counts still differ, because every connection runs "
    "closed-loop and one over a faster path (e.g. to the ingress node's own task, no "
    "VXLAN) completes more requests.")


if __name__ == "__main__":
    sys.exit(experiment.main(sys.modules[__name__]))
