"""Report-quality figures, drawn from a run folder's CSV alone."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt      # noqa: E402

# One colour per task and one per node, the same in every figure.
_PALETTE = plt.get_cmap("tab10").colors


def colour(i: int):
    return _PALETTE[i % len(_PALETTE)]


def _natural(s: str):
    import re
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def _save(fig, path: Path) -> list[Path]:
    fig.tight_layout()
    out = [path.with_suffix(".png"), path.with_suffix(".pdf")]
    fig.savefig(out[0], dpi=150)
    fig.savefig(out[1])
    plt.close(fig)
    return out


def requests_per_task(rows: list[dict], title: str, path: Path) -> list[Path]:
    """Grouped bars: for each ingress node, how many requests each task got."""
    ok = [r for r in rows if r["ok"] in ("True", True)]
    nodes = sorted({r["ingress_node"] for r in rows}, key=_natural)
    tasks = sorted({r["task"] for r in ok}, key=_natural)
    counts = Counter((r["ingress_node"], r["task"]) for r in ok)
    failed = Counter(r["ingress_node"] for r in rows if r["ok"] not in ("True", True))
    fig, ax = plt.subplots(figsize=(max(8, 1.3 * len(nodes) + 3), 4.5))
    width = 0.8 / max(1, len(tasks))
    for j, t in enumerate(tasks):
        xs = [i + (j - (len(tasks) - 1) / 2) * width for i in range(len(nodes))]
        ys = [counts[(n, t)] for n in nodes]
        node_of = next((r["task_node"] for r in ok if r["task"] == t), "?")
        bars = ax.bar(xs, ys, width, label=f"{t} (on {node_of})", color=colour(j))
        ax.bar_label(bars, fontsize=7)
    labels = []
    task_nodes = {r["task_node"] for r in ok}
    for n in nodes:
        extra = "" if n in task_nodes else "\n(no replica)"
        if failed[n]:
            extra += f"\n{failed[n]} failed"
        labels.append(n + extra)
    ax.set_xticks(range(len(nodes)), labels)
    ax.set_xlabel("ingress node (the node the client connected to)")
    ax.set_ylabel("requests answered")
    ax.set_title(title, fontsize=10)
    ax.legend(title="task", fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))
    ax.set_ylim(0, max([1, *counts.values()]) * 1.18)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def latency_cdf(rows: list[dict], title: str, path: Path) -> list[Path]:
    """CDF of request latency per ingress node; solid = the task ran on the
    ingress node (local path), dashed = it ran on another node (overlay)."""
    series: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in rows:
        if r["ok"] in ("True", True) and r["latency_ms"] not in ("", None):
            where = "local" if r["task_node"] == r["ingress_node"] else "remote"
            series[(r["ingress_node"], where)].append(float(r["latency_ms"]))
    nodes = sorted({n for n, _ in series}, key=_natural)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, n in enumerate(nodes):
        for where, style in (("local", "-"), ("remote", "--")):
            xs = sorted(series.get((n, where), []))
            if not xs:
                continue
            ys = [(k + 1) / len(xs) for k in range(len(xs))]
            med = xs[len(xs) // 2]
            ax.step(xs, ys, where="post", linestyle=style, color=colour(i),
                    label=f"{n}, {where} task (n={len(xs)}, median {med:.2f} ms)")
    ax.set_xlabel("request latency, connect to last byte (ms)")
    ax.set_ylabel("fraction of requests")
    ax.set_ylim(0, 1.02)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)
