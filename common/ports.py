"""A free loopback TCP port for a child process or a test server.

Does I/O: binds (and closes) a socket. A port found free can be taken by another program before
its user binds it; ports handed out recently by this process are never handed out again, so
concurrent users in one process (the jobs of one scheduler) never race each other for one.
"""

from __future__ import annotations

import socket
from collections import deque

LOOPBACK = "127.0.0.1"

# Ports handed out recently by this process: two callers must not pick the same port between
# `free_port` and their child's bind.
_RECENT_PORTS: deque[int] = deque(maxlen=2048)


class NoFreePort(OSError):
    """No free loopback port was found."""

    def __init__(self) -> None:
        super().__init__("No free loopback port could be found.")


def free_port(taken: set[int] | None = None) -> int:
    """A loopback port nobody listens on now, neither in `taken` nor handed out recently by this
    process; it is added to `taken`. Raises `NoFreePort` after 100 tries."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((LOOPBACK, 0))
            port = int(sock.getsockname()[1])
        if (taken is None or port not in taken) and port not in _RECENT_PORTS:
            if taken is not None:
                taken.add(port)
            _RECENT_PORTS.append(port)
            return port
    raise NoFreePort()
