"""The benchmark's tables, pure, from a run folder's CSV files alone (so a run and its
replot share them): latency and connections/s through the mesh as ratios to the direct
path, iperf3 throughput as ratios to the underlay alone, build and teardown time as
ratios to bare Mininet building the same hosts and links, memory per node and per task,
each checked against its target.  Next to the load sweep's (``loadsweep.table``)."""

from __future__ import annotations

from pathlib import Path

from swarmmesh.runs import loadsweep, meshpaths, report, runfolder as results
from swarmmesh.runs.metrics import per_repeat_ratios, ratio


THR_PATHS = ("underlay", "mesh_task_node", "mesh_empty_node")
THR_LABELS = {"underlay": "underlay alone: c1 -> node (baseline)",
              "mesh_task_node": "mesh via the node with the task",
              "mesh_empty_node": "mesh via a node with no task"}
CONFIGS = {"default": "checksum offload off, no TSO (the testbed's default)",
           "userspace_tso": "userspace-tso-enable=true, offload kept on every leg"}
THR_COLUMNS = ["config", "repeat", "path", "streams", "target", "mbps", "sent_mbps",
               "retransmits", "load_1min", "error"]
BUILD_COLUMNS = ["repeat", "size", "nodes", "tasks_per_node", "tasks", "hosts", "build",
                 "up_s", "down_s", "idle_after_s", "load_1min", "phases", "error"]
MEMORY_COLUMNS = ["size", "repeat", "build", "kind", "host", "pid", "pss_kb", "rss_kb"]
TABLE_COLUMNS = ["section", "measure", "path", "value", "unit", "baseline", "ratio",
                 "ratio_min", "ratio_max", "n", "target", "met", "ratio_to_default_underlay"]
BUILDS = {"swarmmesh": "this testbed", "mininet": "Mininet alone (bare hosts and links)"}


# The targets: (measure, path or size, comparison, limit).
TARGETS = {
    ("latency", "mesh_task_node"): ("<=", 2.0),
    ("latency", "mesh_empty_node"): ("<=", 2.0),
    ("connection_rate", "mesh_empty_node"): (">=", 0.5),
    ("throughput", "mesh_task_node"): (">=", 0.5),
    ("throughput", "mesh_empty_node"): (">=", 0.5),
    ("build_up", "50x10"): ("<=", 2.0),            # x bare Mininet's build of the same hosts
    ("build_up", "100x10"): ("<=", 45.0),
    ("build_down", "100x10"): ("<=", 10.0),
}
# The targets checked on the ratio to the baseline rather than on the value.
RATIO_TARGETS = {("build_up", "50x10")}


def _f(x) -> float | None:
    return None if x in ("", None) else float(x)


def meets(value, comparison: str, limit: float) -> bool | None:
    if value is None:
        return None
    return value <= limit if comparison == "<=" else value >= limit


def _target(measure: str, path: str) -> tuple[str, float] | None:
    return TARGETS.get((measure, path))


RATIO_MEASURES = ("latency", "connection_rate", "throughput")


def _row(section, measure, path, value, unit, baseline, r, ratios, n, target_key=None):
    """One line of the table; ``target_key`` (measure, path or size) names its target
    in :data:`TARGETS`, checked on the ratio for the ratio measures, else on the value."""
    t = _target(*target_key) if target_key else None
    on_ratio = bool(target_key) and (target_key[0] in RATIO_MEASURES
                                     or tuple(target_key) in RATIO_TARGETS)
    checked = r if on_ratio else value
    return {"section": section, "measure": measure, "path": path, "value": value, "unit": unit,
            "baseline": baseline, "ratio": r,
            "ratio_min": min(ratios) if ratios else None,
            "ratio_max": max(ratios) if ratios else None, "n": n,
            "target": (f"{t[0]} {report.fmt(t[1])}" + ("×" if on_ratio else " s")) if t else "",
            "met": meets(checked, *t) if t else ""}


def per_repeat(lat: list[dict], ab: list[dict]) -> tuple[dict, dict]:
    """(path, repeat) -> the median latency of the answered requests, and -> ab's rate."""
    lat_med = {}
    for (path, rep) in {(r["path"], int(r["repeat"])) for r in lat}:
        xs = [float(r["total_ms"]) for r in lat if r["path"] == path
              and int(r["repeat"]) == rep and r["ok"] == "True" and r["total_ms"] != ""]
        if xs:
            lat_med[(path, rep)] = report.spread(xs)["median"]
    rps = {(r["path"], int(r["repeat"])): float(r["rps"]) for r in ab if r["rps"] != ""}
    return lat_med, rps


def mesh_table(lat: list[dict], ab: list[dict]) -> list[dict]:
    """Latency (median) and connections/s (median over repeats) per path, as ratios
    to (a) direct, with the per-repeat ratios' min and max."""
    paths = meshpaths.summarise(lat, ab)
    lat_med, rps = per_repeat(lat, ab)
    rows = []
    for p in paths:
        if p["path"] == "direct":
            continue
        lr = per_repeat_ratios(lat_med, ("direct",), (p["path"],))
        cr = per_repeat_ratios(rps, ("direct",), (p["path"],))
        rows.append(_row("mesh", "latency", p["path"], p["latency_median_ms"], "ms",
                         paths[0]["latency_median_ms"], p["latency_ratio_to_direct"], lr,
                         p["latency_n"], ("latency", p["path"])))
        rows.append(_row("mesh", "connection_rate", p["path"], p["rps_median"], "conn/s",
                         paths[0]["rps_median"], p["rps_ratio_to_direct"], cr,
                         p["rps_repeats"], ("connection_rate", p["path"])))
    return rows


def throughput_table(thr: list[dict]) -> list[dict]:
    """Median Mbit/s per configuration, path and stream count, as ratios to the
    underlay's median of the same configuration and stream count."""
    rows = []
    vals = {(r["config"], r["path"], int(r["streams"]), int(r["repeat"])): float(r["mbps"])
            for r in thr if r["mbps"] != ""}
    for config in [c for c in CONFIGS if any(r["config"] == c for r in thr)]:
        for streams in sorted({int(r["streams"]) for r in thr if r["config"] == config}):
            def med(path):
                return report.spread([v for k, v in vals.items()
                                      if k[:3] == (config, path, streams)])
            base = med("underlay")
            measure = f"throughput, {streams} stream{'s' * (streams > 1)}"
            rows.append(_row(f"throughput ({config})", measure, "underlay",
                             base["median"], "Mbit/s", None, 1.0 if base["n"] else None, [],
                             base["n"]))
            for path in THR_PATHS[1:]:
                s = med(path)
                rs = per_repeat_ratios(vals, (config, "underlay", streams),
                                       (config, path, streams))
                rows.append(_row(f"throughput ({config})", measure, path,
                                 s["median"], "Mbit/s", base["median"],
                                 ratio(s["median"], base["median"]), rs, s["n"],
                                 ("throughput", path)))
                if config != "default":       # against the default build's underlay too
                    rows[-1]["ratio_to_default_underlay"] = ratio(
                        s["median"], report.spread([v for k, v in vals.items() if k[:3] ==
                                                    ("default", "underlay", streams)])["median"])
    return rows


def build_table(builds: list[dict]) -> list[dict]:
    """Per size: the testbed's median up and down seconds against bare Mininet's."""
    rows = []
    for size in dict.fromkeys(r["size"] for r in builds):
        def by(kind, key):
            return {int(r["repeat"]): float(r[key]) for r in builds
                    if r["size"] == size and r["build"] == kind and r.get(key, "") != ""}
        def until_idle(kind):
            """The teardown until the CPUs went idle (the wait's own check taken off)."""
            from swarmmesh.testbed.footprint import QUIET_CHECK_S
            down, idle = by(kind, "down_s"), by(kind, "idle_after_s")
            return {k: v + max(0.0, idle[k] - QUIET_CHECK_S) for k, v in down.items()
                    if k in idle}
        for key, measure in (("up_s", "build_up"), ("down_s", "build_down"),
                             ("down_idle", "build_down_until_idle")):
            if key == "down_idle":
                ours, bare = until_idle("swarmmesh"), until_idle("mininet")
                if not ours:
                    continue
            else:
                ours, bare = by("swarmmesh", key), by("mininet", key)
            so, sb = report.spread(ours.values()), report.spread(bare.values())
            vals = {("swarmmesh", k): v for k, v in ours.items()}
            vals.update({("mininet", k): v for k, v in bare.items()})
            rs = per_repeat_ratios(vals, ("mininet",), ("swarmmesh",))
            tasks = next(r["tasks"] for r in builds if r["size"] == size)
            rows.append(_row("build", measure, f"{size} ({tasks} tasks)", so["median"], "s",
                             sb["median"], ratio(so["median"], sb["median"]), rs, so["n"],
                             (measure, size)))
    return rows


def memory_table(memory: list[dict], builds: list[dict]) -> list[dict]:
    """Per size (median over repeats): our processes' PSS and RSS per node, per task and
    per run, and bare Mininet's per host."""
    from swarmmesh.testbed import footprint
    out = []
    for size in dict.fromkeys(r["size"] for r in builds):
        b = next(r for r in builds if r["size"] == size)
        nodes, tasks = int(b["nodes"]), int(b["tasks"])
        per: dict[str, list] = {}
        for rep in sorted({int(r["repeat"]) for r in memory if r["size"] == size}):
            ours = [r for r in memory if r["size"] == size and int(r["repeat"]) == rep
                    and r["build"] == "swarmmesh"]
            bare = [r for r in memory if r["size"] == size and int(r["repeat"]) == rep
                    and r["build"] == "mininet"]
            if ours:
                s = footprint.sum_memory(ours, nodes, tasks)
                for k in ("per_node", "per_task", "per_run"):
                    for m in ("pss_mib", "rss_mib", "processes"):
                        per.setdefault(f"{k}_{m}", []).append(s[k][m])
                for kind, v in s["kinds"].items():
                    per.setdefault(f"{kind}|pss_mib", []).append(v["pss_mib"] / v["processes"])
                    per.setdefault(f"{kind}|rss_mib", []).append(v["rss_mib"] / v["processes"])
            if bare:
                s = footprint.sum_memory(bare, 1, 1)
                n = s["kinds"]["other shell"]["processes"]
                per.setdefault("bare_host_pss_mib", []).append(s["total_pss_mib"] / n)
                per.setdefault("bare_host_rss_mib", []).append(s["total_rss_mib"] / n)
        out.append({"size": size, "nodes": nodes, "tasks": tasks,
                    **{k: report.spread(v)["median"] for k, v in per.items()}})
    return out


def summarise_run(run_dir: Path) -> dict:
    """Every table of a run folder, from its CSV files alone."""
    run_dir = Path(run_dir)

    def rows(name):
        p = run_dir / name
        return results.read_csv(p) if p.exists() else []
    lat, ab, thr = rows("latency.csv"), rows("connection_rate.csv"), rows("throughput.csv")
    builds, memory = rows("builds.csv"), rows("memory.csv")
    table = (mesh_table(lat, ab) if lat else []) + throughput_table(thr) + build_table(builds)
    failures = []
    failed_mesh = sum(1 for r in lat if r["ok"] != "True") + sum(int(r["failed"]) for r in ab)
    if failed_mesh:
        failures.append(f"{failed_mesh} requests failed (latency/ab)")
    failures += [f"iperf3 {r['config']} {r['path']} -P {r['streams']}: {r['error']}"
                 for r in thr if r["error"]]
    failures += [f"build {r['size']} ({r['build']}, repeat {r['repeat']}): {r['error']}"
                 for r in builds if r["error"]]
    load = rows("load.csv")
    failures += [f"{r['tool']} -c {r['concurrency']} {r['path']} (repeat {r['repeat']}): "
                 f"{r['error']}" for r in load if r["error"]]
    failed_load = sum(int(r["errors"] or 0) for r in load)
    if failed_load:
        failures.append(f"{failed_load} requests failed in the load sweep")
    works = {s: all(not r["error"] for r in builds if r["size"] == s and r["build"] == "swarmmesh")
             for s in dict.fromkeys(r["size"] for r in builds)}
    return {"table": table, "load": loadsweep.table(load) if load else [],
            "memory": memory_table(memory, builds) if builds else [],
            "sizes_built": works, "failures": failures}
