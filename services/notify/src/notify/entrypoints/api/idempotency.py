"""Running a POST at most once per Idempotency-Key: the first response is stored in the same
transaction as the change and replayed for retries; a reused key with another body is refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from rx_web.problems import Problem
from sqlalchemy.exc import IntegrityError

from ...adapters.tables import IdempotencyRow
from ...domain.caller import Caller
from ...service_layer.unit_of_work import AlreadyDone, IdempotentRequest, StoredResponse, UnitOfWork
from .deps import fingerprint


def run_once(
    request: Request,
    caller: Caller,
    key: str | None,
    body: Any,
    execute: Callable[[UnitOfWork], Any],
    present: Callable[[Any], StoredResponse],
    media_type: str | None = None,
) -> JSONResponse:
    """Run ``execute`` unless this key already ran: then answer as the first time did.
    Without a key (allowed on FHIR routes) it simply runs."""
    new_uow: Callable[[], UnitOfWork] = request.app.state.container.uow
    fp = fingerprint(request.method, request.url.path, body)
    uow = new_uow()
    uow.correlation_id = request.headers.get("x-correlation-id")
    if key is not None:
        uow.idempotency = IdempotentRequest(caller.organisation, key, fp, present)
    try:
        result = execute(uow)
    except AlreadyDone as done:
        return _replay(done.stored, fp, media_type)
    except IntegrityError:
        if key is None:
            raise
        with new_uow() as fresh:
            stored = fresh.session.get(IdempotencyRow, (caller.organisation, key))
        if stored is None:
            raise
        return _replay(stored, fp, media_type)
    response = uow.idempotency.response if uow.idempotency else present(result)
    assert response is not None, "the unit of work stores the response on commit"
    return JSONResponse(
        response.body,
        status_code=response.status_code,
        headers=response.headers,
        media_type=media_type,
    )


def _replay(stored: IdempotencyRow, fp: str, media_type: str | None) -> JSONResponse:
    if stored.fingerprint != fp:
        raise Problem(
            422,
            "Idempotency-Key reused",
            "this Idempotency-Key was already used for a different request; use a new key",
            errors=[
                {
                    "field": "Idempotency-Key",
                    "rule": "reused_with_different_request",
                    "message": "key reuse",
                }
            ],
        )
    return JSONResponse(
        stored.body,
        status_code=stored.status_code,
        headers={**stored.headers, "Idempotent-Replayed": "true"},
        media_type=media_type,
    )
