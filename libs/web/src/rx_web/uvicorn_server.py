"""uvicorn's server as the API processes run it."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from types import FrameType
from typing import Any

import uvicorn

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
