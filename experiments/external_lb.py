#!/usr/bin/env python3
"""Swarm's documented picture: clients -> an external HAProxy -> any node -> the mesh -> a task.

One service ``app`` (``--replicas``, one per node at most) publishes port 8000
through the routing mesh and port 8080 in host mode, on the same tasks.  A real
HAProxy (``swarmmesh.testbed.extlb``) on the underlay has three frontends: 8000 ->
every node's 8000 (the mesh balances again), 8080 -> every node's 8080 (only the
nodes with a task answer; the checks keep the others out), 8082 -> every task
directly (a backend network, no node).  An authoritative DNS host maps the
cluster's external name to every node.

Phases:

1. **paths** (``--requests`` new connections per path, open loop at ``--rate``/s,
   from the client ``c1``): straight to the nodes' 8000 (mesh, no HAProxy) and to
   the task nodes' 8080 (host mode, neither), then through HAProxy's three
   frontends.  HAProxy's log line of each connection (joined on the client's
   port) says which server it chose; the task's answer says which task answered
   and the source it saw: the two balancing stages and the source at each.
2. **node down** (``--down-seconds`` of load on the three frontends at once, at
   ``--down-rate``/s each): a node with a task loses power a third of the way in
   (its underlay link and its tasks' direct legs go down; the orchestrator, with
   ``--profile``, marks it down after its delay and reschedules).  HAProxy's
   server states are polled every 50 ms; every request is placed against the cut.

    sudo .venv/bin/swarmmesh run external_lb --nodes 3 --replicas 2
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

from swarmmesh.model import Cluster, InvalidConfigError
from swarmmesh.runs import experiment, flags, plots, report, runfolder as results, stackargs
from swarmmesh.runs.extlb_report import (DIRECT_PORT, HOST_PORT, LABELS, PATHS, POOL_OF,
                                         PORT_OF, PUBLISHED, TARGET, analyse, answered,
                                         down_figure, down_section, intro, paths_section,
                                         stages_figure, values)

NAME = "external_lb"
DESCRIPTION = ("clients -> HAProxy -> every node -> the mesh -> tasks: the two balancing "
               "stages, the source each sees, the cost of each hop, a node down; against "
               "HAProxy -> host-mode ports and -> the tasks directly")

COLUMNS = ["phase", "path", "target", "seq", "ts", "ok", "connect_ms", "ttfb_ms", "total_ms",
           "task", "node", "seen_source", "local_port", "error", "haproxy_server",
           "haproxy_tc_ms", "haproxy_tt_ms", "haproxy_termination"]
STATE_COLUMNS = ["t", "pool", "server", "status", "check_status"]
EVENT_COLUMNS = ["t", "event", "detail"]


def add_arguments(ap: argparse.ArgumentParser) -> None:
    stackargs.add_size_arguments(ap, nodes=3, replicas=2,
                                 replicas_help="replicas of `app` (host mode: one per node; at "
                                               "least one node runs none)")
    ap.add_argument("--requests", type=int, default=120, help="new connections per path (paths phase)")
    ap.add_argument("--rate", type=float, default=40.0, help="open-loop rate per path, requests/s")
    ap.add_argument("--balance", choices=("roundrobin", "leastconn"), default="roundrobin",
                    help="HAProxy's balance algorithm")
    ap.add_argument("--check-inter", type=float, default=0.5, help="HAProxy check interval, s")
    ap.add_argument("--fall", type=int, default=2, help="failed checks that take a server out")
    ap.add_argument("--rise", type=int, default=2, help="passed checks that bring it back")
    ap.add_argument("--down-seconds", type=float, default=6.0,
                    help="length of the node-down phase (0: skip it)")
    ap.add_argument("--down-rate", type=float, default=40.0,
                    help="open-loop rate per frontend in the node-down phase")
    ap.add_argument("--profile", choices=("fast", "swarm"), default="fast",
                    help="the cluster's own timings (node marked down after 1 s, or 15 s)")
    ap.add_argument("--dns-name", default="swarm.example", help="the cluster's external DNS name")
    ap.add_argument("--timeout", type=float, default=2.0, help="per-request timeout, s")


def validate(args) -> dict:
    from swarmmesh.dataplane import extlb as lbplan
    for name, low in (("nodes", 2), ("replicas", 1), ("requests", 10), ("fall", 1), ("rise", 1)):
        flags.at_least(args, name, low)
    if args.replicas >= args.nodes:
        raise InvalidConfigError("replicas", f"must be < --nodes ({args.nodes}): host mode puts "
                                             "one task per node, and one node must run none")
    for name in ("rate", "down_rate", "check_inter", "timeout"):
        flags.number(args, name)
    flags.seconds(args, "down_seconds", zero=True)
    stack = {"services": {"app": {"deploy": {"replicas": args.replicas}, "ports": [
        {"target": TARGET, "published": PUBLISHED},
        {"target": TARGET, "published": HOST_PORT, "mode": "host"}]}}}
    cluster = Cluster.from_stack(stack, nodes=args.nodes, implicit_network=False)
    lbplan.zone(args.dns_name, cluster)
    busy = [n.name for n in cluster.nodes if cluster.tasks_on(n.name)]
    return {"cluster": cluster, "down_node": busy[0],
            "checks": lbplan.Checks(args.check_inter, args.fall, args.rise)}


# -- run ---------------------------------------------------------------------------

def run(args, plan, ctx) -> None:
    from swarmmesh.lifecycle.orchestrator import Orchestrator
    from swarmmesh.testbed import extlb
    cluster: Cluster = plan["cluster"]
    with ctx.testbed(cluster) as tb, Orchestrator(tb, profile=args.profile) as orch:
        ctx.progress.phase("starting HAProxy and the external DNS")
        lb = extlb.build(tb, cluster, "app", args.balance, plan["checks"], args.dns_name)
        task_nodes = {t.node for t in cluster.tasks_of("app")}
        t_up = time.monotonic()
        st = extlb.wait_up(lb, {"mesh": {n.name for n in cluster.nodes}, "host": task_nodes,
                                "direct": {t.name for t in cluster.tasks_of("app")}})
        ctx.summary["haproxy_stat_start"] = {f"{b}/{s}": v for (b, s), v in st.items()}
        ctx.summary["haproxy_checks_settled_s"] = round(time.monotonic() - t_up, 3)
        ctx.summary["external_lb"] = lb.describe()
        ctx.summary["placement"] = {t.name: t.node for t in cluster.tasks_of("app")}
        ctx.summary["dns"] = dns_check(tb, lb, cluster)
        rows = paths_phase(tb, lb, cluster, args, ctx)
        states, events, cut = [], [], None
        if args.down_seconds > 0:
            down_rows, states, events, cut = down_phase(tb, lb, orch, plan["down_node"], args, ctx)
            rows += down_rows
        ctx.summary["haproxy_stat_end"] = {f"{b}/{s}": v for (b, s), v in
                                           extlb.servers(lb).items()}
        time.sleep(0.3)                           # HAProxy logs a connection as it closes
        join_log(rows, lb.log_path.read_text(), lb.task_at)
    ctx.write_csv("requests.csv", rows, COLUMNS)
    ctx.write_csv("haproxy_states.csv", states, STATE_COLUMNS)
    ctx.write_csv("events.csv", events, EVENT_COLUMNS)
    ctx.summary["down"] = {"node": plan["down_node"], "cut_ts": cut}
    res = analyse(results.read_csv(ctx.run_dir / "requests.csv"), states, events,
                  ctx.summary)
    ctx.summary["results"] = res
    for path, r in res["paths"].items():
        ctx.progress.note(f"{path}: median {report.fmt(r['median_ms'])} ms, failed {r['failed']}")
    bad = res["paths_failed"] + sum(d["failed_after_window"]
                                    for d in (res["down"].get("pools") or {}).values())
    if not res["dns_every_node"]:
        ctx.failed = "the external name does not resolve to every node"
    elif bad:
        ctx.failed = f"{bad} requests failed outside the node-down detection window"


def dns_check(tb, lb, cluster: Cluster) -> dict:
    answers = [extlb_resolve(tb, lb) for _ in range(len(cluster.nodes))]
    nodes = sorted(str(n.underlay_ip) for n in cluster.nodes)
    return {"name": lb.dns_name, "server": lb.dns_address, "answers": answers,
            "every_node": all(sorted(a) == nodes for a in answers),
            "first_addresses": [a[0] if a else None for a in answers]}


def extlb_resolve(tb, lb) -> list[str]:
    from swarmmesh.testbed import extlb
    return extlb.resolve(tb, "c1", lb)


def _open_loop(tb, target: str, port: int, rate: float, count: int, timeout: float):
    from swarmmesh.traffic import tools
    return tools.open_loop(tb.host("c1"), target, port, rate, count, timeout=timeout,
                           register=tb.state.register).data["requests"]


def paths_phase(tb, lb, cluster: Cluster, args, ctx) -> list[dict]:
    """Every path in turn; the two direct-to-node paths spread their requests over the
    nodes (every node for the mesh, the task nodes for host mode)."""
    task_nodes = sorted({t.node for t in cluster.tasks_of("app")})
    plan = {"node_mesh": [(n.name, str(n.underlay_ip), PUBLISHED) for n in cluster.nodes],
            "node_host": [(n, str(cluster.node(n).underlay_ip), HOST_PORT) for n in task_nodes],
            "haproxy_mesh": [("haproxy", lb.address, PUBLISHED)],
            "haproxy_host": [("haproxy", lb.address, HOST_PORT)],
            "haproxy_direct": [("haproxy", lb.address, DIRECT_PORT)]}
    rows = []
    ctx.progress.phase("sending (paths)", total=len(PATHS))
    for path in PATHS:
        per = max(1, args.requests // len(plan[path]))
        for name, ip, port in plan[path]:
            for r in _open_loop(tb, ip, port, args.rate, per, args.timeout):
                rows.append({"phase": "paths", "path": path, "target": name, **r})
        ctx.progress.advance()
    return rows


def down_phase(tb, lb, orch, node: str, args, ctx):
    """Load on the three frontends at once; the node goes down a third of the way in."""
    from swarmmesh.testbed import extlb
    count = max(1, int(args.down_rate * args.down_seconds))
    out: dict[str, list] = {}
    states: list[dict] = []
    stop = threading.Event()
    t0 = time.time()

    def load(pool: str) -> None:
        out[pool] = _open_loop(tb, lb.address, PORT_OF[pool], args.down_rate, count,
                               args.timeout)

    def poll() -> None:
        last: dict = {}
        while not stop.is_set():
            try:
                st = extlb.servers(lb)
            except OSError:
                st = {}
            now = time.time()
            for b, s in [k for k in last if k not in st and st and last[k] != "MAINT"]:
                st[(b, s)] = {"status": "MAINT", "check_status": "left DNS"}   # slot emptied
            for (b, s), v in st.items():
                if last.get((b, s)) != v["status"]:
                    states.append({"t": round(now - t0, 4), "pool": b, "server": s,
                                   "status": v["status"], "check_status": v["check_status"]})
                    last[(b, s)] = v["status"]
            time.sleep(0.05)

    ctx.progress.phase(f"sending (node down: {node})")
    threads = [threading.Thread(target=load, args=(p,)) for p in ("mesh", "host", "direct")]
    poller = threading.Thread(target=poll)
    for t in [*threads, poller]:
        t.start()
    time.sleep(args.down_seconds / 3)
    cut = time.time()
    orch.node_down(node)
    extlb.cut_direct(tb, lb, node)
    ctx.progress.note(f"{node} down at t={cut - t0:.2f} s")
    for t in threads:
        t.join()
    time.sleep(0.2)
    stop.set()
    poller.join()
    # the orchestrator's times count from its own start: anchor its "node down" on the cut
    shift = (cut - t0) - next((e.t for e in orch.events if e.event == "node down"), 0.0)
    events = [{"t": round(e.t + shift, 4), "event": e.event, "detail": e.detail}
              for e in orch.events]
    rows = [{"phase": "down", "path": f"haproxy_{p}", "target": "haproxy", **r}
            for p, rs in out.items() for r in rs]
    for r in rows:
        r["ts"] = round(r["ts"] - t0, 4) if r.get("ts") else r.get("ts")
    return rows, states, events, round(cut - t0, 4)


def join_log(rows: list[dict], log_text: str, task_at=lambda address: None) -> None:
    """HAProxy's choice of server (a direct slot named by the task at its address) and its
    timers, per request (by frontend and client port)."""
    from swarmmesh.dataplane import extlb as lbplan
    by: dict = {}
    for line in lbplan.parse_log(log_text):              # in the order connections closed
        by.setdefault((line["frontend"], line["client_port"]), []).append(line)
    # a client port comes back in a later connection: the earliest request takes the
    # earliest line of its (frontend, port)
    for r in sorted(rows, key=lambda r: (r["phase"] != "paths", r.get("ts") or 0)):
        pool = POOL_OF.get(r["path"])
        lines = by.get((pool, r.get("local_port"))) if pool else None
        line = lines.pop(0) if lines else None
        if line:
            r.update(haproxy_server=task_at(line["server_ip"]) or line["server"],
                     haproxy_tc_ms=line["tc_ms"],
                     haproxy_tt_ms=line["tt_ms"], haproxy_termination=line["termination"])


# -- analysis (run and replot share it) -------------------------------------------


# -- figures and report ------------------------------------------------------------

def plot(run_dir: Path) -> None:
    summary = experiment.read_summary(run_dir)
    rows = results.read_csv(run_dir / "requests.csv")
    states = results.read_csv(run_dir / "haproxy_states.csv")
    events = results.read_csv(run_dir / "events.csv")
    res = analyse(rows, states, events, summary)
    rep = report.Report(run_dir, "External load balancer: clients -> HAProxy -> nodes -> mesh -> "
                                 "tasks", summary)
    rep.text(intro(summary))
    figs_stages = stages_figure(run_dir, summary, res)
    figs_lat = plots.cdf({LABELS[p]: values([r for r in rows if r["phase"] == "paths" and
                                         r["path"] == p and answered(r)], "total_ms") for p in PATHS},
                         "request latency, new connection: connect to last byte (ms)",
                         plots.run_title(summary, "External LB: latency per path"),
                         run_dir / "latency_per_path", log=True, unit="ms")
    paths_section(rep, res, figs_stages, figs_lat)
    if res["down"]:
        figs_down = down_figure(run_dir, summary, rows, states, events)
        down_section(rep, summary, res, figs_down)
    rep.write()


if __name__ == "__main__":
    sys.exit(experiment.main(sys.modules[__name__]))
