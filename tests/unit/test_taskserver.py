"""Unit tests for swarmmesh.agents.taskserver and swarmmesh.agents.httpclient (loopback, no root)."""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from swarmmesh.agents import httpclient  # noqa: E402
from swarmmesh.agents.httpclient import KeepAliveClient, Result, get, run_many  # noqa: E402

HOST = "127.0.0.1"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port that was free a moment ago (bind to port 0 and release it)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@dataclass
class Server:
    """A running taskserver subprocess."""

    proc: subprocess.Popen
    ports: list[int]
    ready_line: str

    @property
    def port(self) -> int:
        return self.ports[0]


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(3)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def _wait_ready(proc: subprocess.Popen, timeout: float = 10.0) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise AssertionError("taskserver did not print 'ready' in time")
    line = proc.stdout.readline().strip()
    if not line.startswith("ready"):
        err = proc.stderr.read() if proc.stderr and proc.poll() is not None else ""
        raise AssertionError(f"unexpected first line {line!r}; stderr={err!r}")
    return line


@pytest.fixture
def start_server(request: pytest.FixtureRequest) -> Callable[..., Server]:
    """Factory starting taskserver subprocesses; all are killed at teardown."""

    def _start(*extra: str, ports: list[int] | None = None, task: str = "app.1",
               node: str = "node1") -> Server:
        ports = ports or [free_port()]
        cmd = [sys.executable, "-m", "swarmmesh.agents.taskserver", "--task", task,
               "--node", node, "--bind", HOST]
        for p in ports:
            cmd += ["--port", str(p)]
        cmd += list(extra)
        proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        request.addfinalizer(lambda: _kill(proc))
        line = _wait_ready(proc)
        bound = [int(x) for x in line.split()[1:]]
        return Server(proc, bound, line)

    return _start


@pytest.fixture
def server(start_server: Callable[..., Server]) -> Server:
    """One taskserver listening on two free ports."""
    return start_server(ports=[free_port(), free_port()])


def raw(port: int, payload: bytes, timeout: float = 2.0) -> bytes:
    """Send ``payload`` on a new connection and read until the server closes."""
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(payload)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                return b"".join(chunks)
            chunks.append(data)


class Reader:
    """Reads successive (possibly pipelined) responses from one socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _more(self) -> None:
        data = self.sock.recv(65536)
        assert data, f"connection closed early: {self.buf!r}"
        self.buf += data

    def response(self, head_only: bool = False) -> tuple[int, dict, bytes]:
        """Return the next (status, headers, body)."""
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip()
                   for k, _, v in (line.partition(":") for line in lines[1:])}
        length = 0 if head_only else int(headers["content-length"])
        while len(self.buf) < length:
            self._more()
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, headers, body


def admin(port: int, value: str) -> Result:
    return get(HOST, port, f"/admin/state?value={value}")


# --------------------------------------------------------------------------- server


def test_ready_line_lists_ports(server: Server) -> None:
    assert server.ready_line == "ready " + " ".join(map(str, server.ports))
    assert len(server.ports) == 2


def test_port_zero_reports_bound_port(start_server: Callable[..., Server]) -> None:
    srv = start_server(ports=[0])
    assert srv.port > 0
    assert get(HOST, srv.port).ok


def test_get_returns_task_json_and_peer(server: Server) -> None:
    for port in server.ports:
        r = get(HOST, port)
        assert r.ok and r.status == 200 and r.error is None
        assert r.body is not None
        assert r.body["task"] == "app.1" and r.body["node"] == "node1"
        assert r.body["client"] == HOST
        assert r.body["client_port"] == r.local_port
        assert r.body["port"] == port
        assert isinstance(r.body["seq"], int)
        assert 0 <= r.connect_ms <= r.ttfb_ms <= r.total_ms


def test_response_headers_and_one_line_body(server: Server) -> None:
    data = raw(server.port, b"GET /some/path?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 200 OK"
    headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body)
    assert headers["connection"] == "close"
    assert body.endswith(b"\n") and body.count(b"\n") == 1
    doc = json.loads(body)
    assert set(doc) == {"task", "node", "client", "client_port", "port", "seq"}


def test_keepalive_increasing_seq(server: Server) -> None:
    with KeepAliveClient(HOST, server.port, timeout=2.0) as client:
        results = [client.get("/") for _ in range(5)]
    assert all(r.ok for r in results)
    assert client.connections == 1
    assert len({r.local_port for r in results}) == 1
    assert {r.body["client_port"] for r in results} == {results[0].local_port}
    seqs = [r.body["seq"] for r in results]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    assert results[0].connect_ms is not None
    assert all(r.connect_ms is None for r in results[1:])


def test_pipelined_requests_and_body_skipping(server: Server) -> None:
    with socket.create_connection((HOST, server.port), timeout=2) as s:
        rd = Reader(s)
        s.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                  b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        first = rd.response()
        second = rd.response()
        # A body split across packets is skipped too.
        s.sendall(b"GET /c HTTP/1.1\r\nContent-Length: 10\r\n\r\n01234")
        time.sleep(0.05)
        s.sendall(b"56789GET /d HTTP/1.1\r\n\r\n")
        third = rd.response()
        fourth = rd.response()
    statuses = [r[0] for r in (first, second, third, fourth)]
    assert statuses == [200, 200, 200, 200]
    seqs = [json.loads(r[2])["seq"] for r in (first, second, third, fourth)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4


def test_connection_close_honoured(server: Server) -> None:
    with socket.create_connection((HOST, server.port), timeout=2) as s:
        rd = Reader(s)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, headers, _ = rd.response()
        assert status == 200 and headers["connection"] == "close"
        assert s.recv(100) == b""


def test_http10_closes_unless_keepalive(server: Server) -> None:
    with socket.create_connection((HOST, server.port), timeout=2) as s:
        rd = Reader(s)
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        status, headers, _ = rd.response()
        assert status == 200 and headers["connection"] == "close"
        assert s.recv(100) == b""
    with socket.create_connection((HOST, server.port), timeout=2) as s:
        rd = Reader(s)
        for _ in range(2):
            s.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            status, headers, _ = rd.response()
            assert status == 200 and headers["connection"] == "keep-alive"


def test_head(server: Server) -> None:
    with socket.create_connection((HOST, server.port), timeout=2) as s:
        rd = Reader(s)
        s.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = rd.response(head_only=True)
        assert status == 200 and body == b""
        assert headers["content-type"] == "application/json"
        assert int(headers["content-length"]) > 0
        # The connection is still in sync: no body bytes were sent for HEAD.
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = rd.response()
        assert status == 200 and int(headers["content-length"]) == len(body)
        assert json.loads(body)["task"] == "app.1"


def test_other_method_405(server: Server) -> None:
    data = raw(server.port, b"POST / HTTP/1.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc")
    assert data.startswith(b"HTTP/1.1 405 ")


@pytest.mark.parametrize("payload", [
    b"GARBAGE\r\n\r\n",
    b"GET /\r\n\r\n",
    b"GET / HTTP/9.9\r\n\r\n",
    b"\x00\xff\xfe binary junk \x01\n\n",
    b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
    b"GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
])
def test_garbage_gets_400_and_server_survives(server: Server, payload: bytes) -> None:
    data = raw(server.port, payload)
    assert data.startswith(b"HTTP/1.1 400 "), data
    assert server.proc.poll() is None
    assert get(HOST, server.port).ok


def test_resets_and_oversized_heads_do_not_crash(server: Server) -> None:
    for _ in range(20):  # connect, send half a request, reset (RST)
        s = socket.create_connection((HOST, server.port), timeout=2)
        s.sendall(b"GET / HTT")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    for _ in range(5):  # connect and close without sending anything
        socket.create_connection((HOST, server.port), timeout=2).close()
    data = raw(server.port, b"GET / HTTP/1.1\r\nX: " + b"a" * 20000)
    assert data.startswith(b"HTTP/1.1 431 ")
    assert server.proc.poll() is None
    assert get(HOST, server.port).ok


def test_health_and_unhealthy_state(server: Server) -> None:
    r = get(HOST, server.port, "/health")
    assert r.ok and r.status == 200 and r.body == {"healthy": True}
    r = admin(server.port, "unhealthy")
    assert r.ok and r.body == {"state": "unhealthy"}
    r = get(HOST, server.port, "/health")
    assert not r.ok and r.status == 503 and r.body == {"healthy": False}
    assert r.error == "HTTP 503"
    assert get(HOST, server.port, "/").ok  # normal requests still served
    assert get(HOST, server.port, "/admin/state").body == {"state": "unhealthy"}
    assert admin(server.port, "healthy").ok
    assert get(HOST, server.port, "/health").status == 200


def test_invalid_state_400(server: Server) -> None:
    r = admin(server.port, "sleepy")
    assert r.status == 400 and not r.ok
    assert get(HOST, server.port, "/admin/state").body == {"state": "healthy"}


def test_slow_adds_delay_without_blocking(server: Server) -> None:
    base = get(HOST, server.port)
    assert base.ok and base.total_ms < 150
    assert admin(server.port, "slow").ok
    r = get(HOST, server.port)
    assert r.ok and r.total_ms >= 200 and r.ttfb_ms >= 200
    assert get(HOST, server.port, "/health").total_ms >= 200
    # The delay is a timer: concurrent requests overlap instead of queueing.
    results: list[Result] = []
    threads = [threading.Thread(target=lambda: results.append(get(HOST, server.port)))
               for _ in range(5)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.ok for r in results) and len(results) == 5
    assert time.perf_counter() - t0 < 0.8
    # Pipelined requests in slow mode come back in order.
    with socket.create_connection((HOST, server.port), timeout=2) as s:
        rd = Reader(s)
        s.sendall(b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n")
        seqs = [json.loads(rd.response()[2])["seq"] for _ in range(2)]
    assert seqs[1] == seqs[0] + 1
    r = admin(server.port, "healthy")
    assert r.ok and r.total_ms < 150  # admin answers are never delayed
    assert get(HOST, server.port).total_ms < 150


def test_dead_exits_zero(server: Server) -> None:
    r = admin(server.port, "dead")
    assert r.ok and r.body == {"state": "dead"}
    assert server.proc.wait(5) == 0
    r = get(HOST, server.port, timeout=1.0)
    assert not r.ok and "refused" in r.error.lower()


def test_sigterm_exits_cleanly(server: Server) -> None:
    server.proc.terminate()
    assert server.proc.wait(5) == 0


def test_udp_responder(start_server: Callable[..., Server]) -> None:
    srv = start_server("--udp")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(2)
        u.sendto(b"ping", (HOST, srv.port))
        data, _ = u.recvfrom(65536)
        doc = json.loads(data)
        assert doc["task"] == "app.1" and doc["node"] == "node1"
        assert doc["client"] == HOST and doc["client_port"] == u.getsockname()[1]
        assert doc["port"] == srv.port
    assert get(HOST, srv.port).ok  # TCP still served on the same port


# --------------------------------------------------------------------------- client


def test_client_refused_port_no_exception() -> None:
    r = get(HOST, free_port(), timeout=1.0)
    assert isinstance(r, Result)
    assert r.ok is False and r.status is None and r.body is None
    assert r.error.startswith("connect:") and "refused" in r.error.lower()
    with KeepAliveClient(HOST, free_port(), timeout=1.0) as client:
        r = client.get("/")
    assert r.ok is False and "refused" in r.error.lower()


def test_client_timeout_no_exception() -> None:
    with socket.socket() as ls:  # accepts (kernel backlog) but never answers
        ls.bind((HOST, 0))
        ls.listen(8)
        t0 = time.perf_counter()
        r = get(HOST, ls.getsockname()[1], timeout=0.3)
        elapsed = time.perf_counter() - t0
    assert r.ok is False and r.connect_ms is not None
    assert r.error.startswith("read:") and "timed out" in r.error
    assert elapsed < 1.5


def test_client_source_address(server: Server) -> None:
    src = free_port()
    r = get(HOST, server.port, source=(HOST, src))
    assert r.ok and r.local_port == src and r.body["client_port"] == src


def test_keepalive_client_reconnects_when_server_closes() -> None:
    """A server that advertises keep-alive but closes after each answer."""
    ls = socket.socket()
    ls.bind((HOST, 0))
    ls.listen(8)
    body = b'{"x": 1}'
    stop = threading.Event()

    def serve() -> None:
        ls.settimeout(0.2)
        while not stop.is_set():
            try:
                c, _ = ls.accept()
            except OSError:
                continue
            with c:
                c.recv(65536)
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                time.sleep(0.05)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        with KeepAliveClient(HOST, ls.getsockname()[1], timeout=2.0) as client:
            results = []
            for i in range(4):
                # Odd rounds: the server's FIN has arrived (detected before send).
                # Even rounds: the request races the close (retried transparently).
                results.append(client.get("/"))
                if i % 2 == 0:
                    time.sleep(0.15)
    finally:
        stop.set()
        t.join(2)
        ls.close()
    assert all(r.ok and r.body == {"x": 1} for r in results), results
    assert client.connections == len(results)
    assert len({r.local_port for r in results}) == len(results)


def test_run_many(server: Server) -> None:
    results = run_many(HOST, server.port, 10)
    assert len(results) == 10 and all(r.ok for r in results)
    assert len({r.local_port for r in results}) == 10


def test_cli_prints_json_lines(server: Server) -> None:
    for extra in ([], ["--keepalive"]):
        out = subprocess.run(
            [sys.executable, "-m", "swarmmesh.agents.httpclient", HOST, str(server.port),
             "--count", "3", "--timeout", "2", *extra],
            cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert len(lines) == 3
        docs = [json.loads(line) for line in lines]
        for doc in docs:
            assert set(doc) >= {"ok", "status", "connect_ms", "ttfb_ms", "total_ms",
                                "body", "error", "local_port"}
            assert doc["ok"] is True and doc["body"]["task"] == "app.1"
        ports = {d["local_port"] for d in docs}
        assert len(ports) == (1 if extra else 3)


def test_cli_refused_still_json() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "swarmmesh.agents.httpclient", HOST, str(free_port()),
         "--count", "2", "--timeout", "1"],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    docs = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(docs) == 2 and all(d["ok"] is False and d["error"] for d in docs)


def test_result_is_plain_dataclass() -> None:
    assert httpclient.Result(ok=False).status is None


# --------------------------------------------------------------------------- speed


def test_throughput_500_new_connections_under_5s(server: Server) -> None:
    t0 = time.perf_counter()
    results = run_many(HOST, server.port, 500)
    elapsed = time.perf_counter() - t0
    assert all(r.ok for r in results)
    seqs = [r.body["seq"] for r in results]
    assert seqs == sorted(seqs)
    assert elapsed < 5.0, f"500 requests took {elapsed:.2f}s"


# --------------------------------------------------------------------------- control port


@pytest.fixture
def ctl_server(start_server: Callable[..., Server]) -> tuple[Server, int, int]:
    """A task server on a public port with a separate control port: (server, public, control)."""
    public, private = free_port(), free_port()
    srv = start_server("--control-port", str(private), ports=[public])
    assert srv.ports == [public, private]
    return srv, public, private


def control(port: int, query: str = "", method: str = "GET") -> tuple[int, dict]:
    with socket.create_connection((HOST, port), timeout=2) as s:
        rd = Reader(s)
        s.sendall(f"{method} /control?{query} HTTP/1.1\r\nHost: x\r\n"
                  "Content-Length: 0\r\n\r\n".encode())
        status, _, body = rd.response()
    return status, json.loads(body)


def test_control_only_on_private_port(ctl_server) -> None:
    srv, public, private = ctl_server
    assert control(private) == (200, {"mode": "healthy", "delay_ms": 200})
    r = get(HOST, public, "/control?mode=unhealthy")
    assert r.ok and r.body["task"] == "app.1"  # an ordinary path on the public port
    r = get(HOST, public, "/admin/state?value=dead")
    assert r.ok and r.body["task"] == "app.1"  # the old interface too
    assert get(HOST, public, "/health").status == 200
    assert srv.proc.poll() is None
    assert control(private, "mode=unhealthy", "POST") == (
        200, {"mode": "unhealthy", "delay_ms": 200})
    data = raw(public, b"POST /control HTTP/1.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 405 ") and b"Allow: GET, HEAD\r\n" in data


def test_control_unhealthy_fails_health_but_serves(ctl_server) -> None:
    _, public, private = ctl_server
    control(private, "mode=unhealthy")
    for port in (public, private):
        r = get(HOST, port, "/health")
        assert r.status == 503 and r.body == {"healthy": False}
    assert get(HOST, public, "/").ok
    control(private, "mode=healthy")
    assert get(HOST, public, "/health").status == 200


def test_control_slow_with_delay(ctl_server) -> None:
    _, public, private = ctl_server
    assert control(private, "mode=slow&delay_ms=350") == (200, {"mode": "slow", "delay_ms": 350})
    r = get(HOST, public)
    assert r.ok and r.total_ms >= 350
    h = get(HOST, public, "/health")
    assert h.status == 200 and h.total_ms >= 350
    t0 = time.perf_counter()
    assert control(private, "delay_ms=50")[1] == {"mode": "slow", "delay_ms": 50}
    assert time.perf_counter() - t0 < 0.15  # control answers are never delayed
    r = get(HOST, public)
    assert 50 <= r.total_ms < 300


def test_control_bad_input_400(ctl_server) -> None:
    _, _, private = ctl_server
    status, body = control(private, "mode=sleepy")
    assert status == 400 and body["valid"] == ["healthy", "unhealthy", "slow", "dead"]
    assert control(private, "delay_ms=-5")[0] == 400
    assert control(private, "delay_ms=abc")[0] == 400
    assert control(private) == (200, {"mode": "healthy", "delay_ms": 200})


def test_control_dead_closes_everything_and_signals_revive(start_server) -> None:
    public, private = free_port(), free_port()
    srv = start_server("--udp", "--control-port", str(private), ports=[public])
    with KeepAliveClient(HOST, public, timeout=2.0) as client:
        assert client.get("/").ok
        with socket.create_connection((HOST, public), timeout=2) as idle:
            assert control(private, "mode=dead") == (200, {"mode": "dead", "delay_ms": 200})
            assert idle.recv(100) == b""  # established connections are closed
        for port in (public, private):
            r = get(HOST, port, timeout=1.0)
            assert not r.ok and "refused" in r.error.lower()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(0.3)
            u.sendto(b"ping", (HOST, public))
            with pytest.raises(OSError):  # refused (ICMP) or timed out
                u.recvfrom(100)
        assert srv.proc.poll() is None  # the process stays, as a stopped container's netns
        srv.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 3
        while not get(HOST, public, timeout=0.5).ok:
            assert time.monotonic() < deadline, "not back after SIGUSR1"
            time.sleep(0.02)
        assert control(private)[1]["mode"] == "healthy"
        assert get(HOST, public, "/health").status == 200
        srv.proc.send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + 3
        while get(HOST, private, timeout=0.5).ok:
            assert time.monotonic() < deadline, "not dead after SIGUSR2"
            time.sleep(0.02)
        assert srv.proc.poll() is None


def test_control_port_must_be_valid(start_server) -> None:
    out = subprocess.run([sys.executable, "-m", "swarmmesh.agents.taskserver", "--task", "a.1",
                          "--node", "n1", "--control-port", "0"],
                         cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "--control-port: must be in 1..65535" in out.stderr


# -- the fork server's reading of the plain form ------------------------------------------

from swarmmesh.agents import taskserver as _ts  # noqa: E402

QUICK_SAME = [
    ["--task", "web.1", "--node", "node1", "--udp", "--control-port", "9999", "--port", "80"],
    ["--task", "web.1", "--node", "node1", "--port", "80", "--port", "8080", "--port", "0"],
    ["--node", "n", "--task", "t", "--bind", "127.0.0.1", "--slow-delay", "0.5", "--udp"],
    ["--task", "t", "--node", "n", "--task", "u"],                 # the last one wins
    ["--task", "", "--node", "n"],
]
QUICK_DECLINED = [
    ["--task=web.1", "--node", "n"], ["--tas", "t", "--node", "n"], ["--task", "t"],
    ["--task", "t", "--node", "n", "--port", "eighty"], ["--task", "t", "--node", "n", "--port"],
    ["--task", "t", "--node", "n", "--port", "-1"], ["--task", "t", "--node", "n", "extra"],
    ["--task", "t", "--node", "n", "-h"],
]


@pytest.mark.parametrize("argv", QUICK_SAME)
def test_the_quick_reading_is_what_argparse_makes_of_the_plain_form(argv):
    assert _ts.quick_args(argv) == _ts.parse_args(argv)


@pytest.mark.parametrize("argv", QUICK_DECLINED)
def test_anything_else_is_left_to_argparse(argv):
    assert _ts.quick_args(argv) is None
