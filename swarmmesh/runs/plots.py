"""Report-quality figures, drawn from a run folder's CSV alone."""

from __future__ import annotations

import re
import statistics
import zlib
from collections import Counter, defaultdict
from pathlib import Path

import matplotlib
import matplotlib.ticker

from swarmmesh.runs.report import percentile

matplotlib.use("Agg")
import matplotlib.pyplot as plt      # noqa: E402

# One colour per task, per node and per path, the same in every figure and run:
# tab10's strong colours first, then tab20's light ones.
_PALETTE = plt.get_cmap("tab10").colors + plt.get_cmap("tab20").colors[1::2]


def colour(i: int):
    return _PALETTE[i % len(_PALETTE)]


def colour_for(name: str):
    """A stable colour for a name: ``app.3``/``node3``/``t3`` by their number
    (so task k and node k keep their colour across figures and runs), any
    other name by a fixed hash of it (not Python's salted ``hash``) into the
    ten strong colours.  Use :func:`colours_for` for a figure's set of names."""
    m = re.search(r"(\d+)$", name)
    if m:
        return colour(int(m.group(1)) - 1)
    return colour(zlib.crc32(name.encode()) % 10)


def colours_for(names) -> dict[str, tuple]:
    """Colours for the names in one figure: numbered names as :func:`colour_for`;
    other names from their hash, moved on to the next free colour when two of
    them would share one (deterministic: names are taken in sorted order)."""
    out: dict[str, tuple] = {}
    used: set[int] = set()
    for name in sorted(set(names), key=_natural):
        if re.search(r"\d+$", name):
            out[name] = colour_for(name)
            continue
        i = zlib.crc32(name.encode()) % 10
        for _ in range(len(_PALETTE)):
            if i not in used:
                break
            i = (i + 1) % len(_PALETTE)
        used.add(i)
        out[name] = colour(i)
    return out


def _natural(s: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def save(fig, path: Path) -> list[Path]:
    """Save as PNG (150 dpi) and PDF next to each other; return both paths."""
    fig.tight_layout()
    path = Path(path)
    out = [path.with_suffix(".png"), path.with_suffix(".pdf")]
    fig.savefig(out[0], dpi=150)
    fig.savefig(out[1])
    plt.close(fig)
    return out


_save = save


def run_title(summary: dict, what: str) -> str:
    """``what`` on the first line; the run's datapath (or real Swarm's version, with
    ``--engine docker``) and commit on the second."""
    docker = (summary.get("engines") or {}).get("docker")
    engine = (f"real Docker Swarm {docker.get('version', '?')}" if docker else
              f"{summary.get('datapath', '?')} OVS")
    return (f"{what}\n{engine}, commit {summary.get('git_commit', '?')}, "
            f"{summary.get('started', '')[:16].replace('T', ' ')} UTC")


def _values(xs) -> list[float]:
    return [float(x) for x in xs if x not in (None, "")]


def cdf(series: dict[str, list[float]], xlabel: str, title: str, path: Path, log: bool = False,
        styles: dict[str, dict] | None = None, colours: dict[str, object] | None = None,
        unit: str = "") -> list[Path]:
    """Empirical CDF per series; the legend gives n and the median."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    colours = {**colours_for(series), **(colours or {})}
    for label, xs in series.items():
        xs = sorted(_values(xs))
        if not xs:
            continue
        ys = [(k + 1) / len(xs) for k in range(len(xs))]
        kw = {"color": colours[label], **(styles or {}).get(label, {})}
        ax.step(xs, ys, where="post",
                label=f"{label} (n={len(xs)}, median {statistics.median(xs):.3g}{' ' + unit if unit else ''})",
                **kw)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction of samples (CDF)")
    ax.set_ylim(0, 1.02)
    if log:
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    return save(fig, path)


def boxplot(groups: dict[str, list[float]], ylabel: str, title: str, path: Path,
            colours: dict[str, object] | None = None, log: bool = False) -> list[Path]:
    """One box per group: box p25-p75, line = median, whiskers p5-p95, n under each label."""
    labels = [k for k, v in groups.items() if _values(v)]
    data = [_values(groups[k]) for k in labels]
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(labels) + 2), 4.5))
    bp = ax.boxplot(data, whis=(5, 95), widths=0.6, patch_artist=True, showfliers=False,
                    medianprops={"color": "black"})
    colours = {**colours_for(labels), **(colours or {})}
    for patch, label in zip(bp["boxes"], labels):
        patch.set_facecolor(colours[label])
        patch.set_alpha(0.75)
    ax.set_xticks(range(1, len(labels) + 1), [f"{k}\n(n={len(d)})" for k, d in zip(labels, data)],
                  fontsize=8)
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.set_title(title + "\n(box p25-p75, line median, whiskers p5-p95)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return save(fig, path)


def bars(groups: dict[str, list[float]], ylabel: str, title: str, path: Path,
         colours: dict[str, object] | None = None) -> list[Path]:
    """Median per group as a bar, with a p5-p95 error bar; the median is written on it."""
    labels = [k for k, v in groups.items() if _values(v)]
    meds, lo, hi = [], [], []
    for k in labels:
        xs = sorted(_values(groups[k]))
        med = statistics.median(xs)
        meds.append(med)
        lo.append(med - percentile(xs, 5))
        hi.append(percentile(xs, 95) - med)
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(labels) + 2), 4.5))
    colours = {**colours_for(labels), **(colours or {})}
    b = ax.bar(range(len(labels)), meds, yerr=[lo, hi], capsize=4,
               color=[colours[k] for k in labels], alpha=0.85)
    ax.bar_label(b, labels=[f"{m:.3g}" for m in meds], fontsize=7, label_type="center")
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title + "\n(bar median, error bar p5-p95)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return save(fig, path)


def counts(table: dict[str, dict[str, int]], xlabel: str, ylabel: str, title: str, path: Path,
           legend_title: str = "") -> list[Path]:
    """Grouped bars: for each group (x), one bar per label, coloured by label."""
    groups = sorted(table, key=_natural)
    labels = sorted({k for c in table.values() for k in c}, key=_natural)
    fig, ax = plt.subplots(figsize=(max(8, 1.3 * len(groups) + 3), 4.5))
    width = 0.8 / max(1, len(labels))
    colours = colours_for(labels)
    for j, label in enumerate(labels):
        xs = [i + (j - (len(labels) - 1) / 2) * width for i in range(len(groups))]
        b = ax.bar(xs, [table[g].get(label, 0) for g in groups], width, label=label,
                   color=colours[label])
        if len(labels) * len(groups) <= 60:
            ax.bar_label(b, fontsize=7)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(title=legend_title or None, fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))
    ax.grid(axis="y", alpha=0.3)
    return save(fig, path)


def requests_per_task(rows: list[dict], title: str, path: Path,
                      node_notes: dict[str, str] | None = None,
                      xlabel: str = "ingress node (the node the client connected to)"
                      ) -> list[Path]:
    """Grouped bars: for each ingress node, how many requests each task got.  Under each
    node's name: "(no replica)" and the failures, or ``node_notes[node]`` if given."""
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
        drawn = ax.bar(xs, ys, width, label=f"{t} (on {node_of})", color=colour_for(t))
        ax.bar_label(drawn, fontsize=7)
    labels = []
    task_nodes = {r["task_node"] for r in ok}
    for n in nodes:
        extra = "" if n in task_nodes else "\n(no replica)"
        if failed[n]:
            extra += f"\n{failed[n]} failed"
        labels.append(n + (extra if node_notes is None else node_notes.get(n, "")))
    ax.set_xticks(range(len(nodes)), labels)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("requests answered")
    ax.set_title(title, fontsize=10)
    ax.legend(title="task", fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))
    ax.set_ylim(0, max([1, *counts.values()]) * 1.18)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def latency_cdf(rows: list[dict], title: str, path: Path) -> list[Path]:
    """CDF of request latency per ingress node; solid = the task ran on the
    ingress node (local path), dashed = it ran on another node (overlay)."""
    series: dict[str, list[float]] = defaultdict(list)
    colours, styles = {}, {}
    for r in sorted(rows, key=lambda r: _natural(r["ingress_node"])):
        if r["ok"] in ("True", True) and r["latency_ms"] not in ("", None):
            where = "local" if r["task_node"] == r["ingress_node"] else "remote"
            label = f"{r['ingress_node']}, {where} task"
            series[label].append(float(r["latency_ms"]))
            colours[label] = colour_for(r["ingress_node"])
            styles[label] = {"linestyle": "-" if where == "local" else "--"}
    series = {k: series[k] for k in sorted(series, key=_natural)}
    return cdf(series, "request latency, connect to last byte (ms)", title, path, log=True,
               styles=styles, colours=colours, unit="ms")
