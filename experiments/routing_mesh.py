#!/usr/bin/env python3
"""The routing mesh, end to end: every node answers on every published port.

An external client opens ``--requests`` new connections to each node's
address on the published port, the replica-less nodes included, and records
which task answered, on which node, the source address the task saw, and the
latency.  A capture on the underlay records the VXLAN (UDP 4789) that carried
the ingress overlay.

    sudo .venv/bin/python experiments/routing_mesh.py --nodes 4 --replicas 3 --requests 60

Writes ``requests.csv``, ``summary.json`` and two figures into a new run
folder under ``--out`` and prints that folder on its last line.  Exits 1 if
any request failed, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from swarmmesh import plots, results                            # noqa: E402
from swarmmesh.model import Cluster, InvalidConfigError         # noqa: E402

COLUMNS = ["ingress_node", "seq", "task", "task_node", "path", "seen_source", "seen_port",
           "client_port", "latency_ms", "connect_ms", "ttfb_ms", "ok", "error"]


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=3, help="swarm nodes (default 3)")
    ap.add_argument("--replicas", type=int, default=2,
                    help="replicas of the quick service `app` (default 2; ignored with --stack)")
    ap.add_argument("--requests", type=int, default=30,
                    help="new connections per node (default 30)")
    ap.add_argument("--stack", help="docker stack / compose v3 file instead of the quick service")
    ap.add_argument("--service", help="service to measure (default: the first with a published port)")
    ap.add_argument("--out", default="results/routing_mesh", help="parent of the run folder")
    ap.add_argument("--datapath", choices=["auto", "system", "netdev"], default="auto",
                    help="OVS datapath: kernel module (system), userspace (netdev), or auto")
    ap.add_argument("--timeout", type=float, default=2.0, help="per-request timeout, seconds")
    ap.add_argument("--quiet", action="store_true", help="no progress lines")
    return ap.parse_args(argv)


def build_cluster(args) -> tuple[Cluster, str, object]:
    """Validate everything before anything is built."""
    if args.requests < 1:
        raise InvalidConfigError("requests", f"must be >= 1, got {args.requests}")
    if args.timeout <= 0:
        raise InvalidConfigError("timeout", f"must be > 0, got {args.timeout}")
    cluster = (Cluster.from_stack(args.stack, nodes=args.nodes) if args.stack
               else Cluster.quick(nodes=args.nodes, replicas=args.replicas))
    services = cluster.ingress_services()
    if args.service:
        svc = cluster.service(args.service)
    elif services:
        svc = services[0]
    else:
        raise InvalidConfigError("service", "no service publishes a port in ingress mode")
    ports = [p for p in svc.ports if p.mode == "ingress" and p.protocol == "tcp"]
    if not ports:
        raise InvalidConfigError(f"services.{svc.name}.ports",
                                 "no TCP port published in ingress mode to send HTTP to")
    return cluster, svc.name, ports[0]


def measure(tb, cluster: Cluster, service: str, port, requests: int, timeout: float,
            progress) -> list[dict]:
    rows = []
    client = cluster.clients[0].name
    tasks = {t.name: t for t in cluster.tasks}
    for n in cluster.nodes:
        progress(f"sending {requests} requests to {n.name}:{port.published}")
        out = tb.run_in(client, ["-m", "swarmmesh.httpclient", str(n.underlay_ip),
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
    return rows


def start_capture(tb, cluster: Cluster, run_dir: Path):
    """tcpdump on the underlay port of the last node (often replica-less)."""
    node = cluster.nodes[-1].name
    pcap = run_dir / "underlay-vxlan.pcap"
    proc = tb.host("underlay").popen(["tcpdump", "--immediate-mode", "-U", "-q", "-n", "-i", f"ul-{node}",
                                      "-w", str(pcap), "udp", "port", "4789"],
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
    tb.state.register(proc.pid, "tcpdump")
    time.sleep(0.5)
    return proc, pcap, f"ul-{node}"


def count_vxlan(pcap: Path) -> dict:
    out = subprocess.run(["tcpdump", "-n", "-r", str(pcap)], capture_output=True, text=True).stdout
    vnis = Counter()
    for line in out.splitlines():
        if "VXLAN" in line and "vni" in line:
            vnis[line.rsplit("vni", 1)[1].strip()] += 1
    return {"packets": sum(1 for l in out.splitlines() if ".4789" in l), "vni": dict(vnis)}


def summarise(args, cluster, service, port, rows, tb_info, vxlan, started, ended) -> dict:
    counts: dict[str, dict[str, int]] = {}
    for r in rows:
        if r["ok"]:
            counts.setdefault(r["ingress_node"], Counter())[r["task"]] += 1
    seen_ok = all(r["seen_source"] == str(cluster.node(r["ingress_node"]).ingress_ip)
                  for r in rows if r["ok"])
    tasks = [t.name for t in cluster.tasks_of(service)]
    lat = sorted(float(r["latency_ms"]) for r in rows if r["ok"])
    return {
        "experiment": "routing_mesh",
        "parameters": {"nodes": len(cluster.nodes), "replicas": len(tasks),
                       "requests_per_node": args.requests, "stack": args.stack,
                       "service": service, "published": port.published, "target": port.target,
                       "timeout_s": args.timeout},
        "traffic": "swarmmesh.httpclient: one HTTP GET per new TCP connection, sequential",
        "datapath": tb_info["datapath"],
        "versions": tb_info["versions"],
        "git_commit": results.git_commit(),
        "host": results.host_info(),
        "start": started, "end": ended,
        "placement": {t.name: t.node for t in cluster.tasks_of(service)},
        "counts": {n: dict(sorted(c.items())) for n, c in counts.items()},
        "requests": len(rows),
        "failed": sum(1 for r in rows if not r["ok"]),
        "every_node_reached_every_task": all(
            set(counts.get(n.name, {})) == set(tasks) for n in cluster.nodes),
        "seen_source_is_entry_node_ingress_ip": seen_ok,
        "latency_ms": {"median": lat[len(lat) // 2] if lat else None,
                       "p99": lat[int(len(lat) * 0.99) - 1] if lat else None},
        "vxlan_on_underlay": vxlan,
    }


def draw(run_dir: Path, summary: dict) -> list[Path]:
    rows = results.read_csv(run_dir / "requests.csv")
    p = summary["parameters"]
    what = (f"{p['nodes']} nodes, {p['replicas']} replicas of {p['service']}, "
            f"{p['requests_per_node']} new connections per node, {summary['datapath']} OVS")
    return (plots.requests_per_task(rows, f"Routing mesh: who answered\n{what}",
                                    run_dir / "requests_per_task")
            + plots.latency_cdf(rows, f"Routing mesh: request latency\n{what}",
                                run_dir / "latency_cdf"))


def main(argv=None) -> int:
    args = parse_args(argv)
    say = (lambda m: None) if args.quiet else (lambda m: print(f"[routing_mesh] {m}",
                                                              file=sys.stderr, flush=True))
    try:
        cluster, service, port = build_cluster(args)
    except InvalidConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for key in cluster.ignored_keys:
        say(f"not emulated, ignored: {key}")

    from swarmmesh.testbed import Testbed, TestbedError, versions
    run_dir = results.new_run_dir(args.out, f"n{len(cluster.nodes)}-r{len(cluster.tasks_of(service))}")
    started = results.now_iso()
    try:
        with Testbed(cluster, run_dir, datapath=args.datapath, progress=say) as tb:
            say(f"datapath: {tb.datapath}")
            cap, pcap, intf = start_capture(tb, cluster, run_dir)
            rows = measure(tb, cluster, service, port, args.requests, args.timeout, say)
            time.sleep(0.3)
            cap.terminate()
            cap.wait(timeout=5)
            tb_info = {"datapath": tb.datapath, "versions": versions()}
    except TestbedError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    ended = results.now_iso()
    vxlan = {"interface": intf, **count_vxlan(pcap)}
    results.write_csv(run_dir / "requests.csv", rows, COLUMNS)
    summary = summarise(args, cluster, service, port, rows, tb_info, vxlan, started, ended)
    results.write_json(run_dir / "summary.json", summary)
    say("plotting")
    draw(run_dir, summary)
    for n, c in summary["counts"].items():
        say(f"{n}: " + ", ".join(f"{t}={k}" for t, k in c.items()))
    say(f"failed: {summary['failed']} of {summary['requests']}; "
        f"VXLAN packets on {intf}: {vxlan['packets']}")
    print(run_dir)
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
