"""The task server: the small, fast, single-threaded HTTP/1.1 server each emulated task runs
(a machine of the testbed is a "server"; what answers inside a task is its "task server").

Built directly on :mod:`selectors` and non-blocking sockets (no asyncio
streams, no http.server): a freshly accepted socket is read and answered
immediately, so one core serves well over 10000 new-connection requests per
second on loopback.

Usage::

    python -m swarmmesh.agents.taskserver --task app.1 --node node1 --port 80 \
        [--port 8080 ...] [--control-port 9999] [--bind 0.0.0.0] [--udp]

Once every socket is listening, exactly one line ``ready <port> [<port> ...]``
(the actually bound TCP ports, so ``--port 0`` is usable) is printed to stdout.
SIGTERM/SIGINT make the process exit with code 0.

Every GET/HEAD on any path answers 200 with a one-line JSON body::

    {"task": "app.1", "node": "node1", "client": "10.0.0.5",
     "client_port": 41234, "port": 80, "seq": 17}

``seq`` counts the normal (non ``/health``, non ``/admin``) requests answered
by this process, over TCP and UDP together.  Other methods get 405; request
bodies are skipped according to Content-Length (chunked bodies get 501).

Special paths:

* ``/health`` -> 200 ``{"healthy": true}``, or 503 ``{"healthy": false}``
  while the mode is ``unhealthy`` (on every port; delayed in ``slow`` mode).
* ``/control`` (GET or POST; only on the ``--control-port``, the task's
  private port that is never published) sets the mode for experiments::

      /control?mode=healthy|unhealthy|slow|dead[&delay_ms=N]

  and answers ``{"mode": ..., "delay_ms": N}`` (without ``mode`` it only
  reports; ``delay_ms`` alone changes the slow delay). Modes:

  - ``healthy``: normal.
  - ``unhealthy``: ``/health`` fails (503) while every other request is still
    answered, as an application that is up but failing its check.
  - ``slow``: every answer except ``/control`` ones comes ``delay_ms``
    (default 200) late, ``/health`` included; a loop timer, nothing blocks.
  - ``dead``: as a killed container. After answering, every listening TCP
    socket and UDP responder is closed (new connections are refused) and every
    established connection is closed; the process stays, idle. The control
    port is closed too, so only a signal brings the task back.

  Signals: ``SIGUSR1`` -> ``healthy`` (re-opens every listener on the same
  ports, from any mode); ``SIGUSR2`` -> ``dead``. With ``mnexec``/``kill`` from
  outside the task these need no network access.
* ``/admin/state?value=healthy|unhealthy|slow|dead`` (older interface) sets the
  same modes; here ``dead`` answers, closes every listener and exits the
  process with code 0. Served on every port, or only on the control port
  when ``--control-port`` is given.

On any port other than the control port, ``/control`` is an ordinary path.

With ``--udp`` a UDP responder listens on the same ports and answers every
datagram with the same JSON document (``port`` is the UDP port).
"""

from __future__ import annotations

import argparse
import functools
import json
import resource      # (here, not where it is used: the fork server's children share it)
import selectors
import signal
import socket
import sys
from typing import Any, Callable

from swarmmesh.agents.taskserver_http import Conn
from swarmmesh.agents.taskserver_loop import Timer, Timers, Wakeup
from swarmmesh.agents.taskserver_ports import Listener, UdpResponder

SLOW_DELAY = 0.2
"""Delay (seconds) added to every answer in the ``slow`` state."""

_READ = selectors.EVENT_READ


class TaskServer:
    """Single-threaded selectors loop: listeners, connections, timers, state."""

    def __init__(self, task: str, node: str, ports: list[int],
                 bind: str = "0.0.0.0", udp: bool = False,
                 slow_delay: float = SLOW_DELAY, control_port: int | None = None) -> None:
        self.task = task
        self.node = node
        # Drop duplicate fixed ports; every "0" asks for its own free port.
        seen: set[int] = set()
        self.ports = [p for p in ports if p == 0 or not (p in seen or seen.add(p))]
        self.control_port = control_port
        if control_port is not None and control_port not in self.ports:
            self.ports.append(control_port)
        self.bind = bind
        self.udp = udp
        self.slow_delay = slow_delay
        self.state = "healthy"
        self.seq = 0
        self.bound_ports: list[int] = []
        self.exit_code = 0
        self._signalled_mode: str | None = None  # set by SIGUSR1/2, applied by the loop
        self.running = True  # cleared by stop(), which may run before serve_forever
        # Pre-encoded '{"task": ..., "node": ..., ' prefix of every body.
        self._prefix = json.dumps({"task": task, "node": node})[:-1].encode() + b", "
        self.sel = selectors.DefaultSelector()
        self._listeners: list[Listener] = []
        self._udps: list[UdpResponder] = []
        self.conns: set[Conn] = set()
        self._timers = Timers()
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> list[int]:
        """Open every listener (raises OSError) and return the bound TCP ports."""
        self.bound_ports = self._open(self.ports)
        return self.bound_ports

    def _open(self, ports: list[int]) -> list[int]:
        """Listen on ``ports`` (TCP, and UDP with ``--udp``); the bound TCP ports."""
        bound: list[int] = []
        try:
            for port in ports:
                family, _, _, _, addr = socket.getaddrinfo(
                    self.bind, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
                ls = socket.socket(family, socket.SOCK_STREAM)
                ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                ls.bind(addr)
                ls.listen(4096)
                ls.setblocking(False)
                actual = ls.getsockname()[1]
                lst = Listener(self, ls, actual)
                self._listeners.append(lst)
                self.sel.register(ls, _READ, lst)
                bound.append(actual)
                if self.udp:
                    us = socket.socket(family, socket.SOCK_DGRAM)
                    us.bind((addr[0], actual) + tuple(addr[2:]))
                    us.setblocking(False)
                    ur = UdpResponder(self, us, actual)
                    self._udps.append(ur)
                    self.sel.register(us, _READ, ur)
        except OSError:
            self.close_listeners()
            raise
        return bound

    def install_signal_handlers(self) -> None:
        """Make SIGTERM/SIGINT stop the loop (main thread only)."""
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        self.sel.register(self._wake_r, _READ, Wakeup(self._wake_r))
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop(0))
        signal.signal(signal.SIGUSR1, lambda *_: setattr(self, "_signalled_mode", "healthy"))
        signal.signal(signal.SIGUSR2, lambda *_: setattr(self, "_signalled_mode", "dead"))

    def stop(self, code: int = 0) -> None:
        """Make :meth:`serve_forever` return ``code``."""
        self.exit_code = code
        self.running = False

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> Timer:
        """Run ``fn(*args)`` on the loop after ``delay`` seconds."""
        return self._timers.call_later(delay, fn, *args)

    def serve_forever(self) -> int:
        """Run the event loop until :meth:`stop`; tear down; return exit code."""
        select = self.sel.select
        timers = self._timers
        try:
            while self.running:
                for key, mask in select(timers.timeout()):
                    handler = key.data
                    try:
                        handler.on_event(mask)
                    except Exception:  # a single bad socket must never kill the loop
                        handler.on_error()
                if self._signalled_mode is not None:
                    mode, self._signalled_mode = self._signalled_mode, None
                    self.set_mode(mode)
                timers.run_due()
        finally:
            self.close()
        return self.exit_code

    def close_listeners(self) -> None:
        """Close every listening TCP socket and UDP responder."""
        for obj in self._listeners + self._udps:
            try:
                self.sel.unregister(obj.sock)
            except (KeyError, ValueError):
                pass
            obj.sock.close()
        self._listeners.clear()
        self._udps.clear()

    def close(self) -> None:
        """Release every socket and the selector."""
        self.close_listeners()
        for conn in list(self.conns):
            conn.close()
        if self._wake_r is not None:
            try:
                signal.set_wakeup_fd(-1)
            except ValueError:
                pass
            self._wake_r.close()
            self._wake_w.close()  # type: ignore[union-attr]
            self._wake_r = self._wake_w = None
        self.sel.close()

    def set_mode(self, mode: str, keep: Conn | None = None) -> None:
        """Enter ``mode`` (one of ``taskserver_http.STATES``); ``dead`` spares ``keep``
        until it has flushed its answer. Leaving ``dead`` re-opens the ports."""
        if mode == "dead":
            if self.state != "dead":
                self.close_listeners()
                for conn in list(self.conns):
                    if conn is not keep:
                        conn.close()
        elif self.state == "dead":
            try:
                self._open(self.bound_ports)
            except OSError as exc:
                print(f"taskserver: cannot listen again: {exc}", file=sys.stderr)
                return
        self.state = mode

    def die(self, conn: Conn) -> None:
        """Enter ``dead``: stop listening, exit once ``conn`` flushed its answer."""
        self.close_listeners()
        conn.on_closed = lambda: self.stop(0)
        self.call_later(1.0, self.stop, 0)  # fallback if the answer never drains

    # -- bodies --------------------------------------------------------------
    def task_body(self, client: str, client_port: int, port: int) -> bytes:
        """Count a normal request and return its JSON body."""
        self.seq += 1
        return self._prefix + b'"client": %s, "client_port": %d, "port": %d, "seq": %d}\n' % (
            json.dumps(client).encode(), client_port, port, self.seq)


def _raise_nofile_limit() -> None:
    """Lift the soft open-file limit to the hard limit (best effort)."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    return _parser().parse_args(argv)


# The options as the testbed writes them (``--flag value``), and their types.
_QUICK = {"--task": str, "--node": str, "--port": int, "--control-port": int,
          "--bind": str, "--slow-delay": float}


def quick_args(argv: list[str]) -> argparse.Namespace | None:
    """What :func:`parse_args` makes of ``argv``, for the plain form the testbed writes
    (every option spelt out, each value its own word); None for anything else, which
    :func:`parse_args` then takes (and refuses, if it must, in its own words). The fork
    server parses each request before it forks; argparse touches the parser's objects,
    and every page it writes there becomes a private copy in each task server forked
    before (0.24 MiB each, measured over 40); this touches a few new objects only."""
    ns = {"task": None, "node": None, "port": None, "control_port": None,
          "bind": "0.0.0.0", "udp": False, "slow_delay": SLOW_DELAY}
    i = 0
    while i < len(argv):
        flag = argv[i]
        if flag == "--udp":
            ns["udp"], i = True, i + 1
            continue
        kind = _QUICK.get(flag)
        if kind is None or i + 1 >= len(argv) or argv[i + 1].startswith("-"):
            return None
        try:
            value = kind(argv[i + 1])
        except ValueError:
            return None
        key = flag[2:].replace("-", "_")
        if key == "port":
            ns["port"] = [*(ns["port"] or []), value]
        else:
            ns[key] = value
        i += 2
    if ns["task"] is None or ns["node"] is None:
        return None
    return argparse.Namespace(**ns)


@functools.lru_cache(maxsize=1)
def _parser() -> argparse.ArgumentParser:
    """Built once: the fork server builds it before it forks, and every task server it
    forks parses with the parent's, shared (a parser built per task would be new
    memory in each)."""
    p = argparse.ArgumentParser(prog="python -m swarmmesh.agents.taskserver",
                                description=__doc__.splitlines()[0])
    p.add_argument("--task", required=True, help="task name, e.g. app.1")
    p.add_argument("--node", required=True, help="node name, e.g. node1")
    p.add_argument("--port", type=int, action="append",
                   help="TCP port to listen on (repeatable; 0 = any free port)")
    p.add_argument("--control-port", type=int, default=None,
                   help="private port that serves /control (also listened on)")
    p.add_argument("--bind", default="0.0.0.0", help="address to bind")
    p.add_argument("--udp", action="store_true",
                   help="also answer UDP datagrams on the same ports")
    p.add_argument("--slow-delay", type=float, default=SLOW_DELAY,
                   help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the process exit code."""
    return run(parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Serve as :func:`parse_args` said (the fork server parses before it forks)."""
    if args.control_port is not None and not 1 <= args.control_port <= 65535:
        print(f"taskserver: --control-port: must be in 1..65535, got {args.control_port}",
              file=sys.stderr)
        return 2
    _raise_nofile_limit()
    server = TaskServer(args.task, args.node, args.port or [80], bind=args.bind,
                        udp=args.udp, slow_delay=args.slow_delay,
                        control_port=args.control_port)
    server.install_signal_handlers()
    try:
        ports = server.start()
    except OSError as exc:
        print(f"taskserver: cannot listen: {exc}", file=sys.stderr)
        server.close()
        return 1
    sys.stdout.write("ready " + " ".join(map(str, ports)) + "\n")
    sys.stdout.flush()
    return server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
