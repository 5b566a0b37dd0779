"""What a health check runs: an HTTP request or a command, inside the task's namespace.

:class:`HttpProbe` is built in (``GET /health`` from inside the task's network
namespace, what ``curl -f http://localhost/health`` does there); :class:`CommandProbe`
is a command run in the namespace with ``mnexec -a PID``.  :func:`probe_for` picks one
from a stack ``test`` (pure).  Sockets of an :class:`HttpProbe` with ``netns_pid`` are
created inside that process's network namespace (``setns`` on the calling thread, then
back): this needs root, as Mininet does; without ``netns_pid`` they are created in the
caller's namespace (what the unit tests use).  No namespace file descriptor is kept
open between checks, so a task's namespace vanishes with its host.
"""

from __future__ import annotations

import ctypes
import os
import re
import shlex
import shutil
import socket
from dataclasses import dataclass
from typing import Union
from urllib.parse import urlsplit


_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def socket_in_netns(pid: int | None, family: int = socket.AF_INET,
                    kind: int = socket.SOCK_STREAM) -> socket.socket:
    """A socket in the network namespace of process ``pid`` (None: our own).

    Switches only the calling thread (``setns`` is per thread) and back.
    """
    if pid is None:
        return socket.socket(family, kind)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
            try:
                return socket.socket(family, kind)
            finally:
                _setns(own)
        finally:
            os.close(target)
    finally:
        os.close(own)


@dataclass(frozen=True)
class HttpProbe:
    """``GET http://host:port/path`` from inside the task's namespace.

    ``fail_on_http_error``: a status >= 400 fails (``curl -f``, ``wget``);
    without it any HTTP answer passes (plain ``curl``).
    """

    port: int = 80
    path: str = "/health"
    host: str = "127.0.0.1"
    fail_on_http_error: bool = True
    netns_pid: int | None = None

    def request(self) -> bytes:
        return (f"GET {self.path} HTTP/1.0\r\nHost: localhost\r\n"
                "User-Agent: swarmmesh-health\r\nConnection: close\r\n\r\n").encode()

    def judge(self, head: bytes) -> tuple[bool, str]:
        """(passed, output) from the start of an answer."""
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split()
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            return False, f"bad answer {line[:60]!r}"
        status = int(parts[1])
        return (status < 400 or not self.fail_on_http_error), f"HTTP {status}"


@dataclass(frozen=True)
class CommandProbe:
    """A command (argv) run in the task's namespace: exit 0 passes."""

    argv: tuple[str, ...]
    netns_pid: int | None = None

    def command(self) -> list[str]:
        """The argv actually executed (through ``mnexec -a`` or ``nsenter``)."""
        if self.netns_pid is None:
            return list(self.argv)
        mnexec = shutil.which("mnexec")
        if mnexec:
            return [mnexec, "-a", str(self.netns_pid), *self.argv]
        return ["nsenter", "-t", str(self.netns_pid), "-n", "--", *self.argv]


Probe = Union[HttpProbe, CommandProbe]

_LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]", "::1")
_SHELL_TAIL = (["||", "exit", "1"], ["||", "false"], ["||", "exit"])


def _http_from_argv(words: list[str]) -> tuple[int, str, bool] | None:
    """(port, path, fail_on_http_error) for a plain curl/wget of a local URL, else None."""
    if not words:
        return None
    for tail in _SHELL_TAIL:
        if words[-len(tail):] == tail:
            words = words[:-len(tail)]
            break
    prog = os.path.basename(words[0]) if words else ""
    if prog not in ("curl", "wget"):
        return None
    urls = [w for w in words[1:] if "://" in w]
    opts = [w for w in words[1:] if "://" not in w]
    if len(urls) != 1:
        return None
    if prog == "curl":
        fail = False
        skip_next = False
        for o in opts:
            if skip_next:
                skip_next = False
                continue
            if o in ("-f", "--fail", "--fail-with-body"):
                fail = True
            elif o in ("-o", "--output", "-m", "--max-time", "--connect-timeout"):
                skip_next = True
            elif re.fullmatch(r"-[sSfLI]+", o):
                fail = fail or "f" in o
            elif o not in ("--silent", "--show-error", "--location", "--head"):
                return None
    else:
        fail = True
        skip_next = False
        for o in opts:
            if skip_next:
                skip_next = False
                continue
            cluster = re.fullmatch(r"-([qS]*)(O(.*))?", o)  # -q, -qO-, -qO FILE
            if o in ("--output-document", "-T", "--timeout", "-t", "--tries"):
                skip_next = True
            elif cluster and o != "-":
                skip_next = cluster.group(2) is not None and cluster.group(3) == ""
            elif not (o in ("--spider", "--quiet")
                      or o.startswith(("--timeout=", "--tries=", "--output-document="))):
                return None
    try:
        url = urlsplit(urls[0])
        port = url.port
    except ValueError:
        return None
    if url.scheme != "http" or url.hostname not in _LOCAL_HOSTS:
        return None
    path = url.path or "/"
    if url.query:
        path += "?" + url.query
    return (port or 80), path, fail


def probe_for(test: tuple[str, ...] | list[str], netns_pid: int | None = None) -> Probe | None:
    """The probe for a stack ``test`` (None for ``NONE`` or an empty test).

    A ``curl``/``wget`` of ``http://localhost[:port]/path`` (CMD or CMD-SHELL,
    with the usual ``-f -s -S``, ``-q --spider``, ``|| exit 1``) becomes the
    built-in :class:`HttpProbe`, which does what that command would do without
    spawning a process per check; anything else a :class:`CommandProbe`
    (CMD-SHELL through ``/bin/sh -c``).
    """
    test = tuple(test)
    if not test or test[0] == "NONE":
        return None
    kind, args = test[0], list(test[1:])
    if kind == "CMD":
        http = _http_from_argv(args)
        argv = tuple(args)
    elif kind == "CMD-SHELL":
        try:
            words = shlex.split(args[0]) if len(args) == 1 else []
        except ValueError:
            words = []
        http = _http_from_argv(words)
        argv = ("/bin/sh", "-c", *args)
    else:
        raise ValueError(f"unknown test type {kind!r} (expected CMD, CMD-SHELL or NONE)")
    if http is not None:
        port, path, fail = http
        return HttpProbe(port=port, path=path, fail_on_http_error=fail, netns_pid=netns_pid)
    return CommandProbe(argv, netns_pid=netns_pid)
