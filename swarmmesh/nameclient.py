"""A client that calls a service by name, as an application in a task does.

Each request is a new TCP connection.  The name is resolved through the
task's resolver (glibc ``getaddrinfo``, so ``/etc/resolv.conf`` and the
embedded DNS at 127.0.0.11), either before every request (``--dns fresh``)
or once for the whole run (``--dns cached``: what a client that caches one
DNS answer does, a classic dnsrr pitfall).  The first address returned is
the one used, as ``socket.create_connection`` does.

One JSON object per request on stdout: ``seq``, ``resolved`` (every
address in the answer, in order), ``used``, ``resolve_ms`` and the fields of
``swarmmesh.httpclient.Result``.

    python -m swarmmesh.nameclient web 80 --count 30 --dns fresh
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from dataclasses import asdict

from swarmmesh.httpclient import get


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


def calls(name: str, port: int, count: int, dns: str = "fresh", timeout: float = 2.0,
          path: str = "/"):
    """Yield one record per request."""
    cached: list[str] | None = None
    for seq in range(count):
        if dns == "fresh" or cached is None:
            t0 = time.perf_counter()
            answer = resolve(name, port)
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
    ap.add_argument("--dns", choices=["fresh", "cached"], default="fresh",
                    help="resolve before every request, or once (default fresh)")
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
