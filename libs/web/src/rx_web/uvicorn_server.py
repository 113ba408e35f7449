"""uvicorn's server as the API processes run it."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from types import FrameType
from typing import Any

import uvicorn

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
except ImportError:  # pragma: no cover - httptools is a dependency; h11 serves without it
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

TICK_SECONDS = 1.0
"""How often an API process's server loop wakes when nothing happens (uvicorn's: 0.1 s)."""


class ApiServer(uvicorn.Server):
    """Woken by a stop signal instead of looking for one ten times a second: an idle API
    process wakes once a second (to refresh the Date header), a tenth of the CPU uvicorn's own
    loop costs it when nothing happens. Freezes the startup heap once serving
    (:func:`freeze_startup_heap`) unless ``freeze_heap`` is False."""

    freeze_heap = True
    _stop: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: list[Any] | None = None) -> None:
        await super().startup(sockets)
        if self.freeze_heap:
            freeze_startup_heap()

    async def main_loop(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        tick = 0
        should_exit = await self.on_tick(tick)
        while not should_exit:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), TICK_SECONDS)
            tick = (tick + 10) % 864000  # uvicorn refreshes the Date header every 10th tick
            should_exit = await self.on_tick(tick)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)


def freeze_startup_heap() -> None:
    """Move everything built at startup out of the garbage collector's sight.

    A started service holds a great many long-lived objects (modules, FastAPI's and
    pydantic's schemas, SQLAlchemy's tables and compiled caches). Every full collection walks
    all of them with the GIL held, and requests queue behind the pause (bench/RESULTS.md).
    ``gc.freeze()`` puts them in the permanent generation, so a full collection walks only
    what was made since.
    Called once, in the serving process, after its startup; never in tests."""
    gc.collect()
    gc.freeze()


class _HeadWithBody:
    """A response's transport as one request's cycle sees it: the status line and headers of
    an answer with a Content-Length are held back and go out with its first body write, one
    ``write`` (one system call, one TCP segment) instead of two. Anything else (chunked, HEAD,
    no body) is written as uvicorn writes it; closing first writes what is held, so an answer
    cut short (the app failing after its start) ends as it did before."""

    __slots__ = ("_cycle", "_head_seen", "_held", "_transport")

    def __init__(self, transport: Any, cycle: Any) -> None:
        self._transport, self._cycle = transport, cycle
        self._held: bytes | None = None
        self._head_seen = False

    def write(self, data: bytes) -> None:
        if self._held is not None:
            data, self._held = self._held + data, None
        elif not self._head_seen and self._cycle.response_started:
            # uvicorn's first write once the response has started is its status and headers.
            self._head_seen = True
            cycle = self._cycle
            if cycle.chunked_encoding is False and cycle.scope["method"] != "HEAD":
                self._held = data
                return
        self._transport.write(data)

    def close(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            self._transport.write(held)
        self._transport.close()

    def is_closing(self) -> bool:
        return bool(self._transport.is_closing())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


if HttpToolsProtocol is not None:

    class OneWriteProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol, each answer with a Content-Length written in one
        ``write`` (:class:`_HeadWithBody`): uvicorn writes its headers and body separately,
        and over loopback each write's TCP work is charged to the server (bench/RESULTS.md)."""

        def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
            cycle.transport = _HeadWithBody(cycle.transport, cycle)  # type: ignore[assignment]
            super()._start_asgi_task(cycle, app)


def http_protocol() -> Any:
    """The HTTP protocol API processes serve with: :class:`OneWriteProtocol` where httptools
    is installed, else uvicorn's own choice."""
    return OneWriteProtocol if HttpToolsProtocol is not None else "auto"
