"""Open-loop HTTP client: requests start at fixed times, whatever the answers do.

Request ``i`` is scheduled at ``t0 + i / rate``.  With a new connection per
request (the default) every request runs in its own worker thread from a
pool, so a slow answer does not delay the next start (no coordinated
omission, as long as the pool has a free worker: ``late_ms``, how far a start
slipped behind its schedule, says whether it did).  With ``--keepalive``
there is one persistent connection, which carries one request at a time: the
schedule is kept when answers are faster than the interval, otherwise the
next request starts as soon as the previous one ended (``late_ms`` > 0).

The per-request timings come from :mod:`swarmmesh.agents.httpclient`
(``connect_ms``, ``ttfb_ms``, ``total_ms``, measured from just before
``connect``); the answering task is read from the task server's JSON body.

CLI (one JSON object per request on stdout, in completion order)::

    python -m swarmmesh.traffic.openloop HOST PORT --rate R --count N
        [--keepalive] [--timeout S] [--workers W] [--path P]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from swarmmesh.agents import httpclient

FIELDS = ["seq", "sched_ms", "late_ms", "ok", "status", "connect_ms", "ttfb_ms", "total_ms",
          "task", "node", "seen_source", "local_port", "error", "ts"]


def record(seq: int, sched_ms: float, late_ms: float, res: httpclient.Result) -> dict:
    """One output row from an httpclient result."""
    body = res.body or {}
    return {"seq": seq, "sched_ms": round(sched_ms, 3), "late_ms": round(late_ms, 3),
            "ok": res.ok, "status": res.status, "connect_ms": res.connect_ms,
            "ttfb_ms": res.ttfb_ms, "total_ms": res.total_ms, "task": body.get("task"),
            "node": body.get("node"), "seen_source": body.get("client"),
            "local_port": res.local_port, "error": res.error, "ts": res.ts}


def run(host: str, port: int, rate: float, count: int, keepalive: bool = False,
        timeout: float = 2.0, workers: int = 64, path: str = "/", emit=None) -> list[dict]:
    """Send ``count`` requests at ``rate`` per second; return the rows
    (also passed one by one to ``emit`` as they complete)."""
    rows: list[dict] = []
    lock = threading.Lock()

    def done(row: dict) -> None:
        with lock:
            rows.append(row)
            if emit:
                emit(row)

    interval = 1.0 / rate
    t0 = time.perf_counter() + 0.01
    if keepalive:
        with httpclient.KeepAliveClient(host, port, timeout) as client:
            for i in range(count):
                due = t0 + i * interval
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                late = (time.perf_counter() - due) * 1000.0
                done(record(i, (due - t0) * 1000.0, late, client.get(path)))
        return rows

    def one(i: int, due: float) -> None:
        late = (time.perf_counter() - due) * 1000.0
        done(record(i, (due - t0) * 1000.0, late, httpclient.get(host, port, path, timeout)))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i in range(count):
            due = t0 + i * interval
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            pool.submit(one, i, due)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m swarmmesh.traffic.openloop",
                                description="Open-loop HTTP GETs at a fixed rate; "
                                            "one JSON line per request.")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--rate", type=float, required=True, help="requests started per second")
    p.add_argument("--count", type=int, required=True, help="number of requests")
    p.add_argument("--keepalive", action="store_true",
                   help="one persistent connection instead of a new one per request")
    p.add_argument("--timeout", type=float, default=2.0, help="per-request timeout, seconds")
    p.add_argument("--workers", type=int, default=64,
                   help="concurrent requests at most (new-connection mode)")
    p.add_argument("--path", default="/")
    a = p.parse_args(argv)
    for name in ("rate", "count", "timeout", "workers"):
        if getattr(a, name) <= 0:
            p.error(f"--{name} must be > 0")

    def emit(row: dict) -> None:
        sys.stdout.write(json.dumps(row) + "\n")
        sys.stdout.flush()

    try:
        run(a.host, a.port, a.rate, a.count, a.keepalive, a.timeout, a.workers, a.path, emit)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
