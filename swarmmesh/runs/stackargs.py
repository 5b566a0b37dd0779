"""The flags that say which cluster to build, shared by experiments and the CLI.

    --stack FILE [--stack FILE ...]   stack files, merged in order (docker stack deploy -c a -c b)
    --env-file FILE                   variables for ${VAR}; the environment wins, as in Compose
    --nodes N                         nodes (default 3, or the nodes file's count)
    --managers N                      the first N nodes are managers (default 1)
    --node-label NODE:KEY[=VALUE]     a node label (repeat it)
    --nodes-file FILE                 roles, labels, platform, availability per node
    --scheduler S --affinity D --traffic-policy P   beyond Swarm, on every published service

and, for an experiment that builds its own cluster, ``--nodes N --replicas R`` with its
own defaults (:func:`add_size_arguments`).

Nothing is built here: :func:`cluster` returns the model, or raises
:class:`InvalidConfigError` naming the flag or the field.
"""

from __future__ import annotations

import argparse
import os
from typing import Mapping

from swarmmesh.model import Cluster, InvalidConfigError
from swarmmesh.model import balancing, compose, nodes as node_model
from swarmmesh.model.nodes import NodeSetup


def add_size_arguments(ap, nodes: int = 3, replicas: int | None = 2,
                       nodes_help: str = "swarm nodes",
                       replicas_help: str = "replicas of the service `app`") -> None:
    """``--nodes N`` and ``--replicas R`` of an experiment that builds its own cluster (no
    stack file), with its defaults; ``replicas=None``: no ``--replicas``.  Their checks
    are ``flags.positive`` and the model's (errors name ``nodes``, ``replicas``)."""
    ap.add_argument("--nodes", type=int, default=nodes, help=nodes_help)
    if replicas is not None:
        ap.add_argument("--replicas", type=int, default=replicas, help=replicas_help)


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
                         "engine_labels, availability (see docs/stacks.md)")
    ap.add_argument("--scheduler", default=None, metavar="rr|wrr|sh|maglev|lc",
                    help="every service with a published port balances with it (beyond "
                         "Swarm; a stack's x-swarmmesh does it per service)")
    ap.add_argument("--affinity", default=None, metavar="DURATION",
                    help="ClientIP session affinity for every published service (e.g. 3h)")
    ap.add_argument("--traffic-policy", default=None, metavar="cluster|local",
                    help="local: a node sends its published connections to its own tasks "
                         "only, with no SNAT (the task sees the client)")
    add_ingress_subnet(ap)
    if stack:
        ap.add_argument("--stack", action="append", default=None, metavar="FILE",
                        help="docker stack / compose v3 file; repeat it to merge files in "
                             "order, as docker stack deploy -c a.yml -c b.yml")
        ap.add_argument("--env-file", default=None, metavar="FILE",
                        help="KEY=VALUE lines for ${VAR} in the stack files (a variable set "
                             "in the environment wins; note that sudo drops the environment)")


def add_ingress_subnet(ap: argparse.ArgumentParser, default: str | None = None) -> None:
    """``--ingress-subnet CIDR``: the ingress network re-created with a larger subnet."""
    ap.add_argument("--ingress-subnet", default=default, metavar="CIDR",
                    help="the ingress network's subnet, as after `docker network rm ingress; "
                         "docker network create --driver overlay --ingress --subnet CIDR "
                         "ingress` (default: Docker's 10.0.0.0/24: 253 addresses for the "
                         "nodes' sandboxes, the published services' VIPs and their tasks)")


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
    """The cluster of ``--stack`` (or the quick service with ``replicas``) on the nodes,
    with the balancing flags applied."""
    setup = node_setup(args)
    if getattr(args, "stack", None):
        c = Cluster.from_stack(args.stack, nodes=setup, clients=clients,
                               env=environment(args), ingress_subnet=getattr(args, "ingress_subnet", None))
    else:
        c = Cluster.quick(nodes=setup, replicas=replicas, clients=clients,
                          ingress_subnet=getattr(args, "ingress_subnet", None))
    return apply_balancing(c, args)


def apply_balancing(c: Cluster, args: argparse.Namespace) -> Cluster:
    """``--scheduler``, ``--affinity``, ``--traffic-policy`` on every service with an
    ingress port (errors name the flag)."""
    flags = {"scheduler": getattr(args, "scheduler", None),
             "affinity": getattr(args, "affinity", None),
             "traffic_policy": getattr(args, "traffic_policy", None)}
    if all(v is None for v in flags.values()):
        return c
    for svc in c.ingress_services():
        old = svc.balancing.to_dict()
        merged = {**old, **{k: v for k, v in flags.items() if v is not None}}
        if merged["scheduler"] != "wrr":
            merged.pop("weights", None)
        try:
            svc.balancing = balancing.parse(merged, "flags")
        except InvalidConfigError as e:
            field = e.field.rsplit(".", 1)[-1]
            raise InvalidConfigError(field, e.reason) from None
    return c
