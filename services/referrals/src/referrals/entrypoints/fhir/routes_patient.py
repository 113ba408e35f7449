"""Recording a traced NHS number over FHIR: PUT the Patient as read with the NHS number
identifier (and UK Core's verification extension) added or changed. It is the JSON API's
record-nhs-number, through the same handler: the referrer or the assigned organisation, If-Match
and an Idempotency-Key, an event of its own."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from ...adapters.idempotency import StoredResponse
from ...domain.caller import Caller
from ...domain.lifecycle import Action
from ...domain.model import Referral
from ...service_layer import handlers, versions
from . import identity, inbound, resources
from .deps import (
    CallerDep,
    IdempotencyKeyHeader,
    IfMatchHeader,
    ParseFailed,
    if_match_version,
    parse,
    read_json,
)
from .outcomes import FhirProblem
from .writes import idempotent

router = APIRouter()


@router.put("/Patient/{resource_id}", name="update Patient")
async def update_patient(
    resource_id: str,
    request: Request,
    caller: CallerDep,
    if_match: IfMatchHeader = None,
    key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    version = if_match_version(if_match, required=True)
    body = await read_json(request)
    try:
        sent = parse(inbound.Patient, body, "Patient")
    except ParseFailed as failed:
        return failed.response()
    if sent.id != resource_id:
        raise FhirProblem(400, "the Patient's id must be the id in the URL", "Patient.id")
    return await run_in_threadpool(
        _record, resource_id, request, caller, version or 0, key, body, sent
    )


def _record(
    referral_id: str,
    request: Request,
    caller: Caller,
    version: int,
    key: str | None,
    body: Any,
    sent: inbound.Patient,
) -> JSONResponse:
    current = versions.current_referral(referral_id, caller, request.app.state.container.uow())
    details = identity.nhs_number_recorded(current.patient, sent)

    def present(referral: Referral) -> StoredResponse:
        found = versions.ReferralVersion(referral, referral.pending[-1].at)
        return StoredResponse(
            200, resources.patient(found), {"ETag": resources.etag(referral.version)}
        )

    return idempotent(
        request,
        caller,
        key,
        body,
        version,
        lambda uow: handlers.transition(
            referral_id, Action.RECORD_NHS_NUMBER, caller, version, uow, **details
        ),
        present,
    )
