"""Finding free local ports and checking who listens."""

from __future__ import annotations

import contextlib
import errno
import random
import socket
from pathlib import Path

from .jars import read_text_or_none

_MIN_CHOSEN_PORT = 20000  # below: well-known dev ports (8000, 9092, 5432, …)


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True if something listens on ``host:port`` (TIME_WAIT leftovers do not count).

    SO_REUSEADDR matches what the JVM sets, so a port freed by a killed broker counts as free.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def free_ports(count: int = 2, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports that are free right now, outside the ephemeral range if known.

    Ports from the kernel's ephemeral range can be taken by outgoing connections while a
    broker is down, even by a client reconnecting to that very port (TCP self-connect), and
    then ``start()`` on the same port would fail; ports below the range avoid that. Falls
    back to letting the OS pick (bind to port 0).
    """
    low, _high = _ephemeral_port_range()
    pool = range(_MIN_CHOSEN_PORT, low) if low - _MIN_CHOSEN_PORT >= 1000 else range(0)
    sockets: list[socket.socket] = []
    try:
        for port in random.sample(pool, min(len(pool), 200)):
            if len(sockets) == count:
                break
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                sock.close()
                continue
            sockets.append(sock)
        while len(sockets) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _ephemeral_port_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux default 32768-60999)."""
    text = read_text_or_none(Path("/proc/sys/net/ipv4/ip_local_port_range"))
    if text:
        with contextlib.suppress(ValueError):
            low, high = (int(part) for part in text.split())
            return low, high
    return 32768, 60999  # Linux default; macOS uses 49152-65535


def accepts_connections(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
