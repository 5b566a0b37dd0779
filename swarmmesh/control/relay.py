"""The unix-socket relay between the namespaced switches and the controller.

Each node's vswitchd lives in the node's own network namespace, where the
controller's 127.0.0.1 listener cannot be reached.  Unix sockets are not
network-namespaced, so every node reaches a unix socket; this relays each
connection on it to the TCP listener, one thread per direction.
"""

from __future__ import annotations

import os
import socket
import threading

DEFAULT_UNIX_SOCKET = "/run/swarmmesh/openflow.sock"


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve_unix_relay(path: str, port: int) -> socket.socket:
    """Relay every connection on unix socket ``path`` to 127.0.0.1:``port``."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.exists(path):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(64)

    def accept_loop():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            try:
                up = socket.create_connection(("127.0.0.1", port))
            except OSError:
                conn.close()
                continue
            for a, b in ((conn, up), (up, conn)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()

    threading.Thread(target=accept_loop, daemon=True).start()
    return server


def close_unix_relay(server: socket.socket, path: str) -> None:
    """Stop accepting and remove the socket file (gone already is fine)."""
    server.close()
    try:
        os.unlink(path)
    except OSError:
        pass
