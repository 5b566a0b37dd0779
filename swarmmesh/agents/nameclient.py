"""A client that calls a service by name, as an application in a task does.

Each request is a new TCP connection.  The name is resolved (``--dns``):

* ``fresh``: through glibc ``getaddrinfo`` (``/etc/resolv.conf``, the
  embedded DNS at 127.0.0.11) before every request.  Note that glibc sorts
  the answer (RFC 6724, rule 9: longest matching prefix with the source
  address), which undoes a DNS server's shuffling within one subnet;
* ``raw``: a DNS query straight to 127.0.0.11 before every request, the
  answer's order kept (a stub resolver that does not sort);
* ``cached``: a raw query once, and that answer reused for the whole run,
  as a client that caches DNS does (a classic dnsrr pitfall).

The first address of the answer is the one used, as
``socket.create_connection`` does.

One JSON object per request on stdout: ``seq``, ``resolved`` (every
address in the answer, in order), ``used``, ``resolve_ms`` and the fields of
``swarmmesh.agents.httpclient.Result``.

    python -m swarmmesh.agents.nameclient web 80 --count 30 --dns fresh
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from dataclasses import asdict

from swarmmesh.agents import dns as embedded_dns
from swarmmesh.agents.httpclient import get

POLICIES = ("fresh", "raw", "cached")


def resolve(name: str, port: int) -> list[str]:
    """IPv4 addresses of ``name`` in the resolver's order (empty: no answer)."""
    try:
        infos = socket.getaddrinfo(name, port, socket.AF_INET, socket.SOCK_STREAM)
    except socket.gaierror:
        return []
    out: list[str] = []
    for info in infos:
        ip = info[4][0]
        if ip not in out:
            out.append(ip)
    return out


def resolve_raw(name: str) -> list[str]:
    try:
        rcode, ips = embedded_dns.query(name)
    except OSError:
        return []
    return ips if rcode == embedded_dns.NOERROR else []


def calls(name: str, port: int, count: int, dns: str = "fresh", timeout: float = 2.0,
          path: str = "/"):
    """Yield one record per request."""
    cached: list[str] | None = None
    for seq in range(count):
        if dns != "cached" or cached is None:
            t0 = time.perf_counter()
            answer = resolve(name, port) if dns == "fresh" else resolve_raw(name)
            resolve_ms = (time.perf_counter() - t0) * 1000.0
            if dns == "cached":
                cached = answer
        else:
            answer, resolve_ms = cached, 0.0
        rec = {"seq": seq, "resolved": answer, "used": answer[0] if answer else None,
               "resolve_ms": round(resolve_ms, 3)}
        if answer:
            rec.update(asdict(get(answer[0], port, path=path, timeout=timeout)))
        else:
            rec.update(ok=False, error=f"resolve: no address for {name!r}")
        yield rec


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("name")
    ap.add_argument("port", type=int)
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--dns", choices=POLICIES, default="fresh",
                    help="glibc before every request, a raw query before every request, "
                         "or a raw query once (default fresh)")
    ap.add_argument("--timeout", type=float, default=2.0)
    ap.add_argument("--path", default="/")
    args = ap.parse_args(argv)
    if args.count < 1:
        ap.error(f"--count: must be >= 1, got {args.count}")
    for rec in calls(args.name, args.port, args.count, args.dns, args.timeout, args.path):
        print(json.dumps(rec), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
