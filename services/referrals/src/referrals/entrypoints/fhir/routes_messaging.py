"""BaRS-style messaging: ``POST /$process-message`` takes a message Bundle whose MessageHeader
has the event ``servicerequest-request`` and the reason ``new``, ``update`` or ``delete``
(create, amend, cancel), and answers with a response message Bundle. The same handlers,
Idempotency-Key and version rules as everywhere: an update or delete names the version it was
based on in the ServiceRequest's ``meta.versionId``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from rx_contracts import new_id

from ...adapters.idempotency import StoredResponse
from ...domain.caller import Caller
from ...domain.lifecycle import Action
from ...domain.model import Referral
from ...service_layer import handlers, versions
from ...service_layer.unit_of_work import UnitOfWork
from . import codes, commands, inbound, resources
from .deps import (
    CallerDep,
    IdempotencyKeyHeader,
    IfNoneExistHeader,
    ParseFailed,
    parse,
    read_json,
    refuse_conditional_create,
)
from .outcomes import FhirProblem
from .routes_search import full_url
from .writes import idempotent

router = APIRouter()

REASONS = ("new", "update", "delete")


@router.post("/$process-message", name="process-message")
async def process_message(
    request: Request,
    caller: CallerDep,
    key: IdempotencyKeyHeader = None,
    if_none_exist: IfNoneExistHeader = None,
) -> JSONResponse:
    """A message; one that asks to be conditional (If-None-Exist) is refused whatever its
    reason, as every create is."""
    refuse_conditional_create(if_none_exist)
    body = await read_json(request)
    try:
        message = parse(inbound.MessageBundle, body, "Bundle")
    except ParseFailed as failed:
        return failed.response()
    return await run_in_threadpool(_process, request, caller, key, body, message)


def _process(
    request: Request, caller: Caller, key: str | None, body: Any, message: inbound.MessageBundle
) -> JSONResponse:
    header = message.entry[0].resource
    if not isinstance(header, inbound.MessageHeader):
        raise FhirProblem(400, "a message starts with its MessageHeader", "Bundle.entry[0]")
    event = header.eventCoding
    if (event.system, event.code) != (codes.MESSAGE_EVENTS, codes.SERVICE_REQUEST_EVENT):
        raise FhirProblem(
            422,
            f"the event processed here is {codes.MESSAGE_EVENTS}#{codes.SERVICE_REQUEST_EVENT}",
            "Bundle.entry[0].resource.eventCoding",
        )
    reason = header.reason.code_in(codes.MESSAGE_REASONS) if header.reason else None
    if reason not in REASONS:
        raise FhirProblem(
            422,
            f"reason: one of {', '.join(REASONS)} ({codes.MESSAGE_REASONS})",
            "Bundle.entry[0].resource.reason",
        )
    sr, patient = _focus(message, header)
    if reason == "new":
        cmd = commands.submit(sr, patient)
        execute = lambda uow: handlers.submit_referral(cmd, caller, uow)  # noqa: E731
        version = None
    else:
        version, execute = _change(request, caller, reason, sr, patient)

    def run(uow: UnitOfWork) -> tuple[Referral, tuple[str, ...]]:
        referral = execute(uow)
        if reason == "new":  # nothing can be attached to it yet
            return referral, ()
        return referral, versions.documents_of(uow, referral.id)

    def present(done: tuple[Referral, tuple[str, ...]]) -> StoredResponse:
        referral, documents = done
        at = referral.pending[-1].at if referral.pending else referral.created_at
        step = referral.pending[-1] if referral.status.value == "cancelled" else None
        found = versions.ReferralVersion(
            referral, at, step.note if step else None, step.reason_code if step else None, documents
        )
        return StoredResponse(200, _response(request, header, resources.service_request(found)), {})

    return idempotent(request, caller, key, body, version, run, present)


def _focus(
    message: inbound.MessageBundle, header: inbound.MessageHeader
) -> tuple[inbound.ServiceRequest, inbound.Patient | None]:
    by_url = {e.fullUrl: e.resource for e in message.entry[1:] if e.fullUrl}
    sr = by_url.get(header.focus[0].reference or "")
    if not isinstance(sr, inbound.ServiceRequest):
        raise FhirProblem(
            422,
            "focus must be the fullUrl of the message's ServiceRequest entry",
            "Bundle.entry[0].resource.focus[0]",
        )
    patient = by_url.get(sr.subject.reference or "")
    return sr, patient if isinstance(patient, inbound.Patient) else None


def _change(
    request: Request,
    caller: Caller,
    reason: str,
    sr: inbound.ServiceRequest,
    patient: inbound.Patient | None,
) -> tuple[int, Any]:
    """An update or delete of an existing referral: the version it was based on, and what to
    run."""
    if sr.id is None or sr.meta is None or not (sr.meta.versionId or "").isdigit():
        raise FhirProblem(
            428,
            "an update or delete names the ServiceRequest's id and the meta.versionId it was "
            "based on",
            "ServiceRequest.meta.versionId",
        )
    version = int(sr.meta.versionId or 0)
    current = versions.current_referral(sr.id, caller, request.app.state.container.uow())
    if reason == "delete" and sr.status != "revoked":
        raise FhirProblem(
            422, "a delete revokes the ServiceRequest (status revoked)", "ServiceRequest.status"
        )
    action, details = commands.update(current, sr)
    if patient is not None and action is Action.AMEND:
        details.update(commands.patient_changes(current, patient))
    referral_id = sr.id

    def execute(uow: UnitOfWork) -> Referral:
        return handlers.transition(referral_id, action, caller, version, uow, **details)

    return version, execute


def _response(
    request: Request, header: inbound.MessageHeader, service_request: dict[str, Any]
) -> dict[str, Any]:
    url = full_url(request, f"ServiceRequest/{service_request['id']}")
    response_header = {
        "resourceType": "MessageHeader",
        "id": new_id(),
        "eventCoding": {"system": codes.MESSAGE_EVENTS, "code": codes.SERVICE_REQUEST_EVENT},
        "source": {"endpoint": full_url(request, "$process-message")},
        "response": {"identifier": header.id, "code": "ok"},
        "focus": [{"reference": url}],
    }
    return {
        "resourceType": "Bundle",
        "id": new_id(),
        "type": "message",
        "timestamp": resources.instant(datetime.now(UTC)),
        "entry": [
            {"fullUrl": f"urn:uuid:{response_header['id']}", "resource": response_header},
            {"fullUrl": url, "resource": service_request},
        ],
    }
