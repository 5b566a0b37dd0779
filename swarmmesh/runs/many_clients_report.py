"""``many_clients``' figures and report sections, from the run's CSVs and summary alone:
answers per task, fairness (Jain's index and max/mean per ingress node), latency, and
what was sent, answered and lost over time."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from swarmmesh.runs import plots


def fairness_figure(spread: dict, title: str, path: Path) -> list[Path]:
    """Jain's index and max/mean per ingress node and overall, side by side."""
    import matplotlib.pyplot as plt
    names = list(spread)
    cols = [plots.colour_for(n) if n != "all" else "0.35" for n in names]
    fig, (a, b) = plt.subplots(1, 2, figsize=(max(8, 1.2 * len(names) + 4), 4.2))
    for ax, key, label, ideal in ((a, "jain", "Jain's fairness index", 1.0),
                                  (b, "max_over_mean", "max / mean of the per-task counts", 1.0)):
        ys = [spread[n][key] or 0 for n in names]
        bars = ax.bar(range(len(names)), ys, color=cols, alpha=0.85)
        ax.bar_label(bars, labels=[f"{y:.4f}" if key == "jain" else f"{y:.3f}" for y in ys],
                     fontsize=7)
        ax.axhline(ideal, color="black", linestyle=":", linewidth=1, label="perfectly even")
        ax.set_xticks(range(len(names)),
                      [f"{n}\n(n={spread[n]['answered']})" for n in names], fontsize=8)
        ax.set_xlabel("ingress node (all = every request)")
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    a.set_ylim(min(0.9, min((spread[n]["jain"] or 0) for n in names) - 0.02), 1.005)
    b.set_ylim(0.95, max(1.1, max((spread[n]["max_over_mean"] or 0) for n in names) + 0.05))
    fig.suptitle(title, fontsize=10)
    return plots.save(fig, path)


def timeline_figure(rows: list[dict], title: str, path: Path, stalls: dict | None = None,
                    bin_s: float = 0.1) -> list[Path]:
    """Requests sent, answered and lost per time bin (by send time), as rates:
    shows whether the losses are spread or come in bursts; the stalls of the
    nodes' vswitchd main threads are shaded in the node's colour."""
    import matplotlib.pyplot as plt
    sent, ok = Counter(), Counter()
    for r in rows:
        if r["send_s"] not in ("", None):
            b = int(float(r["send_s"]) / bin_s)
            sent[b] += 1
            ok[b] += str(r["ok"]) == "True"
    bins = range(max(sent, default=-1) + 1)
    xs = [b * bin_s for b in bins]
    fig, ax = plt.subplots(figsize=(8, 4.2))
    ax.step(xs, [sent[b] / bin_s for b in bins], where="post", color="0.3",
            label="sent (offered)")
    ax.step(xs, [ok[b] / bin_s for b in bins], where="post", color=plots.colour(0),
            label="answered (by send time)")
    ax.bar(xs, [(sent[b] - ok[b]) / bin_s for b in bins], width=bin_s, align="edge",
           color=plots.colour(3), alpha=0.6, label="unanswered")
    end = len(bins) * bin_s
    for node, spans in (stalls or {}).items():
        first = True
        for st in spans:
            if st["thread"] == "main" and st["to_s"] is not None and st["to_s"] > 0 \
                    and st["from_s"] < end:
                ax.axvspan(max(0, st["from_s"]), min(end, st["to_s"]), color=plots.colour_for(node),
                           alpha=0.15, label=f"{node}'s vswitchd not scheduled" if first else None)
                first = False
    ax.set_xlabel("time since the first request (s)")
    ax.set_ylabel(f"requests per second (bins of {bin_s * 1000:.0f} ms)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return plots.save(fig, path)


def _rate(x) -> str:
    return f"{x:,.0f}" if isinstance(x, (int, float)) else "–"


def _fixed(x, digits: int) -> str:
    return f"{x:.{digits}f}" if isinstance(x, (int, float)) else "–"


def figures(run_dir: Path, s: dict, rows: list[dict], what: str) -> dict[str, list[Path]]:
    """Answers per task, fairness, latency CDF and losses over time."""
    return {
        "tasks": plots.requests_per_task(rows, plots.run_title(
            s, f"Many clients: answers per task and ingress node\n{what}"),
            run_dir / "per_task"),
        "fair": fairness_figure(s["spread"], plots.run_title(s, f"Many clients: fairness\n{what}"),
                                run_dir / "fairness"),
        "lat": plots.latency_cdf(rows, plots.run_title(
            s, f"Many clients: request to answer\n{what}"), run_dir / "latency_cdf"),
        "time": timeline_figure(rows, plots.run_title(
            s, f"Many clients: sent and answered over time\n{what}"), run_dir / "timeline",
            s.get("vswitchd_stalls")),
    }


def generator_text(s: dict) -> str:
    """The report's first paragraph: the generator's rates and capacity, what
    the capture and the datapaths lost, what the client's kernel sent."""
    gen = s["generator"]
    cap = s.get("generator_capacity")
    lines = [f"**Generator.** Offered {_rate(gen['offered_rate_pps'])} packets/s in the run "
             f"(asked: {gen['requested_rate_pps']}), {gen['sent']} sent, {gen['send_failed']} "
             f"send errors; achieved (answers over the first send to the last answer) "
             f"{_rate(gen['achieved_rate_pps'])} /s."]
    if cap:
        lines.append(f"Alone, to a sink, the same generator offers "
                     f"**{_rate(cap['offered_rate_pps'])} packets/s** "
                     f"({cap['sent']} frames, {cap['send_failed']} send errors): it is not the "
                     "bottleneck of this run.")
    lines.append(f"The client's capture socket dropped {gen.get('capture_kernel_drops', '?')} "
                 f"frames (receive buffer full); {gen.get('unmatched_replies', '?')} captured "
                 f"replies matched no request, {gen.get('duplicates', '?')} were repeats.")
    dpc = s.get("datapath_counters") or {}
    if dpc:
        lines.append("Nodes' userspace datapaths after the run (lookups hit / missed = upcalls / "
                     "lost upcalls, datapath flows): " + "; ".join(
                         f"{n} {v.get('hit')}/{v.get('missed')}/{v.get('lost')}, {v.get('flows')} flows"
                         for n, v in dpc.items()) + ".")
    k = s.get("client_kernel_sent_during_run", {})
    lines.append(f"The client's own kernel sent {k.get('tcp_out_rsts', '?')} TCP RSTs and "
                 f"{k.get('icmp_out_msgs', '?')} ICMP messages during the run (it must send none).")
    return " ".join(lines)


def spread_section(rep, spread: dict, figs: dict) -> None:
    rep.heading("Per-task spread and fairness")
    tasks = list(spread["all"]["per_task"])
    rep.table(["ingress node", "requests", "answered", "lost", *tasks, "min–max",
               "Jain's index", "max/mean"],
              [[n, v["requests"], v["answered"], f"{v['lost']} ({v['loss']:.1%})",
                *[v["per_task"][t] for t in tasks], f"{v['min']}–{v['max']}",
                _fixed(v["jain"], 6), _fixed(v["max_over_mean"], 3)]
               for n, v in spread.items()])
    rep.text("Jain's index is (Σx)²/(n·Σx²) over the answered requests per task (1 = even, "
             f"1/{len(tasks)} = one task takes all); unanswered requests are not attributed "
             "to any task, so losses concentrated on one path show as unfairness too.")
    rep.figure(figs["tasks"], "Answers per task for each ingress node (colour = task)")
    rep.figure(figs["fair"], "Jain's index and max/mean, per ingress node and overall")


def losses_section(rep, s: dict, fig_time: list[Path]) -> None:
    rep.heading("Losses over time")
    rep.text("Every request is one packet with no retransmission (open loop), so a packet "
             "lost anywhere (the client's capture, the nodes' kernels, a vswitchd busy with "
             "upcalls for new flows) is a lost request. By the time it was sent:")
    stalled = [(n, st) for n, sts in (s.get("vswitchd_stalls") or {}).items() for st in sts
               if st["thread"] == "main" and (st["to_s"] is None or st["to_s"] > 0)]
    if stalled:
        rep.text("The nodes' vswitchd main threads (which forward the netdev datapath) logged "
                 "stalls: not scheduled, or held up by a revalidator thread (this machine's "
                 "2 cores are shared): " +
                 "; ".join(f"{n} {st['ms']} ms at {st['from_s']}–{st['to_s']} s"
                           + (f" (waiting for {st['waiting_for']})" if st["waiting_for"] else "")
                           for n, st in stalled)
                 + ". Losses inside those windows are the host's, not the mesh's.")
    else:
        rep.text("No vswitchd main thread logged a stall (1 s or more) during the run.")
    rep.figure(fig_time, "Requests sent, answered and unanswered per 100 ms, by send time "
                         "(shaded: a node's vswitchd not scheduled)")


def latency_section(rep, rows: list[dict], fig_lat: list[Path]) -> None:
    lat = {}
    for r in rows:
        if str(r["ok"]) == "True" and r["latency_ms"]:
            where = "local" if r["task_node"] == r["ingress_node"] else "remote"
            lat.setdefault(f"{r['ingress_node']}, {where} task", []).append(r["latency_ms"])
    rep.heading("Request to answer")
    rep.numbers(dict(sorted(lat.items())), unit="ms",
                what="request sent to its first answer captured (kernel timestamp; "
                     "TCP: the SYN-ACK)",
                label="ingress node, task")
    rep.figure(fig_lat, "Latency CDF per ingress node; solid = task on the ingress node")
