#!/usr/bin/env python3
"""Internal load balancing: a client task calls a service by name.

The cluster runs service ``app`` (``--replicas``, ``--endpoint-mode``) and
service ``client`` (one task per node, up to ``--clients``), both on the
user overlay network ``appnet``.  Every client task calls
``http://app/`` ``--requests`` times, each on a new connection, once per DNS policy:

* ``fresh``: glibc ``getaddrinfo`` (embedded DNS at 127.0.0.11) before every
  request; glibc sorts the answer by longest matching prefix (RFC 6724
  rule 9), which undoes the server's shuffle inside one subnet;
* ``raw``: a query straight to 127.0.0.11 before every request, the
  answer's order kept;
* ``cached``: one raw query, and that answer reused for every request, as
  a client that caches DNS does.

With ``vip`` the answer is always the VIP and the spread comes from the
per-node round robin, whatever the client does; with ``dnsrr`` the spread
is only as good as the client's resolver.

    sudo .venv/bin/swarmmesh run internal_lb --nodes 3 --replicas 3 --requests 30 --endpoint-mode dnsrr

Writes ``requests.csv`` (one row per request), ``summary.json``, figures
(PNG and PDF) and ``report.md``; prints the run folder on its last line.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

from swarmmesh.runs import experiment, flags, metrics, plots, report, runfolder as results, stackargs
from swarmmesh.agents.nameclient import POLICIES
from swarmmesh.model import Cluster, InvalidConfigError

NAME = "internal_lb"
DESCRIPTION = ("east-west: client tasks call a service by name (VIP or dnsrr) with fresh, "
               "raw and cached DNS; spread per task and local/remote latency")

NETWORK = "appnet"
SERVICE = "app"
PORT = 80
COLUMNS = ["client_task", "client_node", "resolved", "task", "task_node", "seen_source",
           "latency_ms", "ok", "dns", "seq", "used", "path", "connect_ms", "resolve_ms",
           "error"]
POLICY_LABEL = {"fresh": "a) glibc, before\neach request", "raw": "b) raw query, before\neach request",
                "cached": "c) one raw answer,\ncached"}


def add_arguments(ap: argparse.ArgumentParser) -> None:
    stackargs.add_size_arguments(ap, nodes=3, replicas=3,
                                 replicas_help="replicas of the called service `app`")
    ap.add_argument("--requests", type=int, default=30,
                    help="new connections per client task and DNS policy")
    ap.add_argument("--endpoint-mode", choices=["vip", "dnsrr"], default="vip",
                    help="`app`'s endpoint mode: a VIP balanced per node, or DNS round robin")
    ap.add_argument("--clients", type=int, default=0,
                    help="client tasks, at most one per node (default: one on every node)")
    ap.add_argument("--timeout", type=float, default=2.0, help="per-request timeout, seconds")


def stack(replicas: int, mode: str, clients: int) -> dict:
    return {"networks": {NETWORK: {}}, "services": {
        SERVICE: {"deploy": {"replicas": replicas, "endpoint_mode": mode},
                  "networks": [NETWORK]},
        "client": {"deploy": {"replicas": clients,
                              "placement": {"max_replicas_per_node": 1}},
                   "networks": [NETWORK]},
    }}


def validate(args) -> Cluster:
    flags.positive(args, "requests")
    flags.positive(args, "replicas")
    flags.seconds(args, "timeout")
    flags.at_least(args, "clients", 0)
    if args.clients > args.nodes:
        raise InvalidConfigError("clients", f"at most one client task per node: at most "
                                            f"{args.nodes}, got {args.clients}")
    clients = args.clients or args.nodes
    return Cluster.from_stack(stack(args.replicas, args.endpoint_mode, clients), nodes=args.nodes)


def measure(tb, cluster: Cluster, args, progress) -> list[dict]:
    tasks = {t.name: t for t in cluster.tasks}
    rows = []
    for client in cluster.tasks_of("client"):
        for policy in POLICIES:
            out = tb.run_in(client.host, ["-m", "swarmmesh.agents.nameclient", SERVICE, str(PORT),
                                          "--count", str(args.requests), "--dns", policy,
                                          "--timeout", str(args.timeout)],
                            timeout=args.requests * (args.timeout + 3) + 30)
            for line in out.splitlines():
                r = json.loads(line)
                body = r.get("body") or {}
                task = body.get("task", "")
                ok = bool(r.get("ok")) and task in tasks and tasks[task].service == SERVICE
                rows.append({
                    "client_task": client.name, "client_node": client.node,
                    "resolved": " ".join(r.get("resolved") or []), "task": task,
                    "task_node": body.get("node", ""), "seen_source": body.get("client", ""),
                    "latency_ms": r.get("total_ms"), "ok": ok, "dns": policy, "seq": r["seq"],
                    "used": r.get("used") or "",
                    "path": ("local" if body.get("node") == client.node else "remote")
                    if task else "",
                    "connect_ms": r.get("connect_ms"), "resolve_ms": r.get("resolve_ms"),
                    "error": r.get("error") or ("" if ok else "unexpected answer"),
                })
            progress.advance(args.requests)
    return rows


def facts(cluster: Cluster, rows: list[dict], mode: str) -> dict:
    app_tasks = [t.name for t in cluster.tasks_of(SERVICE)]
    counts: dict[str, dict[str, dict[str, int]]] = defaultdict(dict)
    for policy in POLICIES:
        for client in cluster.tasks_of("client"):
            c = Counter(r["task"] for r in rows
                        if r["ok"] and r["dns"] == policy and r["client_task"] == client.name)
            counts[policy][client.name] = {t: c.get(t, 0) for t in app_tasks}
    spread = {}
    for policy in POLICIES:
        per_client = [list(c.values()) for c in counts[policy].values()]
        total = [sum(col) for col in zip(*per_client)] if per_client else []
        spread[policy] = {
            "jain_per_client": {k: metrics.jain(v.values()) for k, v in counts[policy].items()},
            "jain_all_clients": metrics.jain(total),
            "max_over_mean_all_clients": metrics.max_over_mean(total),
            "tasks_reached_per_client": {k: sum(1 for x in v.values() if x)
                                         for k, v in counts[policy].items()},
        }
    vip = cluster.service(SERVICE).vips.get(NETWORK)
    return {
        "cluster": {"nodes": len(cluster.nodes), "replicas": len(app_tasks),
                    "service": SERVICE, "network": NETWORK, "endpoint_mode": mode,
                    "vip": str(vip) if vip else None,
                    "clients": [t.name for t in cluster.tasks_of("client")]},
        "placement": {t.name: t.node for t in cluster.tasks},
        "task_addresses": {t.name: str(t.addresses[NETWORK]) for t in cluster.tasks},
        "lb_addresses": {n.name: str(n.lb_ips[NETWORK]) for n in cluster.nodes
                         if NETWORK in n.lb_ips},
        "traffic": "swarmmesh.agents.nameclient in each client task: glibc getaddrinfo via the "
                   "embedded DNS, then one HTTP GET per new TCP connection, sequential "
                   "(the question is which task each new connection reaches)",
        "counts": counts,
        "spread": spread,
        "requests": len(rows),
        "failed": sum(1 for r in rows if not r["ok"]),
        "latency_ms": {p: report.spread(r["latency_ms"] for r in rows if r["ok"] and r["path"] == p)
                       for p in ("local", "remote")},
    }


def run(args, cluster, ctx) -> None:
    with ctx.testbed(cluster) as tb:
        clients = cluster.tasks_of("client")
        ctx.progress.phase("sending", total=len(clients) * len(POLICIES) * args.requests)
        rows = measure(tb, cluster, args, ctx.progress)
    ctx.write_csv("requests.csv", rows, COLUMNS)
    ctx.summary.update(facts(cluster, rows, args.endpoint_mode))
    for policy in POLICIES:
        ctx.progress.note(f"{policy} DNS: Jain's index over all clients "
                          f"{report.fmt(ctx.summary['spread'][policy]['jain_all_clients'])}")
    if ctx.summary["failed"]:
        ctx.failed = f"{ctx.summary['failed']} of {len(rows)} requests failed"


def plot(run_dir: Path) -> None:
    summary = experiment.read_summary(run_dir)
    rows = results.read_csv(run_dir / "requests.csv")
    ok = [r for r in rows if r["ok"] == "True"]
    c = summary["cluster"]
    mode = c["endpoint_mode"]
    k = summary["parameters"]["requests"]
    what = (f"{c['nodes']} nodes, {c['replicas']} replicas, "
            f"{len(c['clients'])} client tasks x {k} new connections")
    tasks = sorted({t for t in summary["placement"] if t.startswith(c["service"] + ".")},
                   key=plots._natural)
    # 1. the distribution: per client task and DNS policy, which task answered
    table = {}
    for r in ok:
        g = f"{r['client_task']}\n({r['client_node']}), {r['dns']}"
        table.setdefault(g, {t: 0 for t in tasks})[r["task"]] += 1
    dist = plots.counts(table, "client task (its node), DNS policy", "requests answered",
                        plots.run_title(summary, f"Internal LB ({mode}): who answered, {what}"),
                        run_dir / "requests_per_task", legend_title="task (node)")
    # 2. caching one DNS answer: the spread over all clients, per policy
    spread_tab = {POLICY_LABEL[p]: {t: sum(1 for r in ok if r["dns"] == p and r["task"] == t)
                                    for t in tasks} for p in POLICIES}
    caching = plots.counts(spread_tab, "how the clients resolve `app`",
                           "requests answered (all clients)",
                           plots.run_title(summary, f"Internal LB ({mode}): spread by DNS policy\n"
                                                    f"{what}"),
                           run_dir / "dns_caching", legend_title="task")
    # 3. latency by path: the task on the client's node, or across the overlay
    lat = {f"{p} task": [float(r["latency_ms"]) for r in ok if r["path"] == p]
           for p in ("local", "remote")}
    lat = {k2: v for k2, v in lat.items() if v}
    cdf = plots.cdf(lat, "request latency, connect to last byte (ms)",
                    plots.run_title(summary, f"Internal LB ({mode}): latency by path, {what}"),
                    run_dir / "latency_by_path", log=True,
                    colours={"local task": "tab:blue", "remote task": "tab:orange"})

    rep = report.Report(run_dir, f"Internal load balancing ({mode}): {what}", summary)
    vip = f"VIP {c['vip']}" if c.get("vip") else "no VIP (DNS round robin)"
    rep.text(f"Service `{c['service']}` on network `{c['network']}`: {vip}. "
             f"{len(ok)} of {len(rows)} requests answered. Task addresses: "
             + ", ".join(f"{t} {summary['task_addresses'][t]} on {summary['placement'][t]}"
                         for t in tasks) + ".")
    rep.heading("Who answered")
    rep.table(["client task", "DNS", *tasks, "Jain's index"],
              [[cl, p, *[summary["counts"][p][cl].get(t, 0) for t in tasks],
                report.fmt(summary["spread"][p]["jain_per_client"][cl])]
               for p in POLICIES for cl in sorted(summary["counts"][p], key=plots._natural)])
    rep.table(["DNS policy", "Jain's index, all clients", "max/mean, all clients"],
              [[p, report.fmt(summary["spread"][p]["jain_all_clients"]),
                report.fmt(summary["spread"][p]["max_over_mean_all_clients"])] for p in POLICIES])
    rep.figure(dist, "Requests answered per task, per client task and DNS policy")
    rep.figure(caching, "All clients together, per DNS policy: glibc before every request "
                        "(sorted answer), a raw query before every request (server's order), "
                        "one raw answer cached")
    rep.heading("Latency by path")
    rep.numbers({k2: v for k2, v in lat.items()}, unit="ms",
                what="Request latency, connect to last byte", label="path")
    rep.figure(cdf, "CDF of request latency: the answering task on the client's node, or "
                    "on another node across the overlay")
    rep.write()


if __name__ == "__main__":
    sys.exit(experiment.main(sys.modules[__name__]))
