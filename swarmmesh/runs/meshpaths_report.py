"""``mesh_overhead``'s figure and report.md, from the run's CSVs and summary alone."""

from __future__ import annotations

from pathlib import Path

from swarmmesh.runs import plots, report
from swarmmesh.runs.meshpaths import (ALL_LABELS, IPVS_PATHS, PATHS, present, reference,
                                      values)


def _int(x) -> str:
    return "–" if x is None else f"{x:.0f}"


def paths_figure(run_dir: Path, summary: dict, lat: list[dict], ab: list[dict],
                 what: str) -> list[Path]:
    """Left: the latency CDF per path; right: ab's connection rate per path."""
    import matplotlib.pyplot as plt
    p = summary["parameters"]
    paths = present(lat)
    colours = dict(zip(PATHS + IPVS_PATHS, (plots.colour(i) for i in (7, 0, 1, 3, 5, 2, 4))))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12 + 2 * (len(paths) > 4), 4.8),
                                   gridspec_kw={"width_ratios": [1.5, 1]})
    latency_panel(ax1, lat, colours, p["rate"], paths)
    rate_panel(ax2, ab, colours, p["concurrency"], paths)
    fig.suptitle(plots.run_title(summary, f"Mesh overhead: {what}"), fontsize=10)
    return plots.save(fig, run_dir / "mesh_overhead")


def latency_panel(ax, lat: list[dict], colours: dict, rate: float,
                  paths: tuple[str, ...] = PATHS) -> None:
    import matplotlib.ticker
    for path in paths:
        xs = sorted(values([r for r in lat if r["path"] == path and r["ok"] == "True"], "total_ms"))
        if xs:
            ax.step(xs, [(k + 1) / len(xs) for k in range(len(xs))], where="post",
                    color=colours[path],
                    label=f"{ALL_LABELS[path]} (n={len(xs)}, median "
                          f"{report.fmt(report.percentile(xs, 50))} ms)")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1, 2, 5)))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("request latency, new connection: connect to last byte (ms, log scale)")
    ax.set_ylabel("fraction of requests (CDF)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(f"Latency, open loop at {rate:g} req/s", fontsize=9)


TICKS = {"direct": "(a) direct", "mesh_task_node": "(b) mesh,\ntask node",
         "mesh_empty_node": "(c) mesh,\nempty node", "nft_lb": "(d) nft LB",
         "ipvs_direct": "(a') direct,\nIPVS cl.", "ipvs_task_node": "(e) IPVS,\ntask node",
         "ipvs_empty_node": "(f) IPVS,\nempty node"}


def rate_panel(ax, ab: list[dict], colours: dict, concurrency: int,
               paths: tuple[str, ...] = PATHS) -> None:
    groups = [values([r for r in ab if r["path"] == path], "rps") for path in paths]
    bp = ax.boxplot(groups, whis=(0, 100), widths=0.55, patch_artist=True,
                    medianprops={"color": "black"})
    for patch, path in zip(bp["boxes"], paths):
        patch.set_facecolor(colours[path])
        patch.set_alpha(0.5)
    for i, (path, xs) in enumerate(zip(paths, groups), start=1):
        ax.scatter([i] * len(xs), xs, color=colours[path], s=14, zorder=3)
    ax.set_xticks(range(1, len(paths) + 1), [TICKS[p] for p in paths], fontsize=8)
    ax.set_ylabel("connection rate, ab (new connections/s)")
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(f"Connection rate, ab -c {concurrency}, one dot per repeat\n"
                 "(box p25-p75, line median, whiskers min-max)", fontsize=9)


def write_report(run_dir: Path, summary: dict, what: str, table: list[dict], lat: list[dict],
                 ab: list[dict], fig_paths: list[Path]) -> None:
    rep = report.Report(run_dir, f"Mesh overhead: {what}", summary)
    rep.text(intro(summary))
    rep.heading("All paths" if len(table) > len(PATHS) else "All four paths")
    rep.table(["path", "n", "latency median (ms)", "p5–p95 (ms)", "connect median (ms)",
               "first byte median (ms)", "latency / direct", "conn/s median (min–max)",
               "conn/s / direct"],
              [[t["label"], t["latency_n"], t["latency_median_ms"],
                f"{report.fmt(t['latency_p5_ms'])}–{report.fmt(t['latency_p95_ms'])}",
                t["connect_median_ms"], t["ttfb_median_ms"],
                f"×{report.fmt(t['latency_ratio_to_direct'])}",
                f"{_int(t['rps_median'])} ({_int(t['rps_min'])}–{_int(t['rps_max'])})",
                f"×{report.fmt(t['rps_ratio_to_direct'])}"]
               for t in table])
    rep.text("Ratios are medians over the direct path's median in the same cluster (latency: "
             "higher is slower; connection rate: lower is slower). The table is also in "
             "`paths.csv`.")
    if any(r["path"] in IPVS_PATHS for r in lat):        # redrawn from the CSVs alone
        reference_section(rep, reference(lat, table))
    elif (summary.get("ipvs_reference") or {}).get("skipped"):
        rep.text(f"Swarm's own IPVS (the reference path) was skipped: "
                 f"{summary['ipvs_reference']['skipped']}.")
    rep.figure(fig_paths, "Left: CDF of request latency per path (new connection per request, "
                          "open loop). Right: connections per second with ab, per repeat.")
    rep.heading("Spread")
    rep.numbers({ALL_LABELS[pth]: values([r for r in lat if r["path"] == pth and r["ok"] == "True"],
                                     "total_ms") for pth in present(lat)},
                unit="ms", what="Request latency, connect to last byte", label="path")
    rep.numbers({ALL_LABELS[pth]: values([r for r in ab if r["path"] == pth], "rps")
                 for pth in present(lat)},
                unit="conn/s", what="ab connection rate over repeats", label="path")
    rep.heading("Tools")
    for k, v in (summary.get("tools") or {}).items():
        cmd = v["command_example"].replace("\n", "\\n")
        rep.text(f"- **{k}**: {v['tool']} — {v['why']}. Command: `{cmd}`")
    rep.write()


def reference_section(rep, ref: dict) -> None:
    """The emulated mesh against Swarm's own IPVS, side by side."""
    rep.heading("The emulated mesh and Swarm's own IPVS, side by side")
    rep.text("The same cluster built twice in this run: the emulated pick (each node's "
             "nftables `numgen`) and Swarm's own ingress sandbox (mangle mark, IPVS rr on the "
             "fwmark, SNAT with `-m ipvs`, moby's IPVS sysctls). The split counts the "
             "open loop's connections per task; their order is checked by `routing_mesh` "
             "(`--ingress ipvs`), whose connections do not overlap.")
    rows = []
    for where, mechs in ref.items():
        for mech, d in mechs.items():
            split = ", ".join(f"{t} {k}" for t, k in d.get("split", {}).items()) or "–"
            rows.append([where, mech, split,
                         ", ".join(d["seen_sources"]), d["latency_median_ms"],
                         _int(d["rps_median"])])
    rep.table(["entry", "mechanism", "split", "source the task saw",
               "latency median (ms)", "conn/s median"], rows)


def intro(summary: dict) -> str:
    """The report's first paragraphs: the four paths, the run's conditions,
    what the ratios measure."""
    lb = summary.get("load_balancer", {})
    return (
        "The same service (`app`, published 8000 -> target 80) reached four ways from the "
        "external client c1, all in this run:\n\n"
        f"- **(a) direct**: c1 -> a task's ingress address :80; c1 routes the ingress subnet via "
        f"lb1 ({lb.get('address')}), which only forwards (no NAT). The tasks take turns by "
        "repeat.\n"
        f"- **(b)** c1 -> {summary.get('task_node')}:8000, a node that runs a task "
        "(the mesh's rr sends connections to its local task and over VXLAN to the others).\n"
        f"- **(c)** c1 -> {summary.get('empty_node')}:8000, a node that runs none "
        "(every connection crosses the overlay).\n"
        f"- **(d)** c1 -> lb1:8000: nftables `numgen inc` DNAT to the tasks' ingress addresses "
        f"+ masquerade, over its own backend network {lb.get('backend_network')} "
        "(a veth from lb1's bridge to every task; no OVS on this path).\n\n"
        f"Placement: {summary.get('placement')}. Failed requests: {summary.get('failed')}. "
        f"Load average at start / end: {summary.get('load_average_start')} / "
        f"{summary.get('load_average_end')} (the CPU is shared; timings under contention).\n\n"
        "What the ratios measure: (d) against (a) is the cost of a kernel DNAT + conntrack + "
        "masquerade on the same hop; (b) and (c) against (a) are the cost of the mesh *as "
        f"emulated here* (the entry node's kernel picks, DNATs and SNATs as Swarm's does; "
        f"then {summary.get('datapath')} Open vSwitch carries every packet, statelessly, "
        "through the entry node's vswitchd and, when the task is on another node, over VXLAN "
        "through that node's too), not of Swarm's kernel bridge and VXLAN.")
