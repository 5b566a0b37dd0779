#!/usr/bin/env python3
"""Conformance: every behaviour the testbed claims, measured on real Swarm and on the
emulation in one run, side by side, with a verdict.

One cluster (3 nodes, the stack ``shop``: service ``web``, 2 replicas, 8000 -> 80 over
TCP and UDP), built once per engine on the same Mininet network with the same client:

* ``emulated``: the testbed's own mesh (nftables pick, OVS, the controller) and its
  Orchestrator with Swarm's timings;
* ``swarm``: a real ``dockerd`` per node (``Testbed(engine="docker")``), Debian 12's
  docker.io; it needs the kernel's ``ip_vs``.  Where an engine cannot run, its column
  says ``not run: <reason>`` and the verdict is ``not compared``.

The scenarios (``--behaviours``: ``all``, ``ci``, or scenario names) run in order on each
engine; each gives one figure per behaviour, and each behaviour's verdict (``same`` or
``differs``, by how much) follows its own tolerance (``swarmmesh.runs.conformance``).

    sudo .venv/bin/swarmmesh run conformance --behaviours ci

Writes per engine ``<engine>/<scenario>.csv`` (raw rows), ``summary.json`` (``conformance:
[{behaviour, swarm, emulated, verdict, detail}]``, ``engines``), ``conformance.png``
(the table as a figure) and ``report.md``.  Exits 1 if a scenario broke; a ``differs``
verdict is a result, not a failure.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import traceback
from pathlib import Path

from swarmmesh.model import DOCKER_VERSION, Cluster, InvalidConfigError
from swarmmesh.runs import conformance as conf
from swarmmesh.runs import experiment, plots, report
from swarmmesh.runs import conformance_eastwest as eastwest
from swarmmesh.runs import conformance_ingress as ingress
from swarmmesh.runs import conformance_scenarios as scenarios

NAME = "conformance"
DESCRIPTION = ("every behaviour measured on real Swarm (dockerd) and on the emulation in one "
               "run: the figure on each, and a verdict (same, or differs by how much)")

ENGINES = ("swarm", "emulated")
STACK = "shop"
SERVICE = "web"
TIMED = ("longlived", "scale", "kill_container", "node_down", "kill_app",
         "health", "update", ingress.SCENARIO)  # need the model read back (settled)
SCENARIOS = {**scenarios.SCENARIOS, **eastwest.SCENARIOS, **ingress.SCENARIOS}


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--behaviours", default="all",
                    help="scenarios to run: all, ci (" + ", ".join(conf.CI_SCENARIOS) +
                         "), or a comma-separated list of " + ", ".join(conf.SCENARIOS))
    ap.add_argument("--engines", default="swarm,emulated",
                    help="engines to run: swarm (real dockerd), emulated, or both")
    ap.add_argument("--requests", type=int, default=12,
                    help="new connections (and UDP flows) per node in the mesh scenarios")
    ap.add_argument("--rate", type=float, default=20.0,
                    help="requests/s of the load in the timed scenarios")


def stack_spec(chosen: tuple[str, ...] = ()) -> dict:
    """The stack both engines deploy (``docker stack deploy -c - shop``), with the client
    task and the services the chosen east-west scenarios call, and ``edge`` for the
    ingress path's cost against host mode."""
    return ingress.extend_stack(eastwest.extend_stack({"version": "3.8", "services": {SERVICE: {
        "image": "swarmmesh/task", "ports": ["8000:80", "8000:80/udp"],
        "deploy": {"replicas": 2}}}}, chosen, SERVICE), chosen)


def validate(args) -> tuple[Cluster, tuple[str, ...], tuple[str, ...]]:
    try:
        chosen = conf.select(args.behaviours)
    except ValueError as e:
        raise InvalidConfigError("behaviours", str(e)) from None
    engines = tuple(e.strip() for e in args.engines.split(",") if e.strip())
    bad = [e for e in engines if e not in ENGINES]
    if bad or not engines:
        raise InvalidConfigError("engines", f"unknown engine {bad[0] if bad else '(none)'!r} "
                                            f"(known: {', '.join(ENGINES)})")
    if "swarm" in engines and (getattr(args, "servers", None)
                               or getattr(args, "servers_file", None)):
        raise InvalidConfigError("servers", "real Swarm runs on one server: "
                                            "--engines emulated for several")
    if args.requests < 2:
        raise InvalidConfigError("requests", f"must be >= 2, got {args.requests}")
    if not 0 < args.rate <= 500:
        raise InvalidConfigError("rate", f"must be in (0, 500], got {args.rate:g}")
    # No implicit default network: the service is on ingress only, as `docker service
    # create --publish` (Docker reserves the name `default`; a stack calls it shop_default).
    return (Cluster.from_stack(stack_spec(chosen), nodes=3, clients=1, implicit_network=False),
            chosen, engines)


def docker_missing() -> str | None:
    """Why real Swarm cannot run here, or None."""
    from swarmmesh.machine.dockerd import engine_missing
    why = engine_missing()                 # the machine first: no ip_vs, no dockerd, ...
    if why:
        return why
    try:
        from swarmmesh.testbed import docker_engine  # noqa: F401
    except ImportError:
        return "this build has no docker engine"
    return None


@contextlib.contextmanager
def live_engine(ctx, engine: str, cluster: Cluster):
    """The testbed of ``engine`` with its lifecycle operations, as a :class:`Live`."""
    out = ctx.run_dir / engine
    out.mkdir(parents=True, exist_ok=True)
    if engine == "emulated":
        from swarmmesh.lifecycle.orchestrator import Orchestrator
        with ctx.testbed(cluster, run_dir=out) as tb, \
                Orchestrator(tb, profile="swarm") as ops:
            yield _live(engine, tb, ops, out, ctx.args)
        return
    from swarmmesh.testbed.docker_swarm import DockerSwarm
    from swarmmesh.testbed.testbed import Testbed
    ctx.progress.phase("building (real Swarm)")
    with Testbed(cluster, out, datapath=ctx.args.datapath, progress=ctx.progress,
                 engine="docker") as tb, DockerSwarm(tb) as ops:
        ctx.summary.setdefault("engines", {})["docker"] = tb.summary()
        yield _live(engine, tb, ops, out, ctx.args)


def _live(engine: str, tb, ops, out: Path, args) -> scenarios.Live:
    svc = tb.cluster.ingress_services()[0]
    return scenarios.Live(engine, tb, ops, svc.name, svc.ingress_ports()[0].published, out,
                          requests=args.requests, rate=args.rate)


def run_engine(ctx, engine: str, cluster: Cluster, chosen) -> dict[str, conf.Figure]:
    """Every chosen scenario on one engine; a scenario that breaks gives ``not run``
    figures saying why, and the run fails."""
    figures: dict[str, conf.Figure] = {}
    with live_engine(ctx, engine, cluster) as live:
        for name in chosen:
            ctx.progress.phase(f"{engine}: {name}")
            if name in TIMED:
                live.ops.settle(180)             # the last change done, the model read back
            try:
                figures.update(SCENARIOS[name](live))
            except Exception as e:                       # noqa: BLE001 (a result to report)
                traceback.print_exc()
                ctx.failed = f"{engine}: {name}: {e}"
                figures.update(_skipped(name, f"{name} broke: {e}"))
        ctx.summary.setdefault("raw", {})[engine] = live.raw
    return figures


def _skipped(scenario: str, reason: str) -> dict[str, conf.Figure]:
    return {b.name: conf.Figure.not_run(reason) for b in conf.BEHAVIOURS
            if b.scenario == scenario}


def run(args, plan, ctx) -> None:
    cluster, chosen, engines = plan
    figures: dict[str, dict[str, conf.Figure]] = {}
    engines_facts = ctx.summary.setdefault("engines", {})
    engines_facts["emulated"] = {"follows_docker": DOCKER_VERSION}
    for engine in ENGINES:
        why = None if engine in engines else "not chosen (--engines)"
        if engine == "swarm" and why is None:
            why = docker_missing()
        if why:
            ctx.progress.note(f"{engine}: not run: {why}")
            figures[engine] = {k: v for s in chosen for k, v in _skipped(s, why).items()}
            if engine == "swarm":
                engines_facts["docker"] = {"version": None, "not_run": why}
            continue
        fresh = Cluster.from_dict(cluster.to_dict())       # each engine its own model
        try:
            figures[engine] = run_engine(ctx, engine, fresh, chosen)
        except Exception as e:                             # noqa: BLE001 (the build broke)
            traceback.print_exc()
            why = f"the {engine} engine broke: {str(e).strip().splitlines()[-1][:200]}"
            ctx.failed = why
            figures[engine] = {k: v for s in chosen for k, v in _skipped(s, why).items()}
    table = conf.rows(figures, chosen)
    ctx.summary["conformance"] = table
    ctx.summary["conformance_counts"] = conf.counts(table)
    ctx.summary["figures"] = {e: {k: f.to_dict() for k, f in fs.items()}
                              for e, fs in figures.items()}


def plot(run_dir: Path) -> None:
    summary = experiment.read_summary(run_dir)
    table = summary.get("conformance", [])
    docker = summary.get("engines", {}).get("docker", {})
    swarm_label = (f"real Swarm (docker {docker['version']})" if docker.get("version")
                   else "real Swarm")
    fig = table_figure(table, run_dir / "conformance", swarm_label, plots.run_title(
        summary, "Conformance: real Swarm against the emulation"))
    c = conf.counts(table)
    rep = report.Report(run_dir, "Conformance: real Swarm against the emulation", summary)
    rep.text(f"{len(table)} behaviours: {c['same']} same, {c['differs']} differ, "
             f"{c['not compared']} not compared. The emulation follows Docker "
             f"{summary.get('emulates_docker', DOCKER_VERSION)}; {swarm_label}"
             + (f" ({docker['not_run']})" if docker.get("not_run") else "") + ".")
    rep.table(["behaviour", swarm_label, "emulated", "verdict", "tolerance"],
              [[r["behaviour"], r["swarm"], r["emulated"], r["verdict"],
                r["detail"]["tolerance"]] for r in table])
    rep.figure(fig, "One row per behaviour: the figure on real Swarm, on the emulation, and "
                    "the verdict (green same, red differs, grey not compared)")
    rep.write()


def table_figure(table: list[dict], stem: Path, swarm_label: str, title: str) -> list[Path]:
    """The table drawn as a figure, the verdict cells coloured."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import textwrap
    wrap = (lambda s, w: "\n".join(textwrap.wrap(str(s), w)) or "-")
    cells = [[wrap(r["behaviour"], 30), wrap(r["swarm"], 38), wrap(r["emulated"], 38),
              wrap(r["verdict"], 24)] for r in table] or [["(no behaviour run)", "", "", ""]]
    lines = [max(c.count("\n") + 1 for c in row) for row in cells]
    fig, ax = plt.subplots(figsize=(15, 1.2 + 0.28 * sum(lines) + 0.1 * len(cells)))
    ax.axis("off")
    t = ax.table(cellText=cells, colLabels=["behaviour", swarm_label, "emulated", "verdict"],
                 colWidths=[0.22, 0.3, 0.3, 0.18], loc="upper center", cellLoc="left")
    t.auto_set_font_size(False)
    t.set_fontsize(8)
    for i, n in enumerate(lines, start=1):
        for j in range(4):
            t[i, j].set_height(0.9 * n / (sum(lines) + 2))
        v = cells[i - 1][3]
        t[i, 3].set_facecolor("#c8e6c9" if v == conf.SAME else "#ffcdd2"
                              if v.startswith("differs") else "#e0e0e0")
    for j in range(4):
        t[0, j].set_facecolor("#cfd8dc")
        t[0, j].set_height(1.2 / (sum(lines) + 2))
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return plots.save(fig, stem)


if __name__ == "__main__":
    sys.exit(experiment.main(sys.modules[__name__]))
