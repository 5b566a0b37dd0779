"""``--engine`` and ``--image-tar``: run an experiment on the emulated mesh (the default) or
on real Docker Swarm nodes inside the same emulated network (``--engine docker``).

:func:`check` refuses, before anything is built and naming the flag, what real Swarm has no
option for (``--scheduler``, ``--affinity``, ``--traffic-policy``, ``--ingress ipvs``,
``--servers``, ``--ingress-subnet``, a ``--profile`` other than swarm) and a machine that
cannot run dockerd nodes (no docker.io, no cgroup2, no ip_vs: the reason from
:func:`swarmmesh.machine.dockerd.engine_missing`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from swarmmesh.model import InvalidConfigError

ENGINES = ("emulated", "docker")
SWARM_LACKS = ("scheduler", "affinity", "traffic_policy")


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--engine", choices=ENGINES, default="emulated",
                    help="emulated: the testbed's own mesh (default); docker: a real dockerd "
                         "(Debian's docker.io) on every node, real Swarm (`make setup-docker`, "
                         "needs ip_vs)")
    ap.add_argument("--image-tar", type=Path, default=None, metavar="FILE",
                    help="--engine docker: a `docker save` tarball loaded into every node; "
                         "every service runs its image (default: the task server's image, "
                         "built from this machine's files)")


def check(args: argparse.Namespace, missing=None) -> None:
    """Refuse what ``--engine docker`` cannot do here (InvalidConfigError naming the flag);
    ``missing``: the machine check (default :func:`dockerd.engine_missing`)."""
    if args.engine != "docker":
        if args.image_tar is not None:
            raise InvalidConfigError("image-tar", "only with --engine docker")
        return
    for flag in SWARM_LACKS:
        if getattr(args, flag, None) is not None:
            name = flag.replace("_", "-")
            raise InvalidConfigError(name, f"--engine docker: Swarm has no {name} option")
    if getattr(args, "profile", None) not in (None, "swarm"):
        raise InvalidConfigError("profile", "--engine docker: the lifecycle timings are "
                                            "Swarm's own (--profile swarm)")
    if getattr(args, "ingress", "mesh") != "mesh":
        raise InvalidConfigError("ingress", "--engine docker: the ingress is Swarm's own")
    if getattr(args, "servers", None):
        raise InvalidConfigError("servers", "--engine docker: one server only")
    if getattr(args, "ingress_subnet", None) is not None:
        raise InvalidConfigError("ingress-subnet", "--engine docker: the ingress network is "
                                                   "Docker's own (10.0.0.0/24)")
    if args.image_tar is not None and not Path(args.image_tar).is_file():
        raise InvalidConfigError("image-tar", f"{args.image_tar}: no such file")
    if missing is None:
        from swarmmesh.machine import dockerd
        missing = dockerd.engine_missing
    why = missing()
    if why:
        raise InvalidConfigError("engine", f"docker: {why}")


def testbed_kwargs(args: argparse.Namespace) -> dict:
    """What ``ctx.testbed`` passes on for the chosen engine (nothing for the emulated one)."""
    if getattr(args, "engine", "emulated") != "docker":
        return {}
    return {"engine": "docker", "image_tar": args.image_tar}
