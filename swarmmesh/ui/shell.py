"""Mininet's CLI with Swarm's runtime operations, over an Orchestrator.

    mininet> service ls
    NAME   MODE         REPLICAS   PORTS
    app    replicated   2/2        *:8000->80/tcp
    mininet> service scale app=3
    app scaled to 3 (in the background; `events` shows progress, `wait` waits)
    mininet> task kill app.1 --how hang
    mininet> node drain node2
    mininet> flows node1 table=13

Every Mininet command still works (``c1 curl -s 192.168.99.1:8000``,
``py net``, ...).  The added commands (``help swarm`` lists them) change the
cluster only through the Orchestrator, so every change follows Swarm's
lifecycle.  Scale and update run in the background; a line says when each
is done, and ``wait`` blocks until everything started here is done.

This module is ``swarmmesh cli``: build the cluster, run the CLI, clean up.
The rest lives beside it: pure parsing (:mod:`swarmmesh.ui.shell_parse`) and
docker-style formatting of the model (:mod:`swarmmesh.ui.shell_format`), the
completion tests of background operations (:mod:`swarmmesh.ui.shell_ops`),
all unit-tested without root or Mininet, and ``SwarmCLI``
(:mod:`swarmmesh.ui.shell_cli`), the Mininet CLI subclass that carries the
commands to an Orchestrator.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

from swarmmesh.lifecycle import profiles
from swarmmesh.model import Cluster, InvalidConfigError
from swarmmesh.runs import engineargs, stackargs
from swarmmesh.ui.shell_cli import SwarmCLI


def plan(args) -> Cluster:
    """The cluster the flags ask for; bad input raises InvalidConfigError
    before anything is built."""
    profiles.profile(args.profile)
    if args.stack and args.replicas is not None:
        raise InvalidConfigError("replicas", "not with --stack (the stack file sets them)")
    cluster = stackargs.cluster(args, replicas=2 if args.replicas is None else args.replicas)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InvalidConfigError("out", f"{out} exists and is not a folder")
    return cluster


def run_cli(args) -> int:
    """``swarmmesh cli``: exit 0 after ``exit``/EOF, 2 bad input, 130 Ctrl-C
    (outside an interactive prompt), 143 SIGTERM; everything stopped each time.
    ``--servers``/``--servers-file``/``--placement``/``--place``/``--tunnel`` spread the
    cluster over servers as the experiments' flags do (``swarmmesh.dataplane.servers``).
    ``--engine docker``: real Swarm instead (:mod:`swarmmesh.ui.shell_docker`)."""
    from swarmmesh.runs import runfolder as results
    from swarmmesh.testbed.servers import spread_from_args
    from swarmmesh.testbed.testbed import TestbedError, check_machine
    docker = getattr(args, "engine", "emulated") == "docker"
    try:
        engineargs.check(args, missing=lambda: None)  # flags real Swarm lacks, --image-tar
        cluster = plan(args)
        spread = spread_from_args(args, cluster)      # --servers ...: None on one machine
        if docker:
            from swarmmesh.machine import dockerd
            from swarmmesh.testbed import docker_engine
            from swarmmesh.ui import shell_swarm
            shell_swarm.refuse(args, cluster, dockerd.engine_missing())
            docker_engine.check_machine()
        else:
            check_machine()
    except (InvalidConfigError, TestbedError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:                               # e.g. --servers-file unreadable
        print(f"error: servers_file: {e}", file=sys.stderr)
        return 2
    run_dir = results.new_run_dir(args.out, "cli")
    say = (lambda msg: print(f"[cli] {msg}", file=sys.stderr, flush=True))
    if docker:
        from swarmmesh.ui import shell_docker
        code = session(lambda orchs: shell_docker.run(args, cluster, run_dir, say, orchs),
                       run_dir)
    else:
        code = session(lambda orchs: emulated(args, cluster, spread, run_dir, say, orchs),
                       run_dir)
    say("stopped; everything cleaned up" + (" (interrupted)" if code == 130 else ""))
    print(run_dir, flush=True)
    return code


def session(body: Callable[[list], None], run_dir: Path) -> int:
    """Run ``body(orchs)`` (it builds, appends its orchestrator, runs the CLI); the exit
    code: 0, 1 the build failed, 130 Ctrl-C, 143 SIGTERM; ``events.csv`` written each time."""
    from swarmmesh.runs import runfolder as results
    from swarmmesh.testbed.testbed import TestbedError
    orchs: list = []
    code = 0
    try:
        body(orchs)
    except TestbedError as e:
        print(f"error: {e}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        code = 130
    except SystemExit as e:                            # SIGTERM, raised by the Testbed
        code = e.code if isinstance(e.code, int) else 1
    finally:
        if orchs:
            results.write_csv(run_dir / "events.csv", [vars(e) for e in orchs[0].events],
                              ["t", "event", "detail"])
    return code


def emulated(args, cluster: Cluster, spread, run_dir: Path, say: Callable[[str], None],
             orchs: list) -> None:
    """The emulated engine: the Testbed, the Orchestrator, the CLI."""
    from swarmmesh.lifecycle.orchestrator import Orchestrator
    from swarmmesh.testbed.testbed import Testbed
    with Testbed(cluster, run_dir, datapath=args.datapath, progress=say,
                 servers=spread, build_timeout=args.build_timeout) as tb:
        with Orchestrator(tb, profile=args.profile) as orch:
            orchs.append(orch)
            from mininet.log import setLogLevel
            setLogLevel("output")              # `<host> cmd` prints through Mininet's log
            svcs = ", ".join(f"{s.name} ({s.replicas} replicas)"
                             for s in cluster.services.values())
            say(f"{len(cluster.nodes)} nodes, {svcs}; profile {args.profile}, "
                f"{tb.datapath} datapath. `help swarm` lists the added commands; "
                "exit or Ctrl-D stops and cleans up.")
            if spread is not None:
                where: dict[str, list[str]] = {}
                for host, server in spread.plan.placement.items():
                    where.setdefault(server, []).append(host)
                say("servers: " + "; ".join(f"{s}: {', '.join(sorted(h))}"
                                            for s, h in where.items()))
            SwarmCLI(orch)
