"""Traffic over time while the cluster changes: the lifecycle experiments' common part.

Three layers:

* **Load generator** (``python -m swarmmesh.runs.timeline``, run inside the client
  host): an open-loop stream of HTTP GETs, ``--rate`` per second, each on a new
  TCP connection, spread round-robin over every node's published port.  One
  thread and non-blocking sockets (epoll): a slow or dead target never delays
  the next start, and the generator's own cost is a few tens of microseconds
  per request.  Request ``i`` is due at ``t0 + i / rate``; ``t0`` is a
  ``time.monotonic()`` value given by the caller, the same origin as the
  orchestrator's events (CLOCK_MONOTONIC is one clock for every process of
  the machine; network namespaces do not change it).  One CSV row per request
  (``t_send,ingress_node,task,ok,latency_ms`` plus ``task_node``, ``error``,
  ``late_ms``, ``seq``); a JSON line of statistics (achieved rate, lateness)
  on stdout at the end.
* **Driver** (:func:`run_variant`): starts the generator in the client host,
  runs an :class:`~swarmmesh.lifecycle.orchestrator.Orchestrator` with the same origin,
  calls the experiment's script (kill, scale, update, node down ...) at its
  times, waits, and returns the rows, the events and the generator's figures;
  :func:`write_run` writes ``timeline.csv`` and ``events.csv``.
* **Reading, metrics and plots** (no root): :func:`read_timeline`,
  :func:`read_events`, :func:`rates`, :func:`failover_metrics`,
  :func:`draw_timeline` / :func:`timeline_figure` (requests/s per task over
  time, failed requests marked, vertical lines at events).

A request's ``latency_ms`` is from ``connect()`` to the complete answer; for a
failed request it is the time until it failed (a refused connection fails
in about a millisecond, a dead node only at the timeout).  ``error`` is
``refused``, ``reset``, ``timeout (connect)``, ``timeout (read)``, ``closed``
(the connection ended before a complete answer), ``HTTP <status>``, or
``<errno name>``.
"""

from __future__ import annotations

import argparse
import collections
import errno
import json
import math
import resource
import selectors
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

from swarmmesh import agents
from swarmmesh.lifecycle import profiles


TIMELINE_COLUMNS = ["t_send", "ingress_node", "task", "ok", "latency_ms",
                    "task_node", "error", "variant", "seq", "late_ms", "client_port"]
"""The issue's five columns first; then the answering task's node, the error,
the variant of the run (profile or update order), the request number and how
late its start was against the schedule (ms)."""
EVENT_COLUMNS = ["t", "event", "detail", "variant"]
LOAD_COLUMNS = ["seq", "t_send", "ingress_node", "task", "task_node", "ok", "latency_ms",
                "error", "late_ms", "client_port"]

_REQUEST = b"GET / HTTP/1.1\r\nHost: swarmmesh\r\nUser-Agent: swarmmesh-timeline\r\n" \
           b"Connection: close\r\n\r\n"


# ============================================================================
# The load generator (runs in the client host)
# ============================================================================

class _Req:
    __slots__ = ("seq", "node", "sock", "t_send", "late", "deadline", "buf", "sent",
                 "t_done", "done", "port")

    def __init__(self, seq: int, node: str, t_send: float, late: float, deadline: float):
        self.seq, self.node, self.t_send, self.late = seq, node, t_send, late
        self.deadline = deadline
        self.sock: socket.socket | None = None
        self.buf = b""
        self.sent = False
        self.t_done: float | None = None
        self.done = False
        self.port = 0


def parse_answer(buf: bytes) -> tuple[bool, int | None, dict | None]:
    """(complete, status, JSON body) of an HTTP/1.x answer read so far."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return False, None, None
    head = buf[:end].decode("latin-1").split("\r\n")
    parts = head[0].split(None, 2)
    status = int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None
    length = None
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length" and value.strip().isdigit():
            length = int(value.strip())
    body = buf[end + 4:]
    if length is None or len(body) < length:
        return False, status, None
    try:
        doc = json.loads(body[:length])
    except (ValueError, UnicodeDecodeError):
        doc = None
    return True, status, doc if isinstance(doc, dict) else None


def _errname(code: int) -> str:
    return {errno.ECONNREFUSED: "refused", errno.ECONNRESET: "reset",
            errno.ETIMEDOUT: "timeout (connect)", errno.EHOSTUNREACH: "unreachable",
            errno.ENETUNREACH: "unreachable"}.get(code, errno.errorcode.get(code, str(code)))


def generate(targets: Sequence[tuple[str, str]], port: int, rate: float, duration: float,
             t0: float, timeout: float, emit: Callable[[dict], None]) -> dict:
    """Send ``round(rate * duration)`` requests, request ``i`` due at
    ``t0 + i / rate`` to ``targets[i % len(targets)]`` (``(node, address)``);
    ``emit(row)`` for each as it ends.  Returns the statistics."""
    count = max(1, int(round(rate * duration)))
    interval = 1.0 / rate
    sel = selectors.EpollSelector()
    inflight: collections.deque[_Req] = collections.deque()
    stats = {"requests": count, "ok": 0, "failed": 0, "max_in_flight": 0}
    lates: list[float] = []
    sends: list[float] = []
    n_open = 0

    def finish(req: _Req, now: float, error: str = "", status: int | None = None,
               doc: dict | None = None) -> None:
        nonlocal n_open
        if req.done:
            return
        req.done = True
        if req.sock is not None:
            try:
                sel.unregister(req.sock)
            except (KeyError, ValueError):
                pass
            req.sock.close()
            req.sock = None
            n_open -= 1
        ok = not error
        end = req.t_done if req.t_done is not None else now
        stats["ok" if ok else "failed"] += 1
        emit({"seq": req.seq, "t_send": round(req.t_send - t0, 6), "ingress_node": req.node,
              "task": (doc or {}).get("task", "") if ok else "",
              "task_node": (doc or {}).get("node", "") if ok else "",
              "ok": ok, "latency_ms": round((end - req.t_send) * 1000.0, 3),
              "error": error, "late_ms": round(req.late * 1000.0, 3),
              "client_port": req.port})

    def on_event(req: _Req, mask: int) -> None:
        now = time.monotonic()
        sock = req.sock
        if not req.sent:
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                finish(req, now, _errname(err))
                return
            try:
                sock.send(_REQUEST)
            except OSError as exc:
                finish(req, now, _errname(exc.errno or 0))
                return
            req.sent = True
            sel.modify(sock, selectors.EVENT_READ, req)
            return
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            if req.t_done is not None:          # the answer was complete: a late RST
                complete, status, doc = parse_answer(req.buf)
                finish(req, now, "" if status == 200 else f"HTTP {status}", status, doc)
            else:
                finish(req, now, _errname(exc.errno or 0))
            return
        if data:
            req.buf += data
            if req.t_done is None and parse_answer(req.buf)[0]:
                req.t_done = now                # complete; wait for the server's FIN
            return
        complete, status, doc = parse_answer(req.buf)
        if not complete:
            finish(req, now, "closed")
        else:
            finish(req, now, "" if status == 200 else f"HTTP {status}", status, doc)

    i = 0
    while i < count or inflight:
        now = time.monotonic()
        while i < count and t0 + i * interval <= now:
            due = t0 + i * interval
            node, addr = targets[i % len(targets)]
            t_send = time.monotonic()
            req = _Req(i, node, t_send, t_send - due, t_send + timeout)
            lates.append(t_send - due)
            sends.append(t_send)
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            req.sock = s
            n_open += 1
            inflight.append(req)
            err = s.connect_ex((addr, port))
            if err in (0, errno.EINPROGRESS):
                req.port = s.getsockname()[1]
                sel.register(s, selectors.EVENT_WRITE, req)
            else:
                finish(req, t_send, _errname(err))
            i += 1
            now = time.monotonic()
        stats["max_in_flight"] = max(stats["max_in_flight"], n_open)
        while inflight and (inflight[0].done or inflight[0].deadline <= now):
            req = inflight.popleft()
            if not req.done:
                if req.t_done is not None:      # answered; the FIN never came
                    complete, status, doc = parse_answer(req.buf)
                    finish(req, now, "" if status == 200 else f"HTTP {status}", status, doc)
                else:
                    finish(req, now, "timeout (read)" if req.sent else "timeout (connect)")
        wake = [t0 + i * interval] if i < count else []
        if inflight:
            wake.append(inflight[0].deadline)
        if not wake:
            break
        wait = max(0.0, min(wake) - time.monotonic())
        for key, mask in sel.select(wait):
            on_event(key.data, mask)
    sel.close()
    lates.sort()
    span = sends[-1] - sends[0] if len(sends) > 1 else 0.0
    stats.update({
        "first_send_s": round(sends[0] - t0, 6) if sends else None,
        "last_send_s": round(sends[-1] - t0, 6) if sends else None,
        "achieved_rps": round((len(sends) - 1) / span, 2) if span > 0 else None,
        "late_median_ms": round(lates[len(lates) // 2] * 1000, 3) if lates else None,
        "late_p99_ms": round(lates[min(len(lates) - 1, int(0.99 * len(lates)))] * 1000, 3)
        if lates else None,
        "late_max_ms": round(lates[-1] * 1000, 3) if lates else None,
    })
    return stats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m swarmmesh.runs.timeline",
                                 description="Open-loop HTTP load over every node; one CSV "
                                             "row per request, statistics as JSON on stdout.")
    ap.add_argument("--target", action="append", required=True, metavar="NODE=ADDRESS",
                    help="a node and its published address (repeat for every node)")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--rate", type=float, required=True, help="requests started per second")
    ap.add_argument("--duration", type=float, required=True, help="seconds of load")
    ap.add_argument("--t0", type=float, required=True,
                    help="time.monotonic() of the first request (the events' origin)")
    ap.add_argument("--timeout", type=float, default=3.0, help="per-request timeout, seconds")
    ap.add_argument("--csv", required=True, help="where to write the rows")
    a = ap.parse_args(argv)
    for name in ("rate", "duration", "timeout"):
        if getattr(a, name) <= 0:
            ap.error(f"--{name} must be > 0")
    targets = []
    for item in a.target:
        node, sep, addr = item.partition("=")
        if not sep or not node or not addr:
            ap.error(f"--target wants NODE=ADDRESS, got {item!r}")
        targets.append((node, addr))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    import csv
    with open(a.csv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=LOAD_COLUMNS)
        w.writeheader()
        try:
            stats = generate(targets, a.port, a.rate, a.duration, a.t0, a.timeout, w.writerow)
        except KeyboardInterrupt:
            return 130
    stats["targets"] = [f"{n}={addr}" for n, addr in targets]
    print(json.dumps(stats), flush=True)
    return 0


# ============================================================================
# Flags and the cluster shared by the lifecycle experiments
# ============================================================================

SERVICE = "app"
HEALTH_TEST = ["CMD", "curl", "-f", "http://localhost/health"]


def add_arguments(ap: argparse.ArgumentParser, profiles: Sequence[str] = ("swarm", "fast"),
                  default_profile: str = "fast", replicas: int = 3, rate: float = 200.0) -> None:
    """``--nodes --replicas --rate --duration --profile --timeout``."""
    ap.add_argument("--nodes", type=int, default=3, help="swarm nodes")
    ap.add_argument("--replicas", type=int, default=replicas, help="replicas of service `app`")
    ap.add_argument("--rate", type=float, default=rate,
                    help="requests started per second, spread round-robin over every node, "
                         "each on a new connection")
    ap.add_argument("--duration", type=float, default=None,
                    help="seconds of load per run (default: long enough for the profile's "
                         "timings; see the experiment's description)")
    ap.add_argument("--profile", choices=list(profiles), default=default_profile,
                    help="lifecycle timings: Swarm's own (health check every 30 s, 3 retries, "
                         "2 s convergence delay, node down after 15 s) or the fast profile's "
                         "(0.1 s, 2 retries, 0.2 s, 1 s)")
    ap.add_argument("--timeout", type=float, default=3.0,
                    help="per-request timeout, seconds (a lost SYN is resent after 1 s)")


def check_arguments(args, max_rate: float = 2000.0) -> None:
    """InvalidConfigError naming the flag, for the common flags."""
    from swarmmesh.model import InvalidConfigError
    if args.replicas < 1:
        raise InvalidConfigError("replicas", f"must be >= 1, got {args.replicas}")
    if not 0 < args.rate <= max_rate:
        raise InvalidConfigError("rate", f"must be in (0, {max_rate:g}] requests/s, "
                                         f"got {args.rate:g}")
    if args.duration is not None and args.duration <= 0:
        raise InvalidConfigError("duration", f"must be > 0, got {args.duration:g}")
    if args.timeout <= 0:
        raise InvalidConfigError("timeout", f"must be > 0, got {args.timeout:g}")


def cluster_for(args):
    """Service ``app`` published on 8000 -> 80, with the task server's health
    check and no timing keys (Swarm's defaults; the fast profile replaces them)."""
    from swarmmesh.model import Cluster
    stack = {"services": {SERVICE: {
        "deploy": {"replicas": args.replicas},
        "ports": [{"target": 80, "published": 8000, "protocol": "tcp", "mode": "ingress"}],
        "healthcheck": {"test": list(HEALTH_TEST)},
    }}}
    return Cluster.from_stack(stack, nodes=args.nodes)


def profile_facts(name: str) -> dict:
    """The profile's timings, for summary.json."""
    import dataclasses
    p = profiles.profile(name)
    return {**dataclasses.asdict(p), "detection_window_s": list(p.detection_window())}


# ============================================================================
# The driver (root, a running Testbed)
# ============================================================================

def targets_of(cluster, service: str) -> tuple[list[tuple[str, str]], int]:
    """Every node's underlay address, and the service's first TCP ingress port."""
    ports = [p for p in cluster.service(service).ingress_ports() if p.protocol == "tcp"]
    return [(n.name, str(n.underlay_ip)) for n in cluster.nodes], ports[0].published


class Load:
    """The generator running in a client host, as a subprocess."""

    def __init__(self, tb, csv_path: Path, rate: float, duration: float, t0: float,
                 timeout: float = 3.0, service: str = "app", client: str | None = None):
        self.tb, self.csv_path = tb, Path(csv_path)
        self.rate, self.duration, self.t0, self.timeout = rate, duration, t0, timeout
        self.client = client or tb.cluster.clients[0].name
        self.targets, self.port = targets_of(tb.cluster, service)
        self.proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "swarmmesh.runs.timeline", "--port", str(self.port),
               "--rate", repr(self.rate), "--duration", repr(self.duration),
               "--t0", repr(self.t0), "--timeout", repr(self.timeout),
               "--csv", str(self.csv_path)]
        for node, addr in self.targets:
            cmd += ["--target", f"{node}={addr}"]
        return cmd

    def start(self) -> "Load":
        h = self.tb.host(self.client)
        self.proc = h.popen(self.command(), env=agents.python_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.tb.state.register(self.proc.pid, "swarmmesh.runs.timeline")
        return self

    def wait(self) -> dict:
        """Until the generator is done; its statistics."""
        left = self.t0 + self.duration + self.timeout + 60 - time.monotonic()
        try:
            out, err = self.proc.communicate(timeout=max(left, 10))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise RuntimeError(f"load generator did not finish: {err[-500:]}") from None
        if self.proc.returncode != 0:
            raise RuntimeError(f"load generator exited {self.proc.returncode}: {err[-1000:]}")
        return json.loads(out.strip().splitlines()[-1])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def run_variant(tb, run_dir: Path, variant: str, profile: str, rate: float, duration: float,
                script: Callable, timeout: float = 3.0, service: str = "app",
                lead: float = 1.0, settle: float = 300.0, progress=None) -> dict:
    """One timed run on a live testbed: load through every node for
    ``duration`` s, an Orchestrator (``profile``) with the load's origin, and
    ``script(orch, at)`` driving it (``at(t)`` sleeps until ``t`` s after the
    origin).  ``lead``: seconds between starting the generator and its first
    request.  Returns ``{"rows", "events", "load", "t0"}`` (rows sorted by
    ``t_send``, with ``variant``)."""
    from swarmmesh.lifecycle.orchestrator import Orchestrator
    from swarmmesh.runs.runfolder import read_csv

    part = Path(run_dir) / f".timeline-{variant}.csv"
    t0 = time.monotonic() + lead
    load = Load(tb, part, rate, duration, t0, timeout, service)

    def at(t: float) -> None:
        wait = t0 + t - time.monotonic()
        if wait > 0:
            time.sleep(wait)

    load.start()
    try:
        with Orchestrator(tb, profile=profile, t0=t0) as orch:
            script(orch, at)
            if progress is not None:
                progress.note(f"{variant}: waiting for the load to end "
                              f"(t = {duration:.0f} s)")
            stats = load.wait()
            orch.settle(settle)
            events = [{"t": e.t, "event": e.event, "detail": e.detail, "variant": variant}
                      for e in orch.events]
    finally:
        load.stop()
    rows = read_csv(part)
    part.unlink()
    for r in rows:
        r["variant"] = variant
    rows.sort(key=lambda r: float(r["t_send"]))
    return {"rows": rows, "events": events, "load": stats, "t0": t0}


def run_variants(args, ctx, plans: Sequence[dict]) -> list[dict]:
    """Each plan (``variant``, ``profile``, ``duration``, ``script``) on a
    fresh testbed of :func:`cluster_for` (its logs in ``<run>/<variant>/``
    when there are several); writes ``timeline.csv`` and ``events.csv`` and
    records the generator's figures and the placements in ``ctx.summary``."""
    out = []
    facts = ctx.summary.setdefault("variants", {})
    for plan in plans:
        variant = plan["variant"]
        cluster = cluster_for(args)
        sub = ctx.run_dir / variant if len(plans) > 1 else ctx.run_dir
        with ctx.testbed(cluster, run_dir=sub) as tb:
            before = {t.name: t.node for t in cluster.tasks}
            ctx.progress.phase(f"sending ({variant})")
            ctx.progress.note(f"{variant}: {args.rate:g} requests/s for {plan['duration']:g} s "
                              f"through {len(cluster.nodes)} nodes, profile {plan['profile']}")
            res = run_variant(tb, ctx.run_dir, variant, plan["profile"], args.rate,
                              plan["duration"], plan["script"], args.timeout,
                              progress=ctx.progress)
            after = {t.name: t.node for t in cluster.tasks}
        facts[variant] = {"profile": plan["profile"], "duration_s": plan["duration"],
                          "load": res["load"], "placement_before": before,
                          "placement_after": after, "timings": profile_facts(plan["profile"]),
                          **plan.get("facts", {})}
        ctx.progress.note(f"{variant}: {res['load']['requests']} requests at "
                          f"{res['load']['achieved_rps']} /s achieved, "
                          f"{res['load']['failed']} failed")
        out.append(res)
    write_run(ctx.run_dir, out)
    ctx.summary["traffic"] = ("swarmmesh.runs.timeline in client c1: open loop, one thread with "
                              "non-blocking sockets (epoll), a new TCP connection per request, "
                              "round-robin over every node's published port")
    return out


def write_run(run_dir: Path, variants: Iterable[dict]) -> None:
    """``timeline.csv`` and ``events.csv`` from :func:`run_variant`'s results."""
    from swarmmesh.runs.runfolder import write_csv
    variants = list(variants)
    write_csv(Path(run_dir) / "timeline.csv", (r for v in variants for r in v["rows"]),
              TIMELINE_COLUMNS)
    write_csv(Path(run_dir) / "events.csv", (e for v in variants for e in v["events"]),
              EVENT_COLUMNS)


# ============================================================================
# Reading and metrics (no root)
# ============================================================================

def read_timeline(path: Path) -> list[dict]:
    """``timeline.csv`` with typed fields (t_send, latency_ms float; ok bool)."""
    from swarmmesh.runs.runfolder import read_csv
    rows = read_csv(path)
    for r in rows:
        r["t_send"] = float(r["t_send"])
        r["ok"] = r["ok"] in ("True", "true", "1")
        r["latency_ms"] = float(r["latency_ms"]) if r.get("latency_ms") not in ("", None) else None
        r.setdefault("variant", "")
    return rows


def read_events(path: Path) -> list[dict]:
    from swarmmesh.runs.runfolder import read_csv
    rows = read_csv(path)
    for e in rows:
        e["t"] = float(e["t"])
        e.setdefault("variant", "")
    return rows


def by_variant(items: Iterable[dict]) -> dict[str, list[dict]]:
    """Rows or events grouped by ``variant``, in order of first appearance."""
    out: dict[str, list[dict]] = {}
    for x in items:
        out.setdefault(x.get("variant", ""), []).append(x)
    return out


def first_event(events: Sequence[dict], name: str, contains: str = "",
                after: float = float("-inf")) -> dict | None:
    """The first event called ``name`` (detail containing ``contains``) at or after ``after``."""
    for e in sorted(events, key=lambda e: e["t"]):
        if e["event"] == name and contains in e["detail"] and e["t"] >= after:
            return e
    return None


def killed_task(events: Sequence[dict]) -> str | None:
    e = first_event(events, "task killed")
    return e["detail"].split()[0] if e else None


TO_DEAD_TASK_ERRORS = ("refused", "reset")
"""What a request that reached a killed task (no listener) gets."""


def failover_metrics(rows: Sequence[dict], events: Sequence[dict]) -> dict:
    """Kill, detection and convergence times, and the failures around them.

    * ``t_kill``: "task killed"; ``t_detect``: its "health unhealthy";
      ``t_weight0``: its "weight 0"; ``t_convergence``: the first "published"
      after that (every switch has the weight 0: no new connection may go
      there); ``t_removed``: "task removed".
    * The last new connection to the dead task: the latest ``t_send`` after
      the kill among requests the dead task answered (just after the signal)
      or that were refused or reset (the dead task's namespace has no
      listener; the only task that refuses).  Timeouts are not attributed.
    """
    dead = killed_task(events)
    out: dict = {"task": dead, "requests": len(rows),
                 "failed_total": sum(1 for r in rows if not r["ok"])}
    if dead is None:
        return out
    t_kill = first_event(events, "task killed")["t"]
    det = first_event(events, "health unhealthy", dead, t_kill)
    w0 = first_event(events, "weight 0", dead, t_kill)
    conv = first_event(events, "published", f"{dead} weight 0", w0["t"]) if w0 else None
    rem = first_event(events, "task removed", dead, t_kill)
    t_conv = conv["t"] if conv else None
    to_dead = [r for r in rows if r["t_send"] >= t_kill and (
        (r["ok"] and r["task"] == dead) or (not r["ok"] and r["error"] in TO_DEAD_TASK_ERRORS))]
    last = max((r["t_send"] for r in to_dead), default=None)
    failed = [r for r in rows if not r["ok"]]
    out.update({
        "t_kill": t_kill, "t_detect": det["t"] if det else None,
        "t_weight0": w0["t"] if w0 else None, "t_convergence": t_conv,
        "t_removed": rem["t"] if rem else None,
        "kill_to_detect_s": _diff(det and det["t"], t_kill),
        "kill_to_convergence_s": _diff(t_conv, t_kill),
        "kill_to_removed_s": _diff(rem and rem["t"], t_kill),
        "kill_to_last_new_connection_s": _diff(last, t_kill),
        "requests_to_dead_task_after_kill": len(to_dead),
        "answered_by_dead_task_after_kill": sum(1 for r in to_dead if r["ok"]),
        "failed_before_kill": sum(1 for r in failed if r["t_send"] < t_kill),
        "failed_kill_to_convergence": sum(1 for r in failed
                                          if t_kill <= r["t_send"] < (t_conv or float("inf"))),
        "failed_after_convergence": (sum(1 for r in failed if r["t_send"] >= t_conv)
                                     if t_conv is not None else None),
        "requests_after_convergence": (sum(1 for r in rows if r["t_send"] >= t_conv)
                                       if t_conv is not None else None),
        "failed_by_error": dict(collections.Counter(r["error"] for r in failed)),
    })
    return out


def _diff(a, b):
    return None if a is None or b is None else round(a - b, 4)


def load_panels(run_dir: Path, marks: Sequence[str]) -> list[dict]:
    """One dict per variant of a run folder: ``variant``, ``rows``, ``events``, ``marks``."""
    rows = read_timeline(Path(run_dir) / "timeline.csv")
    evs = by_variant(read_events(Path(run_dir) / "events.csv"))
    return [{"variant": v, "rows": vrows, "events": evs.get(v, []), "marks": tuple(marks)}
            for v, vrows in by_variant(rows).items()]


def task_of(detail: str) -> str:
    """The task an event's detail names: ``app.4 on node1 (...)``,
    ``revision 7: app.4 healthy: joins ...``, ``app.3: scaled down``."""
    if detail.startswith("revision "):
        detail = detail.split(": ", 1)[1] if ": " in detail else ""
    return detail.split()[0].rstrip(":") if detail.split() else ""


def joins(events: Sequence[dict]) -> dict[str, float]:
    """Task -> when it joined the load balancer (its first healthy check, published)."""
    out = {}
    for e in sorted(events, key=lambda e: e["t"]):
        if e["event"] == "published" and "joins the load balancer" in e["detail"]:
            out.setdefault(task_of(e["detail"]), e["t"])
    return out


def converged(events: Sequence[dict]) -> dict[str, float]:
    """Task -> when its weight 0 was applied on every switch."""
    out = {}
    for e in sorted(events, key=lambda e: e["t"]):
        if e["event"] == "weight 0":
            task = task_of(e["detail"])
            c = first_event(events, "published", f"{task} weight 0", e["t"])
            if c:
                out.setdefault(task, c["t"])
    return out


def failures_between(rows: Sequence[dict], start: float = float("-inf"),
                     end: float = float("inf")) -> int:
    return sum(1 for r in rows if not r["ok"] and start <= r["t_send"] < end)


def achieved_rate(rows: Sequence[dict]) -> float | None:
    """Requests started per second over the run (first to last start)."""
    ts = sorted(r["t_send"] for r in rows)
    return (len(ts) - 1) / (ts[-1] - ts[0]) if len(ts) > 1 and ts[-1] > ts[0] else None


def rates(rows: Sequence[dict], bin_s: float, start: float | None = None,
          end: float | None = None) -> tuple[list[float], dict[str, list[float]], list[float]]:
    """Bins (left edges), answered requests/s per task per bin, failed requests/s per bin
    (by ``t_send``)."""
    if not rows:
        return [], {}, []
    ts = [r["t_send"] for r in rows]
    lo = min(ts) if start is None else start
    hi = max(ts) if end is None else end
    n = (int((hi - lo) // bin_s) + 1 if end is None
         else max(1, math.ceil((hi - lo) / bin_s - 1e-9)))
    edges = [lo + k * bin_s for k in range(n)]
    per: dict[str, list[float]] = {}
    failed = [0.0] * n
    for r in rows:
        k = int((r["t_send"] - lo) // bin_s)
        if not 0 <= k < n:
            continue
        if r["ok"]:
            per.setdefault(r["task"], [0.0] * n)[k] += 1 / bin_s
        else:
            failed[k] += 1 / bin_s
    return edges, per, failed


def first_last(rows: Sequence[dict]) -> dict[str, tuple[float, float]]:
    """Per task: the first and the last ``t_send`` of a request it answered."""
    out: dict[str, tuple[float, float]] = {}
    for r in rows:
        if r["ok"]:
            a, b = out.get(r["task"], (r["t_send"], r["t_send"]))
            out[r["task"]] = (min(a, r["t_send"]), max(b, r["t_send"]))
    return out


# ============================================================================
# Plots (no root)
# ============================================================================

MARK_STYLES = {
    "task killed": ("kill", "black", "-"),
    "health unhealthy": ("detected", "tab:orange", "--"),
    "weight 0": ("weight 0", "tab:purple", ":"),
    "convergence": ("converged", "tab:green", "-"),
    "task removed": ("removed", "tab:gray", "--"),
    "node down": ("node down", "black", "-"),
    "node marked down": ("marked down", "tab:orange", "--"),
    "scale": ("scale", "black", "-"),
    "update": ("update", "black", "-"),
    "update done": ("update done", "black", "-."),
    "task started": ("started", "tab:olive", ":"),
    "joins": ("joins LB", "tab:cyan", ":"),
}


def task_colours(names: Iterable[str]) -> dict[str, tuple]:
    """:func:`swarmmesh.runs.plots.colour_for` for each task (``app.3`` keeps its
    colour in every figure), but a task whose colour is already taken in
    this figure (``app.1.t4`` against ``app.4``) gets the next free one; plain
    slot names keep theirs first."""
    from swarmmesh.runs import plots
    out: dict[str, tuple] = {}
    used: list[tuple] = []
    palette = plots._PALETTE
    # plain slot names (app.4) first, replacements (app.1.t4) then
    for name in sorted(set(names), key=lambda n: (n.count("."), plots._natural(n))):
        c = plots.colour_for(name)
        if c in used:
            start = palette.index(c) if c in palette else 0
            for k in range(1, len(palette) + 1):
                cand = palette[(start + k) % len(palette)]
                if cand not in used:
                    c = cand
                    break
        used.append(c)
        out[name] = c
    return out


def marks_for(events: Sequence[dict], wanted: Sequence[str]) -> list[tuple[float, str]]:
    """(t, kind) for every event whose name is in ``wanted``; ``convergence``
    is the first "published" after each "weight 0"; ``joins`` every
    "published" that admits a task after its first healthy check."""
    out = []
    evs = sorted(events, key=lambda e: e["t"])
    for e in evs:
        if e["event"] in wanted:
            out.append((e["t"], e["event"]))
        if "joins" in wanted and e["event"] == "published" and "joins the load balancer" \
                in e["detail"]:
            out.append((e["t"], "joins"))
    if "convergence" in wanted:
        for e in evs:
            if e["event"] == "weight 0":
                task = e["detail"].split(":")[0]
                c = first_event(evs, "published", f"{task} weight 0", e["t"])
                if c:
                    out.append((c["t"], "convergence"))
    return sorted(out)


def draw_timeline(ax, rows: Sequence[dict], events: Sequence[dict], bin_s: float,
                  marks: Sequence[str] = (), xlim: tuple[float, float] | None = None,
                  colours: dict | None = None, title: str = "", legend: bool = True,
                  rug_max: int = 3000) -> None:
    """Requests/s answered per task over time, stacked (the top edge is the
    offered load; each band is one task's share), failed requests/s stacked
    on top in red (and each failed request as a tick on the time axis when
    there are at most ``rug_max``), vertical lines at the marked events."""
    from swarmmesh.runs import plots
    sel = [r for r in rows if xlim is None or xlim[0] <= r["t_send"] < xlim[1]]
    start, end = (xlim if xlim is not None else (None, None))
    edges, per, failed = rates(sel, bin_s, start, end)
    colours = colours or task_colours(per)
    tasks = sorted(per, key=plots._natural)
    nfail = sum(1 for r in sel if not r["ok"])
    if edges:
        xs = edges + [edges[-1] + bin_s]
        ys = [per[t] + [per[t][-1]] for t in tasks]
        labels, cols = list(tasks), [colours.get(t) for t in tasks]
        if nfail:
            ys.append(failed + [failed[-1]])
            labels.append(f"failed ({nfail})")
            cols.append("red")
        polys = ax.stackplot(xs, *ys, step="post", labels=labels, colors=cols, alpha=0.85,
                             lw=0)
        if nfail:
            polys[-1].set_facecolor("white")
            polys[-1].set_hatch("xxxx")
            polys[-1].set_edgecolor("red")
    if nfail and nfail <= rug_max:
        ax.plot([r["t_send"] for r in sel if not r["ok"]], [0] * nfail, "|",
                color="red", ms=10, mew=0.8, clip_on=False, zorder=5)
    seen = set()
    for t, kind in marks_for(events, marks):
        if xlim is not None and not xlim[0] <= t <= xlim[1]:
            continue
        label, colour, style = MARK_STYLES.get(kind, (kind, "black", ":"))
        ax.axvline(t, color=colour, ls=style, lw=1.3, alpha=0.95, zorder=4,
                   label=label if label not in seen else None)
        seen.add(label)
    ax.set_xlabel("time (s, from the first request)")
    ax.set_ylabel(f"requests/s ({bin_s:g} s bins)")
    if xlim is not None:
        ax.set_xlim(*xlim)
    elif edges:
        ax.set_xlim(edges[0], edges[-1] + bin_s)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=8.5)
    if legend:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def bin_for(span: float, rate: float | None, tasks: int = 3, target_bins: int = 80) -> float:
    """A round bin width: about ``target_bins`` bins over ``span`` s, but wide
    enough for about 10 requests per task per bin at ``rate``."""
    b = auto_bin(span, target_bins)
    if rate:
        while b < 10 and rate * b / max(1, tasks) < 5:
            b = next((x for x in _BINS if x > b), 10.0)
    return b


_BINS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)


def auto_bin(span: float, target_bins: int = 80) -> float:
    """A round bin width giving about ``target_bins`` bins over ``span`` s."""
    for b in _BINS:
        if span / b <= target_bins:
            return b
    return 10.0


def timeline_figure(panels: Sequence[dict], path: Path, suptitle: str = "") -> list[Path]:
    """One panel per dict (keys of :func:`draw_timeline`: ``rows``, ``events``,
    ``marks``, ``title``, optional ``bin_s``, ``xlim``), stacked vertically,
    each with its own time axis; colours shared by every panel."""
    from swarmmesh.runs import plots
    import matplotlib.pyplot as plt
    names = {r["task"] for p in panels for r in p["rows"] if r["ok"]}
    colours = task_colours(names)
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 3.4 * len(panels) + 0.6),
                             squeeze=False)
    for ax, p in zip(axes[:, 0], panels):
        rows = p["rows"]
        xlim = p.get("xlim")
        span = (xlim[1] - xlim[0]) if xlim else (
            max(r["t_send"] for r in rows) - min(r["t_send"] for r in rows) if rows else 1.0)
        rate = achieved_rate(rows)
        first = min((r["t_send"] for r in rows), default=0.0)
        ntasks = max(1, len({r["task"] for r in rows if r["ok"] and r["t_send"] < first + 1}))
        draw_timeline(ax, rows, p["events"], p.get("bin_s") or bin_for(span, rate, ntasks),
                      p.get("marks", ()), xlim, colours, p.get("title", ""))
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return plots.save(fig, path)


if __name__ == "__main__":
    sys.exit(main())
