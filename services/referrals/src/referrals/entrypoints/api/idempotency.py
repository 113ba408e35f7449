"""Running a POST at most once per Idempotency-Key: the first response is stored in the same
transaction as the change and replayed for retries; a reused key with another body is refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request
from rx_web.problems import Problem
from rx_web.responses import JSONResponse
from sqlalchemy.exc import IntegrityError

from ...adapters.idempotency import IdempotentResponse, StoredResponse
from ...domain.caller import Caller
from ...service_layer.unit_of_work import UnitOfWork
from .deps import fingerprint

T = TypeVar("T")


def run_once(
    request: Request,
    caller: Caller,
    key: str,
    body: dict[str, Any],
    if_match: int | None,
    execute: Callable[[UnitOfWork], T],
    present: Callable[[T], StoredResponse],
) -> JSONResponse:
    """Run the handler call ``execute`` unless this key already ran: then answer as the first
    time did. ``present`` renders the handler's result; that response is stored with the
    change, in one transaction (see ``service_layer.unit_of_work``)."""
    new_uow: Callable[[], UnitOfWork] = request.app.state.container.uow
    fp = fingerprint(request.method, url_path(request), if_match, body)
    uow = new_uow()
    uow.correlation_id = request.headers.get("x-correlation-id")
    try:
        with uow:
            # A change of something existing (If-Match) looks the key up first, in the same
            # transaction, so a retry is answered rather than refused as stale. A create needs
            # no look-up: claiming the key on insert suffices.
            if if_match is not None:
                done = uow.idempotency_keys.get(caller.organisation, key)
                if done is not None:
                    return _replay(done, fp)
            response = present(execute(uow))
            uow.commit(remember=IdempotentResponse(caller.organisation, key, fp, response))
    except IntegrityError:
        # The key was already claimed (earlier, or by a concurrent request): answer as it was.
        with new_uow() as fresh:
            done = fresh.idempotency_keys.get(caller.organisation, key)
        if done is None:
            raise
        return _replay(done, fp)
    return JSONResponse(response.body, status_code=response.status_code, headers=response.headers)


def url_path(request: Request) -> str:
    """``request.url.path`` (as Starlette escapes it) without building the whole URL."""
    path: str = request.scope["path"]
    return path.replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")


def _replay(done: IdempotentResponse, fp: str) -> JSONResponse:
    if done.fingerprint != fp:
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
    stored = done.response
    return JSONResponse(
        stored.body,
        status_code=stored.status_code,
        headers={**stored.headers, "Idempotent-Replayed": "true"},
    )
