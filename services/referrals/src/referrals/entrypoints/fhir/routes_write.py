"""Creating referrals (POST ServiceRequest, a transaction Bundle) and acting on them (PATCH
Task): parse the FHIR, then the same handlers, Idempotency-Key and If-Match rules as the JSON
API. Every write needs an Idempotency-Key; every change of an existing resource If-Match."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jsonpatch
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from ...domain import assignments
from ...domain.caller import Caller
from ...domain.errors import IllegalTransition
from ...domain.model import Referral
from ...service_layer import handlers, versions
from ...service_layer.unit_of_work import StoredResponse, UnitOfWork
from ..api.idempotency import run_once
from . import commands, inbound, resources
from .deps import (
    FHIR_JSON,
    CallerDep,
    IdempotencyKeyHeader,
    IfMatchHeader,
    ParseFailed,
    if_match_version,
    parse,
    read_json,
)
from .outcomes import FhirProblem
from .routes_search import full_url

router = APIRouter()

PATCHABLE = ("/status", "/statusReason", "/output")
"""What a JSON Patch may touch on a Task: the owner moves it on; the rest follows."""


def _key(key: str | None) -> str:
    if key is None:
        raise FhirProblem(
            400,
            "every write needs an Idempotency-Key header, unique per logical request",
            "Idempotency-Key",
        )
    return key


def _idempotent(
    request: Request,
    caller: Caller,
    key: str | None,
    body: Any,
    if_match: int | None,
    execute: Callable[[UnitOfWork], Any],
    present: Callable[[Any], StoredResponse],
) -> JSONResponse:
    """Run once per Idempotency-Key, as the JSON API does; answered as FHIR JSON."""
    fingerprint_body = {"fhir": body}
    response = run_once(
        request, caller, _key(key), fingerprint_body, if_match, execute, present=present
    )
    response.headers["content-type"] = FHIR_JSON
    return response


def _created(request: Request, referral: Referral) -> tuple[dict[str, Any], dict[str, Any]]:
    found = versions.ReferralVersion(referral, referral.created_at)
    return resources.service_request(found), resources.patient(found)


def _location(request: Request, resource: dict[str, Any]) -> str:
    return full_url(
        request,
        f"{resource['resourceType']}/{resource['id']}/_history/{resource['meta']['versionId']}",
    )


@router.post("/ServiceRequest", name="create ServiceRequest", status_code=201)
async def create_service_request(
    request: Request, caller: CallerDep, key: IdempotencyKeyHeader = None
) -> JSONResponse:
    """A new referral: the ServiceRequest with its Patient contained (subject "#…")."""
    body = await read_json(request)
    try:
        sr = parse(inbound.ServiceRequest, body, "ServiceRequest")
    except ParseFailed as failed:
        return failed.response()
    cmd = commands.submit(sr, None)

    def present(referral: Referral) -> StoredResponse:
        service_request, _ = _created(request, referral)
        headers = {"ETag": resources.etag(1), "Location": _location(request, service_request)}
        return StoredResponse(201, service_request, headers)

    return await run_in_threadpool(
        _idempotent,
        request,
        caller,
        key,
        body,
        None,
        lambda uow: handlers.submit_referral(cmd, caller, uow),
        present,
    )


@router.post("/", name="transaction")
async def transaction(
    request: Request, caller: CallerDep, key: IdempotencyKeyHeader = None
) -> JSONResponse:
    """A transaction Bundle of a Patient and a ServiceRequest for them: one referral, stored
    whole or not at all."""
    body = await read_json(request)
    if (
        isinstance(body, dict)
        and body.get("resourceType") == "Bundle"
        and body.get("type")
        not in (
            "transaction",
            None,
        )
    ):
        raise FhirProblem(
            400,
            "this endpoint takes a transaction Bundle (messages: $process-message)",
            "Bundle.type",
        )
    try:
        bundle = parse(inbound.TransactionBundle, body, "Bundle")
    except ParseFailed as failed:
        return failed.response()
    sr, patient = _entries(bundle)
    cmd = commands.submit(sr, patient)
    order = [e.resource.resourceType for e in bundle.entry]

    def present(referral: Referral) -> StoredResponse:
        made = dict(zip(("ServiceRequest", "Patient"), _created(request, referral), strict=True))
        entries = [
            {
                "fullUrl": full_url(request, f"{kind}/{referral.id}"),
                "resource": made[kind],
                "response": {
                    "status": "201 Created",
                    "location": _location(request, made[kind]),
                    "etag": resources.etag(1),
                    "lastModified": made[kind]["meta"]["lastUpdated"],
                },
            }
            for kind in order
        ]
        bundle_out = {"resourceType": "Bundle", "type": "transaction-response", "entry": entries}
        return StoredResponse(200, bundle_out, {})

    return await run_in_threadpool(
        _idempotent,
        request,
        caller,
        key,
        body,
        None,
        lambda uow: handlers.submit_referral(cmd, caller, uow),
        present,
    )


def _entries(bundle: inbound.TransactionBundle) -> tuple[inbound.ServiceRequest, inbound.Patient]:
    by_kind: dict[str, tuple[int, inbound.Entry]] = {}
    for index, e in enumerate(bundle.entry):
        if e.resource.resourceType in by_kind:
            raise FhirProblem(
                422,
                "the transaction holds one Patient and one ServiceRequest",
                f"Bundle.entry[{index}]",
            )
        if e.request.url != e.resource.resourceType:
            raise FhirProblem(
                400, "request.url must be the resource's type", f"Bundle.entry[{index}].request.url"
            )
        by_kind[e.resource.resourceType] = (index, e)
    (sr_index, sr_entry), (_, patient_entry) = by_kind["ServiceRequest"], by_kind["Patient"]
    sr, patient = sr_entry.resource, patient_entry.resource
    assert isinstance(sr, inbound.ServiceRequest) and isinstance(patient, inbound.Patient)
    if not patient_entry.fullUrl or sr.subject.reference != patient_entry.fullUrl:
        raise FhirProblem(
            422,
            "ServiceRequest.subject.reference must be the Patient entry's fullUrl",
            f"Bundle.entry[{sr_index}].resource.subject",
        )
    return sr, patient


@router.patch("/Task/{resource_id}", name="patch Task")
async def patch_task(
    resource_id: str,
    request: Request,
    caller: CallerDep,
    if_match: IfMatchHeader = None,
    key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """The Task's owner accepts, rejects, starts or completes it with a JSON Patch (RFC 6902)
    of ``status`` and, where the step needs them, ``statusReason`` or ``output``."""
    version = if_match_version(if_match, required=True)
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    if content_type != "application/json-patch+json":
        raise FhirProblem(
            415, "PATCH takes a JSON Patch (application/json-patch+json)", "Content-Type"
        )
    operations = await read_json(request)
    return await run_in_threadpool(
        _patch, resource_id, request, caller, version, _key(key), operations
    )


def _patch(
    task_id: str, request: Request, caller: Caller, version: int | None, key: str, operations: Any
) -> JSONResponse:
    before = versions.current_assignment(task_id, caller, request.app.state.container.uow())
    if not before.state.open:
        raise IllegalTransition(
            f"Task {task_id} has ended ({before.state.status.value}); act on the current Task",
            [],
        )
    patched = _apply(resources.task(before), operations)
    try:
        task = parse(inbound.Task, patched, "Task")
    except ParseFailed as failed:
        return failed.response()
    action, details = commands.task_action(before.state.status.value, task)

    def present(referral: Referral) -> StoredResponse:
        return _task_answer(before, referral)

    return _idempotent(
        request,
        caller,
        key,
        operations,
        version,
        lambda uow: handlers.transition(
            before.referral.id, action, caller, version or 0, uow, **details
        ),
        present,
    )


def _apply(task: dict[str, Any], operations: Any) -> dict[str, Any]:
    if not isinstance(operations, list):
        raise FhirProblem(400, "a JSON Patch is a list of operations")
    for index, op in enumerate(operations):
        path = op.get("path", "") if isinstance(op, dict) else ""
        if not path.startswith(PATCHABLE):
            raise FhirProblem(
                422,
                f"operation {index}: only {', '.join(PATCHABLE)} of a Task may be patched",
                f"Task{path.replace('/', '.')}" if path else None,
            )
    try:
        result: dict[str, Any] = jsonpatch.apply_patch(task, operations)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise FhirProblem(422, f"the JSON Patch does not apply: {exc}") from exc
    return result


def _task_answer(before: versions.AssignmentVersion, referral: Referral) -> StoredResponse:
    """The Task after the action, built from the referral's new steps (called while the unit
    of work commits, before the assignment rows are written)."""
    state: assignments.AssignmentState | None = before.state
    updated_at = before.updated_at
    for step in referral.pending:
        state = assignments.after(step, state)
        updated_at = step.at
    assert state is not None
    after = versions.AssignmentVersion(
        id=before.id,
        organisation=before.organisation,
        provider_type=before.provider_type,
        opened_at=before.opened_at,
        state=state,
        version=referral.version,
        updated_at=updated_at,
        referral=referral,
    )
    headers = {"ETag": resources.etag(referral.version)}
    return StoredResponse(200, resources.task(after), headers)
