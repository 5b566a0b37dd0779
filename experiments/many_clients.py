#!/usr/bin/env python3
"""Many clients: thousands of spoofed sources through every node, and how
evenly the routing mesh spreads them over the tasks.

One client host sends one new flow per spoofed source (a distinct address
and port from 198.18.0.0/15, drawn from the run's seed), round-robin over
every node's underlay address, to the published port, paced open-loop at
``--rate`` packets per second (:mod:`swarmmesh.traffic.scapygen`).  UDP: one
datagram per source, answered by the task with its name.  TCP: a SYN per
source; on the SYN-ACK the generator sends the ACK with an HTTP GET, reads
the task from the answer and resets the connection.

Before that, the same generator sends ``--bench-packets`` frames as fast as
it can to a sink (the underlay bridge's own address, which drops them): the
generator's capacity on this host, so that losses in the run can be told
apart from a slow generator.

Per ingress node and overall it reports the per-task counts and their
fairness: Jain's index (1 = perfectly even, 1/n = all on one task) and
max/mean.  Losses are counted per ingress node and never hidden.

    sudo .venv/bin/swarmmesh run many_clients --nodes 3 --replicas 3 --sources 6000 \\
        --rate 2000 --protocol udp
    sudo .venv/bin/python experiments/many_clients.py --protocol tcp --rate 600

Writes ``requests.csv`` (one row per request, ``scapygen.RECORD_COLUMNS``),
``summary.json``, figures (``per_task``, ``fairness``, ``timeline``, ``latency_cdf``, PNG
and PDF) and ``report.md``.  Exits 1 when more than ``--max-loss`` of the
requests got no answer, when a node reached no task at all, or when the
client's own kernel answered the replies.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

from swarmmesh.runs import experiment, flags, metrics, report, runfolder as results, stackargs
from swarmmesh.runs.many_clients_report import (figures, generator_text, latency_section,
                                                losses_section, spread_section)
from swarmmesh.model import Cluster, InvalidConfigError
from swarmmesh.traffic import scapygen

NAME = "many_clients"
DESCRIPTION = ("thousands of spoofed sources through every node: per-task spread, "
               "Jain's fairness index and max/mean, per ingress node and overall")
DEFAULT_RATE = {"udp": 2000.0, "tcp": 600.0}
MAX_SOURCES = 200_000
SINK_IP = "192.0.2.1"          # TEST-NET-1; the sink frames never leave the underlay bridge


# -- fairness -------------------------------------------------------------------

def _natural(name: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def spread_of(rows: list[dict], tasks: list[str]) -> dict:
    """Per ingress node and overall (``all``): requests, answered, lost, the
    count per task (zeros included: a task that got nothing counts) and its
    fairness."""
    out = {}
    nodes = sorted({r["ingress_node"] for r in rows}, key=_natural)
    for node in nodes + ["all"]:
        mine = [r for r in rows if node == "all" or r["ingress_node"] == node]
        ok = [r for r in mine if str(r["ok"]) == "True"]
        c = Counter(r["task"] for r in ok)
        counts = {t: c.get(t, 0) for t in tasks}
        xs = list(counts.values())
        out[node] = {"requests": len(mine), "answered": len(ok), "lost": len(mine) - len(ok),
                     "loss": (len(mine) - len(ok)) / len(mine) if mine else None,
                     "per_task": counts, "jain": metrics.jain(xs), "max_over_mean": metrics.max_over_mean(xs),
                     "min": min(xs) if xs else None, "max": max(xs) if xs else None,
                     "other_tasks": sum(v for k, v in c.items() if k not in counts)}
    return out


_STALL = re.compile(r"^(\S+)\|\d+\|(?:timeval|ovs_rcu)(?:\((\S+)\))?\|WARN\|"
                    r"(?:Unreasonably long (\d+)ms poll|blocked (\d+) ms waiting for (\S+) to quiesce)")


def vswitchd_stalls(log_dir: Path, nodes: list[str], t0_unix_ns: int | None) -> dict:
    """The stalls every node's vswitchd logged: "Unreasonably long poll
    interval" (a thread not scheduled, or busy, for that long; here the CPU
    is shared) and "blocked N ms waiting for T to quiesce" (a thread held
    up by another, ``waiting_for``).  The netdev datapath forwards in
    vswitchd's main thread, so a stall of ``main`` is a stall of that node's
    forwarding.  Times are given from the first request (``t0_unix_ns``)."""
    import datetime as dt
    out = {}
    for node in nodes:
        log = log_dir / f"{node}-ovs-vswitchd.log"
        stalls = []
        for line in (log.read_text(errors="replace").splitlines() if log.is_file() else []):
            m = _STALL.match(line)
            if not m:
                continue
            end = dt.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                tzinfo=dt.timezone.utc).timestamp()
            ms = int(m.group(3) or m.group(4))
            rel_end = end - t0_unix_ns / 1e9 if t0_unix_ns else None
            stalls.append({"thread": m.group(2) or "main", "ms": ms,
                           "waiting_for": m.group(5) or "",
                           "from_s": round(rel_end - ms / 1000, 3) if rel_end is not None else None,
                           "to_s": round(rel_end, 3) if rel_end is not None else None})
        out[node] = stalls
    return out


def datapath_counters(node) -> dict:
    """A node's userspace datapath after the run (``ovs-appctl dpctl/show``):
    lookups that hit a datapath flow, missed (an upcall: the OpenFlow
    pipeline ran, with its ``learn``) and were lost (the upcall was dropped),
    and the datapath flows installed."""
    out = node.cmd(f"OVS_RUNDIR={node.ovs_dir} ovs-appctl -t ovs-vswitchd dpctl/show")
    m = re.search(r"lookups: hit:(\d+) missed:(\d+) lost:(\d+)", out)
    f = re.search(r"flows: (\d+)", out)
    if not m:
        return {"error": out.strip()[-200:]}
    return {"hit": int(m.group(1)), "missed": int(m.group(2)), "lost": int(m.group(3)),
            "flows": int(f.group(1)) if f else None}


# -- the experiment ---------------------------------------------------------------

def add_arguments(ap: argparse.ArgumentParser) -> None:
    stackargs.add_size_arguments(ap, nodes=3, replicas=3)
    ap.add_argument("--sources", type=int, default=6000,
                    help="spoofed sources = new flows, one each, spread evenly over the nodes")
    ap.add_argument("--protocol", choices=["udp", "tcp"], default="udp",
                    help="UDP datagrams or TCP connections (SYN, ACK+GET, RST)")
    ap.add_argument("--rate", type=float, default=None,
                    help="offered packets (UDP) or SYNs (TCP) per second, paced open-loop; "
                         "0 = as fast as possible (default: 2000 for udp, 600 for tcp, "
                         "what 3 userspace-OVS nodes take here with no loss)")
    ap.add_argument("--published", type=int, default=8000, help="published port")
    ap.add_argument("--wait", type=float, default=3.0,
                    help="seconds to wait for answers after the last packet")
    ap.add_argument("--batch", type=int, default=16, help="largest burst of the pacing loop")
    ap.add_argument("--bench-packets", type=int, default=200_000,
                    help="frames sent as fast as possible to a sink first, to measure the "
                         "generator alone (0 = skip)")
    ap.add_argument("--max-loss", type=float, default=0.02,
                    help="fraction of unanswered requests above which the run fails")


def validate(args) -> Cluster:
    flags.positive(args, "replicas")
    if not args.nodes <= args.sources <= MAX_SOURCES:
        raise InvalidConfigError("sources", f"must be in {args.nodes} (one per node) .. "
                                            f"{MAX_SOURCES}, got {args.sources}")
    if args.rate is None:
        args.rate = DEFAULT_RATE[args.protocol]
    flags.number(args, "rate", zero=True, unit=" (0 = as fast as possible)")
    flags.seconds(args, "wait", zero=True)
    flags.int_in(args, "batch", 1, 1024)
    flags.int_in(args, "bench_packets", 0, 2_000_000)
    flags.number(args, "max_loss", most=1, zero=True)
    return Cluster.quick(nodes=args.nodes, replicas=args.replicas, published=args.published,
                         protocol=args.protocol)


def run(args, cluster: Cluster, ctx) -> None:
    client = cluster.clients[0].name
    tasks = [t.name for t in cluster.tasks_of("app")]
    with ctx.testbed(cluster) as tb:
        c = tb.host(client)
        route_spoofed(tb, client, ctx)
        if args.bench_packets:
            bench_generator(tb, client, args, ctx)
        ctx.progress.phase("warming up")
        for n in cluster.nodes:                    # ARP both ways before the first reply
            c.cmd(f"ping -c 1 -W 1 {n.underlay_ip}")
        before = scapygen.kernel_reply_counters(c)
        gen = send_sources(tb, client, cluster, args, ctx)
        after = scapygen.kernel_reply_counters(c)
        datapaths = {n.name: datapath_counters(tb.host(n.name)) for n in cluster.nodes}
    rows = results.read_csv(ctx.run_dir / "requests.csv")
    spread = spread_of(rows, tasks)
    stalls = vswitchd_stalls(ctx.run_dir / "logs", [n.name for n in cluster.nodes],
                             gen.get("t0_unix_ns"))
    kernel = {k: after[k] - before[k] for k in after}
    ctx.summary.update({
        "traffic": TRAFFIC,
        "generator": gen,
        "offered_rate_pps": gen["offered_rate_pps"],
        "achieved_rate_pps": gen["achieved_rate_pps"],
        "placement": {t.name: t.node for t in cluster.tasks_of("app")},
        "spread": spread,
        "client_kernel_sent_during_run": kernel,
        "vswitchd_stalls": stalls,
        "datapath_counters": datapaths,
    })
    overall = spread["all"]
    ctx.progress.note(f"answered {overall['answered']}/{overall['requests']}, "
                      f"Jain {overall['jain']:.4f}, max/mean {overall['max_over_mean']:.3f}"
                      if overall["jain"] else "no answers")
    reasons = failures(spread, kernel, args.max_loss)
    if reasons:
        ctx.failed = "; ".join(reasons)


TRAFFIC = ("swarmmesh.traffic.scapygen: spoofed sources, frames pre-built from scapy "
           "templates and sent on an AF_PACKET socket, paced open-loop; replies captured "
           "with a BPF filter and matched by the spoofed address and port. Chosen "
           "because thousands of distinct sources from one host need raw packets.")


def route_spoofed(tb, client: str, ctx) -> None:
    """Route the spoofed prefix back to the client, which must neither answer
    nor forward the replies itself."""
    ctx.progress.phase("routing the spoofed prefix")
    routing = scapygen.route_spoofed_prefix(tb, client)
    ctx.summary["routing"] = routing
    if routing["client"]["ip_forward"] != "0" or routing["client"]["owns_prefix"]:
        raise RuntimeError(f"{client} would answer or forward the replies itself: {routing['client']}")


def bench_generator(tb, client: str, args, ctx) -> None:
    """The generator alone, as fast as it can, to a sink: its capacity on this host."""
    ctx.progress.phase("generator capacity (to a sink)")
    ul0 = tb.host("underlay").cmd("cat /sys/class/net/ul0/address").strip()
    sink = [scapygen.Target("sink", SINK_IP, ul0, 9)]
    bench = scapygen.run_in_client(tb, client, sink, "/dev/null", protocol=args.protocol,
                                   sources=args.bench_packets, rate=0, seed=args.seed,
                                   batch=args.batch, capture=False)
    ctx.summary["generator_capacity"] = {
        "what": f"{args.bench_packets} pre-built {args.protocol} frames, as fast as "
                "possible, one send() each on an AF_PACKET socket, to the underlay "
                "bridge's own MAC (dropped there)",
        **bench}
    ctx.progress.note(f"generator alone: {bench['offered_rate_pps']:.0f} packets/s")


def send_sources(tb, client: str, cluster: Cluster, args, ctx) -> dict:
    """The run: every spoofed source through the nodes, in ``requests.csv``; the
    generator's statistics."""
    ctx.progress.phase("sending")
    ctx.progress.note(f"{args.sources} spoofed {args.protocol} sources at "
                      f"{args.rate or 'max'} /s over {len(cluster.nodes)} nodes")
    targets = scapygen.targets_of(tb, [n.name for n in cluster.nodes], args.published)
    return scapygen.run_in_client(tb, client, targets, (ctx.run_dir / "requests.csv").resolve(),
                                  protocol=args.protocol, sources=args.sources,
                                  rate=args.rate, seed=args.seed, batch=args.batch,
                                  wait=args.wait)


def failures(spread: dict, kernel: dict, max_loss: float) -> list[str]:
    """Why the run failed: too many unanswered, a node that reached no task,
    the client's kernel answering the replies."""
    overall = spread["all"]
    reasons = []
    if overall["loss"] > max_loss:
        reasons.append(f"{overall['lost']} of {overall['requests']} requests unanswered "
                       f"({overall['loss']:.1%} > --max-loss {max_loss:.1%})")
    dead = [n for n, s in spread.items() if n != "all" and s["answered"] == 0]
    if dead:
        reasons.append(f"no task answered through {', '.join(dead)}")
    if any(kernel.values()):
        reasons.append(f"the client's kernel sent {kernel} during the run")
    return reasons


# -- figures and report -------------------------------------------------------------


def plot(run_dir: Path) -> None:
    s = experiment.read_summary(run_dir)
    p = s["parameters"]
    rows = results.read_csv(run_dir / "requests.csv")
    gen = s["generator"]
    what = (f"{p['sources']} spoofed {p['protocol'].upper()} sources, {p['nodes']} nodes, "
            f"{p['replicas']} replicas, {gen['offered_rate_pps'] or 0:.0f} /s offered")
    figs = figures(run_dir, s, rows, what)
    rep = report.Report(run_dir, f"Many clients: {what}", s)
    rep.text(generator_text(s))
    spread_section(rep, s["spread"], figs)
    losses_section(rep, s, figs["time"])
    latency_section(rep, rows, figs["lat"])
    rep.write()


if __name__ == "__main__":
    sys.exit(experiment.main(sys.modules[__name__]))
