"""report.md for a run folder, written from its files alone.

    rep = Report(run_dir, "Routing mesh: 3 nodes, 2 replicas")
    rep.numbers({"node1": [...], "node2": [...]}, unit="ms", what="request latency")
    rep.figure(plots.cdf(...), "Latency CDF per ingress node")
    rep.write()

The header says what ran (the command, every parameter, the datapath, the
commit, the host, start and end, the seed and the status), read from
``summary.json``; key numbers are given with their spread (median, p5-p95,
IQR, min-max, n), never as a bare mean.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterable, Sequence


def percentile(sorted_xs: Sequence[float], p: float) -> float:
    """Percentile ``p`` (0-100) of sorted values, linear interpolation (numpy's default)."""
    if not sorted_xs:
        raise ValueError("percentile of no values")
    k = (len(sorted_xs) - 1) * p / 100
    f = math.floor(k)
    c = min(f + 1, len(sorted_xs) - 1)
    return sorted_xs[f] + (sorted_xs[c] - sorted_xs[f]) * (k - f)


def spread(values: Iterable) -> dict:
    """n, median, p5, p25, p75, p95, min, max and mean of the numbers given
    (empty strings and None are skipped; no numbers gives n=0 and None elsewhere)."""
    xs = sorted(float(v) for v in values if v not in (None, ""))
    keys = ("median", "p5", "p25", "p75", "p95", "min", "max", "mean")
    if not xs:
        return {"n": 0, **dict.fromkeys(keys)}
    return {"n": len(xs), "median": percentile(xs, 50), "p5": percentile(xs, 5),
            "p25": percentile(xs, 25), "p75": percentile(xs, 75), "p95": percentile(xs, 95),
            "min": xs[0], "max": xs[-1], "mean": sum(xs) / len(xs)}


def fmt(x, digits: int = 3) -> str:
    """A number for a table: 3 significant digits, ints as ints, None as a dash."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    if isinstance(x, int) or float(x).is_integer() and abs(x) < 1e6:
        return str(int(x))
    return f"{x:.{digits}g}"


def _cell(x) -> str:
    text = fmt(x) if isinstance(x, (int, float)) or x is None else str(x)
    return text.replace("|", "\\|").replace("\n", " ")


def md_table(headers: Sequence[str], rows: Iterable[Sequence]) -> str:
    lines = ["| " + " | ".join(_cell(h) for h in headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


class Report:
    """Collects sections, then writes ``run_dir/report.md``."""

    def __init__(self, run_dir: str | Path, title: str, summary: dict | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.title = title
        self.summary = summary if summary is not None else json.loads(
            (self.run_dir / "summary.json").read_text())
        self.parts: list[str] = []

    # -- sections ---------------------------------------------------------------
    def text(self, markdown: str) -> "Report":
        self.parts.append(markdown.strip() + "\n")
        return self

    def heading(self, text: str) -> "Report":
        self.parts.append(f"## {text}\n")
        return self

    def table(self, headers: Sequence[str], rows: Iterable[Sequence]) -> "Report":
        self.parts.append(md_table(headers, rows))
        return self

    def numbers(self, series: dict[str, Iterable], unit: str = "ms", what: str = "",
                label: str = "") -> "Report":
        """A spread table: one row per series (n, median, p5-p95, IQR, min-max)."""
        rows = []
        for name, values in series.items():
            s = spread(values)
            rows.append([name, s["n"], s["median"], _range(s["p5"], s["p95"]),
                         _range(s["p25"], s["p75"]), _range(s["min"], s["max"])])
        if what:
            self.parts.append(f"**{what}** ({unit}):\n")
        self.table([label or "series", "n", f"median ({unit})", f"p5–p95 ({unit})",
                    f"IQR p25–p75 ({unit})", f"min–max ({unit})"], rows)
        return self

    def figure(self, paths: str | Path | Sequence, caption: str) -> "Report":
        """Embed a figure (the PNG; the PDF is linked). The files must exist."""
        paths = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
        png = next((p for p in paths if p.suffix == ".png"), paths[0].with_suffix(".png"))
        pdf = png.with_suffix(".pdf")
        for p in (png, pdf):
            if not (self.run_dir / p.name).is_file():
                raise FileNotFoundError(f"figure {p.name} is not in {self.run_dir}")
        self.parts.append(f"![{caption}]({png.name})\n\n*{caption}* ([PDF]({pdf.name}))\n")
        return self

    # -- output -------------------------------------------------------------------
    def header(self) -> str:
        s = self.summary
        lines = [f"# {self.title}\n",
                 f"{s.get('description', '')}\n" if s.get("description") else "",
                 md_table(["run", ""], [
                     ["experiment", s.get("experiment")],
                     ["command", f"`{s['command']}`" if s.get("command") else None],
                     ["status", s.get("status")],
                     ["datapath", f"{s.get('datapath')} OVS (requested: "
                                  f"{s.get('datapath_requested', '?')})"]
                     if not (s.get("engines") or {}).get("docker") else
                     ["engine", f"real Docker Swarm {s['engines']['docker'].get('version')} "
                                "(one dockerd per node, no OVS)"],
                     ["git commit", s.get("git_commit")],
                     ["host", _host(s.get("host"))],
                     ["started / finished (UTC)", f"{s.get('started')} / {s.get('finished')}"],
                     ["seed", s.get("seed")],
                 ]),
                 "**Parameters**\n",
                 md_table(["parameter", "value"],
                          [[k, v] for k, v in (s.get("parameters") or {}).items()])]
        vers = s.get("versions") or {}
        if vers:
            lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()) + ".\n")
        lines.append(stack_notes(s.get("stack") or {}))
        return "\n".join(x for x in lines if x)

    def write(self, name: str = "report.md") -> Path:
        path = self.run_dir / name
        path.write_text(self.header() + "\n" + "\n".join(self.parts))
        return path


def stack_notes(stack: dict) -> str:
    """Pending tasks and the stack's warnings, as docker stack deploy and service ps
    would have shown them ("" when there are none)."""
    out = []
    if stack.get("pending"):
        out.append("**Pending tasks** (no node can take them, as in Swarm):\n")
        out.append(md_table(["task", "reason"], [[p["task"], p["reason"]]
                                                 for p in stack["pending"]]))
    if stack.get("warnings"):
        out.append("**Stack warnings**:\n")
        out.append("".join(f"- {w}\n" for w in stack["warnings"]))
    return "\n".join(out)


def _range(a, b) -> str:
    return f"{fmt(a)}–{fmt(b)}" if a is not None else "–"


def _host(h) -> str:
    if not isinstance(h, dict):
        return str(h)
    return f"{h.get('hostname')} ({h.get('cpus')} CPUs, kernel {h.get('kernel')})"
