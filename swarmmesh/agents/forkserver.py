"""One Python for every task server of a machine: it forks into each task's namespaces.

A task server started as its own ``python -m swarmmesh.agents.taskserver`` costs an
interpreter start (about 35 ms of CPU) and some 7 MiB of memory of its own. This agent
starts once, imports the task server, freezes what it has allocated (``gc.freeze``, so
the children's collector leaves those pages shared), and then serves requests on a Unix
socket: each is a task server's argument list, the PID of a process in the task's
namespaces (its Mininet shell) and, passed with ``SCM_RIGHTS``, the file descriptor the
child's output goes to. It forks; the child joins the task's network and mount
namespaces (``setns``: the same addresses and the same bind-mounted ``resolv.conf`` as a
process started in that shell), points stdout and stderr at the descriptor and runs
:func:`swarmmesh.agents.taskserver.main`. The reply is the child's PID; the agent reaps
its children as they exit.

Usage::

    python -S -m swarmmesh.agents.forkserver --socket PATH

It prints ``ready`` once it listens; SIGTERM ends it (its children go on: they are
stopped by their own recorded PIDs).
"""

from __future__ import annotations

import argparse
import array
import ctypes
import gc
import json
import os
import signal
import socket
import sys

from swarmmesh.agents import taskserver

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


def parse_request(data: bytes) -> tuple[int, list[str]]:
    """``{"pid": P, "argv": [...]}`` -> (P, argv); ValueError naming the field."""
    req = json.loads(data)
    pid, argv = req.get("pid"), req.get("argv")
    if not isinstance(pid, int) or pid <= 0:
        raise ValueError(f"pid: must be a positive integer, got {pid!r}")
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise ValueError(f"argv: must be a list of strings, got {argv!r}")
    return pid, argv


def child(pid: int, args, out_fd: int, listener: socket.socket) -> None:
    """In the forked child: into the task's namespaces, output to ``out_fd``, serve."""
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
        code = taskserver.run(args)
    except BaseException as exc:                       # noqa: BLE001 (a child never returns)
        try:
            os.write(2, f"forkserver: task server failed: {exc!r}\n".encode())
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
        pid, argv = parse_request(data)
        os.stat(f"/proc/{pid}/ns/net")
        args = taskserver.parse_args(argv)        # here: the child only serves
    except (ValueError, OSError, SystemExit) as exc:
        conn.sendall(f"error {exc}\n".encode())
        for fd in fds:
            os.close(fd)
        return
    child_pid = os.fork()
    if child_pid == 0:
        conn.close()
        child(pid, args, fds[0], listener)
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


def warm_up() -> None:
    """Take once, in the parent, what every task server would otherwise allocate anew
    after the fork (argparse's parser, the server's lazily built state), so that the
    children share it."""
    args = taskserver.parse_args(["--task", "warm.1", "--node", "warm", "--port", "0",
                                  "--udp", "--bind", "127.0.0.1"])
    server = taskserver.TaskServer(args.task, args.node, args.port, bind=args.bind,
                                   udp=args.udp)
    try:
        server.start()
    except OSError:
        pass
    server.close()


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
