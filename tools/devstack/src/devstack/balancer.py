"""A small TCP load balancer for the local stack: each service's port spread over its API
processes, one connection at a time, round robin; a process that does not take the
connection (killed, restarting) is skipped for the next one.

Production puts a real load balancer in front of the APIs (docker-compose.yml: nginx); this
stands in for it when ``make run`` or a test runs several API processes per service.

CLI (one argument per service: its port = the ports of its API processes)::

    python -m devstack.balancer 8001=18001,18002 8002=18011,18012
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence

HOST = "127.0.0.1"
_CHUNK = 64 * 1024


class Pool:
    """One service's API processes, taken in turn."""

    def __init__(self, ports: Sequence[int]) -> None:
        self.ports = list(ports)
        self._turn = itertools.cycle(range(len(self.ports)))

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to the next process that takes one; OSError if none does."""
        first = next(self._turn)
        error: OSError | None = None
        for offset in range(len(self.ports)):
            port = self.ports[(first + offset) % len(self.ports)]
            try:
                return await asyncio.open_connection(HOST, port)
            except OSError as exc:
                error = exc
        assert error is not None
        raise error


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, OSError):
            if writer.can_write_eof():
                writer.write_eof()


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def handler(pool: Pool) -> Handler:
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            backend_r, backend_w = await pool.connect()
        except OSError:
            await _close(client_w)  # no process takes it: the caller sees the refusal
            return
        try:
            await asyncio.gather(_pipe(client_r, backend_w), _pipe(backend_r, client_w))
        finally:
            await _close(backend_w)
            await _close(client_w)

    return handle


def parse(routes: Sequence[str]) -> dict[int, Pool]:
    """``["8001=18001,18002", …]`` -> {8001: Pool([18001, 18002]), …}."""
    pools: dict[int, Pool] = {}
    for route in routes:
        front, _, backends = route.partition("=")
        ports = [int(p) for p in backends.split(",") if p]
        if not front.isdigit() or not ports:
            raise ValueError(f"expected <port>=<port>,<port>…, not {route!r}")
        pools[int(front)] = Pool(ports)
    return pools


async def serve(pools: dict[int, Pool]) -> None:
    servers = [
        await asyncio.start_server(handler(pool), HOST, port, reuse_address=True)
        for port, pool in pools.items()
    ]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for server in servers:
        server.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        pools = parse(args)
    except ValueError as exc:
        print(f"usage: python -m devstack.balancer <port>=<port>,<port>… ({exc})", file=sys.stderr)
        return 2
    asyncio.run(serve(pools))
    return 0


if __name__ == "__main__":
    sys.exit(main())
