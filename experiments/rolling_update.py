#!/usr/bin/env python3
"""Rolling update under load: start-first against stop-first.

An open-loop load (``--rate`` requests/s, a new connection each, round-robin
over every node's published port) runs while ``docker service update``
replaces every task of ``app`` by one of the next version, ``--parallelism``
at a time, ``--update-delay`` s between batches, in ``--order``:

* ``start-first``: the new task starts and joins after its first healthy
  check, then the old one leaves (weight 0, convergence delay, removal);
* ``stop-first``: the old task leaves first, then the new one starts, so the
  service runs one batch short meanwhile (with one replica: none at all);
* ``both`` (default): the two, each on a fresh testbed, one figure.

Defaults: fast: 12 s, update at 3 s; swarm: update at 10 s, and long enough
for every batch (a new task joins 30 s after it starts).

    sudo .venv/bin/swarmmesh run rolling_update --replicas 3 --rate 200

Writes ``timeline.csv``, ``events.csv``, ``summary.json`` (per order: failed
requests in total and during the update, update duration, requests per
version), the figure and ``report.md``.  Exits 1 if a request failed with
start-first (start-first loses none).
"""

from __future__ import annotations

import argparse
import collections
import math
import re
import sys
from pathlib import Path

from swarmmesh.runs import experiment, flags, plots, report, timeline
from swarmmesh.runs.timeline_metrics import (by_variant, failures_between, first_event,
                                             load_panels, read_events, read_timeline, task_of)
from swarmmesh.runs.timeline_plots import timeline_figure
from swarmmesh.lifecycle import profiles
from swarmmesh.model import InvalidConfigError
from swarmmesh.lifecycle.decisions import UPDATE_ORDERS

NAME = "rolling_update"
DESCRIPTION = ("rolling update under load through every node, start-first against "
               "stop-first: requests/s per task over time and failed requests in each")

MARKS = ("update", "joins", "convergence", "update done")
SYN_RESENT_MS = 900.0   # an answer this late had its SYN resent (Linux: after 1 s)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    timeline.add_arguments(ap)
    ap.add_argument("--order", choices=[*UPDATE_ORDERS, "both"], default="both",
                    help="update order (both: one run of each, one figure)")
    ap.add_argument("--parallelism", type=int, default=1, help="tasks replaced per batch")
    ap.add_argument("--update-delay", type=float, default=0.0,
                    help="seconds between batches (docker service update --update-delay)")
    ap.add_argument("--update-at", type=float, default=None,
                    help="seconds after the first request (default: 3 fast, 10 swarm)")


def orders(args) -> list[str]:
    return ["start-first", "stop-first"] if args.order == "both" else [args.order]


def times(args) -> tuple[float, float]:
    """(update at, duration)."""
    p = profiles.profile(args.profile)
    fast = p.name == "fast"
    at = args.update_at if args.update_at is not None else (3.0 if fast else 10.0)
    batches = math.ceil(args.replicas / args.parallelism)
    # a batch: start, first healthy check (one interval), leave delay, removal
    per_batch = p.interval + p.lb_leave_delay + (0.6 if fast else 3.0)
    need = at + batches * per_batch + (batches - 1) * args.update_delay
    dur = args.duration if args.duration is not None else need + (3.0 if fast else 10.0)
    return at, dur


def validate(args):
    timeline.check_arguments(args)
    flags.positive(args, "parallelism")
    flags.seconds(args, "update_delay", zero=True)
    at, dur = times(args)
    if at <= 0:
        raise InvalidConfigError("update-at", f"must be > 0, got {at:g}")
    if dur <= at:
        raise InvalidConfigError("duration", f"must be longer than --update-at ({at:g} s), "
                                             f"got {dur:g}")
    return timeline.cluster_for(args)


def run(args, cluster, ctx) -> None:
    at, dur = times(args)

    def script_for(order):
        def script(orch, at_):
            at_(at)
            orch.update(timeline.SERVICE, parallelism=args.parallelism,
                        delay=args.update_delay, order=order)
        return script

    timeline.run_variants(args, ctx, [
        {"variant": o, "profile": args.profile, "duration": dur, "script": script_for(o),
         "facts": {"update_at_s": at}} for o in orders(args)])
    rows = by_variant(read_timeline(ctx.run_dir / "timeline.csv"))
    events = by_variant(read_events(ctx.run_dir / "events.csv"))
    out = {o: metrics(rows.get(o, []), events.get(o, []), args.replicas) for o in orders(args)}
    ctx.summary["rolling_update"] = out
    misses = [f"{o}: the update did not finish within the load ({dur:g} s)"
              for o, m in out.items() if m["update_s"] is None]
    if out.get("start-first", {}).get("failed"):
        misses.append(f"start-first: {out['start-first']['failed']} requests failed")
    if misses:
        ctx.failed = "; ".join(misses)


def versions(events: list[dict], placement: dict | None = None) -> dict[str, int]:
    """Task -> the version it runs ("task started ... version N"; others 1)."""
    out = {t: 1 for t in (placement or {})}
    for e in events:
        if e["event"] == "task started":
            m = re.search(r"version (\d+)", e["detail"])
            out[task_of(e["detail"])] = int(m.group(1)) if m else 1
    return out


def metrics(rows: list[dict], events: list[dict], initial: int) -> dict:
    up = first_event(events, "update")
    done = first_event(events, "update done")
    t_up = up["t"] if up else None
    t_done = done["t"] if done else None
    removed = [e["t"] for e in events if e["event"] == "task removed"]
    t_end = max(removed, default=t_done)
    ver = versions(events)
    per_version = collections.Counter(f"version {ver.get(r['task'], 1)}" for r in rows if r["ok"])
    failed = [r for r in rows if not r["ok"]]
    return {"requests": len(rows), "failed": len(failed),
            "failed_during_update": (failures_between(rows, t_up, t_end + 1e-6)
                                     if t_up is not None and t_end is not None else None),
            "failed_by_error": dict(collections.Counter(r["error"] for r in failed)),
            "t_update": t_up, "t_done": t_done,
            "update_s": round(t_done - t_up, 3) if t_done is not None and t_up is not None
            else None,
            "answered_per_version": dict(per_version),
            "min_tasks_in_lb": min_in_lb(events, initial),
            "answered_after_1s": sum(1 for r in rows if r["ok"] and r["latency_ms"] is not None
                                     and r["latency_ms"] >= SYN_RESENT_MS),
            "latency_ms": report.spread(r["latency_ms"] for r in rows if r["ok"])}


def min_in_lb(events: list[dict], initial: int) -> int | None:
    """The fewest tasks in the load balancer at once, from the published
    revisions taken in revision order (the order the switches apply them):
    ``initial`` at the start, +1 for a task that joins, -1 at a weight 0."""
    revs = []
    for e in events:
        m = re.match(r"revision (\d+): (.*)", e["detail"]) if e["event"] == "published" else None
        if m:
            revs.append((int(m.group(1)), m.group(2)))
    n = low = initial
    for _, why in sorted(revs):
        if "joins" in why:
            n += 1
        elif "weight 0" in why:
            n -= 1
            low = min(low, n)
    return low


def plot(run_dir: Path) -> None:
    summary = experiment.read_summary(run_dir)
    p = summary["parameters"]
    ps = load_panels(run_dir, MARKS)
    ms = {}
    for panel in ps:
        m = ms[panel["variant"]] = metrics(panel["rows"], panel["events"], p["replicas"])
        panel["title"] = (f"{panel['variant']} ({p['profile']} profile, parallelism "
                          f"{p['parallelism']}): update took {report.fmt(m['update_s'])} s; "
                          f"{m['failed']} of {m['requests']} requests failed "
                          f"({p['nodes']} nodes, {p['replicas']} replicas, {p['rate']}/s)")
    fig = timeline_figure(ps, run_dir / "timeline", plots.run_title(
        summary, "Rolling update under load: requests/s answered per task (stacked)"))
    rep = report.Report(run_dir, "Rolling update under load: start-first against stop-first",
                        summary)
    rep.text("Every task of `app` is replaced by one of the next version. start-first: the new "
             "task joins (first healthy check) before the old one gets weight 0; stop-first: "
             "the old one leaves first. A leaving task keeps its established connections "
             "until its removal after the convergence delay.")
    rep.table(["order", "requests", "failed", "failed during the update", "update (s)",
               "fewest tasks in the LB", "answered after ≥ 0.9 s (SYN resent)",
               "answered per version", "failures by error"],
              [[o, m["requests"], m["failed"], m["failed_during_update"], m["update_s"],
                m["min_tasks_in_lb"], m["answered_after_1s"],
                ", ".join(f"{k}: {n}" for k, n in sorted(m["answered_per_version"].items())),
                ", ".join(f"{k} {n}" for k, n in m["failed_by_error"].items()) or "–"]
               for o, m in ms.items()])
    rep.text("With no task in the load balancer (stop-first with one replica) a new "
             "connection's SYN is dropped, as IPVS does with no backend; the client resends it "
             "after 1 s, so the request is late rather than failed (unless it times out).")
    rep.numbers({o: [r["latency_ms"] for r in panel["rows"] if r["ok"]]
                 for o, panel in zip(ms, ps)}, unit="ms", what="Request latency, answered "
                 "requests", label="order")
    rep.figure(fig, "Requests/s answered per task, stacked, one panel per order; failed "
                    "requests in red; vertical lines: the update command, each new task "
                    "joining, each old task's weight 0 applied everywhere, the update done")
    rep.write()


if __name__ == "__main__":
    sys.exit(experiment.main(sys.modules[__name__]))
