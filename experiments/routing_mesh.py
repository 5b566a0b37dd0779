#!/usr/bin/env python3
"""The routing mesh, end to end: every node answers on every published port.

An external client opens ``--requests`` new connections to each node's
address on the published port, the replica-less nodes included, and records
which task answered, on which node, the source address the task saw, and the
latency.  A capture on the underlay records the VXLAN (UDP 4789) that carried
the ingress overlay.

    sudo .venv/bin/swarmmesh run routing_mesh --nodes 4 --replicas 3 --requests 60
    sudo .venv/bin/python experiments/routing_mesh.py --nodes 4 --replicas 3 --requests 60

Writes ``requests.csv``, ``underlay-vxlan.pcap``, ``summary.json``, two
figures (PNG and PDF) and ``report.md`` into a new run folder under ``--out``
and prints that folder on its last line.  Exits 1 if any request failed, 2
on bad input.

``--service S`` may name a service whose TCP port is published in host mode
(``mode: host``): every node is measured the same way, the port answers only
on the nodes that run a task of S (by that local task, which sees the
client's own address), and the connections any other node refuses are
recorded per node (``refused`` in summary.json): a result, not a failure.

``--ingress ipvs`` builds Swarm's own data plane instead of the emulated pick: a real
ingress sandbox per node with the mangle mark, an IPVS rr service on the fwmark and the
SNAT (``swarmmesh.dataplane.ipvs``), so the same checks run on the real mechanism; each
node's ``ipvsadm -L -n --stats`` goes into summary.json.  It needs the kernel's ``ip_vs``:
where that is missing the run stops before building, with one line saying why (exit 2).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from swarmmesh.runs import (engineargs, experiment, flags, plots, report, runfolder as results,
                            stackargs)
from swarmmesh.model import Cluster, InvalidConfigError

NAME = "routing_mesh"
DESCRIPTION = ("every node answers on the published port: who answered, the source the task "
               "saw, latency, VXLAN on the underlay")

COLUMNS = ["ingress_node", "seq", "task", "task_node", "path", "seen_source", "seen_port",
           "client_port", "latency_ms", "connect_ms", "ttfb_ms", "ok", "error"]

def add_arguments(ap: argparse.ArgumentParser) -> None:
    stackargs.add_arguments(ap)
    engineargs.add_arguments(ap)
    ap.add_argument("--replicas", type=int, default=2,
                    help="replicas of the quick service `app` (ignored with --stack)")
    ap.add_argument("--requests", type=int, default=30, help="new connections per node")
    ap.add_argument("--service", help="service to measure (default: the first with a published port)")
    ap.add_argument("--timeout", type=float, default=2.0, help="per-request timeout, seconds")
    ap.add_argument("--ingress", choices=("mesh", "ipvs"), default="mesh",
                    help="mesh: the emulated pick in each node's kernel (default); ipvs: "
                         "Swarm's own ingress sandbox with the kernel's IPVS, as a reference")


def validate(args) -> tuple[Cluster, str, object]:
    """Check every flag and build the model, before anything is built."""
    flags.positive(args, "requests")
    flags.seconds(args, "timeout")
    cluster = stackargs.cluster(args, replicas=args.replicas)
    engineargs.check(args)
    if args.ingress == "ipvs":
        check_ipvs(cluster)
    services = cluster.ingress_services()
    if args.service:
        svc = cluster.service(args.service)
    elif services:
        svc = services[0]
    else:
        raise InvalidConfigError("service", "no service publishes a port in ingress mode")
    ports = [p for p in svc.ports if p.mode == "ingress" and p.protocol == "tcp"]
    if not ports and args.service:               # a service named on purpose: host mode too
        ports = [p for p in svc.ports if p.mode == "host" and p.protocol == "tcp"]
    if not ports:
        modes = "ingress or host mode" if args.service else "ingress mode"
        raise InvalidConfigError(f"services.{svc.name}.ports",
                                 f"no TCP port published in {modes} to send HTTP to")
    return cluster, svc.name, ports[0]


def check_ipvs(cluster: Cluster) -> None:
    """The IPVS reference path can run here (the kernel's ip_vs), for this cluster."""
    from swarmmesh.dataplane import ipvs
    from swarmmesh.machine.datapath import ipvs_missing
    why = ipvs_missing()
    if why:
        raise InvalidConfigError("ingress", f"ipvs: the IPVS reference path is skipped: {why}")
    ipvs.check_supported(cluster)


def ipvs_state(tb, cluster: Cluster) -> dict[str, str]:
    """Every node's IPVS services, real servers, weights and counters (``--stats``)."""
    return {n.name: tb.host(n.name).sandbox.ipvsadm("--stats") for n in cluster.nodes}


def measure(tb, cluster: Cluster, service: str, port, requests: int, timeout: float,
            progress) -> list[dict]:
    """``requests`` new connections to every node, one node after the other."""
    rows = []
    client = cluster.clients[0].name
    tasks = {t.name: t for t in cluster.tasks}
    for n in cluster.nodes:
        out = tb.run_in(client, ["-m", "swarmmesh.agents.httpclient", str(n.underlay_ip),
                                 str(port.published), "--count", str(requests),
                                 "--timeout", str(timeout)],
                        timeout=requests * (timeout + 1) + 30)
        for seq, line in enumerate(out.splitlines()):
            r = json.loads(line)
            body = r.get("body") or {}
            task = body.get("task", "")
            task_node = body.get("node", "")
            rows.append({
                "ingress_node": n.name, "seq": seq, "task": task, "task_node": task_node,
                "path": ("local" if task_node == n.name else "remote") if task else "",
                "seen_source": body.get("client", ""), "seen_port": body.get("client_port", ""),
                "client_port": r.get("local_port"), "latency_ms": r.get("total_ms"),
                "connect_ms": r.get("connect_ms"), "ttfb_ms": r.get("ttfb_ms"),
                "ok": bool(r.get("ok")) and task in tasks and tasks[task].service == service,
                "error": r.get("error") or ("" if task in tasks else "unknown answer"),
            })
        progress.advance(requests)
    return rows


def start_capture(tb, cluster: Cluster, run_dir: Path):
    """tcpdump on the underlay port of the last node (often replica-less); across servers,
    on the first server's end of the tunnel to the second (what crosses between them)."""
    intf = f"ul-{cluster.nodes[-1].name}"
    spread = getattr(tb, "servers", None)
    if spread is not None and spread.plan.tunnels:
        intf = spread.plan.tunnels[0].intf_a
    pcap = run_dir / "underlay-vxlan.pcap"
    proc = tb.host("underlay").popen(["tcpdump", "--immediate-mode", "-U", "-q", "-n", "-i", intf,
                                      "-w", str(pcap), "udp", "port", "4789"],
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
    tb.state.register(proc.pid, "tcpdump")
    time.sleep(0.5)
    return proc, pcap, intf


def count_vxlan(pcap: Path) -> dict:
    out = subprocess.run(["tcpdump", "-n", "-r", str(pcap)], capture_output=True, text=True).stdout
    vnis = Counter()
    for line in out.splitlines():
        if "VXLAN" in line and "vni" in line:
            vnis[line.rsplit("vni", 1)[1].strip()] += 1
    # one "VXLAN, ... vni N" line per packet (the inner packet follows on its own
    # line; counting ".4789" would also count inner client ports 47890-47899)
    return {"packets": sum(1 for l in out.splitlines() if ": VXLAN" in l), "vni": dict(vnis)}


def facts(cluster: Cluster, service: str, port, rows: list[dict]) -> dict:
    """What the run showed, for summary.json."""
    counts: dict[str, Counter] = {}
    for r in rows:
        if r["ok"]:
            counts.setdefault(r["ingress_node"], Counter())[r["task"]] += 1
    seen_ok = all(r["seen_source"] == str(cluster.node(r["ingress_node"]).ingress_ip)
                  for r in rows if r["ok"])
    tasks = [t.name for t in cluster.tasks_of(service)]
    lat = report.spread(r["latency_ms"] for r in rows if r["ok"])
    out = {
        "cluster": {"nodes": len(cluster.nodes), "replicas": len(tasks), "service": service,
                    "published": port.published, "target": port.target},
        "traffic": "swarmmesh.agents.httpclient: one HTTP GET per new TCP connection, sequential "
                   "(measures which task answers each new connection and its latency)",
        "placement": {t.name: t.node for t in cluster.tasks_of(service)},
        "counts": {n: dict(sorted(c.items())) for n, c in counts.items()},
        "requests": len(rows),
        "failed": sum(1 for r in rows if not r["ok"]),
        "every_node_reached_every_task": all(
            set(counts.get(n.name, {})) == set(tasks) for n in cluster.nodes),
        "seen_source_is_entry_node_ingress_ip": seen_ok,
        "latency_ms": lat,
    }
    return out if port.mode == "ingress" else host_facts(out, cluster, service, rows)


def rr_exact(rows: list[dict]) -> dict[str, bool]:
    """Per entry node: did its new connections take the tasks in one fixed cyclic order
    (each task once per turn)?"""
    out = {}
    for node in dict.fromkeys(r["ingress_node"] for r in rows):
        seq = [r["task"] for r in sorted((r for r in rows if r["ingress_node"] == node),
                                         key=lambda r: int(r["seq"]))]
        k = len(set(seq))
        out[node] = bool(seq) and "" not in seq and len(set(seq[:k])) == k and all(
            seq[i] == seq[i % k] for i in range(len(seq)))
    return out


def refused(row: dict) -> bool:
    """The node refused the connection: nothing listens there (TCP RST)."""
    return str(row["error"]).startswith("connect: ConnectionRefusedError")


def host_facts(out: dict, cluster: Cluster, service: str, rows: list[dict]) -> dict:
    """A host-mode port: bound only on the nodes that run a task, by the local task, the
    client's own address seen.  A node without a task refusing is Swarm's behaviour (a
    result); anything else that differs is a failure."""
    with_task = {t.node for t in cluster.tasks_of(service)}
    client = str(cluster.clients[0].underlay_ip)
    answered = [r for r in rows if r["ok"]]

    def as_expected(r: dict) -> bool:
        if r["ingress_node"] in with_task:
            return r["ok"] and r["task_node"] == r["ingress_node"]
        return refused(r)

    out = {k: v for k, v in out.items()
           if k not in ("every_node_reached_every_task", "seen_source_is_entry_node_ingress_ip")}
    out["cluster"] = {**out["cluster"], "mode": "host"}
    return {**out, "port_mode": "host", "client": client,
            "nodes_with_task": sorted(with_task, key=plots._natural),
            "refused": {n.name: sum(1 for r in rows if r["ingress_node"] == n.name and refused(r))
                        for n in cluster.nodes},
            "failed": sum(1 for r in rows if not as_expected(r)),
            "answered_by_the_local_task": bool(answered) and all(
                r["task_node"] == r["ingress_node"] for r in answered),
            "seen_source_is_client": bool(answered) and all(
                r["seen_source"] == client for r in answered)}


def run(args, plan, ctx) -> None:
    cluster, service, port = plan
    for key in cluster.ignored_keys:
        ctx.progress.note(f"not emulated, ignored: {key}")
    ipvs_after = None
    with ctx.testbed(cluster, ingress=args.ingress, **engineargs.testbed_kwargs(args)) as tb:
        cluster = tb.cluster                    # real Swarm: as it placed the tasks
        cap, pcap, intf = start_capture(tb, cluster, ctx.run_dir)
        ctx.progress.phase("sending", total=args.requests * len(cluster.nodes))
        try:
            rows = measure(tb, cluster, service, port, args.requests, args.timeout, ctx.progress)
        finally:
            time.sleep(0.3)
            cap.terminate()
            cap.wait(timeout=5)
        if args.ingress == "ipvs":
            ipvs_after = ipvs_state(tb, cluster)
    ctx.write_csv("requests.csv", rows, COLUMNS)
    ctx.summary.update(facts(cluster, service, port, rows))
    ctx.summary["ingress"] = args.ingress
    ctx.summary["rr_exact_per_node"] = rr_exact(rows)
    if ipvs_after is not None:
        ctx.summary["ipvs"] = ipvs_after
    ctx.summary["vxlan_on_underlay"] = {"interface": intf, **count_vxlan(pcap)}
    for n, c in ctx.summary["counts"].items():
        ctx.progress.note(f"{n}: " + ", ".join(f"{t}={k}" for t, k in c.items()))
    for n, k in ctx.summary.get("refused", {}).items():
        if k:
            ctx.progress.note(f"{n}: {k} connections refused (host-mode port)")
    if ctx.summary["failed"]:
        ctx.failed = f"{ctx.summary['failed']} of {len(rows)} requests failed"


def plot(run_dir: Path) -> None:
    summary = experiment.read_summary(run_dir)
    rows = results.read_csv(run_dir / "requests.csv")
    if summary.get("port_mode") == "host":
        return plot_host(run_dir, summary, rows)
    c = summary["cluster"]
    what = (f"{c['nodes']} nodes, {c['replicas']} replicas of {c['service']}, "
            f"{summary['parameters']['requests']} new connections per node")
    who = plots.requests_per_task(rows, plots.run_title(summary, f"Routing mesh: who answered, {what}"),
                                  run_dir / "requests_per_task")
    cdf = plots.latency_cdf(rows, plots.run_title(summary, f"Routing mesh: request latency, {what}"),
                            run_dir / "latency_cdf")
    ok = [r for r in rows if r["ok"] == "True"]
    rep = report.Report(run_dir, f"Routing mesh: {what}", summary)
    vx = summary.get("vxlan_on_underlay", {})
    if summary.get("ingress") == "ipvs":
        rep.text("Ingress: **Swarm's own IPVS** (the reference path): a real ingress sandbox "
                 "per node, mangle mark, IPVS rr on the fwmark, SNAT with `-m ipvs`. Exact "
                 f"rr per node: {summary.get('rr_exact_per_node')}.")
    rep.text(f"{len(ok)} of {len(rows)} requests answered. Every node reached every task: "
             f"**{summary['every_node_reached_every_task']}**. Every task saw the entry node's "
             f"ingress address as the source: **{summary['seen_source_is_entry_node_ingress_ip']}**. "
             f"VXLAN packets captured on {vx.get('interface')}: {vx.get('packets')} "
             f"(VNI: {vx.get('vni')}).")
    rep.heading("Who answered")
    tasks = sorted({r["task"] for r in ok}, key=plots._natural)
    counts = summary["counts"]
    rep.table(["ingress node", *[f"{t} (on {summary['placement'].get(t, '?')})" for t in tasks]],
              [[n, *[counts[n].get(t, 0) for t in tasks]] for n in sorted(counts, key=plots._natural)])
    rep.figure(who, "Requests answered per task, for each ingress node")
    rep.heading("Latency")
    by = {}
    for r in ok:
        where = "local" if r["task_node"] == r["ingress_node"] else "remote"
        by.setdefault(f"{r['ingress_node']}, {where} task", []).append(r["latency_ms"])
    rep.numbers({"all": [r["latency_ms"] for r in ok],
                 **{k: by[k] for k in sorted(by, key=plots._natural)}},
                unit="ms", what="Request latency, connect to last byte", label="ingress node, path")
    rep.numbers({"connect": [r["connect_ms"] for r in ok],
                 "first byte": [r["ttfb_ms"] for r in ok]},
                unit="ms", what="Connect and first-byte time, all requests", label="phase")
    rep.figure(cdf, "CDF of request latency per ingress node; solid: the task ran on the "
                    "ingress node, dashed: on another node (over the overlay)")
    rep.write()


def plot_host(run_dir: Path, summary: dict, rows: list[dict]) -> None:
    """Figures and report.md of a host-mode port: answered only where a task runs."""
    c = summary["cluster"]
    with_task, closed = summary["nodes_with_task"], summary["refused"]
    what = (f"{c['nodes']} nodes, {c['replicas']} replicas of {c['service']}, "
            f"{summary['parameters']['requests']} new connections per node")
    headline = (f"Host-mode port {c['published']}: answered only on nodes with a task, "
                f"by the local task")
    nodes = sorted(closed, key=plots._natural)
    failed = Counter(r["ingress_node"] for r in rows if r["ok"] != "True" and not refused(r))
    notes = {n: ("\n(task here)" if n in with_task else "\n(no task: port closed)")
             + (f"\n{closed[n]} refused" if closed[n] else "")
             + (f"\n{failed[n]} failed" if failed[n] else "") for n in nodes}
    who = plots.requests_per_task(rows, plots.run_title(summary, f"{headline}\n{what}"),
                                  run_dir / "requests_per_task", node_notes=notes,
                                  xlabel="node the client connected to")
    lat: dict[str, list] = {}
    for r in sorted(rows, key=lambda r: plots._natural(r["ingress_node"])):
        if r["ok"] == "True":
            where = "local" if r["task_node"] == r["ingress_node"] else "remote"
            lat.setdefault(f"{r['ingress_node']}, {where} task", []).append(r["latency_ms"])
    cdf = plots.cdf(lat, "request latency, connect to last byte (ms)",
                    plots.run_title(summary, f"Host-mode port {c['published']}: request latency "
                                             f"(the local task, no mesh)\n{what}"),
                    run_dir / "latency_cdf", unit="ms",
                    colours={k: plots.colour_for(k.split(",")[0]) for k in lat})
    ok = [r for r in rows if r["ok"] == "True"]
    without = [n for n in nodes if n not in with_task]
    vx = summary.get("vxlan_on_underlay", {})
    rep = report.Report(run_dir, f"Host-mode port: {what}", summary)
    rep.text(f"Port {c['published']}/tcp (target {c['target']}) of {c['service']} is published "
             f"in **host mode**: it is bound only on the nodes that run one of its tasks "
             f"({', '.join(with_task) or 'none'}), where the node's kernel DNATs it straight to "
             f"the local task: no routing mesh, no SNAT. {len(ok)} of {len(rows)} requests "
             f"answered. Every answer came from the task on the node the client connected to: "
             f"**{summary['answered_by_the_local_task']}**. Every task saw the client's own "
             f"address ({summary['client']}): **{summary['seen_source_is_client']}**. "
             + (f"On the nodes without a task ({', '.join(without)}) the port is closed: "
                f"{sum(closed[n] for n in without)} connections refused at once, as in Swarm "
                f"(a result, not a failure). " if without else "")
             + f"Requests that went otherwise: {summary['failed']}. VXLAN packets captured on "
             f"{vx.get('interface')}: {vx.get('packets')} (host mode crosses no overlay).")
    rep.heading("Who answered")
    tasks = sorted({r["task"] for r in ok}, key=plots._natural)
    counts = summary["counts"]
    rep.table(["node", *[f"{t} (on {summary['placement'].get(t, '?')})" for t in tasks],
               "refused"],
              [[n, *[counts.get(n, {}).get(t, 0) for t in tasks], closed[n]] for n in nodes])
    rep.figure(who, "Requests answered per task, for each node the client connected to; a "
                    "node without a task refuses every connection (its port is closed)")
    rep.heading("Latency")
    rep.numbers({"all": [r["latency_ms"] for r in ok], **lat},
                unit="ms", what="Request latency, connect to last byte", label="node, path")
    rep.numbers({"connect": [r["connect_ms"] for r in ok],
                 "first byte": [r["ttfb_ms"] for r in ok]},
                unit="ms", what="Connect and first-byte time, all requests", label="phase")
    rep.figure(cdf, "CDF of request latency per node: each answered by its own local task, "
                    "DNATed by the node's kernel (no mesh, no overlay)")
    rep.write()


if __name__ == "__main__":
    sys.exit(experiment.main(sys.modules[__name__]))
