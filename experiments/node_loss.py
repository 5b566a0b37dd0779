#!/usr/bin/env python3
"""Node loss under load: detection, rescheduling and recovery on one timeline.

An open-loop load (``--rate`` requests/s, a new connection each, round-robin
over every node's published port, the lost node's included, as a client with
a fixed list of node addresses does) runs while ``--node`` loses its link at
``--down-at`` s: it answers nothing from then on, and its tasks are
unreachable from the other nodes.  After the profile's delay (Swarm: marked
down after 15 s; fast: 1 s) its tasks leave every load balancer and are
rescheduled on the other nodes, where they join after their first healthy
check (Swarm: 30 s later).

Defaults: fast: 10 s, down at 3 s; swarm: down at 10 s, 70 s in all.

``--engine docker`` runs it on real Swarm (Swarm's timings only): the node's underlay link
goes down, its dockerd keeps running cut off, and the events are Swarm's own (the node's
status, the task states; see docs/real-swarm.md).  Swarm reports no convergence (when
every balancer dropped the lost node's tasks), so the check there is on the requests
through the surviving nodes after the replacements joined.

    sudo .venv/bin/swarmmesh run node_loss --nodes 3 --replicas 3 --node node2

Writes ``timeline.csv``, ``events.csv``, ``summary.json`` (down -> marked
down -> tasks out of the balancers -> rescheduled -> joined; failed requests
through the lost node and through the others, before and after the
balancers converged), the figure and ``report.md``.  Exits 1 if a request
through a surviving node failed after the lost node's tasks left the
balancers.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

from swarmmesh.runs import engineargs, experiment, plots, report, timeline
from swarmmesh.runs.timeline_metrics import (failures_between, first_event, joins, load_panels,
                                             read_events, read_timeline)
from swarmmesh.runs.timeline_engine import NO_CONVERGENCE, engine_of, swarm_events_text
from swarmmesh.runs.timeline_plots import timeline_figure
from swarmmesh.lifecycle import profiles
from swarmmesh.model import InvalidConfigError

NAME = "node_loss"
DESCRIPTION = ("a node goes down under load through every node: detection, rescheduling "
               "and recovery on the timeline, failed requests by ingress node")

MARKS = ("node down", "node marked down", "task started", "joins")


def add_arguments(ap: argparse.ArgumentParser) -> None:
    timeline.add_arguments(ap)
    ap.add_argument("--node", default="node2", help="the node that goes down")
    ap.add_argument("--down-at", type=float, default=None,
                    help="seconds after the first request (default: 3 fast, 10 swarm)")
    engineargs.add_arguments(ap)


def times(args) -> tuple[float, float]:
    p = profiles.profile(args.profile)
    fast = p.name == "fast"
    at = args.down_at if args.down_at is not None else (3.0 if fast else 10.0)
    need = at + p.node_down_after + p.interval + (1.0 if fast else 10.0)
    return at, args.duration if args.duration is not None else need + (3.0 if fast else 5.0)


def validate(args):
    engineargs.check(args)
    timeline.check_arguments(args)
    if args.nodes < 2:
        raise InvalidConfigError("nodes", f"must be >= 2 (one goes down), got {args.nodes}")
    cluster = timeline.cluster_for(args)
    names = [n.name for n in cluster.nodes]
    if args.node not in names:
        raise InvalidConfigError("node", f"no node {args.node!r}; the nodes are "
                                         f"{', '.join(names)}")
    at, dur = times(args)
    if at <= 0:
        raise InvalidConfigError("down-at", f"must be > 0, got {at:g}")
    p = profiles.profile(args.profile)
    if dur < at + p.node_down_after + 1:
        raise InvalidConfigError("duration", f"must last past the node being marked down "
                                             f"({at:g} + {p.node_down_after:g} s), got {dur:g}")
    return cluster


def run(args, cluster, ctx) -> None:
    at, dur = times(args)

    def script(orch, at_):
        at_(at)
        orch.node_down(args.node)

    timeline.run_variants(args, ctx, [{"variant": args.profile, "profile": args.profile,
                                       "duration": dur, "script": script,
                                       "facts": {"down_at_s": at, "node": args.node}}])
    rows = read_timeline(ctx.run_dir / "timeline.csv")
    m = metrics(rows, read_events(ctx.run_dir / "events.csv"), args.node, args.engine)
    ctx.summary["node_loss"] = m
    late = m["via_others"]["failed_after_convergence"]
    if args.engine == "docker":
        late = m["via_others"]["failed_after_recovered"]
    if late:
        ctx.failed = (f"{late} requests through the surviving nodes failed after "
                      + ("the replacements joined" if args.engine == "docker"
                         else "the balancers converged"))


def metrics(rows: list[dict], events: list[dict], node: str,
            engine: str = "emulated") -> dict:
    """On real Swarm (``engine`` docker) nothing marks convergence: the figures measured
    from it are None, and ``failed_after_recovered`` counts from the last join."""
    down = first_event(events, "node down")
    t_down = down["t"] if down else None
    marked = first_event(events, "node marked down", node)
    conv = first_event(events, "published", f"{node} down", marked["t"]) if marked \
        else None
    t_conv = conv["t"] if conv else None
    started = [e["t"] for e in events if e["event"] == "task started"
               and marked and e["t"] >= marked["t"]]
    joined = [t for t in joins(events).values() if marked and t >= marked["t"]]
    t_rec = max(joined, default=None)
    unknown = engine == "docker" and t_conv is None     # no convergence to see
    others = [r for r in rows if r["ingress_node"] != node]
    lost = [r for r in rows if r["ingress_node"] == node]
    fail_others = [r for r in others if not r["ok"]]
    after = (lambda t: None if t is None or t_down is None else round(t - t_down, 4))
    return {
        "node": node, "t_down": t_down, "requests": len(rows),
        "down_to_marked_s": after(marked and marked["t"]),
        "down_to_converged_s": after(t_conv),
        "down_to_rescheduled_s": after(max(started, default=None)),
        "down_to_recovered_s": after(t_rec),
        "via_lost_node": {"requests": len(lost),
                          "failed": sum(1 for r in lost if not r["ok"]),
                          "failed_before_down": failures_between(
                              lost, float("-inf"), t_down if t_down is not None else
                              float("inf"))},
        "via_others": {
            "requests": len(others), "failed": len(fail_others),
            "failed_before_down": failures_between(
                others, float("-inf"), t_down if t_down is not None else float("inf")),
            "failed_down_to_converged": (failures_between(others, t_down, t_conv)
                                         if t_down is not None and t_conv is not None else None),
            "failed_after_convergence": (None if unknown else failures_between(others, t_conv)
                                         if t_conv is not None else len(fail_others)),
            "failed_after_recovered": (failures_between(others, t_rec)
                                       if t_rec is not None else None),
            "failed_after_marked": (failures_between(others, marked["t"])
                                    if marked else None),
            "last_failure_after_down_s": after(max((r["t_send"] for r in fail_others),
                                                   default=None)),
            "failed_by_error": dict(collections.Counter(r["error"] for r in fail_others)),
        },
    }


def plot(run_dir: Path) -> None:
    summary = experiment.read_summary(run_dir)
    p = summary["parameters"]
    engine = engine_of(summary)
    ps = load_panels(run_dir, MARKS)
    node = p["node"]
    panels = []
    for panel in ps:
        m = metrics(panel["rows"], panel["events"], node, engine)
        o = m["via_others"]
        late = (f"{o['failed_after_recovered']} after the replacements joined"
                if engine == "docker" else f"{o['failed_after_convergence']} after convergence")
        panels.append({**panel, "rows": [r for r in panel["rows"] if r["ingress_node"] != node],
                       "title": f"{_who(panel['variant'], engine)}: through the surviving "
                                f"nodes: {o['failed']} of {o['requests']} requests failed, "
                                f"{late}"})
        panels.append({**panel, "rows": [r for r in panel["rows"] if r["ingress_node"] == node],
                       "title": f"{_who(panel['variant'], engine)}: through {node} (lost at "
                                f"{report.fmt(m['t_down'])} s): {m['via_lost_node']['failed']} "
                                f"of {m['via_lost_node']['requests']} failed"})
    fig = timeline_figure(panels, run_dir / "timeline", plots.run_title(
        summary, f"Node loss under load: {node} goes down ({p['nodes']} nodes, "
                 f"{p['replicas']} replicas, {p['rate']}/s)"))
    m = metrics(ps[0]["rows"], ps[0]["events"], node, engine)
    t = summary.get("variants", {}).get(ps[0]["variant"], {}).get("timings", {})
    rep = report.Report(run_dir, f"Node loss under load: {node} goes down", summary)
    rep.text(f"{node} loses its link at {report.fmt(m['t_down'])} s: it answers nothing, and "
             "its tasks are unreachable from the other nodes until the cluster marks it down "
             f"(profile: after {report.fmt(t.get('node_down_after'))} s), takes its tasks out "
             "of every load balancer, and reschedules them on the other nodes, where they join "
             "after their first healthy check. The client keeps sending to every node's "
             "address, the lost one's included, as a client with a fixed list of node "
             "addresses does.")
    if engine == "docker":
        rep.text(swarm_events_text(summary))
    rep.table(["step", "seconds after the node went down"], [
        ["marked down", m["down_to_marked_s"]],
        *([] if engine == "docker" else [
            ["its tasks out of every load balancer (applied on every switch)",
             m["down_to_converged_s"]]]),
        ["last replacement started", m["down_to_rescheduled_s"]],
        ["last replacement joined (recovered)", m["down_to_recovered_s"]],
        ["last failed request through a surviving node",
         m["via_others"]["last_failure_after_down_s"]]])
    o, lost = m["via_others"], m["via_lost_node"]
    errors = ", ".join(f"{k} {n}" for k, n in o["failed_by_error"].items()) or "–"
    if engine == "docker":
        rep.table(["through", "requests", "failed", "before the loss",
                   "after the replacements joined", "errors"],
                  [["surviving nodes", o["requests"], o["failed"], o["failed_before_down"],
                    o["failed_after_recovered"], errors],
                   [node, lost["requests"], lost["failed"], lost["failed_before_down"], "–",
                    "–"]])
    else:
        rep.table(["through", "requests", "failed", "before the loss", "loss → converged",
                   "after convergence", "errors"],
                  [["surviving nodes", o["requests"], o["failed"], o["failed_before_down"],
                    o["failed_down_to_converged"], o["failed_after_convergence"], errors],
                   [node, lost["requests"], lost["failed"], lost["failed_before_down"], "–",
                    "–", "–"]])
    rep.figure(fig, "Requests/s answered per task, stacked, through the surviving nodes (top) "
                    "and through the lost node (bottom); failed requests in red; vertical "
                    "lines: the node down, marked down, replacements started, replacements "
                    "joining the load balancer"
                    + (f" ({NO_CONVERGENCE})" if engine == "docker" else ""))
    rep.write()


def _who(variant: str, engine: str) -> str:
    return "real Swarm" if engine == "docker" else f"profile {variant}"


if __name__ == "__main__":
    sys.exit(experiment.main(sys.modules[__name__]))
