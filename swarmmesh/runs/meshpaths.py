"""The mesh's paths measured side by side (``mesh_overhead``, and the benchmark's mesh
part): their names and labels, the CSV columns, and the table of one run, pure, from
the CSV rows alone (so that a run and its replot share it).

Paths: ``direct`` (a task's ingress address, via a forwarding-only balancer host),
``mesh_task_node`` and ``mesh_empty_node`` (a node's published port, with or without a
local task), ``nft_lb`` (a kernel nftables DNAT balancer); and, on a second cluster with
Swarm's own IPVS ingress, ``ipvs_direct``, ``ipvs_task_node``, ``ipvs_empty_node``.
"""

from __future__ import annotations

from swarmmesh.runs import plots, report
from swarmmesh.runs.metrics import ratio


PATHS = ("direct", "mesh_task_node", "mesh_empty_node", "nft_lb")
LABELS = {"direct": "(a) direct to a task",
          "mesh_task_node": "(b) mesh via a node with a task",
          "mesh_empty_node": "(c) mesh via a node with no task",
          "nft_lb": "(d) nftables DNAT load balancer"}


# Swarm's own IPVS (the reference path), on a second cluster of the same run.
IPVS_PATHS = ("ipvs_direct", "ipvs_task_node", "ipvs_empty_node")
IPVS_LABELS = {"ipvs_direct": "(a') direct to a task, IPVS cluster",
               "ipvs_task_node": "(e) Swarm's IPVS via a node with a task",
               "ipvs_empty_node": "(f) Swarm's IPVS via a node with no task"}
ALL_LABELS = {**LABELS, **IPVS_LABELS}
SAME_AS = {"ipvs_direct": "direct", "ipvs_task_node": "mesh_task_node",
           "ipvs_empty_node": "mesh_empty_node"}        # the same target, the other mechanism
BASELINE = {p: "ipvs_direct" for p in IPVS_PATHS}       # ratios within each cluster
LAT_COLUMNS = ["repeat", "path", "target", "seq", "sched_ms", "late_ms", "ok", "connect_ms",
               "ttfb_ms", "total_ms", "task", "node", "seen_source", "error"]
AB_COLUMNS = ["repeat", "path", "target", "requests", "concurrency", "complete", "failed",
              "non_2xx", "rps", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "duration_s"]
TABLE_COLUMNS = ["path", "label", "target", "latency_n", "latency_median_ms", "latency_p5_ms",
                 "latency_p95_ms", "connect_median_ms", "ttfb_median_ms", "failed",
                 "rps_repeats", "rps_median", "rps_min", "rps_max",
                 "latency_ratio_to_direct", "rps_ratio_to_direct"]


def values(rows, key) -> list[float]:
    """The numbers of column ``key`` (blank cells skipped)."""
    return [float(r[key]) for r in rows if r.get(key) not in ("", None)]


def present(rows: list[dict]) -> tuple[str, ...]:
    """The four paths, then the IPVS reference's where the run measured them."""
    have = {r["path"] for r in rows}
    return PATHS + tuple(p for p in IPVS_PATHS if p in have)


def summarise(lat_rows: list[dict], ab_rows: list[dict]) -> list[dict]:
    """One row per path (the table): latency spread, connection rate over
    repeats, and both as ratios to the direct path of the same cluster (medians)."""
    table = []
    for path in present(lat_rows):
        lat = [r for r in lat_rows if r["path"] == path]
        ok = [r for r in lat if r["ok"] == "True"]
        ab = [r for r in ab_rows if r["path"] == path]
        s = report.spread(values(ok, "total_ms"))
        rps = report.spread(values(ab, "rps"))
        table.append({
            "path": path, "label": ALL_LABELS[path],
            "target": " ".join(sorted({r["target"] for r in lat}, key=plots._natural)),
            "latency_n": s["n"], "latency_median_ms": s["median"], "latency_p5_ms": s["p5"],
            "latency_p95_ms": s["p95"],
            "connect_median_ms": report.spread(values(ok, "connect_ms"))["median"],
            "ttfb_median_ms": report.spread(values(ok, "ttfb_ms"))["median"],
            "failed": len(lat) - len(ok) + sum(int(r["failed"]) for r in ab),
            "rps_repeats": rps["n"], "rps_median": rps["median"], "rps_min": rps["min"],
            "rps_max": rps["max"]})
    by = {row["path"]: row for row in table}
    for row in table:
        base = by.get(BASELINE.get(row["path"], "direct"), table[0])
        row["latency_ratio_to_direct"] = ratio(row["latency_median_ms"], base["latency_median_ms"])
        row["rps_ratio_to_direct"] = ratio(row["rps_median"], base["rps_median"])
    return table


def rr_order(lat_rows: list[dict], path: str) -> dict:
    """The tasks one path's new connections reached: the split, and the first repeat's
    first two turns in start order.  (Not an exactness check: the open loop's connections
    overlap when a request takes longer than the interval, so they may reach the node in
    another order; ``routing_mesh``'s sequential connections check the order.)"""
    split: dict[str, int] = {}
    first: list[str] = []
    for r in sorted({x["repeat"] for x in lat_rows if x["path"] == path}, key=int):
        seq = [x["task"] for x in sorted((x for x in lat_rows if x["path"] == path
                                          and x["repeat"] == r and x["ok"] == "True"),
                                         key=lambda x: int(x["seq"]))]
        for t in seq:
            split[t] = split.get(t, 0) + 1
        first = first or seq[:2 * len(set(seq))]
    return {"split": dict(sorted(split.items())), "first_turns": first}


def reference(lat_rows: list[dict], table: list[dict]) -> dict:
    """The emulated mesh and Swarm's own IPVS side by side, path by path: the rr order,
    the sources the tasks saw, latency median and connections/s (median over repeats)."""
    by = {row["path"]: row for row in table}
    out = {}
    for ipvs_path, mesh_path in SAME_AS.items():
        out[mesh_path.replace("mesh_", "")] = {
            mech: {"path": p, **({} if p.endswith("direct") else rr_order(lat_rows, p)),
                   "seen_sources": sorted({x["seen_source"] for x in lat_rows
                                           if x["path"] == p and x["ok"] == "True"}),
                   "latency_median_ms": by[p]["latency_median_ms"],
                   "rps_median": by[p]["rps_median"]}
            for mech, p in (("emulated", mesh_path), ("ipvs", ipvs_path)) if p in by}
    return out
