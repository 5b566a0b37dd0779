"""Reading a lifecycle run's ``timeline.csv`` and ``events.csv``, and the metrics
the experiments compute from them (no root, no testbed: pure functions of the rows).

Rows are requests (:data:`swarmmesh.runs.timeline.TIMELINE_COLUMNS`), events are the
orchestrator's (:data:`swarmmesh.runs.timeline.EVENT_COLUMNS`); both carry the
``variant`` of the run, and times are seconds from the load's first request.
:func:`failover_metrics` gives kill, detection and convergence times; :func:`rates`
bins requests per task over time for the figures of
:mod:`swarmmesh.runs.timeline_plots`.
"""

from __future__ import annotations

import collections
import math
from pathlib import Path
from typing import Iterable, Sequence


def read_timeline(path: Path) -> list[dict]:
    """``timeline.csv`` with typed fields (t_send, latency_ms float; ok bool)."""
    from swarmmesh.runs.runfolder import read_csv
    rows = read_csv(path)
    for r in rows:
        r["t_send"] = float(r["t_send"])
        r["ok"] = r["ok"] in ("True", "true", "1")
        r["latency_ms"] = float(r["latency_ms"]) if r.get("latency_ms") not in ("", None) else None
        r.setdefault("variant", "")
    return rows


def read_events(path: Path) -> list[dict]:
    from swarmmesh.runs.runfolder import read_csv
    rows = read_csv(path)
    for e in rows:
        e["t"] = float(e["t"])
        e.setdefault("variant", "")
    return rows


def by_variant(items: Iterable[dict]) -> dict[str, list[dict]]:
    """Rows or events grouped by ``variant``, in order of first appearance."""
    out: dict[str, list[dict]] = {}
    for x in items:
        out.setdefault(x.get("variant", ""), []).append(x)
    return out


def first_event(events: Sequence[dict], name: str, contains: str = "",
                after: float = float("-inf")) -> dict | None:
    """The first event called ``name`` (detail containing ``contains``) at or after ``after``."""
    for e in sorted(events, key=lambda e: e["t"]):
        if e["event"] == name and contains in e["detail"] and e["t"] >= after:
            return e
    return None


def killed_task(events: Sequence[dict]) -> str | None:
    e = first_event(events, "task killed")
    return e["detail"].split()[0] if e else None


TO_DEAD_TASK_ERRORS = ("refused", "reset")
"""What a request that reached a killed task (no listener) gets."""


def failover_metrics(rows: Sequence[dict], events: Sequence[dict]) -> dict:
    """Kill, detection and convergence times, and the failures around them.

    * ``t_kill``: "task killed"; ``t_detect``: its "health unhealthy";
      ``t_weight0``: its "weight 0"; ``t_convergence``: the first "published"
      after that (every switch has the weight 0: no new connection may go
      there); ``t_removed``: "task removed".
    * The last new connection to the dead task: the latest ``t_send`` after
      the kill among requests the dead task answered (just after the signal;
      before a replacement of the same name started, as real Swarm names a
      slot's new task) or that were refused or reset (the dead task's namespace
      has no listener; the only task that refuses).  Timeouts are not attributed.
    * ``t_replacement``: the first task to join the load balancer after the kill.
    """
    dead = killed_task(events)
    out: dict = {"task": dead, "requests": len(rows),
                 "failed_total": sum(1 for r in rows if not r["ok"])}
    if dead is None:
        return out
    t_kill = first_event(events, "task killed")["t"]
    det = first_event(events, "health unhealthy", dead, t_kill)
    w0 = first_event(events, "weight 0", dead, t_kill)
    conv = first_event(events, "published", f"{dead} weight 0", w0["t"]) if w0 else None
    rem = first_event(events, "task removed", dead, t_kill)
    t_conv = conv["t"] if conv else None
    rejoined = [e["t"] for e in events if e["t"] >= t_kill and e["event"] == "published"
                and "joins the load balancer" in e["detail"]]
    # a replacement of the same name (real Swarm's slot) answers from its start on
    t_back = min((e["t"] for e in events if e["t"] >= t_kill and e["event"] == "task started"
                  and task_of(e["detail"]) == dead), default=float("inf"))
    to_dead = [r for r in rows if r["t_send"] >= t_kill and (
        (r["ok"] and r["task"] == dead and r["t_send"] < t_back)
        or (not r["ok"] and r["error"] in TO_DEAD_TASK_ERRORS))]
    last = max((r["t_send"] for r in to_dead), default=None)
    failed = [r for r in rows if not r["ok"]]
    out.update({
        "t_kill": t_kill, "t_detect": det["t"] if det else None,
        "t_weight0": w0["t"] if w0 else None, "t_convergence": t_conv,
        "t_removed": rem["t"] if rem else None,
        "kill_to_detect_s": _diff(det and det["t"], t_kill),
        "kill_to_convergence_s": _diff(t_conv, t_kill),
        "kill_to_removed_s": _diff(rem and rem["t"], t_kill),
        "t_replacement": min(rejoined, default=None),
        "kill_to_replacement_s": _diff(min(rejoined, default=None), t_kill),
        "kill_to_last_new_connection_s": _diff(last, t_kill),
        "requests_to_dead_task_after_kill": len(to_dead),
        "answered_by_dead_task_after_kill": sum(1 for r in to_dead if r["ok"]),
        "failed_before_kill": sum(1 for r in failed if r["t_send"] < t_kill),
        "failed_kill_to_convergence": sum(1 for r in failed
                                          if t_kill <= r["t_send"] < (t_conv or float("inf"))),
        "failed_after_convergence": (sum(1 for r in failed if r["t_send"] >= t_conv)
                                     if t_conv is not None else None),
        "requests_after_convergence": (sum(1 for r in rows if r["t_send"] >= t_conv)
                                       if t_conv is not None else None),
        "failed_by_error": dict(collections.Counter(r["error"] for r in failed)),
    })
    return out


def _diff(a, b):
    return None if a is None or b is None else round(a - b, 4)


def load_panels(run_dir: Path, marks: Sequence[str]) -> list[dict]:
    """One dict per variant of a run folder: ``variant``, ``rows``, ``events``, ``marks``."""
    rows = read_timeline(Path(run_dir) / "timeline.csv")
    evs = by_variant(read_events(Path(run_dir) / "events.csv"))
    return [{"variant": v, "rows": vrows, "events": evs.get(v, []), "marks": tuple(marks)}
            for v, vrows in by_variant(rows).items()]


def task_of(detail: str) -> str:
    """The task an event's detail names: ``app.4 on node1 (...)``,
    ``revision 7: app.4 healthy: joins ...``, ``app.3: scaled down``."""
    if detail.startswith("revision "):
        detail = detail.split(": ", 1)[1] if ": " in detail else ""
    return detail.split()[0].rstrip(":") if detail.split() else ""


def joins(events: Sequence[dict]) -> dict[str, float]:
    """Task -> when it joined the load balancer (its first healthy check, published)."""
    out = {}
    for e in sorted(events, key=lambda e: e["t"]):
        if e["event"] == "published" and "joins the load balancer" in e["detail"]:
            out.setdefault(task_of(e["detail"]), e["t"])
    return out


def converged(events: Sequence[dict]) -> dict[str, float]:
    """Task -> when its weight 0 was applied on every switch."""
    out = {}
    for e in sorted(events, key=lambda e: e["t"]):
        if e["event"] == "weight 0":
            task = task_of(e["detail"])
            c = first_event(events, "published", f"{task} weight 0", e["t"])
            if c:
                out.setdefault(task, c["t"])
    return out


def failures_between(rows: Sequence[dict], start: float = float("-inf"),
                     end: float = float("inf")) -> int:
    return sum(1 for r in rows if not r["ok"] and start <= r["t_send"] < end)


def achieved_rate(rows: Sequence[dict]) -> float | None:
    """Requests started per second over the run (first to last start)."""
    ts = sorted(r["t_send"] for r in rows)
    return (len(ts) - 1) / (ts[-1] - ts[0]) if len(ts) > 1 and ts[-1] > ts[0] else None


def rates(rows: Sequence[dict], bin_s: float, start: float | None = None,
          end: float | None = None) -> tuple[list[float], dict[str, list[float]], list[float]]:
    """Bins (left edges), answered requests/s per task per bin, failed requests/s per bin
    (by ``t_send``)."""
    if not rows:
        return [], {}, []
    ts = [r["t_send"] for r in rows]
    lo = min(ts) if start is None else start
    hi = max(ts) if end is None else end
    n = (int((hi - lo) // bin_s) + 1 if end is None
         else max(1, math.ceil((hi - lo) / bin_s - 1e-9)))
    edges = [lo + k * bin_s for k in range(n)]
    per: dict[str, list[float]] = {}
    failed = [0.0] * n
    for r in rows:
        k = int((r["t_send"] - lo) // bin_s)
        if not 0 <= k < n:
            continue
        if r["ok"]:
            per.setdefault(r["task"], [0.0] * n)[k] += 1 / bin_s
        else:
            failed[k] += 1 / bin_s
    return edges, per, failed


def first_last(rows: Sequence[dict]) -> dict[str, tuple[float, float]]:
    """Per task: the first and the last ``t_send`` of a request it answered."""
    out: dict[str, tuple[float, float]] = {}
    for r in rows:
        if r["ok"]:
            a, b = out.get(r["task"], (r["t_send"], r["t_send"]))
            out[r["task"]] = (min(a, r["t_send"]), max(b, r["t_send"]))
    return out
