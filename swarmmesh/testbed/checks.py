"""What a build checks before anything is built: the machine (root, the programs, Mininet),
the OVS datapath it will use (/dev/net/tun for userspace OVS, as ``swarmmesh doctor``
checks), the IPVS reference path when asked for, and the build's bound
(:mod:`swarmmesh.testbed.bounds`).  Each failure is a :class:`TestbedError` saying why."""

from __future__ import annotations

import os
import shutil
import sys

from swarmmesh.machine import deps
from swarmmesh.machine.datapath import datapath_missing
from swarmmesh.model import Cluster
from swarmmesh.testbed.bounds import build_timeout
from swarmmesh.testbed.errors import TestbedError

# Programs every testbed calls (their packages: swarmmesh/machine/debian-packages.txt).
REQUIRED = ("ovs-vswitchd", "ovsdb-server", "ovs-vsctl", "nft", "conntrack", "ethtool", "bridge",
            "mnexec")


def check_machine() -> None:
    if os.geteuid() != 0:
        raise TestbedError("the testbed builds namespaces and switches: run it as root (sudo)")
    missing = [f"{prog} ({deps.install_hint(prog)})" for prog in REQUIRED if not shutil.which(prog)]
    if missing:
        raise TestbedError("missing programs: " + ", ".join(missing) +
                           "; `sudo make setup` installs them all")
    try:
        import mininet.net  # noqa: F401
    except ImportError as e:
        raise TestbedError("Mininet is not importable from this Python "
                           f"({sys.executable}); use the venv made by `make setup`") from e


def check_datapath(datapath: str) -> None:
    """The OVS datapath the build will use can run here (what ``swarmmesh doctor`` checks:
    /dev/net/tun for userspace OVS), before anything is built."""
    why = datapath_missing(datapath)
    if why:
        raise TestbedError(f"datapath {datapath}: {why}")


def build_bound(cluster: Cluster, given: float | None) -> float:
    """The build's bound in seconds (a bad flag or environment value is a TestbedError
    naming it)."""
    try:
        return build_timeout(len(cluster.nodes), len(cluster.tasks), given)
    except ValueError as e:
        raise TestbedError(str(e)) from None


def check_ingress(ingress: str, cluster: Cluster, servers=None) -> None:
    """The IPVS reference path can be built here, for this cluster (TestbedError or
    InvalidConfigError saying why not)."""
    from swarmmesh.dataplane import ipvs
    from swarmmesh.machine.datapath import ipvs_missing
    if ingress not in ipvs.INGRESS_MODES:
        raise TestbedError(f"ingress: must be one of {', '.join(ipvs.INGRESS_MODES)}, "
                           f"got {ingress!r}")
    if servers is not None:
        raise TestbedError("ingress ipvs: built on one server only (the sandboxes are "
                           "reached by PID on this machine)")
    why = ipvs_missing()
    if why:
        raise TestbedError(f"ingress ipvs: {why}")
    ipvs.check_supported(cluster)
