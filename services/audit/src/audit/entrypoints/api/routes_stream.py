"""``GET /audit/stream``: new entries as server-sent events, live.

Each event's ``id`` is the entry's chain sequence, so a client that reconnects with
``Last-Event-ID`` gets exactly the entries after the last one it saw: none missed, none
twice. The consumer is another process, so the stream polls the database (one indexed query
per interval) rather than waiting on an in-process signal. Idle streams send a comment now and
then, so proxies and load balancers keep the connection open.

The frames are written here rather than by FastAPI's own SSE support (``fastapi.sse``), which
costs several times the CPU per entry (see bench/RESULTS.md, "Audit live stream")."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import StreamingResponse
from pydantic import TypeAdapter
from rx_web.problems import invalid_field
from starlette.concurrency import run_in_threadpool

from ...adapters.queries import EntryFilter
from ...service_layer import handlers
from ...service_layer.unit_of_work import UnitOfWork
from .deps import CallerDep, ContainerDep, Filter, Uow
from .schemas import EntryPublic

router = APIRouter(tags=["audit"])

PAGE = 200
RETRY_MS = 2000
_ENTRY = TypeAdapter(EntryPublic)


async def get_start(
    uow: Uow,
    last_event_id: Annotated[
        str | None,
        Header(description="Resume after this entry (sent by reconnecting SSE clients)."),
    ] = None,
    after: Annotated[
        int | None,
        Query(
            ge=0,
            description="Start after this sequence (0: from the beginning); default: "
            "only entries recorded from now on. Last-Event-ID takes precedence.",
        ),
    ] = None,
) -> int:
    """The sequence the stream starts after; checked before the stream opens, so a bad
    Last-Event-ID is a 422 rather than a broken stream."""
    if last_event_id is not None and last_event_id.strip():
        if not last_event_id.strip().isdigit():
            raise invalid_field(
                "Last-Event-ID", "sequence", "must be the sequence of an entry (digits)"
            )
        return int(last_event_id)
    if after is not None:
        return after
    return await run_in_threadpool(handlers.head_sequence, uow)


@router.get(
    "/audit/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "An event stream."}},
)
async def stream(
    _caller: CallerDep,
    uow: Uow,
    container: ContainerDep,
    where: Filter,
    start: Annotated[int, Depends(get_start)],
) -> StreamingResponse:
    """New entries as they are recorded, filtered like ``/audit/entries``. Each SSE event is
    ``event: entry``, ``id: <sequence>``, ``data: <the entry as JSON>``."""
    settings = container.settings
    events = entry_events(uow, where, start, settings.stream_poll_s, settings.stream_heartbeat_s)
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        # No caching, and no buffering by nginx-like proxies, or the stream is not live.
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def entry_events(
    uow: UnitOfWork, where: EntryFilter, after: int, poll_s: float, heartbeat_s: float
) -> AsyncIterator[str]:
    """SSE text: every matching entry after ``after``, then new ones as they arrive, until the
    client goes away (Starlette cancels this generator on disconnect)."""
    yield f"retry: {RETRY_MS}\n: stream of audit entries after {after}\n\n"
    quiet_since = time.monotonic()
    while True:
        entries = await run_in_threadpool(handlers.find_entries, where, after, PAGE, uow)
        for entry in entries:
            data = _ENTRY.dump_json(EntryPublic.model_validate(entry)).decode()
            yield f"id: {entry['sequence']}\nevent: entry\ndata: {data}\n\n"
            after = entry["sequence"]
        if len(entries) == PAGE:
            continue  # catching up: no pause
        now = time.monotonic()
        if entries:
            quiet_since = now
        elif now - quiet_since >= heartbeat_s:
            yield f": keep-alive {json.dumps(after)}\n\n"
            quiet_since = now
        await asyncio.sleep(poll_s)
