#!/usr/bin/env python3
"""Every scheduler and option side by side, on the same cluster and traffic.

For each option (Swarm's ``rr`` first, then ``wrr``, ``sh``, ``maglev``, ``lc``, ``rr``
with ClientIP affinity, and ``traffic_policy: local``) the run builds the same cluster
(``--nodes`` × ``--replicas`` of one UDP+TCP service) with that option in the service's
``x-swarmmesh`` and measures:

* **spread**: ``--sources`` spoofed clients (scapy, one UDP datagram each, round robin
  over every node): per-task counts, Jain's index and max/mean;
* **latency**: ``--requests`` real HTTP requests (new connections) from a client to
  each node;
* **disruption**: the same spoofed clients again after one task leaves (scale down by
  one), and again after a task joins (scale back up), the nodes' memory of the earlier
  flows forgotten in between (as new flows from the same clients): the share of clients
  whose task changed, and the requests that got no answer.  rr and sh remap most of
  them, a consistent hash (Maglev) about 1/N.

    sudo .venv/bin/swarmmesh run schedulers --nodes 3 --replicas 4 --sources 1500
    sudo .venv/bin/swarmmesh run schedulers --options rr,maglev,local

Writes ``spread.csv`` (option, pass, source, task), ``requests.csv`` (option, node,
task, latency), ``summary.json``, three figures (``spread``, ``latency``, ``disruption``;
PNG and PDF) and ``report.md`` with one table of every option.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter
from pathlib import Path

from swarmmesh.lifecycle.orchestrator import Orchestrator
from swarmmesh.model import Cluster, InvalidConfigError
from swarmmesh.runs import experiment, flags, metrics, plots, report, runfolder as results, stackargs
from swarmmesh.traffic import scapygen

NAME = "schedulers"
DESCRIPTION = ("rr (Swarm), wrr, sh, Maglev, lc, affinity and local traffic on one cluster: "
               "spread, latency, and the clients moved when a task leaves or joins")
OPTIONS = {
    "rr": {},
    "wrr": {"scheduler": "wrr", "weights": {1: 3}},
    "sh": {"scheduler": "sh"},
    "maglev": {"scheduler": "maglev"},
    "lc": {"scheduler": "lc"},
    "affinity": {"affinity": "1h"},
    "local": {"traffic_policy": "local"},
}
PUBLISHED = 8000
SPREAD_COLUMNS = ["option", "pass", "src_ip", "ingress_node", "task", "ok"]
REQUEST_COLUMNS = ["option", "node", "seq", "task", "latency_ms", "ok", "error"]


def add_arguments(ap: argparse.ArgumentParser) -> None:
    stackargs.add_size_arguments(ap, nodes=3, replicas=4, replicas_help="tasks of the service")
    ap.add_argument("--sources", type=int, default=1500,
                    help="spoofed clients per pass (UDP, one datagram each)")
    ap.add_argument("--rate", type=float, default=1500.0, help="spoofed datagrams per second")
    ap.add_argument("--requests", type=int, default=20, help="real HTTP requests per node")
    ap.add_argument("--options", default=",".join(OPTIONS),
                    help=f"comma-separated, from {', '.join(OPTIONS)}")


def validate(args) -> tuple[list[str], dict[str, Cluster]]:
    chosen = [o.strip() for o in args.options.split(",") if o.strip()]
    for o in chosen:
        if o not in OPTIONS:
            raise InvalidConfigError("options", f"unknown option {o!r} "
                                                f"(from {', '.join(OPTIONS)})")
    if not chosen:
        raise InvalidConfigError("options", "give at least one")
    for name, low in (("replicas", 2), ("sources", 10), ("requests", 1), ("nodes", 1)):
        flags.at_least(args, name, low)
    flags.number(args, "rate")
    return chosen, {o: cluster(o, args.nodes, args.replicas) for o in chosen}


def cluster(option: str, nodes: int, replicas: int) -> Cluster:
    svc = {"deploy": {"replicas": replicas},
           "ports": [f"{PUBLISHED}:80", f"{PUBLISHED}:80/udp"],
           "x-swarmmesh": OPTIONS[option]}
    return Cluster.from_stack({"version": "3.8", "services": {"web": svc}}, nodes=nodes,
                              clients=1, implicit_network=False)


def moved(before: dict[str, str], after: dict[str, str]) -> float | None:
    """The share of the clients seen in both passes whose task changed."""
    both = [s for s in before if s in after]
    return sum(1 for s in both if before[s] != after[s]) / len(both) if both else None


def spoofed_pass(tb, args, ctx, option: str, name: str) -> list[dict]:
    """Every spoofed client once, the nodes' memory of earlier flows forgotten first."""
    for n in tb.cluster.nodes:
        tb.host(n.name).cmd("conntrack -F >/dev/null 2>&1")
    out = ctx.run_dir / f".{option}-{name}.csv"
    targets = scapygen.targets_of(tb, [n.name for n in tb.cluster.nodes], PUBLISHED)
    scapygen.run_in_client(tb, "c1", targets, out.resolve(), protocol="udp",
                           sources=args.sources, rate=args.rate, seed=args.seed or 7)
    with open(out) as fh:
        rows = [{"option": option, "pass": name, "src_ip": r["src_ip"],
                 "ingress_node": r["ingress_node"], "task": r["task"], "ok": r["ok"]}
                for r in csv.DictReader(fh)]
    out.unlink()
    return rows


def http_requests(tb, args, option: str) -> list[dict]:
    rows = []
    for n in tb.cluster.nodes:
        out = tb.run_in("c1", ["-m", "swarmmesh.agents.httpclient", str(n.underlay_ip),
                               str(PUBLISHED), "--count", str(args.requests), "--timeout",
                               "1"], timeout=args.requests * 2 + 30)
        for seq, line in enumerate(out.splitlines()):
            r = json.loads(line)
            rows.append({"option": option, "node": n.name, "seq": seq,
                         "task": (r.get("body") or {}).get("task", ""),
                         "latency_ms": r.get("total_ms"), "ok": bool(r.get("ok")),
                         "error": r.get("error") or ""})
    return rows


def one_option(option: str, cluster_: Cluster, args, ctx) -> tuple[list, list]:
    """Build, measure, take a task out, measure, put one back, measure."""
    spread: list[dict] = []
    with ctx.testbed(cluster_) as tb:                 # its lc loop runs for the lc option
        scapygen.route_spoofed_prefix(tb, "c1")
        ctx.progress.note(f"{option}: {OPTIONS[option] or 'Swarm (rr)'}")
        spread += spoofed_pass(tb, args, ctx, option, "before")
        requests = http_requests(tb, args, option)
        with Orchestrator(tb, profile="fast", health_checks=False) as orch:
            orch.scale("web", args.replicas - 1)
            orch.settle()
            spread += spoofed_pass(tb, args, ctx, option, "after leave")
            orch.scale("web", args.replicas)
            orch.settle()
            spread += spoofed_pass(tb, args, ctx, option, "after join")
    return spread, requests


def run(args, plan, ctx) -> None:
    chosen, clusters = plan
    spread, requests = [], []
    for option in chosen:
        s, r = one_option(option, clusters[option], args, ctx)
        spread += s
        requests += r
    ctx.write_csv("spread.csv", spread, SPREAD_COLUMNS)
    ctx.write_csv("requests.csv", requests, REQUEST_COLUMNS)
    ctx.summary["options"] = {o: OPTIONS[o] for o in chosen}
    ctx.summary["results"] = {o: facts(o, spread, requests, args.replicas) for o in chosen}
    for o, f in ctx.summary["results"].items():
        ctx.progress.note(f"{o}: Jain {f['jain']}, moved on leave {f['moved_leave']}, "
                          f"on join {f['moved_join']}, latency median "
                          f"{f['latency_median_ms']} ms")


def _mapping(rows: list[dict], option: str, name: str) -> dict[str, str]:
    return {r["src_ip"]: r["task"] for r in rows
            if r["option"] == option and r["pass"] == name and r["ok"] in (True, "True")}


def facts(option: str, spread: list[dict], requests: list[dict], replicas: int) -> dict:
    before = _mapping(spread, option, "before")
    leave, join = _mapping(spread, option, "after leave"), _mapping(spread, option, "after join")
    counts = Counter(before.values())
    lat = sorted(float(r["latency_ms"]) for r in requests
                 if r["option"] == option and r["ok"] in (True, "True"))
    sent = [r for r in spread if r["option"] == option]
    return {
        "per_task": dict(sorted(counts.items())),
        "jain": metrics.rounded(metrics.jain(counts.values()), 4),
        "max_over_mean": metrics.rounded(metrics.max_over_mean(counts.values()), 3),
        "moved_leave": round(moved(before, leave), 4) if moved(before, leave) is not None
        else None,
        "moved_join": round(moved(leave, join), 4) if moved(leave, join) is not None else None,
        "one_over_n": round(1 / replicas, 4),
        "unanswered": sum(1 for r in sent if r["ok"] not in (True, "True")),
        "sent": len(sent),
        "latency_median_ms": round(lat[len(lat) // 2], 3) if lat else None,
        "requests_failed": sum(1 for r in requests if r["option"] == option
                               and r["ok"] not in (True, "True")),
    }


def plot(run_dir: Path) -> None:
    summary = experiment.read_summary(run_dir)
    res = summary["results"]
    rows = results.read_csv(run_dir / "requests.csv")
    p = summary["parameters"]
    what = (f"{p['nodes']} nodes, {p['replicas']} tasks, {p['sources']} spoofed clients "
            "per pass")
    spread = plots.bars({o: [f["jain"]] for o, f in res.items() if f["jain"] is not None},
                        "Jain's index (1 = even)", plots.run_title(
                            summary, f"Spread over the tasks per option, {what}"),
                        run_dir / "spread")
    lat = plots.boxplot({o: [float(r["latency_ms"]) for r in rows if r["option"] == o
                             and r["ok"] == "True"] for o in res}, "latency (ms)",
                        plots.run_title(summary, "Request latency (new connection) per option"),
                        run_dir / "latency")
    dis = plots.counts({o: {"task leaves": round(100 * (f["moved_leave"] or 0)),
                            "task joins": round(100 * (f["moved_join"] or 0))}
                        for o, f in res.items()}, "option", "% of clients whose task changed",
                       plots.run_title(summary, f"Disruption; 1/N = "
                                                f"{100 / p['replicas']:.0f} %"),
                       run_dir / "disruption")
    rep = report.Report(run_dir, f"Schedulers side by side: {what}", summary)
    rep.text("Each option on its own cluster, the same traffic. **moved**: the share of "
             "the spoofed clients whose task changed when one task left (scale down by "
             "one) and when one joined again; Maglev should move about 1/N "
             f"({100 / p['replicas']:.0f} %), rr and sh most. `local` answers only on the "
             "nodes with a task, so its spread counts what those answered.")
    rep.table(["option", "x-swarmmesh", "Jain", "max/mean", "moved (leave)", "moved (join)",
               "unanswered", "latency median (ms)", "HTTP failed"],
              [[o, json.dumps(summary["options"][o]) if summary["options"][o] else "(Swarm)",
                f["jain"], f["max_over_mean"], f["moved_leave"], f["moved_join"],
                f"{f['unanswered']} of {f['sent']}", f["latency_median_ms"],
                f["requests_failed"]] for o, f in res.items()])
    rep.figure(spread, "Jain's fairness index of the per-task counts, per option")
    rep.figure(dis, "Share of the clients whose task changed when a task left and joined")
    rep.figure(lat, "Latency of HTTP requests on new connections, per option")
    rep.write()


if __name__ == "__main__":
    sys.exit(experiment.main(sys.modules[__name__]))
