"""A userspace WAN link between two interfaces: delay, jitter and loss on every frame.

Where the kernel has ``sch_netem`` a link's delay, jitter and loss come from netem
(Mininet's ``TCLink``).  This machine's kernel has none (``swarmmesh doctor``:
``sch_netem absent``; ``tbf`` and ``htb`` exist, so bandwidth stays in the kernel).
This agent is the substitute: it runs in a host with two legs, reads every frame
on one (an ``AF_PACKET`` socket, its own sends ignored) and writes it out on the
other after ``delay`` (+ a uniform jitter in ``[-jitter, +jitter]``), or drops it
with probability ``loss``.  Frames keep their order in each direction (a frame
never leaves before the one read before it: netem with ``rate`` behaves so; plain
netem jitter reorders).  Timing is a userspace timer's: the delay is met to a
fraction of a millisecond on an idle host, later under CPU contention (the
experiment measures what the link actually added).

    python -m swarmmesh.agents.wanlink IF_A IF_B --delay-ms 10 [--jitter-ms 1] [--loss 0.01]
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import random
import selectors
import socket
import sys
import time

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23
MAX_FRAME = 65535


class Schedule:
    """When each frame of one direction leaves (or None: lost).  Pure: the clock is given."""

    def __init__(self, delay: float, jitter: float = 0.0, loss: float = 0.0,
                 rng: random.Random | None = None) -> None:
        if delay < 0 or jitter < 0 or not 0 <= loss <= 1:
            raise ValueError("delay >= 0, jitter >= 0, 0 <= loss <= 1")
        self.delay, self.jitter, self.loss = delay, jitter, loss
        self.rng = rng or random.Random()
        self.last = 0.0

    def due(self, now: float) -> float | None:
        if self.loss and self.rng.random() < self.loss:
            return None
        d = self.delay + (self.rng.uniform(-self.jitter, self.jitter) if self.jitter else 0.0)
        self.last = max(now + max(d, 0.0), self.last)     # FIFO: never before the previous
        return self.last


def _socket(ifname: str) -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((ifname, 0))
    s.setblocking(False)
    return s


def run(a: str, b: str, delay: float, jitter: float, loss: float, seed: int | None) -> None:
    rng = random.Random(seed)
    sa, sb = _socket(a), _socket(b)
    out = {sa: sb, sb: sa}
    sched = {sa: Schedule(delay, jitter, loss, rng), sb: Schedule(delay, jitter, loss, rng)}
    sel = selectors.DefaultSelector()
    for s in (sa, sb):
        sel.register(s, selectors.EVENT_READ)
    queue: list = []
    seq = itertools.count()
    print("ready", flush=True)
    while True:
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, _, dst, frame = heapq.heappop(queue)
            try:
                dst.send(frame)
            except OSError:
                pass                           # too big, or the link is down: lost
        timeout = max(0.0, queue[0][0] - time.monotonic()) if queue else None
        for key, _ in sel.select(timeout):
            src = key.fileobj
            while True:
                try:
                    frame = src.recv(MAX_FRAME)
                except BlockingIOError:
                    break
                due = sched[src].due(time.monotonic())
                if due is not None:
                    heapq.heappush(queue, (due, next(seq), out[src], frame))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="userspace WAN link: delay, jitter, loss")
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--delay-ms", type=float, default=0.0, help="one-way delay, each direction")
    ap.add_argument("--jitter-ms", type=float, default=0.0, help="uniform +- around the delay")
    ap.add_argument("--loss", type=float, default=0.0, help="drop probability per frame")
    ap.add_argument("--seed", type=int)
    args = ap.parse_args(argv)
    try:
        run(args.a, args.b, args.delay_ms / 1e3, args.jitter_ms / 1e3, args.loss, args.seed)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
