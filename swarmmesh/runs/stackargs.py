"""The flags that say which cluster to build, shared by experiments and the CLI.

    --stack FILE [--stack FILE ...]   stack files, merged in order (docker stack deploy -c a -c b)
    --env-file FILE                   variables for ${VAR}; the environment wins, as in Compose
    --nodes N                         nodes (default 3, or the nodes file's count)
    --managers N                      the first N nodes are managers (default 1)
    --node-label NODE:KEY[=VALUE]     a node label (repeat it)
    --nodes-file FILE                 roles, labels, platform, availability per node

Nothing is built here: :func:`cluster` returns the model, or raises
:class:`InvalidConfigError` naming the flag or the field.
"""

from __future__ import annotations

import argparse
import os
from typing import Mapping

from swarmmesh.model import Cluster
from swarmmesh.model import compose, nodes as node_model
from swarmmesh.model.nodes import NodeSetup


def add_arguments(ap: argparse.ArgumentParser, stack: bool = True) -> None:
    """``--nodes --managers --node-label --nodes-file`` and, with ``stack``, ``--stack
    --env-file``."""
    ap.add_argument("--nodes", type=int, default=None,
                    help="swarm nodes (default 3, or the nodes file's count)")
    ap.add_argument("--managers", type=int, default=None,
                    help="the first N nodes are managers (default 1: node1, as after "
                         "docker swarm init)")
    ap.add_argument("--node-label", action="append", default=[], metavar="NODE:KEY[=VALUE]",
                    help="a node label, as docker node update --label-add (repeat it)")
    ap.add_argument("--nodes-file", default=None, metavar="FILE",
                    help="YAML: count, managers, and per node role, labels, platform, "
                         "engine_labels, availability (see the README)")
    if stack:
        ap.add_argument("--stack", action="append", default=None, metavar="FILE",
                        help="docker stack / compose v3 file; repeat it to merge files in "
                             "order, as docker stack deploy -c a.yml -c b.yml")
        ap.add_argument("--env-file", default=None, metavar="FILE",
                        help="KEY=VALUE lines for ${VAR} in the stack files (a variable set "
                             "in the environment wins; note that sudo drops the environment)")


def node_setup(args: argparse.Namespace) -> NodeSetup:
    """The nodes the flags describe."""
    return node_model.setup(count=args.nodes, managers=args.managers,
                            labels=args.node_label, nodes_file=args.nodes_file)


def environment(args: argparse.Namespace,
                base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Variables for interpolation: the env file's, overridden by the environment."""
    env = dict(compose.read_env_file(args.env_file)) if args.env_file else {}
    env.update(os.environ if base is None else base)
    return env


def cluster(args: argparse.Namespace, clients: int = 1, replicas: int = 2) -> Cluster:
    """The cluster of ``--stack`` (or the quick service with ``replicas``) on the nodes."""
    setup = node_setup(args)
    if getattr(args, "stack", None):
        return Cluster.from_stack(args.stack, nodes=setup, clients=clients,
                                  env=environment(args))
    return Cluster.quick(nodes=setup, replicas=replicas, clients=clients)
