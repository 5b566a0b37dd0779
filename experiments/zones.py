#!/usr/bin/env python3
"""Two zones of nodes apart on the underlay: what the mesh's zone-blind round robin costs.

Four nodes (``--nodes``), odd ones in zone ``a``, even ones in zone ``b``; client
``c1`` in ``a``, ``c2`` in ``b``.  The zones' underlay bridges are joined by one WAN
link (``swarmmesh.testbed.zones``) with ``--delay-ms`` each way (so a round trip
across costs twice that), ``--jitter-ms``, ``--loss`` and ``--rate-mbit``: netem
where the kernel has it, else a userspace link (this kernel: no ``sch_netem``); the
choice is in summary.json.  The service ``app`` publishes 8000 through the mesh and
8080 in host mode, its tasks in both zones (``--tasks both``) or only in ``a``.

Each client sends ``--requests`` new connections per path:

* ``any_node_mesh``: to every node's 8000 in turn (a DNS name on every node): the
  client may cross to the other zone to enter, and the entry node's rr may cross
  again to reach a task;
* ``zone_haproxy_mesh``: to an HAProxy in its own zone whose servers are its zone's
  nodes (the other zone's as backups): it enters in its zone, the mesh may still cross;
* ``zone_haproxy_host``: the same HAProxy to the zone's host-mode ports: the task on
  the entry node answers, nothing crosses while the zone has a task.

Every request's crossings (client -> entry node -> task) come from the task's answer
(the node it ran on, and the source it saw: the entry node's ingress address).

    sudo .venv/bin/swarmmesh run zones --delay-ms 10
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from swarmmesh.model import Cluster, InvalidConfigError
from swarmmesh.runs import experiment, flags, plots, report, runfolder as results, stackargs

NAME = "zones"
DESCRIPTION = ("two zones apart on the underlay (delay, jitter, loss, bandwidth): requests "
               "that cross zones twice through the zone-blind mesh, against an HAProxy per "
               "zone sending each client to its own zone")

PUBLISHED, HOST_PORT, TARGET = 8000, 8080, 80
PATHS = ("any_node_mesh", "zone_haproxy_mesh", "zone_haproxy_host")
LABELS = {"any_node_mesh": "any node (DNS on every node) -> mesh",
          "zone_haproxy_mesh": "HAProxy in own zone -> own-zone node -> mesh",
          "zone_haproxy_host": "HAProxy in own zone -> own-zone host-mode port"}
SHORT = {"any_node_mesh": "any node\n-> mesh", "zone_haproxy_mesh": "own-zone HAProxy\n-> mesh",
         "zone_haproxy_host": "own-zone HAProxy\n-> host mode"}
COLUMNS = ["client", "client_zone", "path", "target", "seq", "ok", "connect_ms", "total_ms",
           "task", "node", "seen_source", "entry", "entry_zone", "task_zone", "crossings",
           "error"]


def add_arguments(ap: argparse.ArgumentParser) -> None:
    stackargs.add_size_arguments(ap, nodes=4, replicas=None,
                                 nodes_help="swarm nodes (odd: zone a, even: zone b)")
    ap.add_argument("--tasks", choices=("both", "a"), default="both",
                    help="the two tasks of `app`: one per zone, or both in zone a")
    ap.add_argument("--delay-ms", type=float, default=10.0,
                    help="one-way delay between the zones (round trip: twice)")
    ap.add_argument("--jitter-ms", type=float, default=0.0, help="uniform jitter around it")
    ap.add_argument("--loss", type=float, default=0.0, help="loss probability per frame")
    ap.add_argument("--rate-mbit", type=float, default=None, help="bandwidth between the zones")
    ap.add_argument("--requests", type=int, default=40, help="new connections per client per path")
    ap.add_argument("--rate", type=float, default=20.0, help="open-loop rate, requests/s")
    ap.add_argument("--timeout", type=float, default=3.0, help="per-request timeout, s")


def validate(args) -> dict:
    from swarmmesh.dataplane import zones as zoneplan
    from swarmmesh.model.nodes import NodeAttrs, NodeSetup
    flags.int_in(args, "nodes", 2, 16)
    if args.requests < 4 or args.rate <= 0 or args.timeout <= 0:
        raise InvalidConfigError("requests", "requests >= 4, rate > 0, timeout > 0")
    wan = zoneplan.Conditions(args.delay_ms, args.jitter_ms, args.loss, args.rate_mbit)
    # Zones interleaved (node1 a, node2 b, ...): placement fills nodes in order, and with a
    # host-mode port it ignores a spread preference (see docs/departures.md), so this puts one
    # task per zone; --tasks a constrains both to zone a.
    setup = NodeSetup(count=args.nodes, attrs={
        i: NodeAttrs(role="manager" if i == 1 else "worker",
                     labels={"zone": "a" if i % 2 else "b"}) for i in range(1, args.nodes + 1)})
    deploy: dict = {"replicas": 2}
    if args.tasks == "a":
        deploy["placement"] = {"constraints": ["node.labels.zone == a"]}
    stack = {"services": {"app": {"deploy": deploy, "ports": [
        {"target": TARGET, "published": PUBLISHED},
        {"target": TARGET, "published": HOST_PORT, "mode": "host"}]}}}
    cluster = Cluster.from_stack(stack, nodes=setup, clients=2, implicit_network=False)
    zones = zoneplan.zone_of(cluster)
    placed = {zones[t.node] for t in cluster.tasks_of("app")}
    if placed != ({"a", "b"} if args.tasks == "both" else {"a"}) or len(cluster.tasks) != 2:
        raise InvalidConfigError("tasks", f"placement gave {cluster.tasks}, not --tasks {args.tasks}")
    return {"cluster": cluster, "zones": zones, "wan": wan}


def run(args, plan, ctx) -> None:
    from swarmmesh.dataplane import extlb as lbplan
    from swarmmesh.testbed import extlb, l4lb, zones as zonesmod
    from swarmmesh.dataplane import zones as zoneplan
    cluster: Cluster = plan["cluster"]
    zones = plan["zones"]
    with ctx.testbed(cluster) as tb:
        ctx.progress.phase("splitting the underlay into two zones")
        ctx.summary["underlay"] = zonesmod.split(tb, zones, plan["wan"], seed=args.seed)
        ctx.summary["placement"] = {t.name: t.node for t in cluster.tasks_of("app")}
        same = next(n for n in cluster.nodes if zones[n.name] == "a" and n.name != "node1")
        other = next(n for n in cluster.nodes if zones[n.name] == "b")
        ctx.summary["wan_check"] = wan_check(
            zonesmod.ping(tb, "c1", str(same.underlay_ip), 20),
            zonesmod.ping(tb, "c1", str(other.underlay_ip), 20), plan["wan"])
        ctx.progress.note(f"RTT across the zones {ctx.summary['wan_check']['cross_rtt_median_ms']}"
                          f" ms (set: {2 * plan['wan'].delay_ms:g} ms + the same-zone RTT)")
        lbs = {}
        br = zoneplan.bridges(zones)
        ips = extlb.free_underlay_ips(cluster, 2)
        for zone, ip in zip(("a", "b"), ips):
            name = f"hap{zone}"
            host = l4lb.add_underlay_host(tb, name, ip, cls=extlb.ServiceHost,
                                          bridge=br[next(c.name for c in cluster.clients
                                                         if zones[c.name] == zone)])
            lbs[zone] = extlb.start_haproxy(tb, host, ip, lbplan.zone_pools(
                cluster, "app", zones, zone))
        task_nodes = {t.node for t in cluster.tasks_of("app")}
        for lb in lbs.values():
            extlb.wait_up(lb, {"mesh": {n.name for n in cluster.nodes}, "host": task_nodes})
        ctx.summary["haproxy"] = {z: {"address": lb.address, "config": lb.config}
                                  for z, lb in lbs.items()}
        rows = send(tb, cluster, zones, lbs, args, ctx)
    ctx.write_csv("requests.csv", rows, COLUMNS)
    res = analyse(results.read_csv(ctx.run_dir / "requests.csv"))
    ctx.summary["results"] = res
    for p, r in res.items():
        ctx.progress.note(f"{p}: median {report.fmt(r['median_ms'])} ms, crossings {r['crossings']}")
    failed = sum(r["failed"] for r in res.values())
    if failed and not args.loss:
        ctx.failed = f"{failed} requests failed"


def wan_check(same: list[float], cross: list[float], wan) -> dict:
    """The delay set against the round trip measured across the zones (minus the same-zone
    round trip)."""
    s = statistics.median(same) if same else None
    c = statistics.median(cross) if cross else None
    added = None if s is None or c is None else c - s
    want = 2 * wan.delay_ms
    return {"same_zone_rtt_median_ms": s, "cross_rtt_median_ms": c, "added_rtt_ms": added,
            "set_rtt_ms": want, "error_pct": None if added is None or not want
            else round(100 * (added - want) / want, 2), "same_zone_rtts": same,
            "cross_rtts": cross}


def send(tb, cluster, zones, lbs, args, ctx) -> list[dict]:
    from swarmmesh.traffic import tools
    by_ingress = {str(n.ingress_ip): n.name for n in cluster.nodes}
    rows = []
    ctx.progress.phase("sending", total=len(PATHS) * len(cluster.clients))
    for client in cluster.clients:
        cz = zones[client.name]
        plan = {"any_node_mesh": [(n.name, str(n.underlay_ip), PUBLISHED) for n in cluster.nodes],
                "zone_haproxy_mesh": [(lbs[cz].host, lbs[cz].address, PUBLISHED)],
                "zone_haproxy_host": [(lbs[cz].host, lbs[cz].address, HOST_PORT)]}
        for path in PATHS:
            per = max(1, args.requests // len(plan[path]))
            for name, ip, port in plan[path]:
                res = tools.open_loop(tb.host(client.name), ip, port, args.rate, per,
                                      timeout=args.timeout, register=tb.state.register)
                for r in res.data["requests"]:
                    rows.append(row(client.name, cz, path, name, r, zones, by_ingress))
            ctx.progress.advance()
    return rows


def row(client: str, cz: str, path: str, target: str, r: dict, zones: dict,
        by_ingress: dict) -> dict:
    from swarmmesh.dataplane import zones as zoneplan
    entry = (r.get("node") if path == "zone_haproxy_host"
             else by_ingress.get(r.get("seen_source") or "", ""))
    out = {"client": client, "client_zone": cz, "path": path, "target": target, **r,
           "entry": entry}
    if r.get("ok") and entry and r.get("node"):
        ez, tz = zones[entry], zones[r["node"]]
        via = cz if path.startswith("zone_haproxy") else None
        out.update(entry_zone=ez, task_zone=tz, crossings=zoneplan.crossings(cz, ez, tz, via))
    return out


def analyse(rows: list[dict]) -> dict:
    out = {}
    for path in PATHS:
        rs = [r for r in rows if r["path"] == path]
        ok = [r for r in rs if r["ok"] == "True"]
        lat = [float(r["total_ms"]) for r in ok]
        cross: dict[str, int] = {}
        by: dict[str, list[float]] = {}
        for r in ok:
            cross[r["crossings"]] = cross.get(r["crossings"], 0) + 1
            by.setdefault(r["crossings"], []).append(float(r["total_ms"]))
        s = report.spread(lat)
        out[path] = {"n": len(rs), "failed": len(rs) - len(ok), "median_ms": s["median"],
                     "p5_ms": s["p5"], "p95_ms": s["p95"],
                     "crossings": dict(sorted(cross.items())),
                     "median_ms_by_crossings": {k: statistics.median(v)
                                                for k, v in sorted(by.items())},
                     "crossed_twice_pct": round(100 * cross.get("2", 0) / len(ok), 1) if ok else None}
    return out


def plot(run_dir: Path) -> None:
    summary = experiment.read_summary(run_dir)
    rows = results.read_csv(run_dir / "requests.csv")
    res = analyse(rows)
    p = summary["parameters"]
    wan = (summary.get("underlay") or {}).get("wan") or {}
    what = (f"{p['nodes']} nodes in 2 zones, {p['delay_ms']:g} ms each way between them "
            f"({wan.get('delay_jitter_loss_by')}), tasks in {p['tasks']}")
    figs_lat = plots.cdf({LABELS[k]: [float(r["total_ms"]) for r in rows
                                      if r["path"] == k and r["ok"] == "True"] for k in PATHS},
                         "request latency, new connection (ms)",
                         plots.run_title(summary, f"Zones: {what}"), run_dir / "zones_latency",
                         unit="ms")
    table = {SHORT[k]: {f"{c} crossing{'s' if c != '1' else ''}": n
                         for c, n in res[k]["crossings"].items()} for k in PATHS}
    figs_cross = plots.counts(table, "path", "requests",
                              plots.run_title(summary, "Zone crossings per request "
                                                       "(client -> entry node -> task)"),
                              run_dir / "zones_crossings", legend_title="crossings")
    rep = report.Report(run_dir, f"Zones: {what}", summary)
    wc = summary.get("wan_check") or {}
    rep.text(f"The WAN link: {wan}. Round trip c1 -> a node of its own zone "
             f"{report.fmt(wc.get('same_zone_rtt_median_ms'))} ms, -> a node of the other zone "
             f"{report.fmt(wc.get('cross_rtt_median_ms'))} ms (medians of 20 pings): the link "
             f"added {report.fmt(wc.get('added_rtt_ms'))} ms for {wc.get('set_rtt_ms')} ms set "
             f"({wc.get('error_pct')} %). Placement: {summary.get('placement')}.")
    rep.table(["path", "n", "failed", "latency median (ms)", "p5–p95 (ms)",
               "requests by crossings", "median by crossings (ms)", "crossed twice"],
              [[LABELS[k], r["n"], r["failed"], r["median_ms"],
                f"{report.fmt(r['p5_ms'])}–{report.fmt(r['p95_ms'])}", r["crossings"],
                {c: round(v, 2) for c, v in r["median_ms_by_crossings"].items()},
                f"{r['crossed_twice_pct']} %"] for k, r in res.items()])
    rep.figure(figs_cross, "How many times each request crossed between the zones, per path.")
    rep.figure(figs_lat, "Latency per path (both clients).")
    rep.write()


if __name__ == "__main__":
    sys.exit(experiment.main(sys.modules[__name__]))
