"""The conformance scenarios seen from inside the cluster, on one running engine (root).

A client task of the stack (service ``client``, on the user overlay ``back`` with the
service under test) calls services by name, as an application does:

* ``eastwest``: ``web`` through its VIP (the answer, the split over the tasks, the source
  the task sees), ``tasks.web`` and the dnsrr service ``names`` (the addresses answered,
  their order query after query);
* ``health``: the load generator, in the client task, at ``checked``'s VIP while one of its
  tasks turns unhealthy (its application fails the stack's own health check): when the task
  leaves the rotation, what failed meanwhile, when its replacement answers;
* ``update``: a rolling update of the service under test (the stack's ``update_config``),
  stop-first then start-first, under load through every node: which slot's task left and
  answered when;
* ``overhead``: latency and new connections/s through ``web``'s VIP against straight at a
  task's address, from the same client task, rounds alternating.

The client runs in the task's network namespace: the emulated task's host, or ``nsenter
--net`` into the real container (the embedded DNS at 127.0.0.11 answers there).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Callable

from swarmmesh.runs import conformance as conf
from swarmmesh.runs import conformance_ew as ew
from swarmmesh.runs import runfolder
from swarmmesh.model.healthcheck import parse_duration
from swarmmesh.runs.conformance_scenarios import Live, _timed
from swarmmesh.runs.timeline_metrics import read_timeline

BACK, CLIENT, NAMES, CHECKED = "back", "client", "names", "checked"
PORT = 80
QUERIES = 10
HEALTH = {"test": ["CMD", "curl", "-f", "http://localhost/health"],
          "interval": "5s", "timeout": "20s", "retries": 3}
"""The stack's own health check of ``checked`` (the docker engine runs its image's probe of
the task server's health endpoint with these timings).  Generous for QEMU TCG: there
``docker exec`` of the probe took more than 5 s at times (Docker: ``context deadline
exceeded``), and real Swarm replaced healthy tasks again and again with 1 s and 5 s timeouts."""
UPDATE = {"parallelism": 1, "delay": "2s"}
"""The stack's own ``update_config`` of the service under test (both orders use it)."""
NEEDS = {"eastwest": (CLIENT, NAMES), "health": (CLIENT, CHECKED), "overhead": (CLIENT,)}


def extend_stack(spec: dict, chosen: tuple[str, ...], service: str) -> dict:
    """The stack with what the chosen scenarios call: the overlay ``back`` with ``service``
    on it, the client task, the dnsrr service, the health-checked service (only those the
    chosen scenarios need: the others' cluster stays as it was)."""
    wanted = {s for name in chosen for s in NEEDS.get(name, ())}
    services = dict(spec["services"])
    if "update" in chosen:
        web = services[service]
        services[service] = {**web, "deploy": {**web["deploy"], "update_config": UPDATE}}
    if not wanted:
        return {**spec, "services": services}
    services[service] = {**services[service], "networks": [BACK]}
    extra = {CLIENT: {"deploy": {"replicas": 1}},
             NAMES: {"deploy": {"replicas": 2, "endpoint_mode": "dnsrr"}},
             CHECKED: {"deploy": {"replicas": 2}, "healthcheck": HEALTH}}
    for name in (CLIENT, NAMES, CHECKED):
        if name in wanted:
            services[name] = {"image": "swarmmesh/task", "networks": [BACK], **extra[name]}
    return {**spec, "services": services, "networks": {BACK: {}}}


# -- running a module of ours in a task's network namespace ---------------------------------


def task_prefix(live: Live, task: str) -> list[str]:
    """What enters ``task``'s network namespace: ``nsenter --net`` of the real container's
    PID (docker), or nothing (the emulated task's host runs the command itself)."""
    docker = getattr(live.tb, "docker", None)
    if docker is None:
        return []
    node, cid = live.tb.container_of(task)
    return ["nsenter", "-t", docker(node, "inspect", "--format", "{{.State.Pid}}", cid).strip(),
            "-n"]


def popen_in_task(live: Live, task: str, args: list[str],
                  prefix: list[str] | None = None) -> subprocess.Popen:
    """``python args...`` in the network namespace of ``task``, its PID recorded
    (``prefix``: :func:`task_prefix`, when the caller looked it up already)."""
    from swarmmesh.agents import python_env
    argv = [sys.executable, *args]
    prefix = task_prefix(live, task) if prefix is None else prefix
    if getattr(live.tb, "docker", None) is not None:
        proc = subprocess.Popen([*prefix, *argv], env=python_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    else:
        proc = live.tb.task_host(live.cluster.task(task)).popen(
            argv, env=python_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    live.tb.state.register(proc.pid, args[1] if args[0] == "-m" else sys.executable)
    return proc


def run_in_task(live: Live, task: str, args: list[str], timeout: float = 120) -> str:
    proc = popen_in_task(live, task, args)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RuntimeError(f"{task}: {' '.join(args)} timed out after {timeout}s") from None
    if proc.returncode != 0:
        raise RuntimeError(f"{task}: {' '.join(args)} exited {proc.returncode}: {err[-800:]}")
    return out


QUERY = ("import json, sys\nfrom swarmmesh.agents.dns import query\n"
         "for name in sys.argv[2:]:\n"
         "    for _ in range(int(sys.argv[1])):\n"
         "        rcode, ips = query(name, timeout=2.0)\n"
         "        print(json.dumps({'name': name, 'rcode': rcode, 'ips': ips}))\n")


def answers(live: Live, task: str, names: list[str], count: int = QUERIES) -> dict[str, list]:
    """The embedded DNS's answers (in its order) to ``count`` queries of each name."""
    out: dict[str, list] = {n: [] for n in names}
    for line in run_in_task(live, task, ["-c", QUERY, str(count), *names]).splitlines():
        r = json.loads(line)
        out[r["name"]].append(r["ips"])
    return out


def _client(live: Live) -> tuple[str, str]:
    t = live.cluster.tasks_of(CLIENT)[0]
    return t.name, str(t.addresses[BACK])


def lb_addresses(live: Live) -> dict[str, str]:
    """Each node's load-balancer address on ``back``: the model's (emulated), or the
    ``lb-back`` endpoint ``docker network inspect`` shows on that node."""
    docker = getattr(live.tb, "docker", None)
    if docker is None:
        return {n.name: str(n.lb_ips[BACK]) for n in live.cluster.nodes if BACK in n.lb_ips}
    out = {}
    for node in live.nodes():
        net = json.loads(docker(node, "network", "inspect", BACK, check=False) or "[{}]")
        for key, c in ((net[0] if net else {}).get("Containers") or {}).items():
            if key.startswith("lb-") and c.get("IPv4Address"):
                out[node] = c["IPv4Address"].split("/")[0]
    return out


def _back(live: Live, service: str) -> list[str]:
    return [str(t.addresses[BACK]) for t in live.cluster.tasks_of(service)]


# -- the scenarios -------------------------------------------------------------------------


def eastwest(live: Live) -> dict[str, conf.Figure]:
    client, client_addr = _client(live)
    dns = answers(live, client, [live.service, f"tasks.{live.service}", NAMES])
    n = 4 * len(live.cluster.tasks_of(live.service))
    out = run_in_task(live, client, ["-m", "swarmmesh.agents.nameclient", live.service,
                                     str(PORT), "--count", str(n), "--dns", "raw"],
                      timeout=n * 5 + 30)
    rows = []
    for line in out.splitlines():
        r = json.loads(line)
        body = r.get("body") or {}
        rows.append({"seq": r["seq"], "used": r.get("used") or "", "task": body.get("task", ""),
                     "seen_source": body.get("client", ""), "ok": bool(r.get("ok"))})
    runfolder.write_csv(live.out / "eastwest.csv", rows,
                        ["seq", "used", "task", "seen_source", "ok"])
    runfolder.write_json(live.out / "eastwest-dns.json", dns)
    web = _back(live, live.service)
    vip = dns[live.service][0][0] if dns[live.service] and dns[live.service][0] else None
    return {"east-west: a VIP service's name answers": ew.vip_answer(dns[live.service], web),
            "east-west: split over the tasks through the VIP":
                ew.ew_split([r["task"] for r in rows]),
            "east-west: source the task sees": ew.ew_source(
                [r["seen_source"] for r in rows if r["ok"]], client_addr, vip,
                lb_addresses(live), live.cluster.task(client).node),
            "east-west: tasks.<service> answers":
                ew.name_answers(dns[f"tasks.{live.service}"], web),
            "east-west: dnsrr service answers": ew.name_answers(dns[NAMES], _back(live, NAMES))}


def health(live: Live, duration: float = 75.0) -> dict[str, conf.Figure]:
    """``checked``'s first task turns unhealthy at 2 s (its application fails the health
    check and still answers); the load from the client task at the service's VIP."""
    client, _ = _client(live)
    vip = answers(live, client, [CHECKED], count=1)[CHECKED][0][0]
    before = sorted(t.name for t in live.cluster.tasks_of(CHECKED))
    victim = before[0]
    rows, t = _timed_in_task(live, client, "health", vip, duration,
                             lambda: live.ops.kill_task(victim, "unhealthy"))
    stats = ew.health_window(rows, victim, t)
    live.raw["health"] = {"task": victim, **stats}
    return {"health check: unhealthy task leaves the rotation (last answer)":
                ew.seconds(stats["last_answer_s"], "answer after the action"),
            "health check: failed connections meanwhile": ew.failed(stats),
            "health check: replacement answers": _replacement(rows, set(before), victim, t,
                                                              stats)}


def _replacement(rows: list[dict], before: set[str], victim: str, t: float,
                 stats: dict) -> conf.Figure:
    """The replacement's first answer: a task not among ``before`` (the emulation names
    it anew) or the victim's name back after a silence (Swarm reuses the slot's name)."""
    new = sorted({r["task"] for r in rows if r["ok"] and r["t_send"] >= t} - before)
    if new:
        first = min(r["t_send"] for r in rows if r["ok"] and r["task"] == new[0])
        return conf.Figure(f"{first - t:.1f} s ({new[0]})", round(first - t, 2))
    s = stats["second_life_s"]
    return conf.Figure("no replacement answered" if s is None else f"{s:.1f} s ({victim})", s)


def _timed_in_task(live: Live, task: str, name: str, address: str, duration: float,
                   action: Callable[[], None]) -> tuple[list[dict], float]:
    """The load generator in ``task`` at ``address`` for ``duration`` s, ``action()`` at
    2 s; its rows and the action's time on the load's clock."""
    path = live.out / f"{name}.csv"
    prefix = task_prefix(live, task)     # docker CLI calls: slow under TCG, before t0
    t0 = time.monotonic() + 3.0          # the generator's start-up (nsenter, Python) inside
    proc = popen_in_task(live, task, [
        "-m", "swarmmesh.agents.loadgen", "--target", f"{CLIENT}={address}", "--port",
        str(PORT), "--rate", str(live.rate), "--duration", str(duration), "--t0", repr(t0),
        "--timeout", "1.0", "--csv", str(path)], prefix)
    try:
        time.sleep(max(0.0, t0 + 2.0 - time.monotonic()))
        t_action = time.monotonic() - t0
        action()
        proc.communicate(timeout=duration + 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return read_timeline(path), t_action


def overhead(live: Live, rounds: int = 3, requests: int = 40) -> dict[str, conf.Figure]:
    """Closed-loop new connections from the client task, ``rounds`` alternating the VIP
    and the tasks' own addresses (direct: no balancer, the overlay only; the addresses
    ``tasks.<service>`` answers now, not the model's, which an update before made stale)."""
    client, _ = _client(live)
    dns = answers(live, client, [live.service, f"tasks.{live.service}"], count=1)
    vip, tasks = dns[live.service][0][0], sorted(dns[f"tasks.{live.service}"][0])
    ms: dict[str, list] = {"vip": [], "direct": []}
    for _ in range(rounds):
        for path, targets in (("direct", tasks), ("vip", [vip] * len(tasks))):
            for addr in targets:
                out = run_in_task(live, client, [
                    "-m", "swarmmesh.agents.httpclient", addr, str(PORT), "--count",
                    str(requests // len(targets)), "--timeout", "2"], timeout=requests * 3 + 30)
                ms[path] += [json.loads(line).get("total_ms") if json.loads(line).get("ok")
                             else None for line in out.splitlines()]
    stats = {p: ew.path_stats(v) for p, v in ms.items()}
    live.raw["overhead"] = stats
    runfolder.write_json(live.out / "overhead.json", {"total_ms": ms, "stats": stats})
    v, d = stats["vip"], stats["direct"]
    return {"east-west VIP latency against direct":
                conf.ratio(v["median_ms"], d["median_ms"], "latency"),
            "east-west VIP new connections/s against direct":
                conf.ratio(v["conn_per_s"], d["conn_per_s"], "connection rate")}


def update(live: Live, duration: float = 40.0) -> dict[str, conf.Figure]:
    """``docker service update --force`` of the service under test with the stack's
    ``update_config``, stop-first and then start-first, each under load through every
    node: the order the slots' tasks left and answered, and the gap per slot."""
    out: dict[str, conf.Figure] = {}
    parallelism, delay = UPDATE["parallelism"], parse_duration(UPDATE["delay"])
    for order in ("stop-first", "start-first"):
        live.ops.settle(180)
        rows, t = _timed(live, f"update-{order}", duration, 2.0, lambda o=order: live.ops.update(
            live.service, parallelism=parallelism, delay=delay, order=o))
        stats = ew.update_order(rows, t, duration)
        failed = sum(1 for r in rows if not r["ok"] and r["t_send"] >= t)
        live.raw[f"update {order}"] = {**stats, "failed": failed}
        out[f"rolling update {order}: order"] = ew.order_figure(stats)
        out[f"rolling update {order}: gap per slot (out to in)"] = ew.gap_figure(stats)
        out[f"rolling update {order}: between the slots"] = ew.seconds(
            stats["between_s"], "second slot")
        out[f"rolling update {order}: failed connections"] = conf.Figure(
            f"{failed} failed", failed)
    return out


SCENARIOS: dict[str, Callable[[Live], dict[str, conf.Figure]]] = {
    "eastwest": eastwest, "health": health, "overhead": overhead, "update": update}
