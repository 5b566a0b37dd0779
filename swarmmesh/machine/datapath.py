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
