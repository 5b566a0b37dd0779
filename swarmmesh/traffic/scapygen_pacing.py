"""Pacing: when each packet of an open-loop run is due, and sending on that schedule.

The packet ``k`` is due at ``t0 + k / rate`` on the monotonic clock; the
loop sends whatever is due in batches of at most ``batch`` frames, sleeping
until the next packet is due otherwise, so oversleeping never shifts the
schedule (no drift).
"""

from __future__ import annotations

import time
from typing import Callable, Iterable, Sequence


def due_count(elapsed: float, rate: float, total: int) -> int:
    """How many packets are due ``elapsed`` seconds after the start: packet
    ``k`` (from 0) is due at ``k / rate``."""
    if elapsed < 0:
        return 0
    return min(total, int(elapsed * rate) + 1)


def send_paced(send: Callable[[bytes], object], frames: Sequence[bytes], rate: float,
               batch: int = 16, clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], object] = time.sleep,
               stamp: Callable[[], int] = time.time_ns) -> tuple[list[int], int]:
    """Send every frame; ``rate <= 0`` means as fast as possible.

    Returns the send timestamp of every frame (``stamp()`` just before its
    ``send``; 0 where the send failed) and the number of failed sends.  The
    schedule is absolute (``t0 + k / rate``), so a late wake-up is caught up
    in batches of at most ``batch`` frames and never delays what follows.
    """
    n = len(frames)
    stamps = [0] * n
    failed = 0
    i = 0
    t0 = clock()
    while i < n:
        if rate > 0:
            due = due_count(clock() - t0, rate, n)
            if due <= i:
                sleep(max(0.0, t0 + i / rate - clock()))
                continue
            end = min(due, i + batch)
        else:
            end = n
        for j in range(i, end):
            stamps[j] = stamp()
            try:
                send(frames[j])
            except OSError:
                stamps[j] = 0
                failed += 1
        i = end
    return stamps, failed


def offered_rate(stamps: Iterable[int]) -> float | None:
    """Packets per second actually sent: ``(sent - 1) / (last - first)``."""
    sent = sorted(s for s in stamps if s)
    if len(sent) < 2 or sent[-1] == sent[0]:
        return None
    return (len(sent) - 1) / ((sent[-1] - sent[0]) / 1e9)
