#!/usr/bin/env python3
"""The VIP's cost, measured: latency and new-connection rate of one service called by its
VIP from a task, beside the same tasks called by their own addresses (no VIP, no NAT), in
one run.  Run it on two checkouts, alone on the machine, and compare the ratios:

    sudo .venv/bin/python tools/vip_bench.py OUT_DIR [--repeats 5]

One task of ``client`` on node1 calls ``web`` (3 tasks, one per node: one local, two over
VXLAN).  Per repeat: ``--requests`` sequential new connections (connect to the answer's
end, each its own TCP connection, ms), for the VIP and for the tasks' own addresses in
turn; and ``ab -n --ab-requests -c --concurrency`` (a new connection per request) against
the VIP and against each task.  Prints one JSON line: medians and p95 over every request,
the median requests/s over repeats, and the VIP's ratios to the direct path.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path

from swarmmesh.model import Cluster
from swarmmesh.testbed.testbed import Testbed

STACK = {"networks": {"front": {}}, "services": {
    "web": {"deploy": {"replicas": 3}, "networks": ["front"]},
    "client": {"deploy": {"replicas": 1, "placement": {"constraints": ["node.hostname==node1"]}},
               "networks": ["front"]}}}
LATENCY = r"""
import http.client, json, sys, time
hosts, n = sys.argv[1].split(","), int(sys.argv[2])
out = []
for i in range(n):
    t = time.perf_counter()
    c = http.client.HTTPConnection(hosts[i % len(hosts)], 80, timeout=5)
    c.request("GET", "/"); c.getresponse().read(); c.close()
    out.append((time.perf_counter() - t) * 1000)
print(json.dumps(out))
"""


def p95(xs: list[float]) -> float:
    return sorted(xs)[int(0.95 * (len(xs) - 1))]


def ab_rate(tb, host: str, target: str, n: int, c: int) -> float:
    out = tb.host(host).cmd(f"ab -q -n {n} -c {c} http://{target}/ 2>&1")
    m = re.search(r"Requests per second:\s+([\d.]+)", out)
    if m is None:
        raise RuntimeError(f"ab against {target}: {out[-400:]}")
    return float(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--ab-requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=8)
    a = ap.parse_args()
    with Testbed(Cluster.from_stack(STACK, nodes=3), a.out) as tb:
        client = tb.cluster.tasks_of("client")[0].host
        vip = str(tb.cluster.service("web").vips["front"])
        tasks = [str(t.addresses["front"]) for t in tb.cluster.tasks_of("web")]
        lat = {"vip": [], "direct": []}
        rps = {"vip": [], "direct": []}
        for r in range(a.repeats):
            for path, hosts in (("vip", [vip]), ("direct", tasks))[:: 1 if r % 2 else -1]:
                out = tb.run_in(client, ["-c", LATENCY, ",".join(hosts), str(a.requests)],
                                timeout=a.requests * 5 + 30)
                lat[path] += json.loads(out.splitlines()[-1])
                per = [ab_rate(tb, client, h, a.ab_requests, a.concurrency) for h in hosts]
                rps[path].append(statistics.mean(per))
    res = {p: {"latency_median_ms": round(statistics.median(lat[p]), 3),
               "latency_p95_ms": round(p95(lat[p]), 3),
               "rps_median": round(statistics.median(rps[p]), 1)} for p in lat}
    res["vip_to_direct"] = {
        "latency_median": round(res["vip"]["latency_median_ms"]
                                / res["direct"]["latency_median_ms"], 3),
        "rps": round(res["vip"]["rps_median"] / res["direct"]["rps_median"], 3)}
    print(json.dumps(res))


if __name__ == "__main__":
    main()
