"""One Python for every task server and embedded DNS of a machine: it forks into each
task's (or node's) namespaces.

A task server started as its own ``python -m swarmmesh.agents.taskserver`` costs an
interpreter start (about 35 ms of CPU) and some 7 MiB of memory of its own. This agent
starts once, imports the task server, freezes what it has allocated (``gc.freeze``, so
the children's collector leaves those pages shared), and then serves requests on a Unix
socket: each is a task server's argument list, the PID of a process in the task's
namespaces (its Mininet shell) and, passed with ``SCM_RIGHTS``, the file descriptor the
child's output goes to. It forks; the child joins the task's network and mount
namespaces (``setns``: the same addresses and the same bind-mounted ``resolv.conf`` as a
process started in that shell), points stdout and stderr at the descriptor and runs
:func:`swarmmesh.agents.taskserver.run`. A request whose ``program`` is ``dns`` runs a
node's embedded DNS (:func:`swarmmesh.agents.dns.run`) the same way, in the node's
namespaces. Arguments are parsed here, before the fork: a bad one is refused with what the
program's own parser said. The reply is the child's PID; the agent reaps its children as
they exit.

Usage::

    python -S -m swarmmesh.agents.forkserver --socket PATH

It prints ``ready`` once it listens; SIGTERM ends it (its children go on: they are
stopped by their own recorded PIDs).
"""

from __future__ import annotations

import argparse
import array
import contextlib
import ctypes
import gc
import io
import json
import os
import signal
import socket
import sys

from swarmmesh.agents import dns, taskserver

CLONE_NEWNS, CLONE_NEWNET = 0x00020000, 0x40000000
NAMESPACES = (("net", CLONE_NEWNET), ("mnt", CLONE_NEWNS))
MAX_REQUEST = 65536
_libc = ctypes.CDLL(None, use_errno=True)


def setns(pid: int, name: str, flag: int) -> None:
    """Join process ``pid``'s namespace ``name`` (the whole process: it must have one
    thread, as a freshly forked child has)."""
    fd = os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(fd, flag) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {name} of {pid}: {os.strerror(err)}")
    finally:
        os.close(fd)


# The plain form of a program's arguments, read without its argparse parser (whose every
# use writes into pages the children share): ``taskserver.quick_args``.
QUICK = {"taskserver": taskserver.quick_args}

# What a child runs: a task server, or a node's embedded DNS; (parse the arguments, run).
PROGRAMS = {"taskserver": (taskserver.parse_args, taskserver.run),
            "dns": (dns.parse_args, dns.run)}


def parse_request(data: bytes) -> tuple[int, list[str], str]:
    """``{"pid": P, "argv": [...], "program": "taskserver"|"dns"}`` -> (P, argv,
    program; a task server when absent); ValueError naming the field."""
    req = json.loads(data)
    pid, argv = req.get("pid"), req.get("argv")
    program = req.get("program", "taskserver")
    if program not in PROGRAMS:
        raise ValueError(f"program: must be one of {', '.join(PROGRAMS)}, got {program!r}")
    if not isinstance(pid, int) or pid <= 0:
        raise ValueError(f"pid: must be a positive integer, got {pid!r}")
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise ValueError(f"argv: must be a list of strings, got {argv!r}")
    return pid, argv, program


def parse_args(program: str, argv: list[str]):
    """``program``'s arguments; ValueError with what its parser said (``exited 2:
    ...: error: unrecognized arguments: ...``), as the program started on its own would
    have printed and exited."""
    quick = QUICK.get(program)
    args = quick(argv) if quick is not None else None
    if args is not None:
        return args
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):
            return PROGRAMS[program][0](argv)
    except SystemExit as exc:
        lines = said.getvalue().strip().splitlines()
        raise ValueError(f"exited {exc.code}: {lines[-1] if lines else 'no output'}") from None


def child(pid: int, program: str, args, out_fd: int, listener: socket.socket) -> None:
    """In the forked child: into the host's namespaces, output to ``out_fd``, serve."""
    code = 1
    try:
        listener.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.setsid()
        for name, flag in NAMESPACES:
            setns(pid, name, flag)
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        os.close(out_fd)
        sys.stdout = os.fdopen(1, "w", buffering=1)
        sys.stderr = os.fdopen(2, "w", buffering=1)
        code = PROGRAMS[program][1](args)
    except BaseException as exc:                       # noqa: BLE001 (a child never returns)
        try:
            os.write(2, f"forkserver: {program} failed: {exc!r}\n".encode())
        except OSError:
            pass
    finally:
        os._exit(code if isinstance(code, int) else 1)


def serve(conn: socket.socket, listener: socket.socket) -> None:
    """One request on one connection: fork the task server, answer its PID (or an
    ``error`` line)."""
    fds = array.array("i")
    data, anc, _, _ = conn.recvmsg(MAX_REQUEST, socket.CMSG_SPACE(fds.itemsize))
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
    try:
        if len(fds) != 1:
            raise ValueError(f"fd: one output descriptor expected, got {len(fds)}")
        pid, argv, program = parse_request(data)
        os.stat(f"/proc/{pid}/ns/net")
        args = parse_args(program, argv)          # here: the child only serves
    except (ValueError, OSError) as exc:
        conn.sendall(f"error {exc}\n".encode())
        for fd in fds:
            os.close(fd)
        return
    child_pid = os.fork()
    if child_pid == 0:
        conn.close()
        child(pid, program, args, fds[0], listener)
    os.close(fds[0])
    conn.sendall(f"pid {child_pid}\n".encode())


def reap(*_: object) -> None:
    """Collect every child that has exited (SIGCHLD)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


WARM_ROUNDS = 10   # more than the calls after which Python 3.11 specializes a function


def warm_up(rounds: int = WARM_ROUNDS) -> None:
    """Take once, in the parent, what every task server would otherwise allocate or write
    anew after the fork, so that the children share it: argparse's parser, the server's
    lazily built state, its signal handlers, and the interpreter's own per-function
    counters and specialized code (a function called fewer times than Python specializes
    after is written to by each child that calls it). Measured on 40 children: 2.08 MiB
    private each without, 1.40 MiB with (the ``resource`` module, imported by the task
    server at its start, was half of that). The parent's signal handlers are as before."""
    saved = {s: signal.getsignal(s) for s in SERVER_SIGNALS}
    try:
        for _ in range(rounds):
            _serve_once()
    finally:
        signal.set_wakeup_fd(-1)
        for s, handler in saved.items():
            signal.signal(s, handler)
    dns.parse_args(["--node", "warm", "--state-dir", "/"])


SERVER_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2)


def _serve_once() -> None:
    """A task server's life, briefly: parsed, started, its handlers, one loop, closed."""
    args = taskserver.parse_args(["--task", "warm.1", "--node", "warm", "--port", "0",
                                  "--udp", "--bind", "127.0.0.1"])
    server = taskserver.TaskServer(args.task, args.node, args.port, bind=args.bind,
                                   udp=args.udp)
    try:
        server.install_signal_handlers()
        server.start()
    except OSError:
        server.close()
        return
    server.call_later(0, server.stop)
    server.serve_forever()                    # (closes the server)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m swarmmesh.agents.forkserver",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--socket", required=True, help="the Unix socket to listen on")
    args = ap.parse_args(argv)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(args.socket)
    listener.listen(64)
    signal.signal(signal.SIGCHLD, reap)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    warm_up()
    gc.collect()
    gc.freeze()                    # what is here now stays shared with every child
    print("ready", flush=True)
    while True:
        try:
            conn, _ = listener.accept()
        except InterruptedError:
            continue
        with conn:
            serve(conn, listener)


if __name__ == "__main__":
    sys.exit(main())
