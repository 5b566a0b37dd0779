"""The task server's listening sockets: what the selector calls when one is readable.

A :class:`Listener` accepts TCP connections in batches and answers each at
once (the request has usually arrived with the handshake); a
:class:`UdpResponder` answers every datagram with the task's JSON document.
"""

from __future__ import annotations

import errno
import selectors
import socket

from swarmmesh.agents.taskserver_http import Conn, Server

_READ = selectors.EVENT_READ
_ACCEPT_BATCH = 64


def client_ip(addr: tuple) -> str:
    """The peer's address, an IPv4-mapped IPv6 one as plain IPv4."""
    ip = addr[0]
    return ip[7:] if ip.startswith("::ffff:") and "." in ip else ip


class PortHandler:
    """What the selector calls for one listening socket of the task server."""

    def __init__(self, srv: Server, sock: socket.socket, port: int) -> None:
        self.srv = srv
        self.sock = sock
        self.port = port

    def on_error(self) -> None:
        pass


class Listener(PortHandler):
    """Accepts connections on one TCP port and answers them eagerly."""

    def on_event(self, mask: int) -> None:
        srv = self.srv
        accept = self.sock.accept
        for _ in range(_ACCEPT_BATCH):
            try:
                sock, addr = accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._pause(0.1)  # out of descriptors: back off briefly
                return
            conn = Conn(srv, sock, client_ip(addr), addr[1], self.port)
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.on_read()  # the request has usually arrived already
            except Exception:
                conn.close()

    def _pause(self, delay: float) -> None:
        try:
            self.srv.sel.unregister(self.sock)
        except (KeyError, ValueError):
            return
        self.srv.call_later(delay, self._resume)

    def _resume(self) -> None:
        if self.sock.fileno() >= 0:
            try:
                self.srv.sel.register(self.sock, _READ, self)
            except (KeyError, ValueError):
                pass


class UdpResponder(PortHandler):
    """Answers every UDP datagram with the task JSON document."""

    def on_event(self, mask: int) -> None:
        srv = self.srv
        for _ in range(_ACCEPT_BATCH):
            try:
                _, addr = self.sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. ICMP port unreachable from a vanished client
                continue
            body = srv.task_body(client_ip(addr), addr[1], self.port)
            if srv.state == "slow":
                srv.call_later(srv.slow_delay, self._send, body, addr)
            else:
                self._send(body, addr)

    def _send(self, body: bytes, addr: tuple) -> None:
        if self.sock.fileno() >= 0:
            try:
                self.sock.sendto(body, addr)
            except OSError:
                pass
