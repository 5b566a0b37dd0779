"""Long-lived connections: N HTTP keep-alive connections, each asking every
``--interval`` s, for ``--duration`` s (or until SIGTERM).  At the end, one
JSON line per connection: the entry address, the task that answered first,
every task that answered, how many requests failed, and how many TCP
connections it took (1 = it never broke).

    python -m swarmmesh.agents.holdconn 192.168.99.1 192.168.99.2 --port 8000 --connections 20
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time

from swarmmesh.agents.httpclient import KeepAliveClient


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("addresses", nargs="+", help="entry addresses, used in turn")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--connections", type=int, default=20)
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("--duration", type=float, default=3600.0)
    ap.add_argument("--timeout", type=float, default=2.0)
    args = ap.parse_args(argv)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    clients = [KeepAliveClient(args.addresses[i % len(args.addresses)], args.port,
                               timeout=args.timeout) for i in range(args.connections)]
    stats = [{"address": c.host, "first_task": None, "tasks": [], "requests": 0, "failed": 0,
              "first_error": None} for c in clients]
    print("ready", flush=True)
    end = time.monotonic() + args.duration
    while not stop and time.monotonic() < end:
        t0 = time.monotonic()
        for c, st in zip(clients, stats):
            r = c.get()
            st["requests"] += 1
            task = (r.body or {}).get("task") if r.ok else None
            if task is None:
                st["failed"] += 1
                st["first_error"] = st["first_error"] or r.error
                continue
            st["first_task"] = st["first_task"] or task
            if task not in st["tasks"]:
                st["tasks"].append(task)
        time.sleep(max(0.0, args.interval - (time.monotonic() - t0)))
    for c, st in zip(clients, stats):
        st["tcp_connections"] = c.connections
        c.close()
        print(json.dumps(st), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
