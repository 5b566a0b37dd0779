"""Traffic over time while the cluster changes: the lifecycle experiments' common part.

Three modules:

* **This one** (root, a running Testbed): the flags and the cluster every
  lifecycle experiment shares (:func:`add_arguments`, :func:`check_arguments`,
  :func:`cluster_for`), and the driver.  :class:`Load` starts the load
  generator (:mod:`swarmmesh.agents.loadgen`, an open loop of HTTP GETs on new
  connections, round-robin over every node) in the client host;
  :func:`run_variant` runs an
  :class:`~swarmmesh.lifecycle.orchestrator.Orchestrator` with the load's
  time origin, calls the experiment's script (kill, scale, update, node down
  ...) at its times, waits, and returns the rows, the events and the
  generator's figures; :func:`write_run` writes ``timeline.csv`` and
  ``events.csv``.
* :mod:`swarmmesh.runs.timeline_metrics` (no root): reading those files and the
  metrics (:func:`~swarmmesh.runs.timeline_metrics.failover_metrics`,
  :func:`~swarmmesh.runs.timeline_metrics.rates`, ...).
* :mod:`swarmmesh.runs.timeline_plots` (no root): the figures (requests/s per
  task over time, failed requests marked, vertical lines at events).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

from swarmmesh import agents
from swarmmesh.agents import loadgen
from swarmmesh.lifecycle import profiles
from swarmmesh.runs import engineargs, flags, stackargs

LOADGEN = loadgen.__name__
"""The load generator's module, run with ``python -m`` in the client host; also the
marker its process is registered under for cleanup."""

TIMELINE_COLUMNS = ["t_send", "ingress_node", "task", "ok", "latency_ms",
                    "task_node", "error", "variant", "seq", "late_ms", "client_port"]
"""The five timeline columns first; then the answering task's node, the error,
the variant of the run (profile or update order), the request number and how
late its start was against the schedule (ms)."""
EVENT_COLUMNS = ["t", "event", "detail", "variant"]


# ============================================================================
# Flags and the cluster shared by the lifecycle experiments
# ============================================================================

SERVICE = "app"
HEALTH_TEST = ["CMD", "curl", "-f", "http://localhost/health"]


def add_arguments(ap: argparse.ArgumentParser, profiles: Sequence[str] = ("swarm", "fast"),
                  default_profile: str = "fast", replicas: int = 3, rate: float = 200.0) -> None:
    """``--nodes --replicas --rate --duration --profile --timeout``."""
    stackargs.add_size_arguments(ap, nodes=3, replicas=replicas,
                                 replicas_help="replicas of service `app`")
    ap.add_argument("--rate", type=float, default=rate,
                    help="requests started per second, spread round-robin over every node, "
                         "each on a new connection")
    ap.add_argument("--duration", type=float, default=None,
                    help="seconds of load per run (default: long enough for the profile's "
                         "timings; see the experiment's description)")
    ap.add_argument("--profile", choices=list(profiles), default=None,
                    help="lifecycle timings: Swarm's own (health check every 30 s, 3 retries, "
                         "2 s convergence delay, node down after 15 s) or the fast profile's "
                         f"(0.1 s, 2 retries, 0.2 s, 1 s) (default: {default_profile}; "
                         "with --engine docker, swarm: the only one real Swarm has)")
    ap.add_argument("--timeout", type=float, default=3.0,
                    help="per-request timeout, seconds (a lost SYN is resent after 1 s)")


def check_arguments(args, max_rate: float = 2000.0, default_profile: str = "fast") -> None:
    """InvalidConfigError naming the flag, for the common flags; ``--profile`` unset is
    ``default_profile`` (swarm with ``--engine docker``)."""
    if args.profile is None:
        args.profile = ("swarm" if getattr(args, "engine", "emulated") == "docker"
                        else default_profile)
    flags.positive(args, "replicas")
    flags.number(args, "rate", most=max_rate, unit=" requests/s")
    if args.duration is not None:
        flags.seconds(args, "duration")
    flags.seconds(args, "timeout")


def cluster_for(args):
    """Service ``app`` published on 8000 -> 80, with the task server's health
    check and no timing keys (Swarm's defaults; the fast profile replaces them)."""
    from swarmmesh.model import Cluster
    stack = {"services": {SERVICE: {
        "deploy": {"replicas": args.replicas},
        "ports": [{"target": 80, "published": 8000, "protocol": "tcp", "mode": "ingress"}],
        "healthcheck": {"test": list(HEALTH_TEST)},
    }}}
    return Cluster.from_stack(stack, nodes=args.nodes)


def profile_facts(name: str) -> dict:
    """The profile's timings, for summary.json."""
    import dataclasses
    p = profiles.profile(name)
    return {**dataclasses.asdict(p), "detection_window_s": list(p.detection_window())}


# ============================================================================
# The driver (root, a running Testbed)
# ============================================================================

def targets_of(cluster, service: str) -> tuple[list[tuple[str, str]], int]:
    """Every node's underlay address, and the service's first TCP ingress port."""
    ports = [p for p in cluster.service(service).ingress_ports() if p.protocol == "tcp"]
    return [(n.name, str(n.underlay_ip)) for n in cluster.nodes], ports[0].published


class Load:
    """The generator running in a client host, as a subprocess."""

    def __init__(self, tb, csv_path: Path, rate: float, duration: float, t0: float,
                 timeout: float = 3.0, service: str = "app", client: str | None = None):
        self.tb, self.csv_path = tb, Path(csv_path)
        self.rate, self.duration, self.t0, self.timeout = rate, duration, t0, timeout
        self.client = client or tb.cluster.clients[0].name
        self.targets, self.port = targets_of(tb.cluster, service)
        self.proc: subprocess.Popen | None = None

    def command(self, csv_path: str | None = None, remote: bool = False) -> list[str]:
        """The generator's argv; it writes ``csv_path`` (default ``self.csv_path``).
        ``remote``: it runs on another server, so ``t0`` (this machine's monotonic clock)
        goes as the same instant on the wall clock."""
        start = (["--t0-epoch", repr(time.time() + (self.t0 - time.monotonic()))] if remote
                 else ["--t0", repr(self.t0)])
        cmd = [sys.executable, "-m", LOADGEN, "--port", str(self.port),
               "--rate", repr(self.rate), "--duration", repr(self.duration),
               *start, "--timeout", repr(self.timeout),
               "--csv", csv_path or str(self.csv_path)]
        for node, addr in self.targets:
            cmd += ["--target", f"{node}={addr}"]
        return cmd

    def start(self) -> "Load":
        h = self.tb.host(self.client)
        # a client on another server writes its CSV there; wait() fetches it back
        self.proc = h.popen(self.command(h.result_path(self.csv_path), h.remote),
                            env=agents.python_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.tb.state.register(self.proc.pid, LOADGEN)
        return self

    def wait(self) -> dict:
        """Until the generator is done; its statistics."""
        left = self.t0 + self.duration + self.timeout + 60 - time.monotonic()
        try:
            out, err = self.proc.communicate(timeout=max(left, 10))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise RuntimeError(f"load generator did not finish: {err[-500:]}") from None
        if self.proc.returncode != 0:
            raise RuntimeError(f"load generator exited {self.proc.returncode}: {err[-1000:]}")
        self.tb.host(self.client).fetch_result(self.csv_path)
        return json.loads(out.strip().splitlines()[-1])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def run_variant(tb, run_dir: Path, variant: str, profile: str, rate: float, duration: float,
                script: Callable, timeout: float = 3.0, service: str = "app",
                lead: float = 1.0, settle: float = 300.0, progress=None) -> dict:
    """One timed run on a live testbed: load through every node for
    ``duration`` s, an Orchestrator (``profile``) with the load's origin, and
    ``script(orch, at)`` driving it (``at(t)`` sleeps until ``t`` s after the
    origin).  ``lead``: seconds between starting the generator and its first
    request.  Returns ``{"rows", "events", "load", "t0"}`` (rows sorted by
    ``t_send``, with ``variant``)."""
    from swarmmesh.runs.runfolder import read_csv

    part = Path(run_dir) / f".timeline-{variant}.csv"
    t0 = time.monotonic() + lead
    load = Load(tb, part, rate, duration, t0, timeout, service)

    def at(t: float) -> None:
        wait = t0 + t - time.monotonic()
        if wait > 0:
            time.sleep(wait)

    load.start()
    try:
        with operations(tb, profile, t0) as orch:
            script(orch, at)
            if progress is not None:
                progress.note(f"{variant}: waiting for the load to end "
                              f"(t = {duration:.0f} s)")
            stats = load.wait()
            orch.settle(settle)
            events = [{"t": e.t, "event": e.event, "detail": e.detail, "variant": variant}
                      for e in orch.events]
            polls = [{**p.to_dict(), "variant": variant, "epoch0": orch.epoch0}
                     for p in getattr(orch, "polls", [])]
    finally:
        load.stop()
    rows = read_csv(part)
    part.unlink()
    for r in rows:
        r["variant"] = variant
    rows.sort(key=lambda r: float(r["t_send"]))
    return {"rows": rows, "events": events, "load": stats, "t0": t0, "swarm": polls}


SWARM_POLL_S = 0.5
"""``--engine docker``: seconds between two reads of Swarm during a run."""


def operations(tb, profile: str, t0: float):
    """What drives the cluster during a run: the emulated Orchestrator (``profile``), or on
    real Swarm a DockerSwarm that reads Swarm every SWARM_POLL_S and records what it did
    under the orchestrator's event names (Swarm's timings are its own)."""
    if getattr(tb, "engine", "emulated") == "docker":
        from swarmmesh.testbed.docker_swarm import DockerSwarm
        return DockerSwarm(tb, t0=t0, watch=SWARM_POLL_S)
    from swarmmesh.lifecycle.orchestrator import Orchestrator
    return Orchestrator(tb, profile=profile, t0=t0)


def run_variants(args, ctx, plans: Sequence[dict]) -> list[dict]:
    """Each plan (``variant``, ``profile``, ``duration``, ``script``) on a
    fresh testbed of :func:`cluster_for` (its logs in ``<run>/<variant>/``
    when there are several); writes ``timeline.csv`` and ``events.csv`` and
    records the generator's figures and the placements in ``ctx.summary``."""
    out = []
    facts = ctx.summary.setdefault("variants", {})
    for plan in plans:
        variant = plan["variant"]
        cluster = cluster_for(args)
        sub = ctx.run_dir / variant if len(plans) > 1 else ctx.run_dir
        with ctx.testbed(cluster, run_dir=sub, **engineargs.testbed_kwargs(args)) as tb:
            before = {t.name: t.node for t in cluster.tasks}
            ctx.progress.phase(f"sending ({variant})")
            ctx.progress.note(f"{variant}: {args.rate:g} requests/s for {plan['duration']:g} s "
                              f"through {len(cluster.nodes)} nodes, profile {plan['profile']}")
            res = run_variant(tb, ctx.run_dir, variant, plan["profile"], args.rate,
                              plan["duration"], plan["script"], args.timeout,
                              progress=ctx.progress)
            after = {t.name: t.node for t in cluster.tasks}
        facts[variant] = {"profile": plan["profile"], "duration_s": plan["duration"],
                          "load": res["load"], "placement_before": before,
                          "placement_after": after, "timings": profile_facts(plan["profile"]),
                          **plan.get("facts", {})}
        ctx.progress.note(f"{variant}: {res['load']['requests']} requests at "
                          f"{res['load']['achieved_rps']} /s achieved, "
                          f"{res['load']['failed']} failed")
        out.append(res)
    write_run(ctx.run_dir, out)
    ctx.summary["traffic"] = (f"{LOADGEN} in client c1: open loop, one thread with "
                              "non-blocking sockets (epoll), a new TCP connection per request, "
                              "round-robin over every node's published port")
    return out


def write_run(run_dir: Path, variants: Iterable[dict]) -> None:
    """``timeline.csv`` and ``events.csv`` from :func:`run_variant`'s results."""
    from swarmmesh.runs.runfolder import write_csv
    variants = list(variants)
    write_csv(Path(run_dir) / "timeline.csv", (r for v in variants for r in v["rows"]),
              TIMELINE_COLUMNS)
    write_csv(Path(run_dir) / "events.csv", (e for v in variants for e in v["events"]),
              EVENT_COLUMNS)
    polls = [p for v in variants for p in v.get("swarm", [])]
    if polls:                                   # real Swarm: each read, events.csv's source
        (Path(run_dir) / "swarm.jsonl").write_text("".join(json.dumps(p) + "\n" for p in polls))
