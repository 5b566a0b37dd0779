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
from swarmmesh.runs import experiment, plots, report, runfolder as results, stackargs

NAME = "external_lb"
DESCRIPTION = ("clients -> HAProxy -> every node -> the mesh -> tasks: the two balancing "
               "stages, the source each sees, the cost of each hop, a node down; against "
               "HAProxy -> host-mode ports and -> the tasks directly")

PUBLISHED, HOST_PORT, TARGET, DIRECT_PORT = 8000, 8080, 80, 8082
PATHS = ("node_mesh", "node_host", "haproxy_mesh", "haproxy_host", "haproxy_direct")
LABELS = {"node_mesh": "c1 -> node:8000 (mesh)",
          "node_host": "c1 -> task node:8080 (host mode)",
          "haproxy_mesh": "c1 -> HAProxy -> node:8000 -> mesh",
          "haproxy_host": "c1 -> HAProxy -> node:8080 (host mode)",
          "haproxy_direct": "c1 -> HAProxy -> task"}
POOL_OF = {"haproxy_mesh": "mesh", "haproxy_host": "host", "haproxy_direct": "direct"}
PORT_OF = {"mesh": PUBLISHED, "host": HOST_PORT, "direct": DIRECT_PORT}
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
    from swarmmesh.dataplane import haproxy
    for name, low in (("nodes", 2), ("replicas", 1), ("requests", 10), ("fall", 1), ("rise", 1)):
        if getattr(args, name) < low:
            raise InvalidConfigError(name, f"must be >= {low}, got {getattr(args, name)}")
    if args.replicas >= args.nodes:
        raise InvalidConfigError("replicas", f"must be < --nodes ({args.nodes}): host mode puts "
                                             "one task per node, and one node must run none")
    for name in ("rate", "down_rate", "check_inter", "timeout"):
        if getattr(args, name) <= 0:
            raise InvalidConfigError(name.replace("_", "-"), f"must be > 0, got {getattr(args, name)}")
    if args.down_seconds < 0:
        raise InvalidConfigError("down-seconds", f"must be >= 0, got {args.down_seconds}")
    stack = {"services": {"app": {"deploy": {"replicas": args.replicas}, "ports": [
        {"target": TARGET, "published": PUBLISHED},
        {"target": TARGET, "published": HOST_PORT, "mode": "host"}]}}}
    cluster = Cluster.from_stack(stack, nodes=args.nodes, implicit_network=False)
    haproxy.zone(args.dns_name, cluster)
    busy = [n.name for n in cluster.nodes if cluster.tasks_on(n.name)]
    return {"cluster": cluster, "down_node": busy[0],
            "checks": haproxy.Checks(args.check_inter, args.fall, args.rise)}


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
        join_log(rows, lb.log_path.read_text())
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


def join_log(rows: list[dict], log_text: str) -> None:
    """HAProxy's choice of server and its timers, per request (by frontend and client port)."""
    from swarmmesh.dataplane import haproxy
    by: dict = {}
    for line in haproxy.parse_log(log_text):              # in the order connections closed
        by.setdefault((line["frontend"], line["client_port"]), []).append(line)
    # a client port comes back in a later connection: the earliest request takes the
    # earliest line of its (frontend, port)
    for r in sorted(rows, key=lambda r: (r["phase"] != "paths", r.get("ts") or 0)):
        pool = POOL_OF.get(r["path"])
        lines = by.get((pool, r.get("local_port"))) if pool else None
        line = lines.pop(0) if lines else None
        if line:
            r.update(haproxy_server=line["server"], haproxy_tc_ms=line["tc_ms"],
                     haproxy_tt_ms=line["tt_ms"], haproxy_termination=line["termination"])


# -- analysis (run and replot share it) -------------------------------------------

def _f(rows, key) -> list[float]:
    return [float(r[key]) for r in rows if r.get(key) not in ("", None)]


def _ok(r) -> bool:
    return r["ok"] in ("True", True)


def analyse(rows: list[dict], states: list[dict], events: list[dict], summary: dict) -> dict:
    paths = {}
    for path in PATHS:
        rs = [r for r in rows if r["phase"] == "paths" and r["path"] == path]
        ok = [r for r in rs if _ok(r)]
        s = report.spread(_f(ok, "total_ms"))
        split: dict[str, dict[str, int]] = {}
        for r in ok:
            entry = r.get("haproxy_server") or r["target"]
            split.setdefault(entry, {}).setdefault(r["task"], 0)
            split[entry][r["task"]] += 1
        paths[path] = {"n": len(rs), "failed": len(rs) - len(ok), "median_ms": s["median"],
                       "p5_ms": s["p5"], "p95_ms": s["p95"],
                       "connect_median_ms": report.spread(_f(ok, "connect_ms"))["median"],
                       "haproxy_connect_median_ms": report.spread(_f(ok, "haproxy_tc_ms"))["median"],
                       "seen_sources": sorted({r["seen_source"] for r in ok}),
                       "split": split}
    med = {p: paths[p]["median_ms"] for p in PATHS}
    hops = {}
    if all(v is not None for v in med.values()):
        hops = {"haproxy_in_front_of_the_mesh_ms": med["haproxy_mesh"] - med["node_mesh"],
                "haproxy_in_front_of_host_mode_ms": med["haproxy_host"] - med["node_host"],
                "mesh_over_host_mode_direct_ms": med["node_mesh"] - med["node_host"],
                "mesh_over_host_mode_behind_haproxy_ms": med["haproxy_mesh"] - med["haproxy_host"],
                "node_over_task_behind_haproxy_ms": med["haproxy_host"] - med["haproxy_direct"]}
    return {"paths": paths, "hops": hops,
            "paths_failed": sum(p["failed"] for p in paths.values()),
            "dns_every_node": (summary.get("dns") or {}).get("every_node", False),
            "down": down_analysis(rows, states, events, summary)}


def _leaves(event: dict) -> bool:
    """The orchestrator's event: the lost node's tasks are out of every node's balancer
    (every switch has applied the revision)."""
    return event["event"] == "published" and "leave every load balancer" in event["detail"]


def down_analysis(rows: list[dict], states: list[dict], events: list[dict],
                  summary: dict) -> dict:
    """Per frontend: when HAProxy took the lost node's servers out, the window (the last of
    that and, for the mesh, the cluster taking the node's tasks out), failures in and after it."""
    down = summary.get("down") or {}
    node, cut = down.get("node"), down.get("cut_ts")
    if cut in (None, ""):
        return {}
    cut = float(cut)
    lost = {node} | {t for t, n in (summary.get("placement") or {}).items() if n == node}
    removed = next((float(e["t"]) for e in events if _leaves(e)), None)
    out: dict = {}
    for pool in ("mesh", "host", "direct"):
        outs = [float(s["t"]) for s in states if s["pool"] == pool and s["server"] in lost
                and s["status"].startswith("DOWN") and float(s["t"]) >= cut]
        haproxy_out = min(outs) if outs else None
        ends = [x for x in (haproxy_out, removed if pool == "mesh" else None) if x is not None]
        window = max(ends) if ends else None
        rs = [r for r in rows if r["phase"] == "down" and r["path"] == f"haproxy_{pool}"]
        fails = [float(r["ts"]) for r in rs if not _ok(r)]
        out[pool] = {
            "requests": len(rs), "failed": len(fails),
            "haproxy_marked_down_after_s": None if haproxy_out is None else round(haproxy_out - cut, 3),
            "window_end_after_s": None if window is None else round(window - cut, 3),
            "failed_before_cut": sum(1 for t in fails if t < cut),
            "failed_in_window": sum(1 for t in fails if window is not None and cut <= t <= window),
            "failed_after_window": sum(1 for t in fails if window is None or t > window),
            "last_failure_after_s": round(max(fails) - cut, 3) if fails else None}
    return {"pools": out, "cluster_removed_tasks_after_s":
            None if removed is None else round(removed - cut, 3)}


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
    figs_lat = plots.cdf({LABELS[p]: _f([r for r in rows if r["phase"] == "paths" and
                                         r["path"] == p and _ok(r)], "total_ms") for p in PATHS},
                         "request latency, new connection: connect to last byte (ms)",
                         plots.run_title(summary, "External LB: latency per path"),
                         run_dir / "latency_per_path", log=True, unit="ms")
    paths_section(rep, res, figs_stages, figs_lat)
    if res["down"]:
        figs_down = down_figure(run_dir, summary, rows, states, events)
        down_section(rep, summary, res, figs_down)
    rep.write()


def intro(summary: dict) -> str:
    xlb = summary.get("external_lb") or {}
    ck = xlb.get("checks") or {}
    dns = summary.get("dns") or {}
    return (f"HAProxy (`{xlb.get('balance')}`, TCP mode, connect checks every "
            f"{ck.get('inter_s')} s, out after {ck.get('fall')} failures, back after "
            f"{ck.get('rise')}; expected detection window {ck.get('detection_window_s')} s) at "
            f"{xlb.get('address')}, three frontends: :8000 -> every node's :8000 (the routing "
            "mesh balances again), :8080 -> every node's host-mode :8080 (the nodes without a "
            "task refuse; the checks keep them out), :8082 -> every task directly (a backend "
            f"network {xlb.get('backend_network')}, no node). Placement: "
            f"{summary.get('placement')}.\n\nThe external name `{dns.get('name')}` "
            f"(authoritative server {dns.get('server')}) resolved to {dns.get('answers')} "
            f"(every node: {dns.get('every_node')}; the order rotates per query).")


def paths_section(rep, res: dict, figs_stages, figs_lat) -> None:
    rep.heading("The paths, the two stages and the source each sees")
    rows = []
    for p in PATHS:
        r = res["paths"][p]
        rows.append([LABELS[p], r["n"], r["failed"], r["median_ms"],
                     f"{report.fmt(r['p5_ms'])}–{report.fmt(r['p95_ms'])}",
                     r["haproxy_connect_median_ms"], ", ".join(r["seen_sources"])])
    rep.table(["path", "n", "failed", "latency median (ms)", "p5–p95 (ms)",
               "HAProxy connect to server, median (ms)", "source the task saw"], rows)
    if res["hops"]:
        rep.text("What each hop adds (differences of medians): " + "; ".join(
            f"{k.replace('_ms', '').replace('_', ' ')} **{report.fmt(v)} ms**"
            for k, v in res["hops"].items()) + ".")
    rep.text("HAProxy sees the client's own address (its log: `" + "client_ip" + "`); a node "
             "sees HAProxy's address (the host-mode task, which no SNAT hides, shows it); a "
             "task behind the mesh sees the ingress address of the node HAProxy chose, never "
             "the client's. HAProxy's checks are connections to the nodes' published port "
             "too: each takes a turn of that node's round robin, so the tasks' split of the "
             "requests HAProxy sent one node is near, not exactly, even.")
    rep.figure(figs_stages, "Stage 1 (HAProxy's choice of node, x) and stage 2 (the node's "
                            "choice of task, colours), per frontend.")
    for p in ("haproxy_mesh", "haproxy_host", "haproxy_direct"):
        rep.text(f"- {LABELS[p]}: " + "; ".join(
            f"{entry} -> {dict(sorted(t.items()))}" for entry, t in
            sorted(res["paths"][p]["split"].items(), key=lambda kv: plots._natural(kv[0]))))
    rep.figure(figs_lat, "Latency per path (new connection per request, open loop).")


def down_section(rep, summary: dict, res: dict, figs) -> None:
    d = res["down"]
    rep.heading(f"A node down: {summary['down']['node']}")
    rep.table(["frontend", "requests", "failed", "HAProxy marked it down after (s)",
               "window ends after (s)", "failed in window", "failed after window",
               "last failure after (s)"],
              [[pool, v["requests"], v["failed"], v["haproxy_marked_down_after_s"],
                v["window_end_after_s"], v["failed_in_window"], v["failed_after_window"],
                v["last_failure_after_s"]] for pool, v in d["pools"].items()])
    rep.text(f"The cluster (profile `{summary['parameters']['profile']}`) took the node's tasks "
             f"out of every node's balancer {d.get('cluster_removed_tasks_after_s')} s after the "
             "cut; the mesh frontend's window is the later of that and HAProxy's check.")
    rep.figure(figs, "Requests per 100 ms through each frontend, answered and failed; the cut, "
                     "HAProxy taking the node out, the cluster removing its tasks.")


def stages_figure(run_dir: Path, summary: dict, res: dict) -> list[Path]:
    import matplotlib.pyplot as plt
    pools = ("haproxy_mesh", "haproxy_host", "haproxy_direct")
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.5), sharey=True)
    tasks = sorted({t for p in pools for s in res["paths"][p]["split"].values() for t in s},
                   key=plots._natural)
    colours = plots.colours_for(tasks)
    for ax, p in zip(axes, pools):
        split = res["paths"][p]["split"]
        entries = sorted(split, key=plots._natural)
        bottom = [0] * len(entries)
        for t in tasks:
            ys = [split[e].get(t, 0) for e in entries]
            b = ax.bar(range(len(entries)), ys, bottom=bottom, color=colours[t], label=t)
            ax.bar_label(b, labels=[str(y) if y else "" for y in ys], label_type="center",
                         fontsize=7)
            bottom = [a + y for a, y in zip(bottom, ys)]
        ax.set_xticks(range(len(entries)), entries)
        ax.set_title(LABELS[p], fontsize=9)
        ax.set_xlabel("HAProxy's choice (server)")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("requests (new connections)")
    axes[-1].legend(title="task that answered", fontsize=8, loc="upper left",
                    bbox_to_anchor=(1, 1))
    fig.suptitle(plots.run_title(summary, "Two balancing stages"), fontsize=10)
    fig.tight_layout()
    return plots.save(fig, run_dir / "two_stages")


def down_figure(run_dir: Path, summary: dict, rows: list[dict], states: list[dict],
                events: list[dict]) -> list[Path]:
    import matplotlib.pyplot as plt
    cut = float(summary["down"]["cut_ts"])
    node = summary["down"]["node"]
    lost = {node} | {t for t, n in (summary.get("placement") or {}).items() if n == node}
    fig, axes = plt.subplots(3, 1, figsize=(10, 7), sharex=True)
    for ax, pool in zip(axes, ("mesh", "host", "direct")):
        rs = [r for r in rows if r["phase"] == "down" and r["path"] == f"haproxy_{pool}"]
        ts = {ok: [float(r["ts"]) - cut for r in rs if _ok(r) == ok and r["ts"] not in ("", None)]
              for ok in (True, False)}
        every = ts[True] + ts[False]
        if every:
            lo = min(every)
            bins = [lo + 0.1 * k for k in range(int((max(every) - lo) / 0.1) + 2)]
            ax.hist([ts[True], ts[False]], bins=bins, stacked=True, alpha=0.85,
                    color=[plots.colour(2), plots.colour(3)], label=["answered", "failed"])
        ax.axvline(0, color="black", ls="--", lw=1, label=f"{node} down")
        for s in states:
            if s["pool"] == pool and s["server"] in lost and s["status"].startswith("DOWN"):
                ax.axvline(float(s["t"]) - cut, color=plots.colour(0), lw=1.5,
                           label=f"HAProxy: {s['server']} DOWN")
        for e in events:
            if pool == "mesh" and _leaves(e):
                ax.axvline(float(e["t"]) - cut, color=plots.colour(4), lw=1.5,
                           label="cluster: its tasks out of every node's balancer")
        ax.set_ylabel("requests / 100 ms")
        ax.set_title(f"frontend {pool} ({PORT_OF[pool]})", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1, 1))
    axes[-1].set_xlabel(f"request start, seconds after {node} went down")
    fig.suptitle(plots.run_title(summary, f"A node down behind HAProxy ({node})"), fontsize=10)
    fig.tight_layout()
    return plots.save(fig, run_dir / "node_down")


if __name__ == "__main__":
    sys.exit(experiment.main(sys.modules[__name__]))
