"""Which Open vSwitch datapath this machine can run: the kernel module, or userspace; and
whether the kernel has IPVS, for the IPVS reference path (Swarm's own ingress sandbox)."""

from __future__ import annotations

import subprocess
from pathlib import Path

DATAPATHS = ("auto", "system", "netdev")


def kernel_datapath_available() -> bool:
    """True when the openvswitch kernel module is loaded or loadable."""
    if Path("/sys/module/openvswitch").exists():
        return True
    try:
        r = subprocess.run(["modprobe", "-q", "openvswitch"], capture_output=True)
    except OSError:                                   # no modprobe: no modules either
        return False
    return r.returncode == 0 and Path("/sys/module/openvswitch").exists()


def choose_datapath(requested: str = "auto") -> str:
    """``system`` (kernel module) where it exists, else ``netdev`` (userspace)."""
    if requested in ("system", "netdev"):
        return requested
    return "system" if kernel_datapath_available() else "netdev"


def ipvs_missing() -> str | None:
    """Why Swarm's own IPVS cannot be built here (the IPVS reference path), or None: the
    programs (ipvsadm, iptables) and the kernel's ``ip_vs``, loaded or loadable."""
    import shutil
    from swarmmesh.machine import deps
    for prog in ("ipvsadm", "iptables-restore", "nsenter", "unshare"):
        if shutil.which(prog) is None:
            return f"{prog} not found ({deps.install_hint(prog)})"
    if Path("/proc/net/ip_vs").exists():
        return None
    try:
        r = subprocess.run(["modprobe", "-q", "ip_vs"], capture_output=True, text=True)
    except OSError:
        return "this kernel has no ip_vs (no modprobe: no loadable modules)"
    if r.returncode == 0 and Path("/proc/net/ip_vs").exists():
        return None
    return ("this kernel has no ip_vs (modprobe ip_vs failed: no module; every stock "
            "distribution kernel has it, e.g. the guest of `make vm-test`)")


TUN = Path("/dev/net/tun")
TUN_FIX = "run the container with --device /dev/net/tun (or --privileged)"


def tun_problem(path: Path, error: OSError | None) -> str | None:
    """Why userspace OVS cannot open ``path`` (its bridge's internal port is a tap), from
    the error opening it gave (None: it opened)."""
    if error is None:
        return None
    if isinstance(error, FileNotFoundError):
        return (f"{path} is absent: userspace OVS cannot create its datapath (a container "
                f"has it only with --privileged or --device /dev/net/tun)")
    return f"{path}: {error.strerror or error}: userspace OVS cannot create its datapath"


def tun_missing(path: Path = TUN) -> str | None:
    """Why this machine cannot run userspace OVS (``/dev/net/tun`` not usable), or None."""
    import os
    try:
        os.close(os.open(path, os.O_RDWR))
    except OSError as e:
        return tun_problem(path, e)
    return None


def datapath_missing(datapath: str) -> str | None:
    """What the chosen datapath needs and this machine lacks, or None: userspace OVS
    (``netdev``) needs /dev/net/tun; the kernel's (``system``) its module, which
    :func:`choose_datapath` only picks where it is."""
    if datapath == "netdev":
        return tun_missing()
    if datapath == "system" and not kernel_datapath_available():
        return "the openvswitch kernel module is absent (use --datapath netdev)"
    return None
