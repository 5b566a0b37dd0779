"""The command-line tool: ``swarmmesh list | run | replot | clean | doctor | stack check | cli
| trace``.

    swarmmesh list                              the experiments, one line each
    sudo swarmmesh run routing_mesh --nodes 4   run one (its flags: swarmmesh run NAME --help)
    sudo swarmmesh cli --nodes 3 --profile fast a cluster and Mininet's CLI with Swarm's commands
                                                (--servers a,b: spread over servers, as `run`)
    swarmmesh replot RUN_DIR                    redraw figures + report.md from the raw data
    sudo swarmmesh clean                        remove what a killed run left (as `make clean`)
    sudo swarmmesh doctor                       can this machine run it? one line per item
    swarmmesh stack check FILE... [--nodes N]   what would be deployed (exit 2 naming the field)
    sudo swarmmesh trace --nodes 3 c1 node3:8000 one connection hop by hop, checked by its packets

``run`` exits as the experiment does (0 ok, 1 failed, 2 bad input, 130
Ctrl-C); ``replot`` exits 2 if RUN_DIR is not a run folder; ``cli`` exits 0
after exit/Ctrl-D, 2 on bad input (nothing built), 130 on Ctrl-C outside an
interactive prompt.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from swarmmesh.machine import doctor
from swarmmesh.runs import experiment, stackargs
from swarmmesh.model import InvalidConfigError


def cmd_list(args) -> int:
    for name in experiment.experiment_names():
        try:
            desc = getattr(experiment.load(name), "DESCRIPTION", "")
        except Exception as e:                                 # noqa: BLE001 - keep listing
            desc = f"(cannot be loaded: {type(e).__name__}: {e})"
        print(f"{name:<16} {desc}")
    return 0


def cmd_run(args) -> int:
    try:
        module = experiment.load(args.name)
    except InvalidConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return experiment.main(module, args.flags, prog=f"swarmmesh run {module.NAME}")


def cmd_replot(args) -> int:
    started = time.time() - 1
    try:
        module = experiment.replot(args.run_dir)
    except InvalidConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:                 # e.g. a run stopped before it wrote its data
        status = experiment.read_summary(args.run_dir).get("status", "?")
        print(f"error: run_dir: {e.filename or e} is missing (the run's status: {status})",
              file=sys.stderr)
        return 2
    redrawn = sorted(p.name for p in Path(args.run_dir).iterdir()
                     if p.suffix in (".png", ".pdf", ".md") and p.stat().st_mtime >= started)
    print(f"{module.NAME}: redrew {', '.join(redrawn)}", file=sys.stderr)
    print(Path(args.run_dir))
    return 0


def cmd_clean(args) -> int:
    from swarmmesh.testbed.runtime import clean_all
    removed = clean_all(force=args.force)
    for r in removed:
        print(f"removed {r}")
    print(f"clean: {len(removed)} item(s) removed")
    return 0


def cmd_stack_check(args) -> int:
    """What the testbed would deploy from a stack on these nodes; nothing is built."""
    import json

    from swarmmesh.runs import stackargs
    from swarmmesh.ui.stackcheck import render
    try:
        cluster = stackargs.cluster(args, clients=0)
    except InvalidConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(cluster.to_dict(), indent=1))
    else:
        print(render(cluster, args.stack), end="")
    return 0


def cmd_doctor(args) -> int:
    return doctor.report(args)


def cmd_cli(args) -> int:
    from swarmmesh.ui.shell import run_cli
    return run_cli(args)


def parser(prog: str | None = None) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog or "swarmmesh", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n")[1])
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("list", help="list the experiments").set_defaults(func=cmd_list)
    p = sub.add_parser("run", help="run an experiment (as root)", add_help=False)
    p.add_argument("name", metavar="NAME")
    p.add_argument("flags", nargs=argparse.REMAINDER, metavar="FLAGS")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("replot", help="redraw a run folder's figures and report.md (no root)")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.set_defaults(func=cmd_replot)
    p = sub.add_parser("clean", help="remove what killed runs left behind (by recorded PID/name)")
    p.add_argument("--force", action="store_true",
                   help="also clean runs whose owner process still lives")
    p.set_defaults(func=cmd_clean)
    p = sub.add_parser("stack", help="check a stack file (no root, nothing built): "
                                     "exit 2 naming the field if it is bad")
    p.add_argument("action", choices=["check"])
    p.add_argument("stack", nargs="+", metavar="FILE",
                   help="stack files, merged in order (as docker stack deploy -c a -c b)")
    stackargs.add_arguments(p, stack=False)
    p.add_argument("--env-file", default=None, metavar="FILE",
                   help="KEY=VALUE lines for ${VAR} (a variable set in the environment wins)")
    p.add_argument("--json", action="store_true", help="the model as JSON instead")
    p.set_defaults(func=cmd_stack_check)
    p = sub.add_parser("doctor", help="check the kernel, packages, Open vSwitch and Python "
                                      "(exit 1 if something required is missing)")
    doctor.add_arguments(p)
    p.set_defaults(func=cmd_doctor)
    p = sub.add_parser("cli", help="build a cluster and run Mininet's CLI with Swarm's "
                                   "service/task/node commands (as root)")
    stackargs.add_arguments(p)
    p.add_argument("--replicas", type=int, default=None,
                   help="replicas of the one service 'app' (default 2; not with --stack)")
    p.add_argument("--profile", default="swarm", metavar="swarm|fast",
                   help="lifecycle timings: Swarm's own, or the fast profile")
    p.add_argument("--datapath", choices=experiment.DATAPATHS, default="auto",
                   help="OVS datapath")
    p.add_argument("--build-timeout", type=float, default=None, metavar="S",
                   help="seconds the build may take (default: $SWARMMESH_BUILD_TIMEOUT, else "
                        "by the cluster's size)")
    p.add_argument("--out", default="results/cli",
                   help="parent of the run folder (logs, model.json, events.csv)")
    from swarmmesh.runs import engineargs
    engineargs.add_arguments(p)
    from swarmmesh.dataplane import servers
    servers.add_arguments(p.add_argument_group("across several servers"))
    p.set_defaults(func=cmd_cli)
    from swarmmesh.ui import trace_cli
    trace_cli.add_parser(sub)
    return ap


def main(argv=None, prog: str | None = None) -> int:
    args = parser(prog).parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
