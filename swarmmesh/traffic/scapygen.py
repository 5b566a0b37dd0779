"""Spoofed-source traffic: thousands of clients from one host, on a raw socket.

Every request has its own spoofed source address and port, spread evenly over
the targets (:mod:`~swarmmesh.traffic.scapygen_plan`).

Frames are built before the clock starts: scapy builds one template frame
per target (Ethernet/IPv4/UDP or TCP SYN, checksums and all), and each
request's frame is that template with its source address, source port and
TCP sequence number patched in and both checksums recomputed (scapy takes
0.6 ms a packet here; a patch takes a few microseconds, and the unit tests
check that a patched frame equals scapy's own frame byte for byte).  They
are then written one ``send()`` each on an ``AF_PACKET`` socket (with
``PACKET_QDISC_BYPASS``), either as fast as possible or paced open-loop: the
packet ``k`` is due at ``t0 + k / rate`` on the monotonic clock, and the
loop sends whatever is due in batches of at most ``batch`` frames, sleeping
until the next packet is due otherwise, so oversleeping never shifts the
schedule (no drift).

A capture thread reads an ``AF_PACKET`` socket with a classic BPF filter
(IPv4 to the spoofed prefix) and kernel receive timestamps, and matches
every reply to its request by the reply's destination address and port,
which are the request's spoofed source.

* UDP: the task server answers every datagram with its JSON document, which
  names the task and its node.
* TCP, ``tcp_mode="http"`` (default): on the SYN-ACK the generator sends
  the ACK with an HTTP/1.0 GET in it; the answer names the task; the
  generator then resets the connection.  This completes a real connection
  through the mesh without any socket on the client.
* TCP, ``tcp_mode="syn"``: the SYN-ACK alone proves the mesh answered (the
  task is not known); the generator answers it with a RST.

Either way every connection ends with our RST, so no half-open connection
piles up on a task (its SYN backlog would overflow into SYN cookies) and no
SYN-ACK is retransmitted for a minute.

The spoofed prefix must route back to the client: :func:`route_spoofed_prefix`
adds ``SPOOF_PREFIX via <client underlay address>`` in every node's
namespace (strict ``rp_filter`` then passes as well).  The client's own
kernel does not own those addresses and does not forward (``ip_forward=0``),
so it drops the replies silently: no RST, no ICMP (the experiment checks
the client's counters).

The parts: ``scapygen_plan`` (sources and requests), ``scapygen_frames``
(templates and patches), ``scapygen_pacing``, ``scapygen_match`` (replies to
requests) and ``scapygen_capture`` (the raw sockets); this module runs them
(:func:`generate` and the CLI, in the client) and drives them from the
testbed (routes, counters, :func:`run_in_client`).

CLI (inside the client's namespace; one JSON summary line on stdout)::

    python -m swarmmesh.traffic.scapygen --iface c1-eth0 \\
        --target node1=192.168.99.1=aa:bb:..  [--target ...] --port 8000 \\
        --protocol udp --sources 3000 --rate 2000 --seed 1 --out records.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from ipaddress import IPv4Network
from typing import Iterable, Sequence

from swarmmesh.traffic.scapygen_capture import Capture, iface_mac, send_socket
from swarmmesh.traffic.scapygen_frames import build_frames
from swarmmesh.traffic.scapygen_match import RECORD_COLUMNS, Matcher
from swarmmesh.traffic.scapygen_pacing import offered_rate, send_paced
from swarmmesh.traffic.scapygen_plan import SPOOF_PREFIX, Request, Target, plan_requests


# --------------------------------------------------------------------------
# The run, inside the client's namespace
# --------------------------------------------------------------------------

def generate(iface: str, targets: Sequence[Target], protocol: str, sources: int,
             rate: float, seed: int, wait: float = 2.0, batch: int = 16,
             tcp_mode: str = "http", capture: bool = True,
             prefix: IPv4Network = SPOOF_PREFIX, payload: bytes | None = None) -> dict:
    """Build, send and match; runs inside the client's namespace.

    Returns ``{"records": [...], "summary": {...}}``: one record per request
    (``RECORD_COLUMNS``) and the sent/replied counts, the offered rate (from
    the send timestamps) and the achieved rate (``ok`` replies over the time
    from the first send to the last matched reply).
    """
    src_mac = iface_mac(iface)
    requests = plan_requests(targets, sources, seed, prefix)
    if payload is None:
        payload = b"swarmmesh\n" if protocol == "udp" else b""
    t_build = time.monotonic()
    frames = build_frames(requests, protocol, src_mac, payload)
    build_s = time.monotonic() - t_build
    matcher = Matcher(requests, protocol, src_mac, tcp_mode)
    t0_ns, stamps, failed, cap = _send_and_match(iface, prefix, matcher, frames, rate, batch,
                                                 wait, capture)
    records = matcher.records(stamps, t0_ns)
    summary = _summary(requests, matcher, records, stamps, failed, cap, protocol=protocol,
                       tcp_mode=tcp_mode, rate=rate, batch=batch, seed=seed, prefix=prefix,
                       build_s=build_s, t0_ns=t0_ns)
    return {"records": records, "summary": summary}


def _send_and_match(iface: str, prefix: IPv4Network, matcher: Matcher, frames: list[bytes],
                    rate: float, batch: int, wait: float,
                    capture: bool) -> tuple[int, list[int], int, Capture | None]:
    """Send every frame, paced, with the capture matching replies when ``capture``;
    the start (ns), every send's timestamp, the failed sends, the capture."""
    tx = send_socket(iface)
    cap = None
    if capture:
        answer_sock = send_socket(iface)
        cap = Capture(iface, prefix, matcher, answer_sock.send)
        cap.start()
    t0_ns = time.time_ns()
    stamps, failed = send_paced(tx.send, frames, rate, batch)
    sent_end = time.monotonic()
    if cap is not None:
        # Wait for replies: until all answered, or ``wait`` s after the last send.
        while time.monotonic() - sent_end < wait and matcher.answered() < len(matcher.requests):
            time.sleep(0.02)
        time.sleep(0.05)                    # the last RSTs go out
        cap.stop()
        answer_sock.close()
        if cap.error:
            raise cap.error
    tx.close()
    return t0_ns, stamps, failed, cap


def _summary(requests: Sequence[Request], matcher: Matcher, records: list[dict],
             stamps: list[int], failed: int, cap: Capture | None, *, protocol: str,
             tcp_mode: str, rate: float, batch: int, seed: int, prefix: IPv4Network,
             build_s: float, t0_ns: int) -> dict:
    """The run's summary: counts, the offered and achieved rates, the settings."""
    ok = [r for r in records if r["ok"]]
    sent = sum(1 for s in stamps if s)
    last_reply = max((matcher.reply_ns[r["seq"]] for r in ok), default=None)
    first = min((s for s in stamps if s), default=None)
    achieved = (len(ok) / ((last_reply - first) / 1e9)
                if ok and first and last_reply and last_reply > first else None)
    return {
        "protocol": protocol, "tcp_mode": tcp_mode if protocol == "tcp" else None,
        "requests": len(requests), "sent": sent, "send_failed": failed,
        "requested_rate_pps": rate if rate > 0 else "max",
        "offered_rate_pps": offered_rate(stamps),
        "achieved_rate_pps": achieved,
        "replied": len(matcher.reply_ns), "ok": len(ok),
        "duplicates": sum(matcher.dups.values()), "unmatched_replies": matcher.unmatched,
        "unmatched_samples": matcher.unmatched_samples,
        "captured_frames": cap.frames if cap else 0,
        "capture_kernel_drops": cap.kernel_drops if cap else None,
        "distinct_sources": len({(r.src_ip, r.src_port) for r in requests}),
        "distinct_source_ips": len({r.src_ip for r in requests}),
        "build_s": round(build_s, 3), "batch": batch, "seed": seed, "prefix": str(prefix),
        "t0_unix_ns": t0_ns,
    }


# --------------------------------------------------------------------------
# Testbed side (root namespace, run by experiments)
# --------------------------------------------------------------------------

def route_spoofed_prefix(tb, client: str, prefix: IPv4Network = SPOOF_PREFIX) -> dict:
    """Route ``prefix`` back to ``client`` from every node; report what the
    kernels were set to (rp_filter on the nodes, forwarding on the client)."""
    via = str(tb.cluster.clients[[c.name for c in tb.cluster.clients].index(client)].underlay_ip)
    facts: dict = {"prefix": str(prefix), "via": via, "nodes": {}}
    for n in tb.cluster.nodes:
        h = tb.host(n.name)
        h.run(f"ip route replace {prefix} via {via}")
        eth = h.defaultIntf().name
        facts["nodes"][n.name] = {
            "route": h.cmd(f"ip route get {prefix.network_address + 1}").split("\n")[0].strip(),
            "rp_filter": {k: h.cmd(f"sysctl -n net.ipv4.conf.{k}.rp_filter").strip()
                          for k in ("all", eth)},
        }
    c = tb.host(client)
    facts["client"] = {
        "ip_forward": c.cmd("sysctl -n net.ipv4.ip_forward").strip(),
        "owns_prefix": bool(c.cmd(f"ip -4 -o addr show to {prefix}").strip()),
    }
    return facts


def kernel_reply_counters(host) -> dict[str, int]:
    """TCP RSTs and ICMP messages the host's own kernel has sent."""
    snmp = host.cmd("cat /proc/net/snmp").splitlines()
    out = {}
    for i in range(0, len(snmp) - 1, 2):
        names, values = snmp[i].split(), snmp[i + 1].split()
        if names and names[0] in ("Tcp:", "Icmp:"):
            row = dict(zip(names[1:], values[1:]))
            key = "tcp_out_rsts" if names[0] == "Tcp:" else "icmp_out_msgs"
            out[key] = int(row["OutRsts" if names[0] == "Tcp:" else "OutMsgs"])
    return out


def targets_of(tb, nodes: Iterable[str], port: int) -> list[Target]:
    out = []
    for name in nodes:
        h = tb.host(name)
        out.append(Target(name, str(tb.cluster.node(name).underlay_ip), h.MAC(), port))
    return out


def run_in_client(tb, client: str, targets: Sequence[Target], out_csv, **kw) -> dict:
    """Run the generator in ``client``'s namespace; returns its summary
    (the records are written to ``out_csv``)."""
    h = tb.host(client)
    args = ["-m", "swarmmesh.traffic.scapygen", "--iface", h.defaultIntf().name,
            "--out", h.result_path(out_csv)]   # on another server: there, fetched below
    for t in targets:
        args += ["--target", f"{t.node}={t.ip}={t.mac}", "--port", str(t.port)]
    for k, v in kw.items():
        if isinstance(v, bool):
            if not v:
                args.append(f"--no-{k.replace('_', '-')}")
        else:
            args += [f"--{k.replace('_', '-')}", str(v)]
    n = kw.get("sources", 1000)
    rate = kw.get("rate", 0) or 50000
    out = tb.run_in(client, args, timeout=60 + n / rate + n / 2000 + kw.get("wait", 2))
    h.fetch_result(out_csv)
    return json.loads(out.strip().splitlines()[-1])


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------

def _target(text: str) -> tuple[str, str, str]:
    parts = text.split("=")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"expected NODE=IP=MAC, got {text!r}")
    return parts[0], parts[1], parts[2]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m swarmmesh.traffic.scapygen",
                                description=__doc__.splitlines()[0])
    p.add_argument("--iface", required=True)
    p.add_argument("--target", type=_target, action="append", required=True,
                   help="NODE=IP=MAC (repeatable)")
    p.add_argument("--port", type=int, action="append", required=True,
                   help="published port, once, or once per --target")
    p.add_argument("--protocol", choices=["udp", "tcp"], default="udp")
    p.add_argument("--tcp-mode", choices=["http", "syn"], default="http")
    p.add_argument("--sources", type=int, default=1000)
    p.add_argument("--rate", type=float, default=0, help="packets/s; 0 = as fast as possible")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--wait", type=float, default=2.0, help="s to wait for replies after sending")
    p.add_argument("--prefix", default=str(SPOOF_PREFIX))
    p.add_argument("--no-capture", dest="capture", action="store_false")
    p.add_argument("--out", help="CSV of per-request records")
    a = p.parse_args(argv)
    if len(a.port) not in (1, len(a.target)):
        p.error("--port: give one port, or one per --target")
    ports = a.port * len(a.target) if len(a.port) == 1 else a.port
    targets = [Target(n, ip, mac, port) for (n, ip, mac), port in zip(a.target, ports)]
    res = generate(a.iface, targets, a.protocol, a.sources, a.rate, a.seed, wait=a.wait,
                   batch=a.batch, tcp_mode=a.tcp_mode, capture=a.capture,
                   prefix=IPv4Network(a.prefix))
    if a.out:
        with open(a.out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=RECORD_COLUMNS)
            w.writeheader()
            w.writerows(res["records"])
    print(json.dumps(res["summary"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
