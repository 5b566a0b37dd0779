#!/usr/bin/env python3
"""Failover: a task dies under steady load; how long do new connections still reach it?

An open-loop load (``--rate`` requests/s, each on a new connection, spread
over every node's published port) runs for ``--duration`` s.  At
``--kill-at`` s the application of one task dies (``kill_task(how="hang")``:
it closes its listeners, new connections are refused; the container stays,
so only its health check can tell).  The orchestrator then follows Swarm:
``retries`` failed checks -> unhealthy -> weight 0 on every node -> the
convergence delay -> removal -> a replacement, which joins after its first
healthy check.

``--profile swarm`` uses Swarm's defaults (check every 30 s, 3 retries: the
kill is detected 60 to 90 s later), ``fast`` the fast profile (0.1 s, 2
retries), ``both`` runs fast then swarm (a fresh testbed each) and draws
them in one figure.  Default duration: 20 s (fast); for swarm long enough to
see the replacement join (kill + 90 + 2 + 30 + 8 s).

``--engine docker`` runs it on real Swarm (Swarm's timings only): the same event, the
application killed inside a container that stays up (SIGUSR2: the task server closes
every socket), and the events are Swarm's own task states (see docs/real-swarm.md).
Swarm reports no convergence: detection (the task failed as unhealthy) and the
replacement joining are measured instead.

    sudo .venv/bin/swarmmesh run failover --profile both --rate 200

Writes ``timeline.csv`` (one row per request), ``events.csv`` (the
orchestrator's events, same clock), ``summary.json`` (per profile: kill to
detection, to convergence, to the last new connection to the dead task;
failed requests in total and after convergence), the figures and
``report.md``.  Exits 1 if a request failed after convergence, if with the
fast profile the last new connection to the dead task came more than 1 s
after the kill, or if with Swarm's timings the detection fell outside
Swarm's window.

To put two separate runs in one figure:
``python experiments/failover.py --combine RUN_A RUN_B --figure out.png``.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from swarmmesh.runs import engineargs, experiment, plots, report, timeline
from swarmmesh.runs.timeline_metrics import (achieved_rate, by_variant, failover_metrics,
                                             read_events, read_timeline)
from swarmmesh.runs.timeline_engine import NO_CONVERGENCE, engine_of, swarm_events_text
from swarmmesh.runs.timeline_plots import bin_for, timeline_figure
from swarmmesh.lifecycle import profiles
from swarmmesh.model import InvalidConfigError

NAME = "failover"
DESCRIPTION = ("a task dies under steady load through every node: requests/s per task over "
               "time, kill -> detection -> convergence, failed requests (swarm and fast timings)")

FAST_BUDGET_S = 1.0          # kill -> last new connection to the dead task
MARKS = ("task killed", "health unhealthy", "convergence", "task removed", "joins")
SWARM_MARKS = ("task killed", "health unhealthy", "joins")     # real Swarm's


def add_arguments(ap: argparse.ArgumentParser) -> None:
    timeline.add_arguments(ap, profiles=("swarm", "fast", "both"), default_profile="fast")
    ap.add_argument("--kill-at", type=float, default=None,
                    help="seconds after the first request at which the task dies "
                         "(default: a third of the duration with fast, 10 s with swarm)")
    ap.add_argument("--task", default="app.1", help="the task to kill")
    engineargs.add_arguments(ap)


def variants(args) -> list[str]:
    return ["fast", "swarm"] if args.profile == "both" else [args.profile]


def kill_at(args, profile: str) -> float:
    if args.kill_at is not None:
        return args.kill_at
    return 10.0 if profile == "swarm" else duration(args, profile) / 3


def minimum(profile: str, kill: float) -> float:
    """Seconds of load needed to see the kill detected and the task removed."""
    p = profiles.profile(profile)
    return kill + p.detection_window()[1] + p.lb_leave_delay + 2.0


def duration(args, profile: str) -> float:
    if args.duration is not None:
        return args.duration
    if profile == "fast":
        return 20.0
    p = profiles.profile(profile)
    return kill_at(args, profile) + p.detection_window()[1] + p.lb_leave_delay + p.interval + 8


def validate(args):
    engineargs.check(args)
    timeline.check_arguments(args)
    if args.kill_at is not None and args.kill_at <= 0:
        raise InvalidConfigError("kill-at", f"must be > 0, got {args.kill_at:g}")
    cluster = timeline.cluster_for(args)
    names = [t.name for t in cluster.tasks]
    if args.task not in names:
        raise InvalidConfigError("task", f"no task {args.task!r}; the tasks are "
                                         f"{', '.join(names)}")
    for prof in variants(args):
        need = minimum(prof, kill_at(args, prof))
        if duration(args, prof) < need:
            raise InvalidConfigError(
                "duration", f"with the {prof} profile the load must last at least {need:g} s "
                            f"(kill at {kill_at(args, prof):g} s + detection up to "
                            f"{profiles.profile(prof).detection_window()[1]:g} s + removal), "
                            f"got {duration(args, prof):g}")
    return cluster


def run(args, cluster, ctx) -> None:
    def script_for(prof):
        def script(orch, at):
            at(kill_at(args, prof))
            orch.kill_task(args.task, how="hang")
            ctx.progress.note(f"{prof}: killed {args.task} at {orch.now():.2f} s")
        return script

    plans = [{"variant": p, "profile": p, "duration": duration(args, p),
              "script": script_for(p), "facts": {"kill_at_s": kill_at(args, p)}}
             for p in variants(args)]
    results = timeline.run_variants(args, ctx, plans)
    problems = []
    for plan, res in zip(plans, results):
        v = plan["variant"]
        rows = [dict(r, t_send=float(r["t_send"]), ok=r["ok"] == "True") for r in res["rows"]]
        m = failover_metrics(rows, res["events"])
        ctx.summary["variants"][v]["failover"] = m
        problems += judge(v, m, ctx.summary["variants"][v]["timings"], args.engine)
    ctx.summary["checks"] = problems or ["all met"]
    if problems:
        ctx.failed = "; ".join(problems)


def judge(variant: str, m: dict, timings: dict, engine: str = "emulated") -> list[str]:
    """What a run must show, as a list of misses (empty: all met).  On real Swarm (no
    convergence to see): detection within Swarm's window, and no connection to the dead
    task once its replacement joined."""
    if engine == "docker":
        return _judge_swarm(m, timings)
    out = []
    if m.get("t_convergence") is None:
        return [f"{variant}: the dead task never left the load balancer"]
    if m["failed_after_convergence"]:
        out.append(f"{variant}: {m['failed_after_convergence']} requests failed after convergence")
    last = m["kill_to_last_new_connection_s"]
    if variant == "fast" and last is not None and last > FAST_BUDGET_S:
        out.append(f"fast: last new connection to the dead task {last:.3f} s after the kill "
                   f"(> {FAST_BUDGET_S:g} s)")
    if variant == "swarm":
        lo, hi = timings["detection_window_s"]
        det = m["kill_to_detect_s"]
        if det is None or not lo - 0.5 <= det <= hi + 1.0:
            out.append(f"swarm: detection {det} s after the kill, outside Swarm's window "
                       f"{lo:g}-{hi:g} s")
    return out


def _judge_swarm(m: dict, timings: dict) -> list[str]:
    lo, hi = timings["detection_window_s"]
    det = m.get("kill_to_detect_s")
    if det is None:
        return ["docker: the dead task was never found unhealthy"]
    out = []
    top = hi + timings.get("timeout", 0.0)      # + the last check's own run, up to its timeout
    if not lo - 0.5 <= det <= top:
        out.append(f"docker: detection {det} s after the kill, outside Docker's window "
                   f"{lo:g}-{top:g} s")
    last, back = m.get("kill_to_last_new_connection_s"), m.get("kill_to_replacement_s")
    if last is not None and back is not None and last >= back:
        out.append(f"docker: a new connection reached the dead task {last} s after the kill, "
                   f"after its replacement joined (+{back} s)")
    return out


# -- plots ----------------------------------------------------------------------
def panels(run_dir: Path, summary: dict, label: str = "") -> list[dict]:
    rows = read_timeline(run_dir / "timeline.csv")
    events = read_events(run_dir / "events.csv")
    evs = by_variant(events)
    out = []
    for v, vrows in by_variant(rows).items():
        m = failover_metrics(vrows, evs.get(v, []))
        docker = engine_of(summary) == "docker"
        out.append({"variant": v, "rows": vrows, "events": evs.get(v, []),
                    "marks": SWARM_MARKS if docker else MARKS,
                    "metrics": m, "title": panel_title(v, m, summary, label)})
    return out


def panel_title(variant: str, m: dict, summary: dict, label: str = "") -> str:
    p = summary.get("parameters", {})
    lo, hi = (summary.get("variants", {}).get(variant, {}).get("timings", {})
              .get("detection_window_s", [None, None]))
    window = f" (Swarm's window {lo:g}-{hi:g} s)" if variant == "swarm" and lo is not None else ""
    if engine_of(summary) == "docker":
        t = summary.get("variants", {}).get(variant, {}).get("timings", {})
        window = (f" (Docker's window {lo:g}-{hi + t.get('timeout', 0):g} s)"
                  if lo is not None else "")
        return (f"{label}real Swarm: {m.get('task')}'s application killed at "
                f"{report.fmt(m.get('t_kill'))} s; found unhealthy "
                f"+{report.fmt(m.get('kill_to_detect_s'))} s{window},\n"
                f"last new connection to it +{report.fmt(m.get('kill_to_last_new_connection_s'))}"
                f" s; replacement joined +{report.fmt(m.get('kill_to_replacement_s'))} s; "
                f"{m.get('failed_total')} of {m.get('requests')} requests failed "
                f"({p.get('nodes')} nodes, {p.get('replicas')} replicas, {p.get('rate')}/s)")
    return (f"{label}profile {variant}: {m.get('task')} killed at {report.fmt(m.get('t_kill'))} s; "
            f"detected +{report.fmt(m.get('kill_to_detect_s'))} s{window},\n"
            f"last new connection to it +{report.fmt(m.get('kill_to_last_new_connection_s'))} s; "
            f"{m.get('failed_total')} of {m.get('requests')} requests failed, "
            f"{m.get('failed_after_convergence')} after convergence "
            f"({p.get('nodes')} nodes, {p.get('replicas')} replicas, {p.get('rate')}/s)")


def zoom_of(panel: dict) -> dict | None:
    """The panel from just before the kill to just after the removal, with
    bins aligned on the kill, when that is short (the fast profile)."""
    m = panel["metrics"]
    if m.get("t_kill") is None or m.get("t_removed") is None:
        return None
    span = m["t_removed"] - m["t_kill"] + 1.3
    if span > 15:
        return None
    b = bin_for(span, achieved_rate(panel["rows"]), 1, 60)
    lo = m["t_kill"] - math.ceil(0.5 / b) * b
    return {**panel, "xlim": (lo, m["t_removed"] + 0.8), "bin_s": b,
            "title": panel["title"].split(";")[0] + ": around the kill"}


def plot(run_dir: Path) -> None:
    summary = experiment.read_summary(run_dir)
    ps = panels(run_dir, summary)
    what = "requests/s answered per task, failed requests (red), kill/detection/convergence"
    fig = timeline_figure(ps, run_dir / "timeline",
                          plots.run_title(summary, f"Failover: {what}"))
    zooms = [z for z in (zoom_of(p) for p in ps) if z]
    zfig = (timeline_figure(zooms, run_dir / "timeline_zoom",
                            plots.run_title(summary, "Failover, around the kill"))
            if zooms else None)
    rep = report.Report(run_dir, "Failover: a task dies under steady load", summary)
    if engine_of(summary) == "docker":
        swarm_report(rep, ps, summary, fig)
        return
    rep.text("An open-loop load, each request on a new connection, spread round-robin over "
             "every node's published port; one task's application dies (its listeners close: "
             "new connections to it are refused) and only its health check can tell. "
             "*Convergence* is the first model revision after the task's weight went to 0 that "
             "every switch has applied (after a barrier): from then no new connection may go to "
             "it. The *last new connection to the dead task* is the latest request sent after "
             "the kill that was refused or reset (the dead task is the only one that refuses) "
             "or answered by it.")
    rows = []
    for p in ps:
        m, v = p["metrics"], p["variant"]
        t = summary.get("variants", {}).get(v, {}).get("timings", {})
        lo, hi = t.get("detection_window_s", [None, None])
        load = summary.get("variants", {}).get(v, {}).get("load", {})
        rows.append([v, f"{report.fmt(lo)}–{report.fmt(hi)}", m.get("kill_to_detect_s"),
                     m.get("kill_to_convergence_s"), m.get("kill_to_last_new_connection_s"),
                     m.get("kill_to_removed_s"), m.get("requests"),
                     load.get("achieved_rps"), m.get("failed_total"),
                     m.get("failed_kill_to_convergence"), m.get("failed_after_convergence")])
    rep.heading("Kill to convergence")
    rep.table(["profile", "expected detection (s)", "kill → detected (s)",
               "kill → converged (s)", "kill → last new conn. to dead task (s)",
               "kill → removed (s)", "requests", "achieved rate (/s)", "failed",
               "failed kill → converged", "failed after convergence"], rows)
    rep.text("Expected detection: `Profile.detection_window()`, from a failure just before "
             "a check to one just after it, then `retries` failed checks: "
             "(retries − 1) × interval to retries × interval (Swarm's defaults: 60–90 s; "
             "the fast profile: 0.1–0.2 s, plus the check's own duration). "
             "Checks: " + "; ".join(summary.get("checks", [])) + ".")
    for p in ps:
        errs = p["metrics"].get("failed_by_error") or {}
        if errs:
            rep.text(f"Failed requests by error ({p['variant']}): "
                     + ", ".join(f"{k or '?'} {n}" for k, n in errs.items()) + ".")
    rep.figure(fig, "Requests/s answered per task (one line per task, same colour in every "
                    "panel), failed requests/s in red with a tick per failed request; "
                    "vertical lines: kill, detection (health unhealthy), convergence "
                    "(weight 0 applied everywhere), removal, the replacement joining")
    if zfig:
        rep.figure(zfig, "The same, from 0.5 s before the kill to 0.8 s after the removal")
    rep.write()


def swarm_report(rep: report.Report, ps: list[dict], summary: dict, fig) -> None:
    """report.md of a run on real Swarm: detection and the replacement, no convergence."""
    rep.text("An open-loop load, each request on a new connection, spread round-robin over "
             "every node's published port; one task's application dies inside its container, "
             "which stays up (its listeners close: new connections to it are refused), and "
             "only Docker's health check can tell. Swarm then fails the task as unhealthy, "
             "takes it out of the load balancer and starts a replacement in the same slot "
             "(same name), which joins after its first healthy check. The *last new "
             "connection to the dead task* is the latest request sent after the kill that was "
             "refused or reset, or answered by it before its replacement joined.")
    rep.text(swarm_events_text(summary))
    rows = []
    for p in ps:
        m, v = p["metrics"], p["variant"]
        lo, hi = (summary.get("variants", {}).get(v, {}).get("timings", {})
                  .get("detection_window_s", [None, None]))
        load = summary.get("variants", {}).get(v, {}).get("load", {})
        rows.append([f"{report.fmt(lo)}–{report.fmt(hi)}", m.get("kill_to_detect_s"),
                     m.get("kill_to_last_new_connection_s"), m.get("kill_to_replacement_s"),
                     m.get("requests"), load.get("achieved_rps"), m.get("failed_total"),
                     m.get("requests_to_dead_task_after_kill")])
    rep.heading("Kill to detection and replacement (real Swarm)")
    rep.table(["expected detection (s)", "kill → found unhealthy (s)",
               "kill → last new conn. to dead task (s)", "kill → replacement joined (s)",
               "requests", "achieved rate (/s)", "failed", "to the dead task after the kill"],
              rows)
    rep.text("Expected detection: Docker's defaults (check every 30 s, 3 retries): 60–90 s "
             "after the failure, plus the last check's own run (up to its 30 s timeout). "
             "Checks: " + "; ".join(summary.get("checks", [])) + ".")
    for p in ps:
        errs = p["metrics"].get("failed_by_error") or {}
        if errs:
            rep.text("Failed requests by error: "
                     + ", ".join(f"{k or '?'} {n}" for k, n in errs.items()) + ".")
    rep.figure(fig, "Requests/s answered per task, failed requests/s in red with a tick per "
                    "failed request; vertical lines: the kill, the task found unhealthy "
                    f"(failed), tasks joining (running); {NO_CONVERGENCE}")
    rep.write()


def combine(run_dirs: list[Path], path: Path) -> list[Path]:
    """One figure, one panel per variant of each run folder (e.g. a fast run
    and a swarm run made separately)."""
    ps = []
    for d in run_dirs:
        ps += panels(Path(d), experiment.read_summary(d), label=f"{Path(d).name}: ")
    return timeline_figure(ps, path, "Failover: requests/s per task around a kill")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--combine":
        cap = argparse.ArgumentParser(prog="failover.py --combine")
        cap.add_argument("--combine", nargs="+", type=Path, required=True, metavar="RUN_DIR")
        cap.add_argument("--figure", type=Path, required=True, help="output path (.png/.pdf)")
        a = cap.parse_args()
        for out in combine(a.combine, a.figure):
            print(out)
        sys.exit(0)
    sys.exit(experiment.main(sys.modules[__name__]))
