"""A load sweep over several concurrencies (ab and wrk).

Per path and concurrency C, from one client:

* ``ab -c C``: a new TCP connection per request (no ``-k``), so the rate is new
  connections per second: what the mesh's per-connection work (the kernel's pick and NAT,
  the switches' first packets) costs as the client keeps more of them in flight;
* ``wrk -c C``: C keep-alive connections for a few seconds, so the rate is requests per
  second on connections that are already up: the per-packet cost alone.

Each is a ratio to the direct path (a task, no mesh) at the same tool, concurrency and
repeat, so a run's own noise cancels.  Pure functions of the rows (:func:`parse_concurrencies`,
:func:`table`) apart from :func:`measure`, which runs the tools, and :func:`figure`.
"""

from __future__ import annotations

from typing import Callable

from swarmmesh.model import InvalidConfigError
from swarmmesh.runs import plots, report

COLUMNS = ["repeat", "path", "target", "tool", "concurrency", "rps", "p50_ms", "p99_ms",
           "requests", "errors", "load_1min", "error"]
TOOLS = {"ab": "ab: a new connection per request (connections/s)",
         "wrk": "wrk: keep-alive connections (requests/s)"}
MAX_CONCURRENCY = 256


def parse_concurrencies(text: str, field: str = "load-concurrency") -> list[int]:
    """``"1,4,16"`` -> ``[1, 4, 16]``: distinct, ascending, each 1..256."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or not 1 <= int(part) <= MAX_CONCURRENCY:
            raise InvalidConfigError(field, f"a comma-separated list of whole numbers 1.."
                                            f"{MAX_CONCURRENCY}, got {text!r}")
        out.append(int(part))
    if len(set(out)) != len(out):
        raise InvalidConfigError(field, f"repeats a value: {text!r}")
    return sorted(out)


def row(repeat: int, path: str, target: str, tool: str, concurrency: int, load: float,
        data: dict | None = None, error: str = "") -> dict:
    """One tool run as a row of ``load.csv`` (ab's or wrk's parsed output)."""
    d = data or {}
    pct = d.get("percentiles_ms") or {}
    if tool == "ab":
        requests, errors = d.get("complete"), d.get("failed")
    else:
        requests = d.get("requests")
        errors = (sum((d.get("socket_errors") or {}).values()) + d.get("non_2xx", 0)
                  if d else None)
    return {"repeat": repeat, "path": path, "target": target, "tool": tool,
            "concurrency": concurrency, "rps": d.get("rps", ""),
            "p50_ms": pct.get(50, pct.get(50.0, "")), "p99_ms": pct.get(99, pct.get(99.0, "")),
            "requests": "" if requests is None else requests,
            "errors": "" if errors is None else errors, "load_1min": load, "error": error}


def measure(client, targets: dict, paths: tuple[str, ...], concurrencies: list[int],
            repeats: int, ab_requests: int, seconds: float, timeout: float, register,
            progress, load: Callable[[], float]) -> list[dict]:
    """``repeats`` rounds over ``paths`` in a rotated order; in each, every concurrency
    with ab then wrk.  ``targets[path](repeat)`` gives (label, ip, port) as in
    mesh_overhead.  A tool that fails is a row with its error (the run goes on)."""
    from swarmmesh.traffic import tools
    rows: list[dict] = []
    progress.phase("load sweep (ab and wrk)", total=repeats * len(paths) * len(concurrencies))
    for r in range(repeats):
        order = paths[r % len(paths):] + paths[:r % len(paths)]
        for path in order:
            name, ip, port = targets[path](r)
            url = f"http://{ip}:{port}/"
            for c in concurrencies:
                runs = (("ab", lambda: tools.ab(client, url, max(ab_requests, c), c,
                                                timeout=timeout, register=register)),
                        ("wrk", lambda: tools.wrk(client, url, duration=seconds,
                                                  connections=c, threads=1,
                                                  timeout=timeout, register=register)))
                for tool, call in runs:
                    try:
                        res = call()
                        rows.append(row(r, path, name, tool, c, load(), res.data))
                    except (tools.ToolFailed, OSError, ValueError) as e:
                        rows.append(row(r, path, name, tool, c, load(), error=str(e)[:300]))
                progress.advance()
    return rows


def _num(x) -> float | None:
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def table(rows: list[dict], baseline: str = "direct") -> list[dict]:
    """Per tool, concurrency and path: the median rate over repeats and its ratio to the
    baseline path's median at the same tool and concurrency, with the per-repeat ratios'
    min and max; the median p99 latency.  Rows as read back from CSV (text) or as run."""
    out = []
    keys = sorted({(r["tool"], int(r["concurrency"])) for r in rows},
                  key=lambda k: (list(TOOLS).index(k[0]) if k[0] in TOOLS else 9, k[1]))
    paths = list(dict.fromkeys(r["path"] for r in rows))
    for tool, c in keys:
        mine = [r for r in rows if r["tool"] == tool and int(r["concurrency"]) == c]
        by = {(r["path"], int(r["repeat"])): _num(r["rps"]) for r in mine}
        base = report.spread([v for (p, _), v in by.items() if p == baseline])["median"]
        for path in paths:
            vals = [v for (p, _), v in by.items() if p == path and v is not None]
            per = [by[(path, rep)] / by[(baseline, rep)] for (p, rep) in by
                   if p == path and by[(path, rep)] is not None
                   and by.get((baseline, rep)) not in (None, 0)]
            med = report.spread(vals)["median"]
            p99 = report.spread(r["p99_ms"] for r in mine if r["path"] == path)["median"]
            out.append({"tool": tool, "concurrency": c, "path": path, "rps": med,
                        "ratio": med / base if med is not None and base else None,
                        "ratio_min": min(per) if per else None,
                        "ratio_max": max(per) if per else None, "n": len(vals),
                        "p99_ms": p99,
                        "errors": sum(int(_num(r["errors"]) or 0) for r in mine
                                      if r["path"] == path),
                        "failed_runs": sum(1 for r in mine if r["path"] == path and r["error"])})
    return out


def figure(rows: list[dict], labels: dict[str, str], title: str) -> "object":
    """Two panels, ab and wrk: the median rate against the concurrency (log 2 axis), one
    line per path, a dot per repeat.  Returns the matplotlib figure (saving is the
    caller's)."""
    import matplotlib.pyplot as plt
    tab = table(rows)
    tools_here = [t for t in TOOLS if any(r["tool"] == t for r in tab)]
    fig, axes = plt.subplots(1, len(tools_here), figsize=(5.2 * len(tools_here), 4.2),
                             squeeze=False)
    paths = list(dict.fromkeys(r["path"] for r in rows))
    for ax, tool in zip(axes[0], tools_here):
        for i, path in enumerate(paths):
            pts = sorted((r["concurrency"], r["rps"]) for r in tab
                         if r["tool"] == tool and r["path"] == path and r["rps"] is not None)
            if not pts:
                continue
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=plots.colour(i),
                    label=labels.get(path, path))
            dots = [(int(r["concurrency"]), _num(r["rps"])) for r in rows
                    if r["tool"] == tool and r["path"] == path and _num(r["rps"]) is not None]
            ax.scatter([d[0] for d in dots], [d[1] for d in dots], color=plots.colour(i), s=10,
                       alpha=0.5)
        ax.set_xscale("log", base=2)
        concs = sorted({r["concurrency"] for r in tab})
        ax.set_xticks(concs, [str(c) for c in concs])
        ax.set_ylim(bottom=0)
        ax.set_xlabel("concurrency (connections in flight)")
        ax.set_ylabel("connections/s" if tool == "ab" else "requests/s")
        ax.set_title(TOOLS[tool], fontsize=9)
        ax.grid(alpha=0.3)
        if ax.get_lines():
            ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return fig
