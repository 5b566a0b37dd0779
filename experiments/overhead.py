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

Figures are ratios against the baseline measured in the same run.  Target
(issue 2): overlay RTT <= 1 ms, and the large cluster <= 2x the small one.

    sudo .venv/bin/python experiments/overhead.py [--sizes 3x2,10x100] [--count 200]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from swarmmesh import results                                  # noqa: E402
from swarmmesh.model import Cluster, InvalidConfigError        # noqa: E402

COLUMNS = ["size", "nodes", "tasks", "path", "seq", "rtt_ms"]


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for item in text.split(","):
        m = re.fullmatch(r"\s*(\d+)x(\d+)\s*", item)
        if not m:
            raise InvalidConfigError("sizes", f"expected NODESxTASKS[,NODESxTASKS...], got {item!r}")
        n, t = int(m.group(1)), int(m.group(2))
        if n < 2:
            raise InvalidConfigError("sizes", f"{item}: needs at least 2 nodes for a cross-node RTT")
        if t < 2:
            raise InvalidConfigError("sizes", f"{item}: needs at least 2 tasks")
        sizes.append((n, t))
    return sizes


def ping(host, ip: str, count: int, interval: float) -> list[float]:
    out = host.cmd(f"ping -n -q -c 3 -i 0.05 {ip} >/dev/null; "        # warm: ARP, flows
                   f"ping -n -c {count} -i {interval} -W 1 {ip}")
    return [float(x) for x in re.findall(r"time=([\d.]+) ms", out)]


def measure(size: tuple[int, int], count: int, interval: float, say) -> tuple[list[dict], str]:
    from swarmmesh.testbed import Testbed
    import tempfile
    nodes, tasks = size
    cluster = Cluster.quick(nodes=nodes, replicas=tasks)
    tag = f"{nodes}x{tasks}"
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="swarmmesh-overhead-") as tmp:
        say(f"{tag}: building {nodes} nodes, {tasks} tasks")
        with Testbed(cluster, Path(tmp), progress=lambda m: say(f"{tag}: {m}")) as tb:
            a = cluster.tasks_on("node1")[0]
            b = cluster.tasks_on("node2")[0]
            say(f"{tag}: pinging {a.name}@node1 -> {b.name}@node2 and node1 -> node2")
            paths = {
                "overlay": ping(tb.task_host(a), str(b.addresses["ingress"]), count, interval),
                "underlay": ping(tb.host("node1"), str(cluster.node("node2").underlay_ip),
                                 count, interval),
            }
            out = tb.run_in("c1", ["-m", "swarmmesh.httpclient",
                                   str(cluster.node("node2").underlay_ip), "8000",
                                   "--count", str(min(count, 200))])
            paths["mesh"] = [json.loads(l)["total_ms"] for l in out.splitlines()
                             if json.loads(l)["ok"]]
            datapath = tb.datapath
    for path, samples in paths.items():
        for i, v in enumerate(samples):
            rows.append({"size": tag, "nodes": nodes, "tasks": tasks, "path": path,
                         "seq": i, "rtt_ms": v})
    return rows, datapath


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


def draw(run_dir: Path, summary: dict) -> None:
    from swarmmesh import plots
    import matplotlib.pyplot as plt
    rows = results.read_csv(run_dir / "rtt.csv")
    sizes = list(dict.fromkeys(r["size"] for r in rows))
    paths = ["underlay", "overlay", "mesh"]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    data, pos, cols = [], [], []
    for i, size in enumerate(sizes):
        for j, path in enumerate(paths):
            xs = [float(r["rtt_ms"]) for r in rows if r["size"] == size and r["path"] == path]
            data.append(xs)
            pos.append(i * (len(paths) + 1) + j)
            cols.append(plots.colour(j))
    bp = ax.boxplot(data, positions=pos, widths=0.7, patch_artist=True, showfliers=False,
                    medianprops={"color": "black"})
    for patch, c in zip(bp["boxes"], cols):
        patch.set_facecolor(c)
        patch.set_alpha(0.75)
    ax.set_xticks([i * (len(paths) + 1) + 1 for i in range(len(sizes))],
                  [f"{s.replace('x', ' nodes x ')} tasks" for s in sizes])
    ax.axhline(1.0, color="grey", linestyle=":", label="1 ms target (overlay)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=plots.colour(j), alpha=0.75) for j in range(3)]
    labels = ["underlay ping node1->node2 (baseline)", "overlay ping task->task across nodes",
              "mesh: HTTP on a new connection via node2:8000"]
    ax.legend(handles + [ax.lines[-1]], labels + ["1 ms target"], fontsize=8, loc="upper left")
    ax.set_ylabel("round-trip time (ms), box = p25-p75, whiskers 1.5 IQR")
    ax.set_title(f"Emulator overhead ({summary['datapath']} OVS, one vswitchd per node)",
                 fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(run_dir / "rtt.png", dpi=150)
    fig.savefig(run_dir / "rtt.pdf")
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="3x2,10x100",
                    help="comma list of NODESxTASKS, tasks in all, spread evenly "
                         "(default 3x2,10x100: 10 nodes x 10 tasks each)")
    ap.add_argument("--count", type=int, default=200, help="pings per path (default 200)")
    ap.add_argument("--interval", type=float, default=0.02, help="ping interval, s (default 0.02)")
    ap.add_argument("--out", default="results/overhead", help="parent of the run folder")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    say = (lambda m: None) if args.quiet else (lambda m: print(f"[overhead] {m}",
                                                              file=sys.stderr, flush=True))
    try:
        sizes = parse_sizes(args.sizes)
        if args.count < 10:
            raise InvalidConfigError("count", f"must be >= 10, got {args.count}")
        if args.interval < 0.002:
            raise InvalidConfigError("interval", f"must be >= 0.002 s, got {args.interval}")
    except InvalidConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from swarmmesh.testbed import versions
    run_dir = results.new_run_dir(args.out, "overhead")
    started = results.now_iso()
    rows, datapath = [], "unknown"
    for size in sizes:
        r, datapath = measure(size, args.count, args.interval, say)
        rows += r
    results.write_csv(run_dir / "rtt.csv", rows, COLUMNS)
    summary = {"experiment": "overhead", "parameters": vars(args), "datapath": datapath,
               "design": "one ovs-vswitchd per node in the node's namespace; kernel VXLAN",
               "versions": versions(), "git_commit": results.git_commit(),
               "host": results.host_info(), "start": started, "end": results.now_iso(),
               "rtt": summarise(rows)}
    results.write_json(run_dir / "summary.json", summary)
    draw(run_dir, summary)
    for size, s in summary["rtt"].items():
        if isinstance(s, dict) and "overlay" in s:
            say(f"{size}: overlay {s['overlay']['median_ms']:.3f} ms, underlay "
                f"{s['underlay']['median_ms']:.3f} ms (x{s['overlay_over_underlay']:.1f}), "
                f"mesh HTTP {s.get('mesh', {}).get('median_ms', float('nan')):.3f} ms")
    if "large_over_small_overlay" in summary["rtt"]:
        say(f"large/small overlay RTT: x{summary['rtt']['large_over_small_overlay']:.2f}")
    print(run_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
