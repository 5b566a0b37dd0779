#!/usr/bin/env python3
"""Scaling under load: ``docker service scale app=2N`` then back to N.

An open-loop load (``--rate`` requests/s, a new connection each, round-robin
over every node's published port) runs while the service scales from
``--replicas`` to ``--to`` (default twice as many) at ``--up-at`` s and
back at ``--down-at`` s.  New tasks join the load balancer after their first
healthy check (Swarm: 30 s after they start; fast: 0.1 s); retired tasks get
weight 0, and are removed after the convergence delay.  The timeline shows
how the requests spread over the tasks in each phase.

Defaults: fast: 15 s, up at 5 s, down at 10 s; swarm: 60 s, up at 10 s,
down at 50 s (the new tasks join about 30 s after the scale).

``--engine docker`` runs it on real Swarm (Swarm's timings only): ``docker service scale``,
and the events are Swarm's own task states (see docs/real-swarm.md); Swarm reports no
convergence, so retired tasks show their weight 0 and removal instead.

    sudo .venv/bin/swarmmesh run scaling --replicas 2 --rate 200

Writes ``timeline.csv``, ``events.csv``, ``summary.json`` (per new task:
scale to join, to its first request; per retired task: scale to weight 0, to
convergence, to removal, to its last request; requests per task per phase; failed
requests), the figure and ``report.md`` (on real Swarm also ``swarm.jsonl``, Swarm's
reads).  Exits 1 if any request failed.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

from swarmmesh.runs import engineargs, experiment, plots, report, timeline
from swarmmesh.runs.metrics import jain, rounded
from swarmmesh.runs.timeline_metrics import (converged, failures_between, first_last, joins,
                                             load_panels, read_events, read_timeline, task_of)
from swarmmesh.runs.timeline_engine import NO_CONVERGENCE, engine_of, swarm_events_text
from swarmmesh.runs.timeline_plots import timeline_figure
from swarmmesh.model import InvalidConfigError

NAME = "scaling"
DESCRIPTION = ("scale a service up and back down under load through every node: the spread "
               "of requests over the tasks over time, joins, retirements, failed requests")

MARKS = ("scale", "joins", "convergence", "task removed")
SWARM_MARKS = ("scale", "joins", "weight 0", "task removed")     # real Swarm's (no convergence)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    timeline.add_arguments(ap, replicas=2)
    ap.add_argument("--to", type=int, default=None, help="replicas after scaling up "
                                                          "(default: twice --replicas)")
    ap.add_argument("--up-at", type=float, default=None, help="seconds: scale up (default: "
                                                              "5 fast, 10 swarm)")
    ap.add_argument("--down-at", type=float, default=None,
                    help="seconds: scale back to --replicas (default: 10 fast, 50 swarm)")
    engineargs.add_arguments(ap)


def times(args) -> tuple[float, float, float]:
    """(up at, down at, duration)."""
    fast = args.profile == "fast"
    up = args.up_at if args.up_at is not None else (5.0 if fast else 10.0)
    down = args.down_at if args.down_at is not None else (up + 5.0 if fast else up + 40.0)
    dur = args.duration if args.duration is not None else down + (5.0 if fast else 10.0)
    return up, down, dur


def validate(args):
    engineargs.check(args)
    timeline.check_arguments(args)
    if args.to is None:
        args.to = 2 * args.replicas
    if args.to <= args.replicas:
        raise InvalidConfigError("to", f"must be more than --replicas ({args.replicas}), "
                                       f"got {args.to}")
    up, down, dur = times(args)
    if up <= 0:
        raise InvalidConfigError("up-at", f"must be > 0, got {up:g}")
    if down <= up:
        raise InvalidConfigError("down-at", f"must be after --up-at ({up:g} s), got {down:g}")
    if dur <= down:
        raise InvalidConfigError("duration", f"must be longer than --down-at ({down:g} s), "
                                             f"got {dur:g}")
    return timeline.cluster_for(args)


def run(args, cluster, ctx) -> None:
    up, down, dur = times(args)

    def script(orch, at):
        at(up)
        orch.scale(timeline.SERVICE, args.to)
        at(down)
        orch.scale(timeline.SERVICE, args.replicas)

    timeline.run_variants(args, ctx, [{"variant": args.profile, "profile": args.profile,
                                       "duration": dur, "script": script,
                                       "facts": {"up_at_s": up, "down_at_s": down}}])
    rows = read_timeline(ctx.run_dir / "timeline.csv")
    events = read_events(ctx.run_dir / "events.csv")
    m = metrics(rows, events)
    ctx.summary["scaling"] = m
    if m["failed"]:
        ctx.failed = f"{m['failed']} of {m['requests']} requests failed"


def metrics(rows: list[dict], events: list[dict]) -> dict:
    scales = [e for e in sorted(events, key=lambda e: e["t"]) if e["event"] == "scale"]
    up = scales[0]["t"] if scales else None
    down = scales[1]["t"] if len(scales) > 1 else None
    started = {task_of(e["detail"]): e["t"] for e in events
               if e["event"] == "task started"}
    joined = joins(events)
    conv = converged(events)
    fl = first_last(rows)
    after_down = [e for e in events if down is not None and e["t"] >= down]
    weight0 = _first_per_task(after_down, "weight 0")
    removed = _first_per_task(after_down, "task removed")
    new = {t: {"started_s": round(started[t] - up, 4),
               "joined_s": round(joined[t] - up, 4) if t in joined else None,
               "first_request_s": round(fl[t][0] - up, 4) if t in fl else None}
           for t in started if up is not None}
    since = (lambda x: None if x is None else round(x - down, 4))
    retired = {t: {"weight0_s": since(w), "converged_s": since(conv.get(t)),
                   "removed_s": since(removed.get(t)),
                   "last_request_s": since(fl[t][1]) if t in fl else None}
               for t, w in ((t, weight0.get(t)) for t in {**removed, **weight0})}
    all_joined = max(joined.values(), default=None)
    # the retired tasks gone: everywhere at weight 0 where the engine says so (emulated),
    # else removed (real Swarm reports no convergence)
    all_conv = (max(conv.values(), default=None) if conv
                else max(removed.values(), default=None))
    edges = [min((r["t_send"] for r in rows), default=0.0), up, all_joined, down, all_conv,
             max((r["t_send"] for r in rows), default=0.0) + 1e-6]
    names = ["before the scale-up", "scaling up", "scaled up", "scaling down", "scaled down"]
    phases = {}
    for name, a, b in zip(names, edges, edges[1:]):
        if a is None or b is None or b <= a:
            continue
        c = collections.Counter(r["task"] for r in rows if r["ok"] and a <= r["t_send"] < b)
        phases[name] = {"from_s": round(a, 3), "to_s": round(b, 3), "per_task": dict(c),
                        "jain": rounded(jain(c.values()), 4),
                        "failed": failures_between(rows, a, b)}
    return {"requests": len(rows), "failed": sum(1 for r in rows if not r["ok"]),
            "t_scale_up": up, "t_scale_down": down, "new_tasks": new,
            "retired_tasks": retired, "phases": phases}


def _first_per_task(events: list[dict], name: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for e in sorted(events, key=lambda e: e["t"]):
        if e["event"] == name:
            out.setdefault(task_of(e["detail"]), e["t"])
    return out


def plot(run_dir: Path) -> None:
    summary = experiment.read_summary(run_dir)
    docker = engine_of(summary) == "docker"
    ps = load_panels(run_dir, SWARM_MARKS if docker else MARKS)
    p = summary["parameters"]
    for panel in ps:
        m = metrics(panel["rows"], panel["events"])
        who = "real Swarm" if docker else f"profile {panel['variant']}"
        panel["title"] = (f"{who}: {p['replicas']} -> {p['to']} -> "
                          f"{p['replicas']} replicas, {m['failed']} of {m['requests']} requests "
                          f"failed ({p['nodes']} nodes, {p['rate']}/s)")
    fig = timeline_figure(ps, run_dir / "timeline", plots.run_title(
        summary, "Scaling under load: requests/s answered per task (stacked)"))
    m = metrics(ps[0]["rows"], ps[0]["events"])
    rep = report.Report(run_dir, f"Scaling under load: {p['replicas']} → {p['to']} → "
                                 f"{p['replicas']} replicas", summary)
    rep.text(f"{m['requests']} requests, {m['failed']} failed. New tasks start at once, and "
             "join the load balancer after their first healthy check; retired tasks get "
             + ("weight 0 on their node (Swarm deactivates their service binding; the other "
                "nodes learn it by gossip), and stop 2 s later." if docker else
                "weight 0 everywhere (convergence), then are removed."))
    if docker:
        rep.text(swarm_events_text(summary))
    rep.heading("New tasks (seconds after the scale-up)")
    rep.table(["task", "started", "joined the LB", "first request answered"],
              [[t, v["started_s"], v["joined_s"], v["first_request_s"]]
               for t, v in sorted(m["new_tasks"].items(), key=lambda kv: plots._natural(kv[0]))])
    rep.heading("Retired tasks (seconds after the scale-down)")
    retired = sorted(m["retired_tasks"].items(), key=lambda kv: plots._natural(kv[0]))
    if docker:
        rep.table(["task", "weight 0 (desired shutdown)", "removed (shut down)",
                   "last request answered"],
                  [[t, v["weight0_s"], v["removed_s"], v["last_request_s"]]
                   for t, v in retired])
    else:
        rep.table(["task", "weight 0", "weight 0 on every switch", "removed",
                   "last request answered"],
                  [[t, v["weight0_s"], v["converged_s"], v["removed_s"], v["last_request_s"]]
                   for t, v in retired])
    rep.heading("Spread per phase")
    tasks = sorted({t for ph in m["phases"].values() for t in ph["per_task"]}, key=plots._natural)
    rep.table(["phase", "from (s)", "to (s)", *tasks, "Jain's index", "failed"],
              [[name, ph["from_s"], ph["to_s"], *[ph["per_task"].get(t, 0) for t in tasks],
                ph["jain"], ph["failed"]] for name, ph in m["phases"].items()])
    rep.figure(fig, "Requests/s answered per task, stacked (the top edge is the offered load), "
                    "failed requests in red; vertical lines: the scale commands, each new task "
                    + ("joining (running), each retired task's weight 0 (desired shutdown), "
                       f"removals ({NO_CONVERGENCE})" if docker else
                       "joining, each retired task's weight 0 applied everywhere, removals"))
    rep.write()


if __name__ == "__main__":
    sys.exit(experiment.main(sys.modules[__name__]))
