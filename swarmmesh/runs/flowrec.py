"""``--flows``: every node's conntrack events recorded for the length of a run, then
``flows.csv`` (:mod:`swarmmesh.trace.flowlog`) and its figure, entry node x task.

Each node's namespace gets ``net.netfilter.nf_conntrack_acct=1`` (byte and packet
counters) and a ``conntrack -E -o timestamp,id`` (an 8 MiB socket buffer) writing into
``conntrack/<node>.txt`` of the run folder.  The kernel gives counters only with an
entry's DESTROY event, and a closed connection waits 120 s in TIME_WAIT before it is
destroyed: at the end, ``conntrack -L -o id`` of every node (``conntrack/<node>.list.txt``)
gives the counters of the entries still there, then a flush reports them as DESTROY
events (a burst of a few hundred overflowed the event socket with the default buffer
here: 144 of 300 connections had counters from it alone).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from swarmmesh.runs import runfolder
from swarmmesh.trace import flowlog, parse

SETTLE = 0.3          # seconds for conntrack -E to subscribe, and to print the last events
BUFFER = 8 << 20      # bytes of the event socket's buffer


class FlowRecorder:
    """Records the conntrack events of every node of ``tb`` into ``run_dir``."""

    def __init__(self, tb, run_dir: Path) -> None:
        self.tb, self.run_dir = tb, Path(run_dir)
        self.procs: dict[str, subprocess.Popen] = {}
        self.files: dict[str, Path] = {}

    def start(self) -> "FlowRecorder":
        folder = self.run_dir / "conntrack"
        folder.mkdir(parents=True, exist_ok=True)
        for n in self.tb.cluster.nodes:
            host = self.tb.host(n.name)
            host.cmd("sysctl -qw net.netfilter.nf_conntrack_acct=1")
            self.files[n.name] = folder / f"{n.name}.txt"
            with open(self.files[n.name], "w") as out:
                proc = host.popen(["conntrack", "-E", "-o", "timestamp,id", "-b", str(BUFFER)],
                                  stdout=out, stderr=subprocess.STDOUT)
            self.tb.state.register(proc.pid, "conntrack")
            self.procs[n.name] = proc
        time.sleep(SETTLE)
        return self

    def stop(self) -> list[dict]:
        """List, flush, stop, write flows.csv; its rows."""
        time.sleep(SETTLE)
        listed = {}
        for name in self.procs:
            text = self.tb.host(name).cmd("conntrack -L -o id 2>/dev/null")
            (self.run_dir / "conntrack" / f"{name}.list.txt").write_text(text)
            listed[name] = parse.parse_conntrack(text)
            self.tb.host(name).cmd("conntrack -F 2>/dev/null")    # DESTROY events, counted
        time.sleep(SETTLE)
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        events = {n: parse.parse_conntrack(f.read_text()) for n, f in self.files.items()}
        rows = flowlog.flows(events, self.tb.cluster, listed=listed)
        runfolder.write_csv(self.run_dir / "flows.csv", rows, flowlog.COLUMNS)
        return rows


def plot(run_dir: Path) -> Path | None:
    """``flows.png``: entry node x task, the connections each node gave each task, drawn
    from flows.csv alone; None without flows.csv."""
    import csv

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(run_dir) / "flows.csv"
    if not path.exists():
        return None
    with open(path) as f:
        rows = list(csv.DictReader(f))
    nodes, tasks, counts = flowlog.matrix(rows)
    fig, ax = plt.subplots(figsize=(1.6 + 1.1 * max(len(tasks), 1), 1.4 + 0.6 * max(len(nodes), 1)))
    im = ax.imshow(counts or [[0]], cmap="Blues", aspect="auto", vmin=0)
    top = max((c for row in counts for c in row), default=0)
    for i, row in enumerate(counts):
        for j, c in enumerate(row):
            ax.text(j, i, str(c), ha="center", va="center", fontsize=10,
                    color="white" if c > top * 0.6 else "black")
    ax.set_xticks(range(len(tasks)), tasks)
    ax.set_yticks(range(len(nodes)), nodes)
    ax.set_xlabel("task picked (the DNAT's target)")
    ax.set_ylabel("entry node")
    ended = {e: sum(1 for r in rows if r["ended"] == e) for e in flowlog.ENDINGS}
    ax.set_title(f"{len(rows)} connections from conntrack: "
                 + ", ".join(f"{v} {k}" for k, v in ended.items() if v), fontsize=9.5)
    fig.colorbar(im, ax=ax, fraction=0.05, pad=0.03)
    fig.tight_layout()
    out = Path(run_dir) / "flows.png"
    fig.savefig(out, dpi=130)
    plt.close(fig)
    return out
