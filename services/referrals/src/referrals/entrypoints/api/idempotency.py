"""Running a POST at most once per Idempotency-Key: the first response is stored in the same
transaction as the change and replayed for retries; a reused key with another body is refused."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from rx_web.problems import Problem
from sqlalchemy.exc import IntegrityError

from ...adapters.tables import IdempotencyRow
from ...domain.caller import Caller
from ...domain.model import Referral
from ...service_layer.unit_of_work import AlreadyDone, IdempotentRequest, StoredResponse, UnitOfWork
from .deps import fingerprint
from .presenters import etag, to_public


def run_once(
    request: Request,
    caller: Caller,
    key: str,
    body: dict[str, Any],
    if_match: int | None,
    execute: Callable[[UnitOfWork], Any],
    status_code: int = 200,
    present: Callable[[Any], StoredResponse] | None = None,
) -> JSONResponse:
    """Run ``execute`` unless this key already ran: then answer as the first time did.
    ``present`` turns the result into the response; by default the referral as the caller
    sees it, with its ETag (and Location for 201)."""
    new_uow: Callable[[], UnitOfWork] = request.app.state.container.uow
    fp = fingerprint(request.method, request.url.path, if_match, body)

    def render_referral(referral: Referral) -> StoredResponse:
        headers = {"ETag": etag(referral)}
        if status_code == 201:
            headers["Location"] = str(request.url_for("read_referral", referral_id=referral.id))
        return StoredResponse(
            status_code, to_public(referral, caller).model_dump(mode="json"), headers
        )

    uow = new_uow()
    uow.correlation_id = request.headers.get("x-correlation-id")
    # A request without If-Match creates something: claiming the key on insert suffices.
    uow.idempotency = IdempotentRequest(
        caller.organisation, key, fp, present or render_referral, check_first=if_match is not None
    )
    try:
        execute(uow)
        if request.app.state.container.settings.fault_exit_after_commit:
            # The one fault injection point (RX_FAULT_EXIT_AFTER_COMMIT, development only):
            # committed, not answered — the caller must retry with the same key.
            os._exit(70)
    except AlreadyDone as done:
        return _replay(done.stored, fp)
    except IntegrityError:
        # The key was already claimed (earlier, or by a concurrent request): answer as it was.
        with new_uow() as fresh:
            stored = fresh.stored_response(caller.organisation, key)
        if stored is None:
            raise
        return _replay(stored, fp)
    response = uow.idempotency.response
    assert response is not None, "the unit of work stores the response on commit"
    return JSONResponse(response.body, status_code=response.status_code, headers=response.headers)


def _replay(stored: IdempotencyRow, fp: str) -> JSONResponse:
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
    )
