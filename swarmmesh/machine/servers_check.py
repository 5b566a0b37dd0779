"""What every server of a spread cluster must offer, checked before anything is built.

One probe per server: a short shell script run over ssh (:func:`probe_script`) prints
``key=value`` lines; :func:`parse_probe` reads them; :func:`decide` compares every server's
probe with this machine's and says, one item per requirement, what is wrong and how to
fix it.  ``decide`` is pure; :func:`probe` runs the script (locally with ``ssh=None``).

Requirements:

* ssh without a password (``BatchMode=yes``: a key, never a prompt), and ``sudo -n``
  (Mininet's cluster edition runs every remote command under ``sudo -E``);
* the same Mininet, Open vSwitch, kernel VXLAN/gretap support, Python, and the same
  versions of the Python packages that run on the server (os-ken, scapy, swarmmesh) at
  the same path (the remote hosts start ``sys.executable -m swarmmesh...``);
* ``mnexec`` there;
* clocks in step.  Experiments put events from several servers on one time line (a task
  killed on one server, requests per 100 ms bin seen on another), so a server's clock
  must be within ``CLOCK_TOLERANCE_S`` (5 ms, a twentieth of a bin) of this machine's.
  The probe reads the remote clock between two local readings; the offset is known to
  within half the round trip, and a server fails only when it is out for certain
  (``|offset| - rtt/2 > tolerance``); a round trip too long to tell (``rtt/2 >
  tolerance``) is said as such.  NTP or chrony keeps a LAN within about a millisecond.
  A server on this machine's own kernel (the same ``boot_id``: a namespace server, as
  the tests use) reads the same wall clock, in step by construction, whatever the round
  trip (an emulated guest's ssh round trip is 70 ms, too long to tell by reading it).
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from dataclasses import dataclass

CLOCK_TOLERANCE_S = 0.005
LOCAL = "localhost"
PACKAGES = ("os-ken", "scapy", "swarmmesh")
SAME = ("mininet", "openvswitch", "python", *PACKAGES)


def probe_script(python: str = sys.executable) -> str:
    """The shell script a server runs: one ``key=value`` line per fact."""
    py = shlex.quote(python)
    pkgs = ",".join(repr(p) for p in PACKAGES)
    return "; ".join([
        "echo sudo=$(sudo -n true >/dev/null 2>&1 && echo ok || echo no)",
        "echo mininet=$(dpkg-query -W -f='${Version}' mininet 2>/dev/null || echo none)",
        "echo openvswitch=$(dpkg-query -W -f='${Version}' openvswitch-switch 2>/dev/null"
        " || echo none)",
        "echo mnexec=$(command -v mnexec || echo none)",
        "echo boot_id=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || echo none)",
        # The tunnel devices, tried for real in a scratch namespace (removed again).
        "n=swarmmesh-probe-$$; sudo -n ip netns add $n 2>/dev/null",
        "echo kernel_vxlan=$(sudo -n ip -n $n link add p0 type vxlan id 1 dstport 4789"
        " local 10.0.0.1 remote 10.0.0.2 2>/dev/null && echo yes || echo no)",
        "echo kernel_gretap=$(sudo -n ip -n $n link add p1 type gretap key 1"
        " local 10.0.0.1 remote 10.0.0.2 2>/dev/null && echo yes || echo no)",
        "sudo -n ip netns del $n 2>/dev/null",
        f"test -x {py} && echo python=$({py} -c 'import sys; print(sys.version.split()[0])')"
        " || echo python=none",
        f"test -x {py} && {py} -c \"import importlib.metadata as m\nfor p in ({pkgs},):\n"
        "  try: print(p + '=' + m.version(p))\n  except Exception: print(p + '=none')\""
        " 2>/dev/null",
    ])


CLOCK_SCRIPT = "date +%s.%N"


@dataclass(frozen=True)
class Probe:
    facts: dict[str, str]
    sent: float = 0.0          # local clock when the probe left
    received: float = 0.0      # local clock when its answer came back
    ssh_rc: int = 0
    ssh_error: str = ""


def parse_probe(text: str, sent: float = 0.0, received: float = 0.0, ssh_rc: int = 0,
                ssh_error: str = "") -> Probe:
    facts = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key:
            facts[key] = value
    return Probe(facts, sent, received, ssh_rc, ssh_error)


@dataclass(frozen=True)
class Item:
    ok: bool
    server: str
    what: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        s = f"{'ok' if self.ok else 'FAILED':8} {self.server}: {self.what:22} {self.detail}"
        return s + (f"\n         fix: {self.fix}" if self.fix else "")


def clock_offset(p: Probe) -> tuple[float, float]:
    """(offset of the server's clock against ours, its uncertainty), in seconds."""
    remote = float(p.facts["clock"])
    return remote - (p.sent + p.received) / 2, (p.received - p.sent) / 2


def decide(local: Probe, servers: dict[str, Probe], ssh_hint: dict[str, str] | None = None,
           tunnel: str = "vxlan", tolerance: float = CLOCK_TOLERANCE_S) -> list[Item]:
    """One item per requirement per server (ssh first: nothing else is known without it);
    this machine's own tunnel device first.  ``tunnel``: the kind the plan uses."""
    key = f"kernel_{tunnel}"
    items = [Item(local.facts.get(key) == "yes", LOCAL, f"kernel {tunnel}",
                  local.facts.get(key, "unknown"),
                  "" if local.facts.get(key) == "yes" else
                  f"this kernel makes no {tunnel} device: use the other tunnel (--tunnel)")]
    for name, p in servers.items():
        hint = (ssh_hint or {}).get(name, f"ssh {name} true")
        if p.ssh_rc != 0 or "clock" not in p.facts:
            items.append(Item(False, name, "ssh without password",
                              f"exit {p.ssh_rc}: {p.ssh_error.strip()[-200:] or 'no answer'}",
                              f"make `{hint}` work with a key (BatchMode=yes: no prompt)"))
            continue
        items.append(Item(True, name, "ssh without password", "BatchMode=yes answered"))
        items.append(Item(p.facts.get("sudo") == "ok", name, "sudo without password",
                          "sudo -n true " + ("ok" if p.facts.get("sudo") == "ok" else "failed"),
                          "" if p.facts.get("sudo") == "ok" else
                          f"a NOPASSWD sudoers line for the ssh user on {name}"))
        items.append(Item(p.facts.get("mnexec", "none") != "none", name, "mnexec",
                          p.facts.get("mnexec", "none"),
                          "" if p.facts.get("mnexec", "none") != "none" else
                          "apt-get install mininet"))
        for fact in SAME:
            mine, theirs = local.facts.get(fact, "none"), p.facts.get(fact, "none")
            same = mine == theirs and theirs != "none"
            items.append(Item(same, name, fact, f"{theirs} (here {mine})",
                              "" if same else f"install {fact} {mine} on {name} "
                              "(sudo make setup in the same checkout at the same path)"))
        items.append(Item(p.facts.get(key) == "yes", name, f"kernel {tunnel}",
                          p.facts.get(key, "unknown"),
                          "" if p.facts.get(key) == "yes" else
                          f"{name}'s kernel makes no {tunnel} device: use the other tunnel"))
        items.append(_clock_item(name, p, tolerance, local))
    return items


def _clock_item(name: str, p: Probe, tolerance: float, local: Probe | None = None) -> Item:
    offset, err = clock_offset(p)
    detail = f"offset {offset * 1e3:+.2f} ms +- {err * 1e3:.2f} ms (tolerance {tolerance * 1e3:g} ms)"
    boot = p.facts.get("boot_id", "none")
    if local is not None and boot != "none" and boot == local.facts.get("boot_id"):
        return Item(True, name, "clock in step", f"this machine's own kernel (boot_id "
                    f"{boot[:8]}): one wall clock; read {detail}")
    if abs(offset) - err > tolerance:
        return Item(False, name, "clock in step", detail,
                    f"synchronise {name}'s clock (chrony or ntpd) with this machine's")
    if err > tolerance:
        return Item(False, name, "clock in step", detail + ": round trip too long to tell",
                    "check from a machine nearer the servers")
    return Item(True, name, "clock in step", detail)


def _run(ssh: list[str] | None, script: str, timeout: float):
    argv = (ssh + [script]) if ssh else ["sh", "-c", script]
    sent = time.time()
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)     # ssh would read the caller's stdin
    except subprocess.TimeoutExpired:
        return None, sent, time.time()
    return r, sent, time.time()


def probe(ssh: list[str] | None, python: str = sys.executable, timeout: float = 20,
          clock_samples: int = 5) -> Probe:
    """Run the probe: over ``ssh`` (argv up to the destination), or here with None.  The
    clock is read apart (:func:`read_clock`)."""
    r, _, _ = _run(ssh, probe_script(python), timeout)
    if r is None:
        return Probe({}, 0.0, 0.0, 255, f"no answer in {timeout:g} s")
    best = read_clock(ssh, clock_samples, timeout) if r.returncode == 0 and clock_samples else None
    text = r.stdout + (f"\nclock={best[0]}\n" if best else "")
    return parse_probe(text, best[1] if best else 0.0, best[2] if best else 0.0,
                       r.returncode, r.stderr)


def read_clock(ssh: list[str] | None, samples: int = 5, timeout: float = 20):
    """(remote clock, sent, received) of the shortest of ``samples`` round trips over one
    session: the server prints its clock for every line it reads, so an ssh session's
    set-up (a fifth of a second here) is not in the round trip, only the channel's."""
    argv = (ssh or ["sh", "-c"]) + [f"while read x; do {CLOCK_SCRIPT}; done"]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, bufsize=1)
    best = None
    try:
        for _ in range(samples):
            sent = time.time()
            proc.stdin.write("\n")
            proc.stdin.flush()
            line = proc.stdout.readline().strip()
            received = time.time()
            if not line:
                break
            if best is None or received - sent < best[2] - best[1]:
                best = (line, sent, received)
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return best


def check(ssh_of: dict[str, list[str]], tunnel: str = "vxlan",
          python: str = sys.executable) -> list[Item]:
    """Probe this machine and every server in ``ssh_of`` (name -> ssh argv); the items."""
    local = probe(None, python, clock_samples=0)
    remote = {name: probe(argv, python) for name, argv in ssh_of.items()}
    return decide(local, remote, {n: " ".join(a) + " true" for n, a in ssh_of.items()},
                  tunnel=tunnel)
