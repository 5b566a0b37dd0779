#!/usr/bin/env python3
"""Emulator overhead: task-to-task RTT across nodes, small and large cluster.

For each cluster size (default 3 nodes x 2 tasks, and 10 nodes x 10 tasks
each, 100 tasks in all) it
builds the testbed and pings, in the same run:

* ``overlay``: a task on node1 -> a task on node2, over both nodes'
  vswitchd and the kernel VXLAN on the underlay (the path under test);
* ``underlay``: node1 -> node2 on the underlay bridge alone (the baseline:
  what any two namespaces on this machine cost);
* ``mesh``: the client -> node2:8000 -> a task, one HTTP request per new
  connection (connect + answer), for scale.

Figures are ratios against the baseline measured in the same run.  Target:
overlay RTT <= 1 ms, and the large cluster <= 2x the small one.

    sudo .venv/bin/swarmmesh run overlay_rtt [--sizes 3x2,10x100] [--count 200]
    sudo .venv/bin/python experiments/overlay_rtt.py [--sizes 3x2,10x100] [--count 200]

Writes ``rtt.csv`` (size, nodes, tasks, path, seq, rtt_ms), ``summary.json``,
``rtt.png``/``rtt.pdf`` and ``report.md``.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

from swarmmesh.runs import experiment, flags, plots, report, runfolder as results
from swarmmesh.model import Cluster, InvalidConfigError

NAME = "overlay_rtt"
DESCRIPTION = ("emulator overhead: task-to-task RTT over the overlay vs the underlay "
               "baseline, small and large cluster")

COLUMNS = ["size", "nodes", "tasks", "path", "seq", "rtt_ms"]


def ping(host, ip: str, count: int, interval: float) -> list[float]:
    out = host.cmd(f"ping -n -q -c 3 -i 0.05 {ip} >/dev/null; "        # warm: ARP, flows
                   f"ping -n -c {count} -i {interval} -W 1 {ip}")
    return [float(x) for x in re.findall(r"time=([\d.]+) ms", out)]


def measure(ctx, size: tuple[int, int], count: int, interval: float) -> list[dict]:
    import tempfile
    nodes, tasks = size
    cluster = Cluster.quick(nodes=nodes, replicas=tasks)
    tag = f"{nodes}x{tasks}"
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="swarmmesh-overlay-rtt-") as tmp:
        ctx.progress.note(f"{tag}: {nodes} nodes, {tasks} tasks")
        with ctx.testbed(cluster, run_dir=Path(tmp)) as tb:
            a = cluster.tasks_on("node1")[0]
            b = cluster.tasks_on("node2")[0]
            ctx.progress.phase(f"pinging {tag}", total=3)
            ctx.progress.note(f"{tag}: {a.name}@node1 -> {b.name}@node2, node1 -> node2, "
                              "HTTP via node2:8000")
            paths = {"overlay": ping(tb.task_host(a), str(b.addresses["ingress"]), count, interval)}
            ctx.progress.advance()
            paths["underlay"] = ping(tb.host("node1"), str(cluster.node("node2").underlay_ip),
                                     count, interval)
            ctx.progress.advance()
            out = tb.run_in("c1", ["-m", "swarmmesh.agents.httpclient",
                                   str(cluster.node("node2").underlay_ip), "8000",
                                   "--count", str(min(count, 200))])
            paths["mesh"] = [json.loads(l)["total_ms"] for l in out.splitlines()
                             if json.loads(l)["ok"]]
            ctx.progress.advance()
    for path, samples in paths.items():
        for i, v in enumerate(samples):
            rows.append({"size": tag, "nodes": nodes, "tasks": tasks, "path": path,
                         "seq": i, "rtt_ms": v})
    return rows


def summarise(rows: list[dict]) -> dict:
    out: dict = {}
    for size in dict.fromkeys(r["size"] for r in rows):
        out[size] = {}
        for path in ("overlay", "underlay", "mesh"):
            xs = sorted(r["rtt_ms"] for r in rows if r["size"] == size and r["path"] == path)
            if xs:
                out[size][path] = {"n": len(xs), "median_ms": statistics.median(xs),
                                   "p10_ms": xs[len(xs) // 10], "p90_ms": xs[(9 * len(xs)) // 10]}
        o, u = out[size].get("overlay"), out[size].get("underlay")
        if o and u:
            out[size]["overlay_over_underlay"] = o["median_ms"] / u["median_ms"]
    sizes = list(out)
    if len(sizes) >= 2 and all("overlay" in out[s] for s in sizes):
        out["large_over_small_overlay"] = (out[sizes[-1]]["overlay"]["median_ms"] /
                                           out[sizes[0]]["overlay"]["median_ms"])
        out["target_met"] = {
            "overlay_rtt_le_1ms": all(out[s]["overlay"]["median_ms"] <= 1.0 for s in sizes),
            "large_le_2x_small": out["large_over_small_overlay"] <= 2.0,
        }
    return out


PATHS = {"underlay": "underlay ping node1->node2 (baseline)",
         "overlay": "overlay ping task->task across nodes",
         "mesh": "mesh: HTTP on a new connection via node2:8000"}


def draw(run_dir: Path, summary: dict) -> list[Path]:
    import matplotlib.pyplot as plt
    rows = results.read_csv(run_dir / "rtt.csv")
    sizes = list(dict.fromkeys(r["size"] for r in rows))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    colours = plots.colours_for(PATHS)
    data, pos, cols = [], [], []
    for i, size in enumerate(sizes):
        for j, path in enumerate(PATHS):
            xs = [float(r["rtt_ms"]) for r in rows if r["size"] == size and r["path"] == path]
            data.append(xs)
            pos.append(i * (len(PATHS) + 1) + j)
            cols.append(colours[path])
    bp = ax.boxplot(data, positions=pos, widths=0.7, patch_artist=True, showfliers=False,
                    whis=(5, 95), medianprops={"color": "black"})
    for patch, c in zip(bp["boxes"], cols):
        patch.set_facecolor(c)
        patch.set_alpha(0.75)
    ax.set_xticks([i * (len(PATHS) + 1) + 1 for i in range(len(sizes))],
                  [f"{s.replace('x', ' nodes x ')} tasks" for s in sizes])
    ax.axhline(1.0, color="grey", linestyle=":", label="1 ms target (overlay)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[p], alpha=0.75) for p in PATHS]
    ax.legend(handles + [ax.lines[-1]], list(PATHS.values()) + ["1 ms target"], fontsize=8,
              loc="upper left")
    ax.set_ylabel("round-trip time (ms)")
    ax.set_title(plots.run_title(summary, "Emulator overhead, one vswitchd per node "
                                          "(box p25-p75, whiskers p5-p95)"), fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return plots.save(fig, run_dir / "rtt")


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--sizes", default="3x2,10x100",
                    help="comma list of NODESxTASKS, tasks in all, spread evenly "
                         "(default 3x2,10x100: 10 nodes x 10 tasks each)")
    ap.add_argument("--count", type=int, default=200, help="pings per path")
    ap.add_argument("--interval", type=float, default=0.02, help="ping interval, s")


def validate(args) -> list[tuple[int, int]]:
    sizes = flags.sizes(args.sizes, min_nodes=2, min_tasks=2, max_tasks=10_000, unique=False,
                        tasks_word="tasks")
    flags.at_least(args, "count", 10)
    if args.interval < 0.002:
        raise InvalidConfigError("interval", f"must be >= 0.002 s, got {args.interval}")
    return sizes


def run(args, sizes, ctx) -> None:
    rows = []
    for size in sizes:
        rows += measure(ctx, size, args.count, args.interval)
    ctx.write_csv("rtt.csv", rows, COLUMNS)
    ctx.summary["design"] = "one ovs-vswitchd per node in the node's namespace; kernel VXLAN"
    ctx.summary["traffic"] = ("ping (ICMP echo) for the overlay and underlay RTT; "
                              "swarmmesh.agents.httpclient, one GET per new connection, for the mesh")
    ctx.summary["rtt"] = summarise(rows)
    for size, s in ctx.summary["rtt"].items():
        if isinstance(s, dict) and "overlay" in s:
            ctx.progress.note(f"{size}: overlay {s['overlay']['median_ms']:.3f} ms, underlay "
                              f"{s['underlay']['median_ms']:.3f} ms "
                              f"(x{s['overlay_over_underlay']:.1f}), mesh HTTP "
                              f"{s.get('mesh', {}).get('median_ms', float('nan')):.3f} ms")


def plot(run_dir: Path) -> None:
    summary = experiment.read_summary(run_dir)
    rows = results.read_csv(run_dir / "rtt.csv")
    fig = draw(run_dir, summary)
    rtt = summary["rtt"]
    rep = report.Report(run_dir, "Emulator overhead: task-to-task RTT over the overlay vs the "
                                 f"underlay, {summary['parameters']['sizes']}", summary)
    rep.text("Every size is one testbed; the three paths are measured in the same testbed, "
             "so the ratio overlay / underlay is free of the machine's load at other times.")
    rep.numbers({f"{r_size}, {path}": [r["rtt_ms"] for r in rows
                                       if r["size"] == r_size and r["path"] == path]
                 for r_size in dict.fromkeys(r["size"] for r in rows) for path in PATHS},
                unit="ms", what="Round-trip time", label="cluster (nodes x tasks), path")
    rep.table(["cluster", "overlay / underlay (medians)"],
              [[k, v.get("overlay_over_underlay")] for k, v in rtt.items() if isinstance(v, dict)
               and "overlay_over_underlay" in v])
    if "large_over_small_overlay" in rtt:
        rep.text(f"Large / small cluster, overlay RTT medians: x{rtt['large_over_small_overlay']:.2f}. "
                 f"Target: overlay RTT <= 1 ms: {rtt['target_met']['overlay_rtt_le_1ms']}; "
                 f"large <= 2x small: {rtt['target_met']['large_le_2x_small']}.")
    rep.figure(fig, "Round-trip time per path and cluster size")
    rep.write()


if __name__ == "__main__":
    sys.exit(experiment.main(sys.modules[__name__]))
