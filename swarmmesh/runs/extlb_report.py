"""``external_lb``'s analysis, figures and report.md, from the run's CSVs and summary
alone (a run and its replot share them): per path the latency and who answered, the cost
of each hop, and per HAProxy frontend what a node going down cost."""

from __future__ import annotations

from pathlib import Path

from swarmmesh.runs import plots, report

PUBLISHED, HOST_PORT, TARGET, DIRECT_PORT = 8000, 8080, 80, 8082

PATHS = ("node_mesh", "node_host", "haproxy_mesh", "haproxy_host", "haproxy_direct")
LABELS = {"node_mesh": "c1 -> node:8000 (mesh)",
          "node_host": "c1 -> task node:8080 (host mode)",
          "haproxy_mesh": "c1 -> HAProxy -> node:8000 -> mesh",
          "haproxy_host": "c1 -> HAProxy -> node:8080 (host mode)",
          "haproxy_direct": "c1 -> HAProxy -> task"}
POOL_OF = {"haproxy_mesh": "mesh", "haproxy_host": "host", "haproxy_direct": "direct"}
PORT_OF = {"mesh": PUBLISHED, "host": HOST_PORT, "direct": DIRECT_PORT}


def values(rows, key) -> list[float]:
    """The numbers of column ``key`` (blank cells skipped)."""
    return [float(r[key]) for r in rows if r.get(key) not in ("", None)]


def answered(r) -> bool:
    """Did the request get its answer (a row of requests.csv, read back or not)?"""
    return r["ok"] in ("True", True)


def analyse(rows: list[dict], states: list[dict], events: list[dict], summary: dict) -> dict:
    paths = {}
    for path in PATHS:
        rs = [r for r in rows if r["phase"] == "paths" and r["path"] == path]
        ok = [r for r in rs if answered(r)]
        s = report.spread(values(ok, "total_ms"))
        split: dict[str, dict[str, int]] = {}
        for r in ok:
            entry = r.get("haproxy_server") or r["target"]
            split.setdefault(entry, {}).setdefault(r["task"], 0)
            split[entry][r["task"]] += 1
        paths[path] = {"n": len(rs), "failed": len(rs) - len(ok), "median_ms": s["median"],
                       "p5_ms": s["p5"], "p95_ms": s["p95"],
                       "connect_median_ms": report.spread(values(ok, "connect_ms"))["median"],
                       "haproxy_connect_median_ms": report.spread(values(ok, "haproxy_tc_ms"))["median"],
                       "seen_sources": sorted({r["seen_source"] for r in ok}),
                       "split": split}
    med = {p: paths[p]["median_ms"] for p in PATHS}
    hops = {}
    if all(v is not None for v in med.values()):
        hops = {"haproxy_in_front_of_the_mesh_ms": med["haproxy_mesh"] - med["node_mesh"],
                "haproxy_in_front_of_host_mode_ms": med["haproxy_host"] - med["node_host"],
                "mesh_over_host_mode_direct_ms": med["node_mesh"] - med["node_host"],
                "mesh_over_host_mode_behind_haproxy_ms": med["haproxy_mesh"] - med["haproxy_host"],
                "node_over_task_behind_haproxy_ms": med["haproxy_host"] - med["haproxy_direct"]}
    return {"paths": paths, "hops": hops,
            "paths_failed": sum(p["failed"] for p in paths.values()),
            "dns_every_node": (summary.get("dns") or {}).get("every_node", False),
            "down": down_analysis(rows, states, events, summary)}


def _leaves(event: dict) -> bool:
    """The orchestrator's event: the lost node's tasks are out of every node's balancer
    (every switch has applied the revision)."""
    return event["event"] == "published" and "leave every load balancer" in event["detail"]


def down_analysis(rows: list[dict], states: list[dict], events: list[dict],
                  summary: dict) -> dict:
    """Per frontend: when HAProxy took the lost node's servers out, the window (the last of
    that and, for the mesh, the cluster taking the node's tasks out), failures in and after it."""
    down = summary.get("down") or {}
    node, cut = down.get("node"), down.get("cut_ts")
    if cut in (None, ""):
        return {}
    cut = float(cut)
    lost = {node} | {t for t, n in (summary.get("placement") or {}).items() if n == node}
    removed = next((float(e["t"]) for e in events if _leaves(e)), None)
    out: dict = {}
    for pool in ("mesh", "host", "direct"):
        outs = [float(s["t"]) for s in states if s["pool"] == pool and s["server"] in lost
                and s["status"].startswith(("DOWN", "MAINT")) and float(s["t"]) >= cut]
        haproxy_out = min(outs) if outs else None
        ends = [x for x in (haproxy_out, removed if pool == "mesh" else None) if x is not None]
        window = max(ends) if ends else None
        rs = [r for r in rows if r["phase"] == "down" and r["path"] == f"haproxy_{pool}"]
        fails = [float(r["ts"]) for r in rs if not answered(r)]
        out[pool] = {
            "requests": len(rs), "failed": len(fails),
            "haproxy_marked_down_after_s": None if haproxy_out is None else round(haproxy_out - cut, 3),
            "window_end_after_s": None if window is None else round(window - cut, 3),
            "failed_before_cut": sum(1 for t in fails if t < cut),
            "failed_in_window": sum(1 for t in fails if window is not None and cut <= t <= window),
            "failed_after_window": sum(1 for t in fails if window is None or t > window),
            "last_failure_after_s": round(max(fails) - cut, 3) if fails else None}
    return {"pools": out, "cluster_removed_tasks_after_s":
            None if removed is None else round(removed - cut, 3)}


def intro(summary: dict) -> str:
    xlb = summary.get("external_lb") or {}
    ck = xlb.get("checks") or {}
    dns = summary.get("dns") or {}
    return (f"HAProxy (`{xlb.get('balance')}`, TCP mode, connect checks every "
            f"{ck.get('inter_s')} s, out after {ck.get('fall')} failures, back after "
            f"{ck.get('rise')}; expected detection window {ck.get('detection_window_s')} s) at "
            f"{xlb.get('address')}, three frontends: :8000 -> every node's :8000 (the routing "
            "mesh balances again), :8080 -> every node's host-mode :8080 (the nodes without a "
            "task refuse; the checks keep them out), :8082 -> every task directly (a backend "
            f"network {xlb.get('backend_network')}, no node). Placement: "
            f"{summary.get('placement')}.\n\nThe external name `{dns.get('name')}` "
            f"(authoritative server {dns.get('server')}) resolved to {dns.get('answers')} "
            f"(every node: {dns.get('every_node')}; the order rotates per query).")


def paths_section(rep, res: dict, figs_stages, figs_lat) -> None:
    rep.heading("The paths, the two stages and the source each sees")
    rows = []
    for p in PATHS:
        r = res["paths"][p]
        rows.append([LABELS[p], r["n"], r["failed"], r["median_ms"],
                     f"{report.fmt(r['p5_ms'])}–{report.fmt(r['p95_ms'])}",
                     r["haproxy_connect_median_ms"], ", ".join(r["seen_sources"])])
    rep.table(["path", "n", "failed", "latency median (ms)", "p5–p95 (ms)",
               "HAProxy connect to server, median (ms)", "source the task saw"], rows)
    if res["hops"]:
        rep.text("What each hop adds (differences of medians): " + "; ".join(
            f"{k.replace('_ms', '').replace('_', ' ')} **{report.fmt(v)} ms**"
            for k, v in res["hops"].items()) + ".")
    rep.text("HAProxy sees the client's own address (its log: `" + "client_ip" + "`); a node "
             "sees HAProxy's address (the host-mode task, which no SNAT hides, shows it); a "
             "task behind the mesh sees the ingress address of the node HAProxy chose, never "
             "the client's. HAProxy's checks are connections to the nodes' published port "
             "too: each takes a turn of that node's round robin, so the tasks' split of the "
             "requests HAProxy sent one node is near, not exactly, even.")
    rep.figure(figs_stages, "Stage 1 (HAProxy's choice of node, x) and stage 2 (the node's "
                            "choice of task, colours), per frontend.")
    for p in ("haproxy_mesh", "haproxy_host", "haproxy_direct"):
        rep.text(f"- {LABELS[p]}: " + "; ".join(
            f"{entry} -> {dict(sorted(t.items()))}" for entry, t in
            sorted(res["paths"][p]["split"].items(), key=lambda kv: plots._natural(kv[0]))))
    rep.figure(figs_lat, "Latency per path (new connection per request, open loop).")


def down_section(rep, summary: dict, res: dict, figs) -> None:
    d = res["down"]
    rep.heading(f"A node down: {summary['down']['node']}")
    rep.table(["frontend", "requests", "failed", "HAProxy marked it down after (s)",
               "window ends after (s)", "failed in window", "failed after window",
               "last failure after (s)"],
              [[pool, v["requests"], v["failed"], v["haproxy_marked_down_after_s"],
                v["window_end_after_s"], v["failed_in_window"], v["failed_after_window"],
                v["last_failure_after_s"]] for pool, v in d["pools"].items()])
    rep.text(f"The cluster (profile `{summary['parameters']['profile']}`) took the node's tasks "
             f"out of every node's balancer {d.get('cluster_removed_tasks_after_s')} s after the "
             "cut; the mesh frontend's window is the later of that and HAProxy's check.")
    rep.figure(figs, "Requests per 100 ms through each frontend, answered and failed; the cut, "
                     "HAProxy taking the node out, the cluster removing its tasks.")


def stages_figure(run_dir: Path, summary: dict, res: dict) -> list[Path]:
    import matplotlib.pyplot as plt
    pools = ("haproxy_mesh", "haproxy_host", "haproxy_direct")
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.5), sharey=True)
    tasks = sorted({t for p in pools for s in res["paths"][p]["split"].values() for t in s},
                   key=plots._natural)
    colours = plots.colours_for(tasks)
    for ax, p in zip(axes, pools):
        split = res["paths"][p]["split"]
        entries = sorted(split, key=plots._natural)
        bottom = [0] * len(entries)
        for t in tasks:
            ys = [split[e].get(t, 0) for e in entries]
            b = ax.bar(range(len(entries)), ys, bottom=bottom, color=colours[t], label=t)
            ax.bar_label(b, labels=[str(y) if y else "" for y in ys], label_type="center",
                         fontsize=7)
            bottom = [a + y for a, y in zip(bottom, ys)]
        ax.set_xticks(range(len(entries)), entries)
        ax.set_title(LABELS[p], fontsize=9)
        ax.set_xlabel("HAProxy's choice (server)")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("requests (new connections)")
    axes[-1].legend(title="task that answered", fontsize=8, loc="upper left",
                    bbox_to_anchor=(1, 1))
    fig.suptitle(plots.run_title(summary, "Two balancing stages"), fontsize=10)
    fig.tight_layout()
    return plots.save(fig, run_dir / "two_stages")


def down_figure(run_dir: Path, summary: dict, rows: list[dict], states: list[dict],
                events: list[dict]) -> list[Path]:
    import matplotlib.pyplot as plt
    cut = float(summary["down"]["cut_ts"])
    node = summary["down"]["node"]
    lost = {node} | {t for t, n in (summary.get("placement") or {}).items() if n == node}
    fig, axes = plt.subplots(3, 1, figsize=(10, 7), sharex=True)
    for ax, pool in zip(axes, ("mesh", "host", "direct")):
        rs = [r for r in rows if r["phase"] == "down" and r["path"] == f"haproxy_{pool}"]
        ts = {ok: [float(r["ts"]) - cut for r in rs if answered(r) == ok and r["ts"] not in ("", None)]
              for ok in (True, False)}
        every = ts[True] + ts[False]
        if every:
            lo = min(every)
            bins = [lo + 0.1 * k for k in range(int((max(every) - lo) / 0.1) + 2)]
            ax.hist([ts[True], ts[False]], bins=bins, stacked=True, alpha=0.85,
                    color=[plots.colour(2), plots.colour(3)], label=["answered", "failed"])
        ax.axvline(0, color="black", ls="--", lw=1, label=f"{node} down")
        for s in states:
            if s["pool"] == pool and s["server"] in lost and s["status"].startswith("DOWN"):
                ax.axvline(float(s["t"]) - cut, color=plots.colour(0), lw=1.5,
                           label=f"HAProxy: {s['server']} DOWN")
        for e in events:
            if pool == "mesh" and _leaves(e):
                ax.axvline(float(e["t"]) - cut, color=plots.colour(4), lw=1.5,
                           label="cluster: its tasks out of every node's balancer")
        ax.set_ylabel("requests / 100 ms")
        ax.set_title(f"frontend {pool} ({PORT_OF[pool]})", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1, 1))
    axes[-1].set_xlabel(f"request start, seconds after {node} went down")
    fig.suptitle(plots.run_title(summary, f"A node down behind HAProxy ({node})"), fontsize=10)
    fig.tight_layout()
    return plots.save(fig, run_dir / "node_down")
