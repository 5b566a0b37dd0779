"""Real clients run inside a Mininet host, their output parsed into numbers.

Each wrapper runs one program in a host (``host.popen``: the host's network
namespace) and returns a :class:`ToolResult`: plain data, the exact command
line and the raw output, so that an experiment can write which tool it used,
with which flags, into its summary.  The parsers are pure functions of the
program's output (unit-tested on recorded outputs, no root needed).

Which tool measures what:

* :func:`curl` - one request; curl's own ``-w`` timings (connect, first byte,
  total).  For a sanity check of a path, not for distributions.
* :func:`ab` - ApacheBench, a new TCP connection per request (no ``-k``):
  the *connection rate* (requests/s) a path sustains at a given concurrency,
  with ab's percentiles (from ``-e``, 0.001 ms resolution).
* :func:`wrk` - keep-alive load over a few persistent connections: requests/s
  and the latency distribution of requests on *established* connections;
  its Lua script also counts which task answered.
* :func:`iperf3` - bulk TCP throughput (JSON output); starts a one-off
  ``iperf3 -s -1`` in the server host.
* :func:`open_loop` - :mod:`swarmmesh.traffic.openloop`: requests started at a
  fixed rate, connect and first-byte latency per request, the task that
  answered: the per-request *distribution* at a known offered load.

A missing program raises :class:`ToolMissing`, whose message names the
Debian package to install.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from swarmmesh import agents
from swarmmesh.machine import deps

Register = Callable[[int, str], None]


class ToolMissing(RuntimeError):
    """A client program is not installed; the message says how to get it."""


class ToolFailed(RuntimeError):
    """A client program failed or printed nothing we can parse."""


@dataclass
class ToolResult:
    tool: str
    command: str                 # the exact command line, shell-quoted
    data: dict = field(default_factory=dict)
    stdout: str = ""
    stderr: str = ""
    returncode: int = 0

    def describe(self) -> dict:
        """Tool and command, for summary.json (no raw output)."""
        return {"tool": self.tool, "command": self.command}

    def to_dict(self) -> dict:
        return asdict(self)


def require(program: str) -> str:
    """Absolute path of ``program``, or :class:`ToolMissing` naming its package."""
    path = shutil.which(program)
    if path is None:
        raise ToolMissing(f"{program} is not installed: `{deps.install_hint(program)}` "
                          "(or `sudo make setup`)")
    return path


def _run(host, cmd: list[str], timeout: float, register: Register | None = None,
         env: dict | None = None) -> tuple[int, str, str]:
    """Run ``cmd`` in ``host`` (a Mininet node; None = this namespace)."""
    kw = dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if env is not None:
        kw["env"] = env
    proc = host.popen(cmd, **kw) if host is not None else subprocess.Popen(cmd, **kw)
    if register:
        register(proc.pid, os.path.basename(cmd[0]))
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise ToolFailed(f"`{shlex.join(cmd)}` timed out after {timeout:.0f}s") from None
    return proc.returncode, out, err


def _ms(value: float, unit: str) -> float:
    return value * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}[unit]


# --------------------------------------------------------------------------- curl

CURL_MARK = "@@curl"
CURL_VARS = ("http_code", "time_namelookup", "time_connect", "time_starttransfer",
             "time_total", "size_download", "remote_ip", "remote_port", "local_port",
             "num_connects")
CURL_FORMAT = "\n" + CURL_MARK + " " + " ".join(f"{v}=%{{{v}}}" for v in CURL_VARS) + "\n"


def parse_curl(stdout: str) -> dict:
    """Body and ``-w`` timings (seconds -> ms) of one curl run with CURL_FORMAT."""
    body, sep, tail = stdout.rpartition("\n" + CURL_MARK + " ")
    if not sep:
        raise ToolFailed("curl: no -w output in its stdout")
    kv = dict(item.split("=", 1) for item in tail.split())
    code = int(kv["http_code"])
    out = {"http_code": code, "ok": 200 <= code < 300,
           "connect_ms": float(kv["time_connect"]) * 1e3,
           "ttfb_ms": float(kv["time_starttransfer"]) * 1e3,
           "total_ms": float(kv["time_total"]) * 1e3,
           "size_download": int(float(kv["size_download"])),
           "remote_ip": kv.get("remote_ip", ""), "local_port": int(kv.get("local_port") or 0),
           "num_connects": int(kv.get("num_connects") or 0)}
    try:
        out["body"] = json.loads(body) if body.strip() else None
    except ValueError:
        out["body"] = body
    return out


def curl(host, url: str, timeout: float = 5.0, register: Register | None = None) -> ToolResult:
    """One GET with curl; ``data`` has connect/ttfb/total in ms and the body."""
    cmd = [require("curl"), "-sS", "--max-time", str(timeout), "-w", CURL_FORMAT, url]
    rc, out, err = _run(host, cmd, timeout + 5, register)
    data = parse_curl(out)
    if rc != 0:
        data.update(ok=False, error=f"curl exit {rc}: {err.strip()}")
    return ToolResult("curl", shlex.join(cmd), data, out, err, rc)


# ----------------------------------------------------------------------------- ab

_AB_NUM = r"([\d.]+)"
_AB_FIELDS = {
    "complete": rf"Complete requests:\s+{_AB_NUM}",
    "failed": rf"Failed requests:\s+{_AB_NUM}",
    "non_2xx": rf"Non-2xx responses:\s+{_AB_NUM}",
    "concurrency": rf"Concurrency Level:\s+{_AB_NUM}",
    "duration_s": rf"Time taken for tests:\s+{_AB_NUM} seconds",
    "rps": rf"Requests per second:\s+{_AB_NUM} \[#/sec\]",
    "mean_ms": rf"Time per request:\s+{_AB_NUM} \[ms\] \(mean\)\n",
    "mean_across_ms": rf"Time per request:\s+{_AB_NUM} \[ms\] \(mean, across",
}


def parse_ab(stdout: str, percentiles_csv: str | None = None) -> dict:
    """ab's text report (and its ``-e`` CSV, if given) -> numbers.

    ``connection_times`` holds ab's table (min, mean, sd, median, max in ms
    per phase: connect, processing, waiting, total); ``percentiles_ms`` maps
    a percentage to ms: from the CSV (0.001 ms resolution) when given, else
    from the text table (whole ms)."""
    out: dict = {}
    for key, rx in _AB_FIELDS.items():
        m = re.search(rx, stdout)
        if m:
            out[key] = float(m.group(1))
    if "rps" not in out or "complete" not in out:
        raise ToolFailed("ab: no 'Requests per second' in its output: " + stdout[-300:])
    for key in ("complete", "failed", "non_2xx", "concurrency"):
        out[key] = int(out.get(key, 0))
    times = {}
    for m in re.finditer(r"^(Connect|Processing|Waiting|Total):\s+(\d+)\s+([\d.]+)\s+([\d.]+)"
                         r"\s+(\d+)\s+(\d+)", stdout, re.M):
        times[m.group(1).lower()] = dict(zip(("min", "mean", "sd", "median", "max"),
                                             map(float, m.groups()[1:])))
    out["connection_times"] = times
    pct: dict[int, float] = {}
    if percentiles_csv:
        for row in csv.reader(io.StringIO(percentiles_csv)):
            if len(row) == 2 and row[0].strip().isdigit():
                pct[int(row[0])] = float(row[1])
    else:
        for m in re.finditer(r"^\s+(\d+)%\s+(\d+)", stdout, re.M):
            pct[int(m.group(1))] = float(m.group(2))
    out["percentiles_ms"] = pct
    return out


def ab(host, url: str, requests: int, concurrency: int = 1, timeout: float = 5.0,
       register: Register | None = None) -> ToolResult:
    """ApacheBench: ``requests`` GETs, each on a new connection, ``concurrency``
    at a time.  ``-l``: the task server's body length varies (it names the
    client port), which ab would otherwise count as failures."""
    if not re.match(r"http://[^/]+/", url):
        raise ValueError(f"ab wants a full http:// URL with a path, got {url!r}")
    with tempfile.NamedTemporaryFile(prefix="swarmmesh-ab-", suffix=".csv") as pf:
        # a host on another server writes the percentiles there, fetched back below
        written = host.result_path(pf.name) if hasattr(host, "result_path") else pf.name
        cmd = [require("ab"), "-q", "-l", "-r", "-n", str(requests), "-c", str(concurrency),
               "-s", str(int(max(1, timeout))), "-e", written, url]
        rc, out, err = _run(host, cmd, timeout * requests / max(1, concurrency) + 30, register)
        if rc != 0 and "Requests per second" not in out:
            raise ToolFailed(f"ab exited {rc}: {err.strip()[-300:]}")
        if hasattr(host, "fetch_result"):
            host.fetch_result(pf.name)
        pct = Path(pf.name).read_text()
    data = parse_ab(out, pct)
    return ToolResult("ab", shlex.join(cmd).replace(written, "PCT.csv"), data, out, err, rc)


# ---------------------------------------------------------------------------- wrk

WRK_MARK = "@@wrk"
WRK_LUA = Path(__file__).with_name("wrk_tasks.lua")
_WRK_SIZE = r"([\d.]+)(us|ms|s|m|h)"


def parse_wrk(stdout: str) -> dict:
    """wrk's text report (with ``--latency``) and our Lua script's JSON line.

    Text: requests, duration, requests/s, socket errors, non-2xx, the
    percentiles of ``--latency`` (50/75/90/99, in ms).  Script (when present):
    exact percentiles (``percentiles_ms``), mean/stdev/max, per-task counts
    (``tasks``) and connections opened."""
    out: dict = {}
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h),", stdout)
    r = re.search(r"Requests/sec:\s+([\d.]+)", stdout)
    if not (m and r):
        raise ToolFailed("wrk: no request summary in its output: " + stdout[-300:])
    out["requests"] = int(m.group(1))
    out["duration_s"] = _ms(float(m.group(2)), m.group(3)) / 1e3
    out["rps"] = float(r.group(1))
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                     stdout)
    out["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"),
                                    map(int, errs.groups()))) if errs else \
        {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    n2 = re.search(r"Non-2xx or 3xx responses: (\d+)", stdout)
    out["non_2xx"] = int(n2.group(1)) if n2 else 0
    dist = stdout.split("Latency Distribution", 1)
    pct: dict[float, float] = {}
    if len(dist) == 2:
        for pm in re.finditer(rf"^\s+([\d.]+)%\s+{_WRK_SIZE}", dist[1], re.M):
            pct[float(pm.group(1))] = _ms(float(pm.group(2)), pm.group(3))
    out["percentiles_ms"] = pct
    for line in stdout.splitlines():
        if line.startswith(WRK_MARK + " "):
            s = json.loads(line[len(WRK_MARK) + 1:])
            out["percentiles_ms"] = {float(k): v / 1e3 for k, v in s["percentiles_us"].items()}
            out["mean_ms"] = s["mean_us"] / 1e3
            out["stdev_ms"] = s["stdev_us"] / 1e3
            out["max_ms"] = s["max_us"] / 1e3
            out["tasks"] = dict(s.get("tasks") or {})
            out["status_errors"] = s.get("errors", {}).get("status", 0)
    return out


def wrk(host, url: str, duration: float = 5.0, connections: int = 1, threads: int = 1,
        timeout: float = 2.0, register: Register | None = None) -> ToolResult:
    """wrk keep-alive load: ``connections`` persistent connections for
    ``duration`` seconds; ``data['tasks']`` counts the answering task."""
    if connections < threads:
        raise ValueError(f"wrk needs connections >= threads, got {connections} < {threads}")
    cmd = [require("wrk"), "-t", str(threads), "-c", str(connections),
           "-d", f"{duration:g}s", "--timeout", f"{timeout:g}s", "--latency",
           "-s", str(WRK_LUA), url]
    rc, out, err = _run(host, cmd, duration + timeout + 30, register)
    if rc != 0:
        raise ToolFailed(f"wrk exited {rc}: {(err or out).strip()[-300:]}")
    return ToolResult("wrk", shlex.join(cmd), parse_wrk(out), out, err, rc)


# ------------------------------------------------------------------------- iperf3

def parse_iperf3(text: str) -> dict:
    """``iperf3 -J`` (client side) -> throughput in Mbit/s, retransmits, intervals."""
    doc = json.loads(text)
    if doc.get("error"):
        raise ToolFailed(f"iperf3: {doc['error']}")
    end = doc["end"]
    sent, recv = end.get("sum_sent", {}), end.get("sum_received", {})
    start = doc.get("start", {})
    conn = (start.get("connected") or [{}])[0]
    return {
        "sent_mbps": sent.get("bits_per_second", 0.0) / 1e6,
        "received_mbps": recv.get("bits_per_second", 0.0) / 1e6,
        "retransmits": sent.get("retransmits"),
        "seconds": recv.get("seconds", sent.get("seconds")),
        "bytes_received": recv.get("bytes"),
        "intervals_mbps": [iv["sum"]["bits_per_second"] / 1e6 for iv in doc.get("intervals", [])],
        "local": f"{conn.get('local_host')}:{conn.get('local_port')}",
        "remote": f"{conn.get('remote_host')}:{conn.get('remote_port')}",
        "protocol": start.get("test_start", {}).get("protocol"),
        "streams": start.get("test_start", {}).get("num_streams"),
    }


def iperf3(client, server, server_ip: str, seconds: float = 3.0, port: int = 5201,
           streams: int = 1, register: Register | None = None) -> ToolResult:
    """TCP throughput from ``client`` to an ``iperf3 -s -1`` started in ``server``
    (stopped again afterwards).  ``server_ip`` is the address the client dials
    (the server host's own, or a published address leading to it)."""
    prog = require("iperf3")
    scmd = [prog, "-s", "-1", "--forceflush", "-p", str(port)]
    sproc = server.popen(scmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) \
        if server is not None else subprocess.Popen(scmd, stdout=subprocess.PIPE,
                                                    stderr=subprocess.STDOUT, text=True)
    if register:
        register(sproc.pid, "iperf3")
    try:
        line = sproc.stdout.readline()
        deadline = time.monotonic() + 5
        while "listening" not in line.lower():
            if sproc.poll() is not None or time.monotonic() > deadline:
                raise ToolFailed(f"iperf3 server did not start: {line.strip()}")
            line = sproc.stdout.readline()
        cmd = [prog, "-c", server_ip, "-p", str(port), "-t", f"{seconds:g}",
               "-P", str(streams), "-J"]
        rc, out, err = _run(client, cmd, seconds + 30, register)
        try:
            data = parse_iperf3(out)
        except ValueError:
            raise ToolFailed(f"iperf3 exited {rc}: {err.strip()[-300:]}") from None
    finally:
        if sproc.poll() is None:
            sproc.terminate()
            try:
                sproc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                sproc.kill()
                sproc.wait()
    return ToolResult("iperf3", shlex.join(cmd), data, out, err, rc)


# ----------------------------------------------------------------------- open loop

def parse_open_loop(stdout: str) -> list[dict]:
    """JSON lines of :mod:`swarmmesh.traffic.openloop`, sorted by ``seq``."""
    rows = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    return sorted(rows, key=lambda r: r["seq"])


def open_loop(host, target: str, port: int, rate: float, count: int, keepalive: bool = False,
              timeout: float = 2.0, workers: int = 64,
              register: Register | None = None) -> ToolResult:
    """Requests started at ``rate``/s (see :mod:`swarmmesh.traffic.openloop`).
    ``data['requests']``: one row per request; ``data['offered_rps']``: the
    start rate actually achieved (from the scheduled and late times)."""
    cmd = [sys.executable, "-m", "swarmmesh.traffic.openloop", target, str(port),
           "--rate", f"{rate:g}", "--count", str(count), "--timeout", f"{timeout:g}",
           "--workers", str(workers)] + (["--keepalive"] if keepalive else [])
    env = agents.python_env()
    rc, out, err = _run(host, cmd, count / rate + timeout * 2 + 30, register, env)
    if rc != 0:
        raise ToolFailed(f"openloop exited {rc}: {err.strip()[-500:]}")
    rows = parse_open_loop(out)
    starts = [r["sched_ms"] + r["late_ms"] for r in rows]
    span = (max(starts) - min(starts)) / 1e3 if len(starts) > 1 else 0.0
    data = {"requests": rows,
            "offered_rps": (len(rows) - 1) / span if span > 0 else None,
            "failed": sum(1 for r in rows if not r["ok"]),
            "max_late_ms": max((r["late_ms"] for r in rows), default=0.0)}
    return ToolResult("openloop", shlex.join(cmd).replace(sys.executable, "python3"),
                      data, out, err, rc)
