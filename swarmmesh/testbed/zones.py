"""Underlay conditions on a running testbed: two zones of nodes joined by a WAN link.

:func:`split` (through the Mininet API; the topology is unchanged until it runs):

* the second zone's nodes and clients leave the bridge ``ul0`` for a new bridge
  ``ul1`` in the ``underlay`` namespace;
* a host ``wan1`` joins the two bridges (legs ``wan1-a`` on ``ul0``, ``wan1-b`` on
  ``ul1``) and carries every frame between the zones: with netem where the kernel
  has it (a kernel bridge in ``wan1``, ``netem`` on both legs), else through the
  userspace link :mod:`swarmmesh.agents.wanlink` (recorded for cleanup like every
  process of a run); a bandwidth is a ``tbf`` on both legs either way;
* every node's underlay leg gets tx checksum offload off (a frame that leaves the
  kernel through a packet socket must be complete: no partial checksum, no TSO).

:func:`limit_link` gives one host's own underlay link a bandwidth (``tbf`` both ways).
"""

from __future__ import annotations

import sys

from swarmmesh import agents
from swarmmesh.dataplane import zones as zoneplan
from swarmmesh.testbed import l4lb
from swarmmesh.testbed.extlb import ServiceHost, _wait, ExtLBError

WAN = "wan1"


def netem_available(tb) -> bool:
    """Does this kernel take a netem qdisc?  Tried on a scratch veth in the underlay."""
    ul = tb.host("underlay")
    ul.cmd("ip link add nmprobe0 type veth peer name nmprobe1")
    rc = ul.cmd("tc qdisc add dev nmprobe0 root netem delay 1ms >/dev/null 2>&1; echo $?").strip()
    ul.cmd("ip link del nmprobe0")
    return rc.endswith("0")


def split(tb, zones: dict[str, str], wan: zoneplan.Conditions, seed: int | None = None) -> dict:
    """Two zones, the WAN link between them; returns what was done (for summary.json)."""
    ul = tb.host("underlay")
    br = zoneplan.bridges(zones)
    if len(set(br.values())) < 2:
        return {"zones": zones, "wan": None}
    l4lb._sh(ul, "ip link add ul1 type bridge && ip link set ul1 up")
    for host, bridge in sorted(br.items()):
        if bridge != "ul0":
            l4lb._sh(ul, f"ip link set ul-{host} nomaster && ip link set ul-{host} master {bridge}")
    for n in tb.cluster.nodes:
        tb.host(n.name).cmd(f"ethtool -K {n.name}-eth0 tx off >/dev/null 2>&1")
    host = tb.net.addHost(WAN, cls=ServiceHost, ip=None, state=tb.state)
    legs = {"ul0": f"{WAN}-a", "ul1": f"{WAN}-b"}
    for bridge, intf in legs.items():
        peer = f"ul-{intf}"
        tb.state.register_links([intf, peer])
        tb.net.addLink(host, ul, intfName1=intf, intfName2=peer)
        l4lb._sh(ul, f"ip link set {peer} master {bridge} && ip link set {peer} up")
        l4lb._sh(host, f"sysctl -qw net.ipv6.conf.{intf}.disable_ipv6=1 && ip link set {intf} up"
                       f" && ethtool -K {intf} tx off tso off gso off gro off >/dev/null 2>&1; true")
    netem = netem_available(tb)
    commands = []
    a, b = legs["ul0"], legs["ul1"]
    if netem:
        l4lb._sh(host, f"ip link add wanbr type bridge && ip link set wanbr up && "
                       f"ip link set {a} master wanbr && ip link set {b} master wanbr")
        commands = [zoneplan.netem(i, wan) for i in (a, b)]
    else:
        commands = [zoneplan.tbf(i, wan.rate_mbit) for i in (a, b)] if wan.rate_mbit else []
        argv = [sys.executable, "-m", "swarmmesh.agents.wanlink", a, b,
                "--delay-ms", f"{wan.delay_ms:g}", "--jitter-ms", f"{wan.jitter_ms:g}",
                "--loss", f"{wan.loss:g}"] + (["--seed", str(seed)] if seed is not None else [])
        log = tb.run_dir / "wanlink.log"
        proc = host.start(argv, "swarmmesh.agents.wanlink", log, env=agents.python_env())
        _wait(lambda: "ready" in log.read_text() or proc.poll() is not None, 10,
              "the WAN link did not start")
        if proc.poll() is not None:
            raise ExtLBError(f"the WAN link exited: {log.read_text()[-500:]}")
    for cmd in commands:
        l4lb._sh(host, cmd)
    return {"zones": zones, "bridges": br, "wan": wan.describe(netem), "netem": netem,
            "tc": commands}


def limit_link(tb, host: str, rate_mbit: float) -> list[str]:
    """``host``'s own underlay link limited to ``rate_mbit`` both ways (tbf on each end)."""
    cmds = [(host, zoneplan.tbf(f"{host}-eth0", rate_mbit)),
            ("underlay", zoneplan.tbf(f"ul-{host}", rate_mbit))]
    for h, cmd in cmds:
        l4lb._sh(tb.host(h), cmd)
    return [f"{h}: {c}" for h, c in cmds]


def ping(tb, src: str, dst: str, count: int = 10, interval: float = 0.1) -> list[float]:
    """RTTs (ms) of ``count`` pings from host ``src`` to address ``dst``."""
    out = tb.host(src).cmd(f"ping -n -q -c {count} -i {interval} -W 2 {dst} >/dev/null; "
                           f"ping -n -c {count} -i {interval} -W 2 {dst}")
    return [float(w.split("=")[1]) for w in out.split() if w.startswith("time=")]

