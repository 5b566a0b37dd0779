"""Which Open vSwitch datapath this machine can run: the kernel module, or userspace."""

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
