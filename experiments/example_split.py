#!/usr/bin/env python3
"""How evenly one node's routing mesh splits new connections over the tasks (the example
of docs/experiments.md: an experiment in one screen, on the kit).

    sudo .venv/bin/swarmmesh run example_split --nodes 3 --replicas 3 --requests 60
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from swarmmesh.model import Cluster
from swarmmesh.runs import experiment, flags, metrics, plots, report, runfolder, stackargs

NAME = "example_split"
DESCRIPTION = "how evenly one node splits new connections over the tasks (Jain's index)"
COLUMNS = ["seq", "task", "ok", "latency_ms"]


def add_arguments(ap) -> None:
    stackargs.add_size_arguments(ap, nodes=3, replicas=3)
    ap.add_argument("--requests", type=int, default=60, help="new connections to node1")


def validate(args) -> Cluster:                     # errors name the flag; nothing built yet
    flags.positive(args, "requests", most=10_000)
    return Cluster.quick(nodes=args.nodes, replicas=args.replicas)


def run(args, cluster: Cluster, ctx) -> None:
    node, port = cluster.nodes[0], cluster.ingress_services()[0].ports[0].published
    with ctx.testbed(cluster) as tb:
        out = tb.run_in("c1", ["-m", "swarmmesh.agents.httpclient", str(node.underlay_ip),
                               str(port), "--count", str(args.requests)])
    answers = [json.loads(line) for line in out.splitlines()]
    rows = [{"seq": i, "task": (a.get("body") or {}).get("task", ""), "ok": bool(a.get("ok")),
             "latency_ms": a.get("total_ms")} for i, a in enumerate(answers)]
    ctx.write_csv("requests.csv", rows, COLUMNS)
    ctx.summary["per_task"] = dict(Counter(r["task"] for r in rows if r["ok"]))
    ctx.summary["jain"] = metrics.jain(ctx.summary["per_task"].values())
    if not all(r["ok"] for r in rows):
        ctx.failed = f"{sum(not r['ok'] for r in rows)} of {len(rows)} requests failed"


def plot(run_dir: Path) -> None:                   # from the run folder's files alone
    summary = experiment.read_summary(run_dir)
    rows = runfolder.read_csv(run_dir / "requests.csv")
    per_task = Counter(r["task"] for r in rows if r["ok"] == "True")
    fig = plots.counts({"node1": per_task}, "ingress node", "new connections answered",
                       plots.run_title(summary, "Connections per task"), run_dir / "split")
    rep = report.Report(run_dir, "Split of new connections over the tasks", summary)
    rep.text(f"Jain's index: {report.fmt(metrics.jain(per_task.values()))} (1 = even).")
    rep.figure(fig, "New connections to node1's published port, by the task that answered.")
    rep.write()


if __name__ == "__main__":
    sys.exit(experiment.main(sys.modules[__name__]))
