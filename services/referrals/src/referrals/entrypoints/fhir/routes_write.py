"""Creating referrals (POST ServiceRequest, a transaction Bundle) and changing them (PUT
ServiceRequest: amend, or cancel by revoking): parse the FHIR, then the same handlers,
Idempotency-Key and If-Match rules as the JSON API."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from ...adapters.idempotency import StoredResponse
from ...domain.lifecycle import Action
from ...domain.model import Referral
from ...service_layer import handlers, versions
from ...service_layer.unit_of_work import UnitOfWork
from . import commands, identifiers, inbound, resources
from .deps import (
    CallerDep,
    IdempotencyKeyHeader,
    IfMatchHeader,
    IfNoneExistHeader,
    ParseFailed,
    if_match_version,
    parse,
    read_json,
    refuse_conditional_create,
)
from .outcomes import FhirProblem
from .routes_search import full_url
from .writes import idempotent, location

router = APIRouter()


def _created(referral: Referral) -> tuple[dict[str, Any], dict[str, Any]]:
    found = versions.ReferralVersion(referral, referral.created_at)
    return resources.service_request(found), resources.patient(found)


@router.post("/ServiceRequest", name="create ServiceRequest", status_code=201)
async def create_service_request(
    request: Request,
    caller: CallerDep,
    key: IdempotencyKeyHeader = None,
    if_none_exist: IfNoneExistHeader = None,
) -> JSONResponse:
    """A new referral: the ServiceRequest with its Patient contained (subject "#…"). With
    If-None-Exist ``identifier=system|value`` (the identifier it carries), only if none of
    the caller's referrals has that identifier: one that has is the answer (200), nothing
    stored; several are a 412."""
    wanted = identifiers.condition(if_none_exist, "ServiceRequest")
    body = await read_json(request)
    try:
        sr = parse(inbound.ServiceRequest, body, "ServiceRequest")
    except ParseFailed as failed:
        return failed.response()
    cmd = commands.submit(sr, None)
    identifiers.check_condition(wanted, cmd.identifier, "ServiceRequest.identifier")

    def execute(uow: UnitOfWork) -> tuple[versions.ReferralVersion, bool]:
        if wanted is not None:
            existing = versions.referrals_with_identifier(wanted.system, wanted.value, caller, uow)
            if len(existing) > 1:
                raise identifiers.several(len(existing), "your referrals")
            if existing:
                return existing[0], False
        referral = handlers.submit_referral(cmd, caller, uow)
        return versions.ReferralVersion(referral, referral.created_at), True

    def present(done: tuple[versions.ReferralVersion, bool]) -> StoredResponse:
        found, created = done
        service_request = resources.service_request(found)
        headers = {
            "ETag": resources.etag(found.referral.version),
            "Location": location(request, service_request),
        }
        return StoredResponse(201 if created else 200, service_request, headers)

    same = identifiers.conditioned(body, if_none_exist)
    return await run_in_threadpool(idempotent, request, caller, key, same, None, execute, present)


@router.post("/", name="transaction")
async def transaction(
    request: Request,
    caller: CallerDep,
    key: IdempotencyKeyHeader = None,
    if_none_exist: IfNoneExistHeader = None,
) -> JSONResponse:
    """A transaction Bundle of a Patient and a ServiceRequest for them: one referral, stored
    whole or not at all."""
    refuse_conditional_create(if_none_exist)
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
        made = dict(zip(("ServiceRequest", "Patient"), _created(referral), strict=True))
        entries = [
            {
                "fullUrl": full_url(request, f"{kind}/{referral.id}"),
                "resource": made[kind],
                "response": {
                    "status": "201 Created",
                    "location": location(request, made[kind]),
                    "etag": resources.etag(1),
                    "lastModified": made[kind]["meta"]["lastUpdated"],
                },
            }
            for kind in order
        ]
        bundle_out = {"resourceType": "Bundle", "type": "transaction-response", "entry": entries}
        return StoredResponse(200, bundle_out, {})

    return await run_in_threadpool(
        idempotent,
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
        refuse_conditional_create(
            e.request.ifNoneExist, f"Bundle.entry[{index}].request.ifNoneExist"
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


@router.put("/ServiceRequest/{resource_id}", name="update ServiceRequest")
async def update_service_request(
    resource_id: str,
    request: Request,
    caller: CallerDep,
    if_match: IfMatchHeader = None,
    key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """The referrer amends the referral (priority, cohort, reason, clinical summary) while it
    is not yet accepted, or cancels it: ``status`` ``revoked`` with the reason in the
    request-statusReason extension."""
    version = if_match_version(if_match, required=True)
    body = await read_json(request)
    try:
        sr = parse(inbound.ServiceRequest, body, "ServiceRequest")
    except ParseFailed as failed:
        return failed.response()
    if sr.id != resource_id:
        raise FhirProblem(
            400, "the ServiceRequest's id must be the id in the URL", "ServiceRequest.id"
        )
    current = versions.current_referral(resource_id, caller, request.app.state.container.uow())
    action, details = commands.update(current, sr)

    def execute(uow: UnitOfWork) -> tuple[Referral, tuple[str, ...]]:
        referral = handlers.transition(resource_id, action, caller, version or 0, uow, **details)
        return referral, versions.documents_of(uow, resource_id)

    def present(done: tuple[Referral, tuple[str, ...]]) -> StoredResponse:
        referral, documents = done
        step = referral.pending[-1]
        cancelled = action is Action.CANCEL
        found = versions.ReferralVersion(
            referral,
            step.at,
            step.note if cancelled else None,
            step.reason_code if cancelled else None,
            documents,
        )
        answer = resources.service_request(found)
        return StoredResponse(200, answer, {"ETag": resources.etag(referral.version)})

    return await run_in_threadpool(
        idempotent,
        request,
        caller,
        key,
        body,
        version,
        execute,
        present,
    )
