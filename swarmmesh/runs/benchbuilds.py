"""The benchmark's build part: every size built by this testbed and by bare Mininet (the
baseline: the same hosts and links), build and teardown timed, the memory measured after
each build, the machine left to go idle in between.  Rows for ``builds.csv`` and
``memory.csv``."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from swarmmesh.model import Cluster
from swarmmesh.runs import flags, report
from swarmmesh.runs.benchtables import BUILDS


def load_1min() -> float:
    """The machine's load average over the last minute (recorded with every measurement)."""
    return round(os.getloadavg()[0], 2)


# Testbed progress messages -> the build step they start.
STEPS = {"starting the fork server": "fork server",
         "starting controller": "controller",
         "building network": "hosts, links, kernels, OVS, DNS",
         "waiting for the task servers": "task servers",
         "waiting for the controller to program every node": "switches programmed, DNS"}


class _Steps:
    """The Testbed's progress messages, timed: the seconds of each build step."""

    def __init__(self, progress) -> None:
        self.progress, self.marks = progress, []

    def __call__(self, msg: str) -> None:
        self.marks.append((msg, time.monotonic()))

    def durations(self, end: float) -> dict[str, float]:
        out: dict[str, float] = {}
        for (msg, t), nxt in zip(self.marks, [m[1] for m in self.marks[1:]] + [end]):
            key = STEPS.get(msg, msg)
            out[key] = round(out.get(key, 0.0) + nxt - t, 3)
        return out


def measure_builds(sizes, args, ctx) -> tuple[list[dict], list[dict]]:
    """Every size, ``--build-repeats`` times: the testbed's build and teardown and bare
    Mininet's (the two alternate which goes first), and the memory after each build."""
    from swarmmesh.testbed import footprint
    from swarmmesh.testbed.runtime import RunState
    builds: list[dict] = []
    memory: list[dict] = []
    state = RunState(f"benchmark-bare-{os.getpid()}")
    ctx.progress.phase("builds", total=len(sizes) * args.build_repeats * 2)
    try:
        for r in range(args.build_repeats):
            for n, t in sizes:
                kinds = ("mininet", "swarmmesh") if r % 2 == 0 else ("swarmmesh", "mininet")
                for kind in kinds:
                    ctx.progress.note(f"repeat {r + 1}: {flags.size_tag(n, t)} ({n * t} tasks), "
                                      f"{BUILDS[kind]}, load {load_1min()}")
                    # each build starts on an idle machine
                    footprint.wait_quiet(timeout=args.settle_timeout)
                    row, mem = (_bare(n, t, state) if kind == "mininet"
                                else _ours(n, t, args, ctx))
                    # The kernel destroys the namespaces after the last process exits: the
                    # teardown's real end is when the machine is idle again.
                    row["idle_after_s"] = round(footprint.wait_quiet(
                        timeout=args.settle_timeout), 1) if args.settle_timeout else ""
                    row.update(repeat=r, size=flags.size_tag(n, t), nodes=n, tasks_per_node=t,
                               tasks=n * t, build=kind)
                    builds.append(row)
                    memory += [{"size": flags.size_tag(n, t), "repeat": r, "build": kind, **m}
                               for m in mem]
                    ctx.progress.note(f"  up {report.fmt(row['up_s'])} s, down "
                                      f"{report.fmt(row['down_s'])} s, idle again "
                                      f"{row['idle_after_s']} s later {row['error']}")
                    ctx.progress.advance()
    finally:
        state.clean()
    return builds, memory


def _bare(n: int, t: int, state) -> tuple[dict, list[dict]]:
    from swarmmesh.testbed import footprint
    load = load_1min()
    try:
        res = footprint.bare_mininet(n, t, state, measure=True)
    except Exception as e:                                    # noqa: BLE001 - recorded
        state.clean()
        return {"up_s": "", "down_s": "", "hosts": "", "load_1min": load, "phases": "",
                "error": f"{type(e).__name__}: {e}"[:300]}, []
    return ({"up_s": round(res["up_s"], 3), "down_s": round(res["down_s"], 3),
             "hosts": res["hosts"], "load_1min": load, "phases": "", "error": ""},
            [{"kind": "other shell", **{k: m[k] for k in ("host", "pid", "pss_kb", "rss_kb")}}
             for m in res["memory"]])


def _ours(n: int, t: int, args, ctx) -> tuple[dict, list[dict]]:
    from swarmmesh.testbed import footprint
    from swarmmesh.testbed.testbed import Testbed
    cluster = Cluster.quick(nodes=n, replicas=n * t, ingress_subnet=args.ingress_subnet)
    hosts = 1 + n + len(cluster.clients) + len(cluster.tasks)
    load = load_1min()
    steps = _Steps(ctx.progress)
    row = {"hosts": hosts, "load_1min": load, "up_s": "", "down_s": "", "phases": "",
           "error": ""}
    mem: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="swarmmesh-benchmark-") as tmp:
        tb = Testbed(cluster, Path(tmp), datapath=args.datapath, progress=steps,
                     build_timeout=args.ready_timeout)
        t0 = time.monotonic()
        try:
            tb.__enter__()
        except Exception as e:                                # noqa: BLE001 - recorded
            row["error"] = f"{type(e).__name__}: {e}"[:300]
            return row, mem
        up = time.monotonic()
        ctx.summary["datapath"] = tb.datapath         # also when the builds run alone
        row["up_s"] = round(up - t0, 3)
        row["phases"] = json.dumps(steps.durations(up))
        try:
            mem = footprint.measure_memory(footprint.testbed_processes(tb))
        finally:
            t1 = time.monotonic()
            tb.__exit__(None, None, None)
            row["down_s"] = round(time.monotonic() - t1, 3)
    return row, mem
