"""One connection for a trace: a TCP request (HTTP GET /) or one UDP datagram to a task
server; prints one JSON line: the address it used, its own source port, and the task's
answer, or how it failed (refused, timeout).  Standard library only.

    python -m swarmmesh.agents.probe HOST PORT [--udp] [--timeout S]
"""

from __future__ import annotations

import argparse
import json
import socket
import sys


def _tcp(addr: str, port: int, timeout: float) -> dict:
    s = socket.create_connection((addr, port), timeout=timeout)
    with s:
        out = {"sport": s.getsockname()[1]}
        s.sendall(f"GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    body = data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""
    return {**out, "answer": json.loads(body or b"null")}


def _udp(addr: str, port: int, timeout: float) -> dict:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.connect((addr, port))
        out = {"sport": s.getsockname()[1]}
        s.send(b"trace")
        try:
            return {**out, "answer": json.loads(s.recv(4096))}
        except ConnectionRefusedError:
            return {**out, "refused": True}


def probe(host: str, port: int, udp: bool = False, timeout: float = 2.0) -> dict:
    try:
        addr = socket.gethostbyname(host)
    except OSError as e:
        return {"unresolved": True, "error": str(e)}
    out = {"address": addr}
    try:
        return {**out, **(_udp if udp else _tcp)(addr, port, timeout)}
    except ConnectionRefusedError:
        return {**out, "refused": True}
    except (socket.timeout, TimeoutError):
        return {**out, "timeout": True}
    except OSError as e:
        return {**out, "error": str(e)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--udp", action="store_true")
    ap.add_argument("--timeout", type=float, default=2.0)
    a = ap.parse_args(argv)
    print(json.dumps(probe(a.host, a.port, a.udp, a.timeout)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
