"""The benchmark's figures and report.md, from the run's CSVs and summary alone."""

from __future__ import annotations

import json
import re
from pathlib import Path

from swarmmesh.runs import benchtables, loadsweep, meshpaths, plots, report, runfolder as results
from swarmmesh.runs.benchtables import BUILDS, CONFIGS, THR_LABELS, THR_PATHS, per_repeat
from swarmmesh.runs.metrics import per_repeat_ratios


def _ratio_groups(run_dir: Path) -> dict[str, dict[str, list[float]]]:
    """Per panel, per label: the per-repeat ratios."""
    out: dict[str, dict[str, list[float]]] = {"latency": {}, "connection_rate": {},
                                              "throughput": {}}
    lat = results.read_csv(run_dir / "latency.csv") if (run_dir / "latency.csv").exists() else []
    ab = (results.read_csv(run_dir / "connection_rate.csv")
          if (run_dir / "connection_rate.csv").exists() else [])
    if lat:
        short = {"mesh_task_node": "(b) mesh,\ntask node", "mesh_empty_node": "(c) mesh,\nempty node",
                 "nft_lb": "(d) nft LB"}
        lat_med, rps = per_repeat(lat, ab)
        for path, label in short.items():
            out["latency"][label] = per_repeat_ratios(lat_med, ("direct",), (path,))
            out["connection_rate"][label] = per_repeat_ratios(rps, ("direct",), (path,))
    if (run_dir / "throughput.csv").exists():
        thr = results.read_csv(run_dir / "throughput.csv")
        vals = {(r["config"], r["path"], int(r["streams"]), int(r["repeat"])): float(r["mbps"])
                for r in thr if r["mbps"] != ""}
        for config in [c for c in CONFIGS if any(r["config"] == c for r in thr)]:
            for streams in sorted({int(r["streams"]) for r in thr if r["config"] == config}):
                for path, short in (("mesh_task_node", "(b) task"), ("mesh_empty_node", "(c) empty")):
                    label = f"{short}\n-P {streams}" + ("\nTSO" if config != "default" else "")
                    out["throughput"][label] = per_repeat_ratios(
                        vals, (config, "underlay", streams), (config, path, streams))
    return out


def ratios_figure(run_dir: Path, summary: dict) -> list[Path]:
    """Three panels of per-repeat ratios (a dot per repeat, the box over them) with the
    target as a dashed line."""
    import matplotlib.pyplot as plt
    groups = _ratio_groups(run_dir)
    panels = [(k, v) for k, v in groups.items() if any(v.values())]
    widths = [max(3, len(v)) for _, v in panels]
    fig, axes = plt.subplots(1, len(panels), figsize=(0.95 * sum(widths) + 2, 4.8),
                             squeeze=False, gridspec_kw={"width_ratios": widths})
    titles = {"latency": ("latency ÷ direct (median per repeat)", 2.0, "target ≤ 2×"),
              "connection_rate": ("connections/s ÷ direct (ab, per repeat)", 0.5,
                                  "target ≥ 0.5× (empty node)"),
              "throughput": ("iperf3 Mbit/s ÷ underlay alone (per repeat)", 0.5,
                             "target ≥ 0.5×")}
    for ax, (key, g) in zip(axes[0], panels):
        labels = [k for k, v in g.items() if v]
        data = [g[k] for k in labels]
        bp = ax.boxplot(data, whis=(0, 100), widths=0.55, patch_artist=True,
                        medianprops={"color": "black"})
        for i, (patch, xs, label) in enumerate(zip(bp["boxes"], data, labels)):
            c = plots.colour(0 if label.startswith("(b)") else 1 if label.startswith("(c)") else 3)
            patch.set_facecolor(c)
            patch.set_alpha(0.2 if "TSO" in label else 0.5)
            if "TSO" in label:
                patch.set_hatch("//")
            ax.scatter([i + 1] * len(xs), xs, color=c, s=14, zorder=3)
        title, limit, tlabel = titles[key]
        ax.axhline(limit, color="red", ls="--", lw=1, label=tlabel)
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_xticks(range(1, len(labels) + 1), labels, fontsize=7)
        ax.set_ylim(bottom=0)
        ax.set_title(title, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, loc="upper right")
    p = summary["parameters"]
    fig.suptitle(plots.run_title(summary, f"Benchmark: the mesh against its baselines "
                                          f"({p['nodes']} nodes, {p['replicas']} replicas)"),
                 fontsize=10)
    return plots.save(fig, run_dir / "benchmark_ratios")


def load_figure(run_dir: Path, summary: dict) -> list[Path]:
    rows = results.read_csv(run_dir / "load.csv")
    p = summary["parameters"]
    fig = loadsweep.figure(rows, meshpaths.LABELS,
                           plots.run_title(summary, f"Load sweep: the mesh against direct "
                                                    f"({p['nodes']} nodes, {p['replicas']} "
                                                    f"replicas)"))
    return plots.save(fig, run_dir / "benchmark_load")


def build_figure(run_dir: Path, summary: dict, memory: list[dict]) -> list[Path]:
    """Seconds to build and to tear down against the hosts built, i.e. the tasks plus
    the nodes (ours and bare Mininet's, a dot per repeat, the medians joined; each size
    labelled with its tasks), the targets at the sizes they name; memory per node and per task
    against size."""
    import matplotlib.pyplot as plt
    builds = results.read_csv(run_dir / "builds.csv")
    sizes = list(dict.fromkeys(r["size"] for r in builds))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    hosts = {r["size"]: int(r["hosts"]) for r in builds if r["hosts"] != ""}
    for ax, key, measure, title in ((axes[0], "up_s", "build_up", "build (up)"),
                                    (axes[1], "down_s", "build_down", "teardown (down)")):
        for kind, label in BUILDS.items():
            pts = [(hosts[r["size"]], float(r[key]), r["size"]) for r in builds
                   if r["build"] == kind and r[key] != "" and r["size"] in hosts]
            if not pts:
                continue
            c = plots.colour(0 if kind == "swarmmesh" else 7)
            ax.scatter([x for x, _, _ in pts], [y for _, y, _ in pts], color=c, s=16, zorder=3)
            med = sorted((hosts[s], report.spread([y for _, y, sz in pts if sz == s])["median"], s)
                         for s in sizes if any(sz == s for _, _, sz in pts))
            ax.plot([m[0] for m in med], [m[1] for m in med], "-o", color=c, label=label, ms=4)
            if kind == "swarmmesh":
                tasks = {r["size"]: r["tasks"] for r in builds}
                right = max(m[0] for m in med) / 2
                for x, y, s in med:
                    ax.annotate(f"{s} ({tasks[s]} tasks)", (x, y), textcoords="offset points",
                                xytext=(-6 if x > right else 6, 6), fontsize=7,
                                ha="right" if x > right else "left")
        for size, y, text in _limits(builds, key, measure, hosts):
            ax.scatter([hosts[size]], [y], marker="_", s=400, color="red", zorder=4,
                       label=f"target: {text}")
        ax.set_xlabel("hosts built: nodes + tasks + underlay + client")
        ax.set_ylabel("seconds")
        ax.set_ylim(bottom=0)
        ax.set_xlim(0, 1.1 * max(hosts.values(), default=1))   # (room for a target's mark)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
        ax.set_title(f"{title}, a dot per repeat, line through the medians", fontsize=9)
    ax = axes[2]
    labels = [m["size"] for m in memory]
    xs = range(len(labels))
    w = 0.38
    node = [m.get("per_node_pss_mib") or 0 for m in memory]
    task = [m.get("per_task_pss_mib") or 0 for m in memory]
    b1 = ax.bar([x - w / 2 for x in xs], node, w, color=plots.colour(0), alpha=0.8,
                label="per node (vswitchd, ovsdb, DNS, shell)")
    b2 = ax.bar([x + w / 2 for x in xs], task, w, color=plots.colour(1), alpha=0.8,
                label="per task (server, shell)")
    ax.bar_label(b1, labels=[f"{v:.1f}" for v in node], fontsize=7)
    ax.bar_label(b2, labels=[f"{v:.2f}" for v in task], fontsize=7)
    ax.axhline(TASK_PSS_TARGET_MIB, color="red", lw=1, ls="--",
               label=f"target: per task ≤ {TASK_PSS_TARGET_MIB:g} MiB")
    ax.set_xticks(list(xs), labels, fontsize=8)
    ax.set_xlabel("nodes x tasks per node")
    ax.set_ylabel("PSS, MiB")
    ax.set_ylim(0, 1.3 * max(node + task + [1]))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title("memory after the build (PSS, median over repeats)", fontsize=9)
    fig.suptitle(plots.run_title(summary, "Benchmark: build and teardown against cluster "
                                          "size, Mininet alone as the baseline"), fontsize=10)
    return plots.save(fig, run_dir / "benchmark_build")


TASK_PSS_TARGET_MIB = 2.0          # a task's memory (its server and its shell)


def num(x) -> str:
    """A figure for the table: thousands grouped, 3 significant digits below."""
    if x in (None, ""):
        return "–"
    x = float(x)
    return f"{x:,.0f}".replace(",", "\u202f") if abs(x) >= 1000 else report.fmt(x)


def _yes(met) -> str:
    return {True: "**met**", False: "missed", "": "–", None: "–"}.get(met, str(met))


def _limits(builds: list[dict], key: str, measure: str, hosts: dict) -> list[tuple]:
    """The targets to draw at the sizes built: (size, seconds, words); a target on the
    ratio to bare Mininet is drawn at that ratio times bare Mininet's median."""
    out = []
    for (m, size), (_, limit) in benchtables.TARGETS.items():
        if m != measure or size not in hosts:
            continue
        if (m, size) not in benchtables.RATIO_TARGETS:
            out.append((size, limit, f"{size} ≤ {limit:g} s"))
            continue
        bare = [float(r[key]) for r in builds if r["size"] == size
                and r["build"] == "mininet" and r[key] != ""]
        if bare:
            y = limit * report.spread(bare)["median"]
            out.append((size, y, f"{size} ≤ {limit:g}× bare Mininet ({y:.0f} s)"))
    return out


def _short_by(row) -> str:
    """By how much a target is missed: the factor between the figure and the limit."""
    if row["met"] is not False or not row["target"]:
        return ""
    comp, limit = row["target"].split()[0], float(re.sub(r"[^\d.]", "", row["target"]))
    v = row["ratio"] if row["target"].endswith("×") else row["value"]
    if not v:
        return ""
    return f"×{report.fmt(limit / v if comp == '>=' else v / limit)} short"


def load_section(rep, summary: dict, load: list[dict], fig) -> None:
    p = summary["parameters"]
    rep.heading("Load sweep: ab and wrk at several concurrencies")
    rep.text(f"Per path and concurrency C: `ab -n {p['ab_requests']} -c C` (a new connection "
             f"per request) and `wrk -t 1 -c C -d {report.fmt(p['load_seconds'])}s` (C "
             f"keep-alive connections), {p['load_repeats']} rounds; the ratio is to (a) direct "
             "at the same tool, C and round (median, then the per-round min–max).")
    rep.table(["tool", "C", "path", "rate (median)", "÷ direct (min–max)", "p99 ms", "n",
               "errors"],
              [[r["tool"], r["concurrency"], meshpaths.LABELS.get(r["path"], r["path"]),
                num(r["rps"]), f"×{report.fmt(r['ratio'])}" + (
                    f" ({report.fmt(r['ratio_min'])}–{report.fmt(r['ratio_max'])})"
                    if r["ratio_min"] is not None else ""),
                report.fmt(r["p99_ms"]), r["n"], r["errors"]] for r in load])
    if fig:
        rep.figure(fig, "Rate against concurrency, one line per path (median), a dot per "
                        "round; left ab (new connections), right wrk (keep-alive).")


def write_report(run_dir: Path, summary: dict, tables: dict, figs: dict) -> None:
    p = summary["parameters"]
    rep = report.Report(run_dir, "Benchmark", summary)
    load = summary.get("load_average") or {}
    rep.text("Every figure below is a ratio to a baseline measured in this run. Load "
             f"average (1, 5, 15 min) at the start {load.get('start')}, before the mesh "
             f"part {load.get('mesh')}, at the end {load.get('end')}; each build's and "
             "iperf3 run's own is in builds.csv / throughput.csv.")
    rep.heading("The table")
    rep.table(["measure", "path / size", "this run", "baseline (same run)",
               "ratio (per-repeat min–max)", "n", "target", "", "short by"],
              [[r["measure"].replace("_", " ") + (" (userspace TSO)" if "tso" in r["section"]
                                                  else ""),
                meshpaths.LABELS.get(r["path"],
                                                  THR_LABELS.get(r["path"], r["path"])),
                f"{num(r['value'])} {r['unit']}",
                f"{num(r['baseline'])} {r['unit']}" if r["baseline"] is not None else "–",
                f"×{report.fmt(r['ratio'])}" + (f" ({report.fmt(r['ratio_min'])}–"
                                                  f"{report.fmt(r['ratio_max'])})"
                                                  if r["ratio_min"] is not None else ""),
                r["n"], r["target"] or "–", _yes(r["met"]), _short_by(r)]
               for r in tables["table"]])
    other = [r for r in tables["table"] if r.get("ratio_to_default_underlay") is not None]
    if other:
        rep.text("With userspace TSO, against the *default* build's underlay (c1's checksum "
                 "offload off, as the issue's 3.0 Gbit/s baseline was measured): " + "; ".join(
                     f"{meshpaths.LABELS.get(r['path'], r['path'])}, {r['measure']}: "
                     f"×{report.fmt(r['ratio_to_default_underlay'])}" for r in other) + ".")
    rep.text("Baselines: latency and connections/s against (a) direct to a task (c1 routes "
             "via lb1, which only forwards); throughput against the underlay alone (c1 -> "
             "the task's node, no mesh); build and teardown against Mininet alone building "
             "the same hosts and links. Table also in `table.csv`.")
    if "ratios" in figs:
        rep.figure(figs["ratios"], "Per-repeat ratios to the same run's baselines; dashed: "
                                   "the targets.")
    if tables["load"]:
        load_section(rep, summary, tables["load"], figs.get("load"))
    if tables["memory"]:
        rep.heading("Memory after the build (median over repeats)")
        rep.table(["size", "nodes", "tasks", "per node PSS (RSS), MiB",
                   "per task PSS (RSS), MiB", "controller + other shells PSS, MiB",
                   "bare Mininet per host PSS (RSS), MiB"],
                  [[m["size"], m["nodes"], m["tasks"],
                    f"{report.fmt(m.get('per_node_pss_mib'))} ({report.fmt(m.get('per_node_rss_mib'))})",
                    f"{report.fmt(m.get('per_task_pss_mib'))} ({report.fmt(m.get('per_task_rss_mib'))})",
                    report.fmt(m.get("per_run_pss_mib")),
                    f"{report.fmt(m.get('bare_host_pss_mib'))} ({report.fmt(m.get('bare_host_rss_mib'))})"]
                   for m in tables["memory"]])
        kinds = sorted({k.split("|")[0] for m in tables["memory"] for k in m if "|" in k})
        rep.text("Per process, PSS (RSS) MiB, by kind and size:")
        rep.table(["process"] + [m["size"] for m in tables["memory"]],
                  [[k] + [f"{report.fmt(m.get(k + '|pss_mib'))} ({report.fmt(m.get(k + '|rss_mib'))})"
                          for m in tables["memory"]] for k in kinds])
    if "build" in figs:
        rep.heading("Build and teardown")
        rep.figure(figs["build"], "Seconds against tasks, this testbed and Mininet alone; "
                                  "memory per node and per task.")
        builds = results.read_csv(run_dir / "builds.csv")
        steps = [r for r in builds if r["build"] == "swarmmesh" and r["phases"]]
        if steps:
            names = list(dict.fromkeys(k for r in steps for k in json.loads(r["phases"])))
            rep.text("Where the build's time goes (seconds per step, each build); *idle after*: "
                     "the wait after the teardown returned until the CPUs had been 90 % idle "
                     "for 2 s (2.0: idle at once; the kernel destroys the namespaces after "
                     "their last process exits):")
            rep.table(["size", "repeat", "up", "down", "idle after"] + names,
                      [[r["size"], r["repeat"], r["up_s"], r["down_s"], r.get("idle_after_s")]
                       + [json.loads(r["phases"]).get(n) for n in names] for r in steps])
            bare = [r for r in builds if r["build"] == "mininet" and r["up_s"]]
            rep.text("Bare Mininet (seconds): " + "; ".join(
                f"{r['size']} r{r['repeat']}: up {r['up_s']}, down {r['down_s']}, idle after "
                f"{r.get('idle_after_s') or '–'}" for r in bare) + ".")
        built = tables.get("sizes_built") or {}
        rep.text("Built and torn down without error: " + ", ".join(
            f"{s} {'yes' if ok else '**no**'}" for s, ok in built.items()) + ".")
    if (run_dir / "throughput.csv").exists():
        rep.heading("Throughput")
        thr = results.read_csv(run_dir / "throughput.csv")
        rep.text("Configurations: " + "; ".join(f"**{k}**: {v}" for k, v in CONFIGS.items()
                                                if any(r["config"] == k for r in thr)) + ". "
                 f"iperf3 for {p['iperf_seconds']} s per run; command "
                 f"`{summary.get('iperf3_command', '')}`.")
        if summary.get("userspace_tso_log"):
            rep.text("vswitchd: " + "; ".join(summary["userspace_tso_log"][:3]) + " …")
        rep.numbers({f"{r_c} {THR_LABELS[path]} -P {s}": [r["mbps"] for r in thr
                                                           if r["config"] == r_c
                                                           and r["path"] == path
                                                           and int(r["streams"]) == s]
                     for r_c in CONFIGS for s in sorted({int(r["streams"]) for r in thr})
                     for path in THR_PATHS if any(r["config"] == r_c for r in thr)},
                    unit="Mbit/s", what="iperf3 received throughput", label="path")
        retr = {f"{r_c} {path} -P {s}": [r["retransmits"] for r in thr if r["config"] == r_c
                                         and r["path"] == path and int(r["streams"]) == s]
                for r_c in CONFIGS for s in sorted({int(r["streams"]) for r in thr})
                for path in THR_PATHS if any(r["config"] == r_c for r in thr)}
        rep.numbers(retr, unit="segments", what="TCP retransmits per run", label="path")
    if tables["failures"]:
        rep.heading("Failures")
        rep.text("\n".join(f"- {f}" for f in tables["failures"]))
    rep.write()
