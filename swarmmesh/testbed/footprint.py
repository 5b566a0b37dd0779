"""What a cluster costs the machine: build and teardown time, memory per process kind,
and the same number of plain Mininet hosts as the baseline.

* :func:`bare_mininet` builds, with Mininet alone, the hosts and links a cluster of
  ``nodes`` x ``tasks_per_node`` has (the underlay, the nodes, the tasks, the client:
  plain ``Host`` and plain veth links, no switch, no process of ours), and tears it down
  with Mininet's own ``net.stop()``: what the same namespaces and veths cost with
  nothing of ours in them.  Its shells and links are recorded in a run state, so a
  killed run leaves nothing behind (``swarmmesh clean``).
* :func:`testbed_processes` lists a running Testbed's processes by kind (a node's
  vswitchd, ovsdb-server, embedded DNS and shell; a task's server and shell; the
  controller; the other shells), :func:`read_memory` reads each one's PSS and RSS from
  ``/proc/PID/smaps_rollup``, and :func:`sum_memory` adds them up per kind, per node
  and per task.  PSS shares each library page among the processes that map it (the
  sum is what the processes cost together); RSS counts shared pages in every process.

The parsers and sums are pure (unit-tested without root).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

# Process kinds, and whether each is counted per node, per task or once per run.
KINDS = {
    "ovs-vswitchd": "node", "ovsdb-server": "node", "dns": "node", "node shell": "node",
    "task server": "task", "task shell": "task",
    "controller": "run", "fork server": "run", "other shell": "run",
}


@dataclass
class Proc:
    kind: str
    pid: int
    host: str = ""


def parse_smaps_rollup(text: str) -> dict[str, int]:
    """``/proc/PID/smaps_rollup`` -> ``{"pss_kb": .., "rss_kb": ..}`` (kB; 0 if absent)."""
    out = {"pss_kb": 0, "rss_kb": 0}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        field = {"Pss": "pss_kb", "Rss": "rss_kb"}.get(key.strip())
        if field and rest.split():
            out[field] = int(rest.split()[0])
    return out


def read_memory(pid: int) -> dict[str, int] | None:
    """PSS and RSS of a live process in kB, or None if it is gone."""
    try:
        return parse_smaps_rollup(Path(f"/proc/{pid}/smaps_rollup").read_text())
    except OSError:
        return None


def sum_memory(rows: list[dict], nodes: int, tasks: int) -> dict:
    """Rows of ``{"kind", "pss_kb", "rss_kb"}`` (one per process) -> per kind
    (processes, PSS and RSS summed, in MiB), and per node / per task / per run: the
    sums of the kinds counted that way (:data:`KINDS`) over the nodes' or tasks' count.
    An unknown kind is an error (a process counted nowhere would go unnoticed)."""
    kinds: dict[str, dict] = {}
    for r in rows:
        if r["kind"] not in KINDS:
            raise ValueError(f"unknown process kind {r['kind']!r}")
        k = kinds.setdefault(r["kind"], {"per": KINDS[r["kind"]], "processes": 0,
                                          "pss_mib": 0.0, "rss_mib": 0.0})
        k["processes"] += 1
        k["pss_mib"] += float(r["pss_kb"]) / 1024
        k["rss_mib"] += float(r["rss_kb"]) / 1024
    out: dict = {"kinds": kinds}
    for per, count in (("node", nodes), ("task", tasks), ("run", 1)):
        ks = [k for k in kinds.values() if k["per"] == per]
        out[f"per_{per}"] = {
            "processes": sum(k["processes"] for k in ks) / count if count else None,
            "pss_mib": sum(k["pss_mib"] for k in ks) / count if count else None,
            "rss_mib": sum(k["rss_mib"] for k in ks) / count if count else None}
    out["total_pss_mib"] = sum(k["pss_mib"] for k in kinds.values())
    out["total_rss_mib"] = sum(k["rss_mib"] for k in kinds.values())
    return out


def _pidfile(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def testbed_processes(tb) -> list[Proc]:
    """Every long-lived process of a running Testbed (on this machine), by kind."""
    from swarmmesh.testbed.topology import SwarmNode, SwarmTask
    procs: list[Proc] = []
    for host in tb.net.hosts:
        if isinstance(host, SwarmNode):
            procs.append(Proc("node shell", host.pid, host.name))
            for name in ("ovs-vswitchd", "ovsdb-server"):
                pid = _pidfile(host.ovs_dir / f"{name}.pid") if host.ovs_dir else None
                if pid:
                    procs.append(Proc(name, pid, host.name))
            if getattr(host, "dns", None) is not None:
                procs.append(Proc("dns", host.dns.pid, host.name))
        elif isinstance(host, SwarmTask):
            procs.append(Proc("task shell", host.pid, host.name))
            if host.server is not None:
                procs.append(Proc("task server", host.server.pid, host.name))
        else:
            procs.append(Proc("other shell", host.pid, host.name))
    if tb.controller is not None:
        procs.append(Proc("controller", tb.controller.pid, "controller"))
    forks = getattr(tb.state, "forks", None)
    if forks is not None and forks.proc is not None:
        procs.append(Proc("fork server", forks.proc.pid, "fork server"))
    return procs


def measure_memory(procs: list[Proc]) -> list[dict]:
    """One row per process still alive: kind, host, pid, PSS and RSS (kB)."""
    rows = []
    for p in procs:
        mem = read_memory(p.pid)
        if mem is not None:
            rows.append({"kind": p.kind, "host": p.host, "pid": p.pid, **mem})
    return rows


# -- the baseline: Mininet alone ---------------------------------------------------
def bare_topo(nodes: int, tasks_per_node: int, clients: int = 1, prefix: str = "b"):
    """A Mininet ``Topo`` with the hosts and links of a ``nodes`` x ``tasks_per_node``
    cluster: one underlay host linked to every node and client, every task linked to
    its node.  Plain hosts, plain links; names start with ``prefix`` (no clash with a
    testbed's)."""
    from mininet.topo import Topo
    topo = Topo()
    ul = topo.addHost(f"{prefix}ul")
    for n in range(1, nodes + 1):
        node = topo.addHost(f"{prefix}n{n}")
        topo.addLink(node, ul)
        for t in range(1, tasks_per_node + 1):
            topo.addLink(topo.addHost(f"{prefix}n{n}t{t}"), node)
    for c in range(1, clients + 1):
        topo.addLink(topo.addHost(f"{prefix}c{c}"), ul)
    return topo


def planned_links(topo) -> list[str]:
    """The interface names Mininet will make for ``topo`` (its default naming)."""
    return [name for a, b, info in topo.links(withInfo=True)
            for name in (f"{a}-eth{info['port1']}", f"{b}-eth{info['port2']}")]


def bare_mininet(nodes: int, tasks_per_node: int, state, clients: int = 1,
                 measure: bool = False) -> dict:
    """Build the bare topology with Mininet, then stop it with Mininet's own
    ``net.stop()``; the seconds of each, the host and link counts, and with
    ``measure`` the memory of its shells (rows as :func:`measure_memory`)."""
    from mininet.net import Mininet
    from mininet.node import Host
    topo = bare_topo(nodes, tasks_per_node, clients)
    state.register_links(planned_links(topo))

    class _BareHost(Host):               # recorded for cleanup, nothing else
        def __init__(self, name, **params):
            super().__init__(name, **params)
            state.register(self.pid, f"mininet:{name}")

    t0 = time.monotonic()
    net = Mininet(topo=topo, host=_BareHost, controller=None, build=False,
                  autoSetMacs=False, waitConnected=False)
    try:
        net.build()
        net.start()
        up = time.monotonic() - t0
        rows = measure_memory([Proc("other shell", h.pid, h.name) for h in net.hosts]) \
            if measure else []
    finally:
        t1 = time.monotonic()
        net.stop()
        down = time.monotonic() - t1
    return {"up_s": up, "down_s": down, "hosts": len(topo.hosts()),
            "links": len(topo.links()), "memory": rows}


def load_average() -> float:
    """The 1-minute load average (what a quiet machine shows before a measurement)."""
    return os.getloadavg()[0]


def parse_cpu_times(text: str) -> tuple[int, int]:
    """``/proc/stat`` -> (idle + iowait jiffies, all jiffies) of the ``cpu`` line."""
    for line in text.splitlines():
        if line.startswith("cpu "):
            f = [int(x) for x in line.split()[1:]]
            return f[3] + (f[4] if len(f) > 4 else 0), sum(f[:8])
    raise ValueError("no cpu line in /proc/stat")


def idle_fraction(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The share of CPU time idle between two :func:`parse_cpu_times` readings."""
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total > 0 else 1.0


QUIET_WINDOW, QUIET_WINDOWS = 1.0, 2
QUIET_CHECK_S = QUIET_WINDOW * QUIET_WINDOWS     # the least wait_quiet() takes


def wait_quiet(idle: float = 0.9, window: float = QUIET_WINDOW, windows: int = QUIET_WINDOWS,
               timeout: float = 120.0) -> float:
    """Until the CPUs were at least ``idle`` idle for ``windows`` windows in a row (the
    previous build's processes gone and the kernel done destroying its namespaces, which
    it does after the last process exits); the seconds waited (``timeout`` at most), the
    check's own windows included: with the defaults 2.0 means idle at once, and the
    machine went idle ``result - QUIET_CHECK_S`` seconds after the call (1 s resolution)."""
    t0 = time.monotonic()
    quiet = 0
    prev = parse_cpu_times(Path("/proc/stat").read_text())
    while quiet < windows and time.monotonic() - t0 < timeout:
        time.sleep(window)
        cur = parse_cpu_times(Path("/proc/stat").read_text())
        quiet = quiet + 1 if idle_fraction(prev, cur) >= idle else 0
        prev = cur
    return time.monotonic() - t0
