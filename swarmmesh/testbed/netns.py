"""Checksum offload turned off from this process, in the network namespace of the host
that holds the interface: one ``ioctl`` each, not an ``ethtool`` process (a build of
1,000 tasks ran 2,200 of them, about 3 CPU-seconds).

The calling thread alone enters the namespace (``setns`` of a network namespace is per
thread) and comes back before it returns; nothing else of the process moves.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct

CLONE_NEWNET = 0x40000000
SIOCETHTOOL = 0x8946
ETHTOOL_STXCSUM = 0x17        # the features ``ethtool -K <intf> tx`` sets, in one call
IFREQ_SIZE = 40

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int, what: str) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns into {what}: {os.strerror(err)}")


def ethtool_request(name: str, cmd: int, value: int, data) -> bytes:
    """The ``struct ifreq`` of an ``SIOCETHTOOL`` call on interface ``name`` whose
    ``struct ethtool_value`` is the buffer ``data`` (``cmd``, ``value``)."""
    if not name or len(name.encode()) >= 16:
        raise ValueError(f"interface name: 1 to 15 bytes, got {name!r}")
    struct.pack_into("II", data, 0, cmd, value)
    return struct.pack("16sP", name.encode(), ctypes.addressof(data)).ljust(IFREQ_SIZE, b"\0")


def tx_off(pid: int, intfs: list[str]) -> None:
    """Transmit checksum offload off, as ``ethtool -K <intf> tx off`` does, on each of
    ``intfs`` in the network namespace of process ``pid``.  An interface that refuses
    is left as it is, as the shell command left it (``|| true``)."""
    if not intfs:
        return
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
        try:
            _setns(target, f"the network namespace of {pid}")
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    data = ctypes.create_string_buffer(8)
                    for name in intfs:
                        try:
                            fcntl.ioctl(s.fileno(), SIOCETHTOOL,
                                        ethtool_request(name, ETHTOOL_STXCSUM, 0, data))
                        except OSError:
                            pass
            finally:
                _setns(own, "this thread's own network namespace")
        finally:
            os.close(target)
    finally:
        os.close(own)
