"""The lifecycle experiments' figures (no root): requests/s per task over time,
stacked, failed requests marked, vertical lines at the orchestrator's events.

:func:`timeline_figure` draws one panel per variant (from
:func:`swarmmesh.runs.timeline_metrics.load_panels`); :func:`draw_timeline` draws
one panel on a given matplotlib axis; :func:`bin_for` picks the bin width.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from swarmmesh.runs.timeline_metrics import achieved_rate, first_event, rates


MARK_STYLES = {
    "task killed": ("kill", "black", "-"),
    "health unhealthy": ("detected", "tab:orange", "--"),
    "weight 0": ("weight 0", "tab:purple", ":"),
    "convergence": ("converged", "tab:green", "-"),
    "task removed": ("removed", "tab:gray", "--"),
    "node down": ("node down", "black", "-"),
    "node marked down": ("marked down", "tab:orange", "--"),
    "scale": ("scale", "black", "-"),
    "update": ("update", "black", "-"),
    "update done": ("update done", "black", "-."),
    "task started": ("started", "tab:olive", ":"),
    "joins": ("joins LB", "tab:cyan", ":"),
}


def task_colours(names: Iterable[str]) -> dict[str, tuple]:
    """:func:`swarmmesh.runs.plots.colour_for` for each task (``app.3`` keeps its
    colour in every figure), but a task whose colour is already taken in
    this figure (``app.1.t4`` against ``app.4``) gets the next free one; plain
    slot names keep theirs first."""
    from swarmmesh.runs import plots
    out: dict[str, tuple] = {}
    used: list[tuple] = []
    palette = plots._PALETTE
    # plain slot names (app.4) first, replacements (app.1.t4) then
    for name in sorted(set(names), key=lambda n: (n.count("."), plots._natural(n))):
        c = plots.colour_for(name)
        if c in used:
            start = palette.index(c) if c in palette else 0
            for k in range(1, len(palette) + 1):
                cand = palette[(start + k) % len(palette)]
                if cand not in used:
                    c = cand
                    break
        used.append(c)
        out[name] = c
    return out


def marks_for(events: Sequence[dict], wanted: Sequence[str]) -> list[tuple[float, str]]:
    """(t, kind) for every event whose name is in ``wanted``; ``convergence``
    is the first "published" after each "weight 0"; ``joins`` every
    "published" that admits a task after its first healthy check."""
    out = []
    evs = sorted(events, key=lambda e: e["t"])
    for e in evs:
        if e["event"] in wanted:
            out.append((e["t"], e["event"]))
        if "joins" in wanted and e["event"] == "published" and "joins the load balancer" \
                in e["detail"]:
            out.append((e["t"], "joins"))
    if "convergence" in wanted:
        for e in evs:
            if e["event"] == "weight 0":
                task = e["detail"].split(":")[0]
                c = first_event(evs, "published", f"{task} weight 0", e["t"])
                if c:
                    out.append((c["t"], "convergence"))
    return sorted(out)


def draw_timeline(ax, rows: Sequence[dict], events: Sequence[dict], bin_s: float,
                  marks: Sequence[str] = (), xlim: tuple[float, float] | None = None,
                  colours: dict | None = None, title: str = "", legend: bool = True,
                  rug_max: int = 3000) -> None:
    """Requests/s answered per task over time, stacked (the top edge is the
    offered load; each band is one task's share), failed requests/s stacked
    on top in red (and each failed request as a tick on the time axis when
    there are at most ``rug_max``), vertical lines at the marked events."""
    sel = [r for r in rows if xlim is None or xlim[0] <= r["t_send"] < xlim[1]]
    start, end = (xlim if xlim is not None else (None, None))
    edges, per, failed = rates(sel, bin_s, start, end)
    nfail = sum(1 for r in sel if not r["ok"])
    if edges:
        _stack(ax, edges, bin_s, per, failed, nfail, colours or task_colours(per))
    if nfail and nfail <= rug_max:
        ax.plot([r["t_send"] for r in sel if not r["ok"]], [0] * nfail, "|",
                color="red", ms=10, mew=0.8, clip_on=False, zorder=5)
    _event_lines(ax, events, marks, xlim)
    ax.set_xlabel("time (s, from the first request)")
    ax.set_ylabel(f"requests/s ({bin_s:g} s bins)")
    if xlim is not None:
        ax.set_xlim(*xlim)
    elif edges:
        ax.set_xlim(edges[0], edges[-1] + bin_s)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=8.5)
    if legend:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def _stack(ax, edges: list[float], bin_s: float, per: dict[str, list[float]],
           failed: list[float], nfail: int, colours: dict) -> None:
    """The stacked bands: one per task, then the failed requests hatched in red."""
    from swarmmesh.runs import plots
    tasks = sorted(per, key=plots._natural)
    xs = edges + [edges[-1] + bin_s]
    ys = [per[t] + [per[t][-1]] for t in tasks]
    labels, cols = list(tasks), [colours.get(t) for t in tasks]
    if nfail:
        ys.append(failed + [failed[-1]])
        labels.append(f"failed ({nfail})")
        cols.append("red")
    polys = ax.stackplot(xs, *ys, step="post", labels=labels, colors=cols, alpha=0.85,
                         lw=0)
    if nfail:
        polys[-1].set_facecolor("white")
        polys[-1].set_hatch("xxxx")
        polys[-1].set_edgecolor("red")


def _event_lines(ax, events: Sequence[dict], marks: Sequence[str],
                 xlim: tuple[float, float] | None) -> None:
    """A vertical line at each marked event, one legend entry per kind."""
    seen = set()
    for t, kind in marks_for(events, marks):
        if xlim is not None and not xlim[0] <= t <= xlim[1]:
            continue
        label, colour, style = MARK_STYLES.get(kind, (kind, "black", ":"))
        ax.axvline(t, color=colour, ls=style, lw=1.3, alpha=0.95, zorder=4,
                   label=label if label not in seen else None)
        seen.add(label)


def bin_for(span: float, rate: float | None, tasks: int = 3, target_bins: int = 80) -> float:
    """A round bin width: about ``target_bins`` bins over ``span`` s, but wide
    enough for about 10 requests per task per bin at ``rate``."""
    b = auto_bin(span, target_bins)
    if rate:
        while b < 10 and rate * b / max(1, tasks) < 5:
            b = next((x for x in _BINS if x > b), 10.0)
    return b


_BINS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)


def auto_bin(span: float, target_bins: int = 80) -> float:
    """A round bin width giving about ``target_bins`` bins over ``span`` s."""
    for b in _BINS:
        if span / b <= target_bins:
            return b
    return 10.0


def timeline_figure(panels: Sequence[dict], path: Path, suptitle: str = "") -> list[Path]:
    """One panel per dict (keys of :func:`draw_timeline`: ``rows``, ``events``,
    ``marks``, ``title``, optional ``bin_s``, ``xlim``), stacked vertically,
    each with its own time axis; colours shared by every panel."""
    from swarmmesh.runs import plots
    import matplotlib.pyplot as plt
    names = {r["task"] for p in panels for r in p["rows"] if r["ok"]}
    colours = task_colours(names)
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 3.4 * len(panels) + 0.6),
                             squeeze=False)
    for ax, p in zip(axes[:, 0], panels):
        rows = p["rows"]
        xlim = p.get("xlim")
        span = (xlim[1] - xlim[0]) if xlim else (
            max(r["t_send"] for r in rows) - min(r["t_send"] for r in rows) if rows else 1.0)
        rate = achieved_rate(rows)
        first = min((r["t_send"] for r in rows), default=0.0)
        ntasks = max(1, len({r["task"] for r in rows if r["ok"] and r["t_send"] < first + 1}))
        draw_timeline(ax, rows, p["events"], p.get("bin_s") or bin_for(span, rate, ntasks),
                      p.get("marks", ()), xlim, colours, p.get("title", ""))
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return plots.save(fig, path)
