"""``POST Task/{id}/$redirect`` and ``POST ServiceRequest/{id}/$reroute``: the JSON API's
redirect and reroute through the same handler, If-Match and Idempotency-Key; and the
OperationDefinitions that declare them."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from ...adapters.idempotency import StoredResponse
from ...domain.model import Referral
from ...service_layer import handlers, versions
from ...service_layer.unit_of_work import UnitOfWork
from . import operations, resources
from .deps import (
    CallerDep,
    IdempotencyKeyHeader,
    IfMatchHeader,
    fhir_response,
    if_match_version,
    read_json,
)
from .outcomes import FhirProblem
from .routes_tasks import open_task, task_answer
from .writes import idempotent, require_key

router = APIRouter()


@router.get("/OperationDefinition/{definition_id}", name="read OperationDefinition")
def read_operation_definition(definition_id: str, caller: CallerDep) -> JSONResponse:
    op = operations.OPERATIONS.get(definition_id)
    if op is None:
        raise FhirProblem(404, f"no OperationDefinition {definition_id}")
    return fhir_response(operations.operation_definition(op))


@router.post("/Task/{task_id}/$redirect", name="redirect")
async def redirect(
    task_id: str,
    request: Request,
    caller: CallerDep,
    if_match: IfMatchHeader = None,
    key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """The owner of the current Task sends the referral back to routing, towards a provider
    type, an organisation or both; the answer is its Task, ended."""
    version = if_match_version(if_match, required=True) or 0
    body = await read_json(request)
    details = operations.target_and_reason(operations.REDIRECT, body)
    op = operations.REDIRECT

    def execute(uow: UnitOfWork) -> tuple[versions.AssignmentVersion, Referral]:
        before = open_task(task_id, caller, uow)
        referral = handlers.transition(
            before.referral.id, op.action, caller, version, uow, **details
        )
        return before, referral

    def present(done: tuple[versions.AssignmentVersion, Referral]) -> StoredResponse:
        return task_answer(*done)

    return await run_in_threadpool(
        idempotent, request, caller, require_key(key), body, version, execute, present
    )


@router.post("/ServiceRequest/{referral_id}/$reroute", name="reroute")
async def reroute(
    referral_id: str,
    request: Request,
    caller: CallerDep,
    if_match: IfMatchHeader = None,
    key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Ops send the referral back to routing, optionally towards a target; the answer is the
    ServiceRequest."""
    version = if_match_version(if_match, required=True) or 0
    body = await read_json(request)
    details = operations.target_and_reason(operations.REROUTE, body)
    op = operations.REROUTE

    def execute(uow: UnitOfWork) -> tuple[Referral, tuple[str, ...]]:
        referral = handlers.transition(referral_id, op.action, caller, version, uow, **details)
        return referral, versions.documents_of(uow, referral_id)

    def present(done: tuple[Referral, tuple[str, ...]]) -> StoredResponse:
        referral, documents = done
        found = versions.ReferralVersion(referral, referral.pending[-1].at, documents=documents)
        answer = resources.service_request(found)
        return StoredResponse(200, answer, {"ETag": resources.etag(referral.version)})

    return await run_in_threadpool(
        idempotent, request, caller, require_key(key), body, version, execute, present
    )
