"""Request dependencies: who is calling, the unit of work, If-Match and Idempotency-Key; and
where a route's transaction runs (:func:`in_transaction`).

All ``async def`` although none awaits: FastAPI would run a plain ``def`` dependency in its
thread pool, and that hand-over costs more than these functions do."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from rx_web.identity import get_identity, reads_identity
from rx_web.openapi import documented_as
from rx_web.submission import Submission, documented_submission, read_submission

from ...domain.caller import Caller
from ...service_layer.unit_of_work import UnitOfWork


@reads_identity
async def get_caller(request: Request) -> Caller:
    """The authenticated caller (see ``rx_web.identity``) as the domain sees it."""
    return Caller.of(await get_identity(request))


T = TypeVar("T")


class InFlight:
    """How many HTTP requests the app is answering now (kept by the service's outermost layer
    of its own, ``referrals.entrypoints.api.app.ServiceLayer``)."""

    def __init__(self) -> None:
        self.count = 0


async def in_transaction(request: Request, work: Callable[[], T]) -> T:
    """Run ``work`` (a handler call with its unit of work: one short transaction) for an
    ``async def`` route, and return its result.

    On SQLite the process runs one transaction at a time (``rx_messaging.database``). When
    this is the only request being answered, the work runs here, on the event loop: the
    hand-over to a worker thread and back would cost more CPU than a short transaction, and
    there is nothing to overlap with. With other requests in flight, and always on
    PostgreSQL (transactions side by side, waiting on the network), it goes to the thread
    pool as in a plain ``def`` route, so the others' HTTP work goes on meanwhile."""
    in_flight: InFlight | None = getattr(request.app.state, "in_flight", None)
    if (
        in_flight is not None
        and in_flight.count <= 1
        and request.app.state.container.engine.dialect.name == "sqlite"
    ):
        return work()
    return await run_in_threadpool(work)


def unit_of_work(request: Request) -> UnitOfWork:
    """A unit of work for this request (its transaction opens when the handler enters it),
    made by the route itself: a dependency of its own would cost a level of solving."""
    uow: UnitOfWork = request.app.state.container.uow()
    uow.correlation_id = request.headers.get("x-correlation-id")
    return uow


async def get_uow(request: Request) -> UnitOfWork:
    """:func:`unit_of_work` as a dependency (the FHIR routes')."""
    return unit_of_work(request)


@documented_as(documented_submission)
@reads_identity
async def get_submission(request: Request) -> Submission[Caller]:
    """The caller (401 first, whatever the headers) and the Idempotency-Key of a create, read
    in one dependency level."""
    return await read_submission(request, Caller.of)


def fingerprint(method: str, path: str, if_match: int | None, body: dict[str, Any]) -> str:
    """What makes two requests 'the same' for idempotency: route, version and body."""
    canonical = json.dumps([method, path, if_match, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


CallerDep = Annotated[Caller, Depends(get_caller)]
Uow = Annotated[UnitOfWork, Depends(get_uow)]
SubmissionDep = Annotated[Submission[Caller], Depends(get_submission)]
