"""``swarmmesh doctor``: can this machine run the testbed?  One line per item.

It checks the kernel features (in a namespace of its own, removed afterwards),
the declared system packages and their programs, Open vSwitch, the Python and
its packages.  Each line is ``ok``, ``missing`` (with the command that fixes
it) or ``skipped`` (with why); the exit status is 1 when something required is
missing.  Every run's ``summary.json`` carries the same items.

The decisions (:func:`package_checks`, :func:`python_checks`, :func:`verdict`)
are pure functions of what was read; the probes at the bottom do the I/O.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import Callable, Iterable, Mapping

from swarmmesh.machine import datapath, deps, dockerd

OVS_CTL = "/usr/share/openvswitch/scripts/ovs-ctl"
SETUP = "sudo make setup"


@dataclass(frozen=True)
class Check:
    what: str                 # e.g. "kernel: VXLAN", "package: wrk"
    status: str               # ok | missing | skipped
    detail: str = ""          # a version, or why it is missing or skipped
    fix: str = ""             # the command that fixes a missing item
    required: bool = True

    def line(self) -> str:
        text = f"{self.status:<8} {self.what:<34} {self.detail}".rstrip()
        if self.status == "missing":
            text += f"\n{'':<9}fix: {self.fix}" if self.fix else ""
            text += "" if self.required else "  (optional)"
        return text


def ok(what: str, detail: str = "") -> Check:
    return Check(what, "ok", detail)


def missing(what: str, detail: str, fix: str, required: bool = True) -> Check:
    return Check(what, "missing", detail, fix, required)


# -- decisions (pure) ---------------------------------------------------------
def package_checks(packages: Iterable[deps.Package], installed: Mapping[str, str],
                   which: Callable[[str], str | None], required_groups: Iterable[str]
                   ) -> list[Check]:
    """One check per declared package: installed (by dpkg) and its programs found."""
    required_groups = set(required_groups)
    out = []
    for p in packages:
        what = f"package: {p.name}" + (f" ({', '.join(p.programs)})" if p.programs else "")
        lost = [prog for prog in p.programs if which(prog) is None]
        version = installed.get(p.name)
        need = p.group in required_groups
        if lost:
            out.append(missing(what, f"{', '.join(lost)} not found ({p.why})",
                               f"apt-get install {p.name}", need))
        elif version is None and installed:       # dpkg answered, and not for this one
            out.append(missing(what, f"not installed ({p.why})", f"apt-get install {p.name}",
                               need))
        else:
            out.append(ok(what, version or "programs found"))
    return out


# "name==1.0" or, as some setuptools write Requires-Dist, "name (==1.0)"; then a marker.
_PIN = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*\(?\s*==\s*([^;\s)]+)\s*\)?\s*(;.*)?$")


def python_checks(requirements: Iterable[str], version_of: Callable[[str], str | None],
                  python: tuple[int, int], mininet: str | None) -> list[Check]:
    """The Python, Debian's Mininet module and every pinned package at its pin."""
    out = [ok("python", "%d.%d" % python) if python >= (3, 10) else
           missing("python", "%d.%d, need 3.10 or newer" % python, "use Debian 12 or newer")]
    out.append(ok("python: mininet", mininet) if mininet else
               missing("python: mininet", "not importable from this Python",
                       "apt-get install mininet, and a venv with --system-site-packages"))
    for req in requirements:
        m = _PIN.match(req)
        if not m:
            continue
        name, pin, marker = m.group(1), m.group(2), m.group(3) or ""
        have = version_of(name)
        label = f"python: {name}" + (" (tests)" if "extra" in marker else "")
        if have == pin:
            out.append(ok(label, have))
        else:
            out.append(missing(label, f"{have or 'not installed'}, pinned {pin}",
                               f"{SETUP} (pip install {name}=={pin})"))
    return out


def verdict(checks: Iterable[Check]) -> int:
    """0 when nothing required is missing, else 1."""
    return int(any(c.status == "missing" and c.required for c in checks))


# -- probes (I/O) -------------------------------------------------------------
def _run(argv: list[str], stdin: str | None = None, timeout: float = 10) -> tuple[int, str]:
    try:
        r = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return 127, str(e)
    return r.returncode, (r.stdout + r.stderr).strip()


def dpkg_versions(names: Iterable[str]) -> dict[str, str]:
    """Installed versions of these Debian packages ({} where dpkg is absent)."""
    if not shutil.which("dpkg-query"):
        return {}
    _, out = _run(["dpkg-query", "-W", "-f", "${Package}\t${Status}\t${Version}\n", *names])
    found = {}
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[1].endswith(" installed"):
            found[parts[0].split(":")[0]] = parts[2]
    return found


# Loaded into the doctor's own namespace: NAT, numgen (the rr pick of the nftables
# balancer) and conntrack (ct state), the features the node's DNAT and l4lb use.
NFT_PROBE = """table ip swarmmesh_doctor {
  chain pre {
    type nat hook prerouting priority -100;
    ct state new tcp dport 8000 dnat to numgen inc mod 2 map { 0 : 10.0.0.1, 1 : 10.0.0.2 }
  }
  chain post {
    type nat hook postrouting priority 100;
    masquerade
  }
}
"""


def kernel_checks() -> list[Check]:
    """Namespaces, veth, VXLAN, nf_tables, conntrack: tried for real in a scratch namespace."""
    if os.geteuid() != 0:
        return [Check("kernel features", "skipped", "need root to try them (sudo)",
                      required=False)]
    if not shutil.which("ip"):
        return [missing("kernel features", "cannot try them without ip", "apt-get install iproute2")]
    ns = f"smdoc-{os.getpid()}"
    rc, out = _run(["ip", "netns", "add", ns])
    if rc:
        return [missing("kernel: network namespaces", out, "a kernel with CONFIG_NET_NS")]
    try:
        return [ok("kernel: network namespaces")] + _in_namespace(ns)
    finally:
        _run(["ip", "netns", "del", ns])


def _in_namespace(ns: str) -> list[Check]:
    ip = ["ip", "netns", "exec", ns]
    tries = [
        ("kernel: veth", ip + ["ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1"],
         None, "a kernel with CONFIG_VETH"),
        ("kernel: VXLAN", ip + ["ip", "link", "add", "vx0", "type", "vxlan", "id", "4096",
                                "dstport", "4789", "nolearning"], None,
         "a kernel with CONFIG_VXLAN"),
        ("kernel: nf_tables (nat, numgen, ct)", ip + ["nft", "-f", "-"], NFT_PROBE,
         "a kernel with nf_tables, nft_nat, nft_numgen and nf_conntrack"),
    ]
    out = []
    for what, argv, stdin, fix in tries:
        if not shutil.which(argv[len(ip)]):
            out.append(missing(what, f"cannot try it without {argv[len(ip)]}",
                               deps.install_hint(argv[len(ip)])))
            continue
        rc, text = _run(argv, stdin)
        first = text.splitlines()[0] if text else f"exit {rc}"
        out.append(ok(what) if rc == 0 else missing(what, first, fix))
    out.append(ipvs_check(ip))
    if out and out[0].status == "ok" and shutil.which("tc"):      # the veth d0 exists
        out += [qdisc_check(kind, use, _run(ip + ["tc", "qdisc", "replace", "dev", "d0", "root",
                                                  *args])[0])
                for kind, args, use in QDISC_PROBES]
    return out


IPVS_WHAT = "kernel: ip_vs (IPVS, xt_ipvs)"
IPVS_FIX = ("a kernel with ip_vs (every stock distribution kernel has it; `make vm-test` runs "
            "one); without it the IPVS reference path (--ingress ipvs) is skipped")


def ipvs_check(ip: list[str]) -> Check:
    """Never required: Swarm's own IPVS, built as the reference path beside the emulated
    mesh.  Tried in the scratch namespace: an rr service on a firewall mark (ipvsadm loads
    ip_vs), and an SNAT rule with ``-m ipvs``, as libnetwork's ingress sandbox has."""
    for prog in ("ipvsadm", "iptables"):
        if not shutil.which(prog):
            return missing(IPVS_WHAT, f"cannot try it without {prog}", deps.install_hint(prog),
                           required=False)
    for argv in (["ipvsadm", "-A", "-f", "256", "-s", "rr"],
                 ["iptables", "-t", "nat", "-A", "POSTROUTING", "-m", "ipvs", "--ipvs",
                  "-j", "ACCEPT"]):
        rc, text = _run(ip + argv)
        if rc:
            first = text.splitlines()[0] if text else f"exit {rc}"
            return missing(IPVS_WHAT, f"`{' '.join(argv)}`: {first}", IPVS_FIX, required=False)
    return ok(IPVS_WHAT, "the IPVS reference path (--ingress ipvs) can run")


QDISC_PROBES = (
    ("netem", ["netem", "delay", "1ms"], "delay, jitter and loss"),
    ("tbf", ["tbf", "rate", "10mbit", "burst", "32kbit", "latency", "50ms"], "a bandwidth limit"),
    ("htb", ["htb", "default", "1"], "bandwidth classes"),
)
"""The queueing disciplines underlay conditions would use (Mininet's TCLink): tried on a veth."""


def qdisc_check(kind: str, use: str, rc: int) -> Check:
    """Never required: without one, that underlay condition cannot be set on a link."""
    if rc == 0:
        return ok(f"kernel: sch_{kind}", f"{use} on underlay links")
    return ok(f"kernel: sch_{kind}", f"absent: no {use} on underlay links through tc")


def datapath_check() -> Check:
    """The openvswitch kernel module where it exists; userspace OVS otherwise (not an error)."""
    if datapath.kernel_datapath_available():
        return ok("kernel: openvswitch module", "datapath system (kernel)")
    return ok("kernel: openvswitch module", "absent: datapath netdev (userspace OVS), "
              "slower per new connection")


def datapath_needs_check(chosen: str) -> Check:
    """What the datapath a build will use needs from the machine (/dev/net/tun for
    userspace OVS): required, a build stops on it with the same line."""
    what = f"datapath {chosen}: " + ("/dev/net/tun" if chosen == "netdev" else "module")
    why = datapath.datapath_missing(chosen)
    if why is None:
        return ok(what, "usable")
    return missing(what, why, datapath.TUN_FIX if chosen == "netdev" else
                   "a kernel with the openvswitch module, or --datapath netdev")


def ovs_check() -> Check:
    if not shutil.which("ovs-vsctl"):
        return missing("Open vSwitch running", "ovs-vsctl not found",
                       "apt-get install openvswitch-switch")
    rc, out = _run(["ovs-vsctl", "--timeout=3", "show"])
    if rc == 0:
        _, version = _run(["ovs-vsctl", "--version"])
        return ok("Open vSwitch running", version.splitlines()[0] if version else "")
    return missing("Open vSwitch running", out.splitlines()[-1] if out else "no answer",
                   f"{OVS_CTL} start (or {SETUP})")


def docker_checks(required: bool) -> list[Check]:
    """What ``--engine docker`` needs (real Swarm nodes): docker.io's programs, cgroup v2,
    and ip_vs for published ports. Optional unless ``--docker``."""
    try:
        filesystems = open("/proc/filesystems").read()
    except OSError:
        filesystems = ""
    items = [("docker: dockerd and its client",
              dockerd.programs_missing(shutil.which, os.path.exists), dockerd.FIX),
             ("kernel: cgroup2", dockerd.cgroup2_missing(filesystems), "a kernel with cgroup v2"),
             ("docker: published ports (ip_vs)", datapath.ipvs_missing(),
              "a kernel with ip_vs (every stock distribution kernel has it; `make vm-test` "
              "runs one)")]
    out = []
    for what, why, fix in items:
        if why is None:
            detail = dockerd.version() if what.startswith("docker: dockerd") else ""
            out.append(ok(what, detail))
        else:
            out.append(missing(what, why + " (only --engine docker needs it)", fix, required))
    return out


def _installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _mininet_version() -> str | None:
    try:
        import mininet.net
    except ImportError:
        return None
    return getattr(mininet.net, "VERSION", "?")


def _requirements() -> list[str]:
    try:
        return list(metadata.requires("swarmmesh") or [])
    except metadata.PackageNotFoundError:
        return []


def all_checks(required_groups: Iterable[str] = deps.SETUP_GROUPS,
               requested_datapath: str = "auto") -> list[Check]:
    pkgs = deps.packages()
    required_groups = tuple(required_groups)
    checks = (kernel_checks() + [datapath_check(),
                                 datapath_needs_check(datapath.choose_datapath(requested_datapath))]
              + docker_checks("docker" in required_groups))
    checks += package_checks(pkgs, dpkg_versions(p.name for p in pkgs), shutil.which,
                             required_groups)
    checks.append(ovs_check())
    reqs = _requirements()
    checks += python_checks(reqs, _installed_version, sys.version_info[:2], _mininet_version())
    if not reqs:
        checks.append(missing("python: swarmmesh", "not installed in this Python",
                              f"{SETUP} (pip install -e .)"))
    return checks


def summary_items(checks: Iterable[Check]) -> list[dict]:
    """JSON-ready, for summary.json."""
    return [asdict(c) for c in checks]


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--vm", action="store_true",
                    help="also require what `make vm-test` needs (the vm group)")
    ap.add_argument("--docker", action="store_true",
                    help="also require what --engine docker needs (the docker group, ip_vs, "
                         "cgroup2)")
    ap.add_argument("--json", action="store_true", help="the items as JSON")
    ap.add_argument("--datapath", choices=datapath.DATAPATHS, default="auto",
                    help="check what this OVS datapath needs (auto: the one a build picks)")


def report(args: argparse.Namespace) -> int:
    """Run every check, print one line per item (or JSON); 1 if something required is missing."""
    groups = (deps.SETUP_GROUPS + (("vm",) if args.vm else ())
              + (("docker",) if args.docker else ()))
    checks = all_checks(groups, getattr(args, "datapath", "auto"))
    if args.json:
        print(json.dumps(summary_items(checks), indent=1))
    else:
        for c in checks:
            print(c.line())
        bad = [c for c in checks if c.status == "missing" and c.required]
        print(f"doctor: {len(bad)} required item(s) missing" if bad else
              "doctor: everything required is here")
    return verdict(checks)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="swarmmesh doctor", description=__doc__.split("\n\n")[0])
    add_arguments(ap)
    return report(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
