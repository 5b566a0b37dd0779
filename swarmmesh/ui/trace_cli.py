"""``swarmmesh trace [cluster flags | --stack FILE...] [--json] [--figure PNG] SOURCE DEST``:
build the cluster, follow one real connection from SOURCE to DEST hop by hop, check every
hop against the packets, tear the cluster down.

Exit 0: every hop verified (a refusal too, when the packets confirm it); 1: the packets
disagree with the prediction (the first hop that does is named) or the testbed failed;
2: bad input (nothing built).
"""

from __future__ import annotations

import argparse
import json
import sys

from swarmmesh.model import InvalidConfigError
from swarmmesh.runs import stackargs


def add_parser(sub) -> None:
    p = sub.add_parser("trace", help="follow one connection through every node, rule and "
                                     "rewrite, verified by the real packets (as root)",
                       description=__doc__.split("\n\n")[0],
                       epilog=__doc__.split("\n\n")[1])
    stackargs.add_arguments(p)
    p.add_argument("--replicas", type=int, default=2,
                   help="replicas of the one service 'app' (default 2; not with --stack)")
    p.add_argument("--json", action="store_true",
                   help='print {"verified": true|false, "hops": [...]} instead of text')
    p.add_argument("--figure", default=None, metavar="PNG",
                   help="draw the path over the cluster into this file")
    p.add_argument("--out", default="results/trace",
                   help="parent of the run folder (logs, model.json)")
    p.add_argument("source", metavar="SOURCE", help="a client (c1) or a task (app.1, t1)")
    p.add_argument("dest", metavar="DEST",
                   help="node:port[/tcp|udp], service:port[/proto] or address:port[/proto]")
    p.set_defaults(func=cmd_trace)


def show(path, args) -> int:
    """Print the trace (text or JSON), draw the figure; the exit status."""
    from swarmmesh.trace import render
    if args.json:
        print(json.dumps(path.to_dict(), indent=1))
    else:
        print(render.text(path), end="")
    if args.figure:
        from swarmmesh.trace.figure import draw
        draw(path, args.cluster, args.figure)
    bad = path.first_disagreement()
    if bad is not None:
        print(f"error: hop {path.hops.index(bad) + 1} ({bad.namespace}, {bad.stage}) "
              f"disagrees with the packets: {bad.evidence}", file=sys.stderr)
        return 1
    return 0 if path.verified else 1


def cmd_trace(args: argparse.Namespace) -> int:
    from swarmmesh.runs import runfolder, tracing
    from swarmmesh.testbed.testbed import Testbed, TestbedError, check_machine
    from swarmmesh.trace.dest import parse_dest, parse_source
    try:
        if args.stack and args.replicas != 2:
            raise InvalidConfigError("replicas", "not with --stack (the stack says)")
        cluster = stackargs.cluster(args, clients=1, replicas=args.replicas)
        parse_source(cluster, args.source)
        parse_dest(cluster, args.dest)
        check_machine()
    except (InvalidConfigError, TestbedError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    run_dir = runfolder.new_run_dir(args.out, "trace")
    say = (lambda msg: print(f"[trace] {msg}", file=sys.stderr, flush=True))
    try:
        with Testbed(cluster, run_dir, progress=say) as tb:
            say(f"tracing {args.source} -> {args.dest}")
            path = tracing.trace(tb, args.source, args.dest)
            args.cluster = tb.cluster
    except TestbedError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    (run_dir / "trace.json").write_text(json.dumps(path.to_dict(), indent=1))
    return show(path, args)
