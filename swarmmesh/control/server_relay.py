"""The controller's connections across servers: two relays, one process each.

* on the first server, ``--tcp ADDR:PORT --to-unix SOCK``: a TCP listener on the address
  every other server reaches, relayed to the controller's own unix socket;
* on every other server, ``--unix SOCK --to-tcp ADDR:PORT``: the unix socket that server's
  nodes' vswitchd dial (as on one machine), relayed to the first.

So a switch on server 2 reaches the controller as vswitchd -> unix (server 2) -> TCP over
the servers' network -> unix (server 1) -> the controller's relay -> 127.0.0.1.  Prints
``ready`` once listening; runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading

from swarmmesh.control.relay import _pump


def _addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def serve(listener: socket.socket, connect) -> None:
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        try:
            up = connect()
        except OSError:
            conn.close()
            continue
        for a, b in ((conn, up), (up, conn)):
            threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def listener(args) -> socket.socket:
    if args.tcp:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(_addr(args.tcp))
    else:
        os.makedirs(os.path.dirname(args.unix), exist_ok=True)
        if os.path.exists(args.unix):
            os.unlink(args.unix)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(args.unix)
    s.listen(256)
    return s


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m swarmmesh.control.server_relay")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--tcp", help="listen on ADDR:PORT")
    src.add_argument("--unix", help="listen on this unix socket")
    dst = ap.add_mutually_exclusive_group(required=True)
    dst.add_argument("--to-unix")
    dst.add_argument("--to-tcp")
    args = ap.parse_args(argv)
    s = listener(args)
    if args.to_unix:
        def connect():
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect(args.to_unix)
            return c
    else:
        def connect():
            c = socket.create_connection(_addr(args.to_tcp), timeout=5)
            c.settimeout(None)
            return c
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("ready", flush=True)
    try:
        serve(s, connect)
    finally:
        s.close()
        if args.unix and os.path.exists(args.unix):
            os.unlink(args.unix)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
