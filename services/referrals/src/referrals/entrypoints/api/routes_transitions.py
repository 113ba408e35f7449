"""Lifecycle operations: one POST per action, each needing If-Match and an Idempotency-Key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel
from rx_contracts import NhsNumberVerification
from rx_web.checked_headers import (
    IDEMPOTENCY_KEY,
    IF_MATCH,
    IdempotencyKeyHeader,
    IfMatchHeader,
    header_errors,
    read_headers,
    version_of,
)
from rx_web.identity import documented_identity, get_identity, reads_identity
from rx_web.openapi import documented_as
from rx_web.responses import JSONResponse

from ...domain.caller import Caller
from ...domain.lifecycle import Action
from ...service_layer import handlers
from .deps import in_transaction
from .idempotency import run_once
from .links import referral_links
from .presenters import referral_response
from .routes_referrals import IDEMPOTENT_POST, PROBLEMS
from .schemas import (
    Cancel,
    Complete,
    Empty,
    Fail,
    MessageIn,
    ProvideInfo,
    ReasonIn,
    RecordNhsNumber,
    Redirect,
    ReferralAmend,
    ReferralPublic,
    Reject,
    ReportProgress,
    RequestInfo,
    Reroute,
)

router = APIRouter(prefix="/referrals/{referral_id}", tags=["lifecycle"])

RESPONSES: dict[int | str, dict[str, Any]] = {
    **PROBLEMS,
    **IDEMPOTENT_POST,
    400: {"description": "Missing Idempotency-Key or malformed If-Match"},
    403: {
        "description": "Your organisation may not take this action; allowed_actions lists what it may"
    },
    409: {"description": "Not possible in the current status; allowed_actions lists what is"},
    412: {"description": "If-Match is not the current version: read the referral again"},
    428: {"description": "If-Match is required"},
    200: {"description": "The referral after the action", "links": referral_links()},
}
OPERATION: dict[str, Any] = {"response_model": ReferralPublic, "responses": RESPONSES}


@dataclass(frozen=True, slots=True)
class LifecycleRequest:
    """What every lifecycle operation is asked with: which referral, by whom, the version the
    caller read (If-Match) and its Idempotency-Key (``None``, both, when either header was
    missing or malformed: :meth:`act` answers as FastAPI would)."""

    referral_id: str
    caller: Caller
    key: str | None
    if_match: int | None
    request: Request

    async def act(self, action: Action, body: BaseModel | None, **details: Any) -> JSONResponse:
        """Run ``action`` at most once for this Idempotency-Key; answer with the referral."""
        key, if_match = self.key, self.if_match
        if key is None or if_match is None:
            raise header_errors(self.request)
        payload = body.model_dump(mode="json", exclude_unset=True) if body is not None else {}
        return await in_transaction(
            self.request,
            lambda: run_once(
                self.request,
                self.caller,
                key,
                payload,
                if_match,
                lambda uow: handlers.transition(
                    self.referral_id, action, self.caller, if_match, uow, **details
                ),
                lambda referral: referral_response(referral, self.caller),
            ),
        )


def documented_lifecycle(
    idempotency_key: IdempotencyKeyHeader,
    if_match: IfMatchHeader,
    _caller: Annotated[None, Depends(documented_identity)],
) -> None:
    """Never called: what :func:`lifecycle_request` reads, as the document shows it (the
    headers, then the caller as its own dependency)."""


@documented_as(documented_lifecycle)
@reads_identity
async def lifecycle_request(referral_id: str, request: Request) -> LifecycleRequest:
    """The caller and the headers read here, in one dependency level, rather than through
    ``get_caller`` and FastAPI's header validation: each level and each declared header costs
    more than what it does. The caller first, so that an unauthenticated request is refused
    with 401 whatever its headers; a header missing or malformed waits for the rest of the
    request to be checked (``rx_web.checked_headers``), as FastAPI's own check did."""
    caller = Caller.of(await get_identity(request))
    headers = read_headers(request, IDEMPOTENCY_KEY, IF_MATCH)
    if headers is None:
        return LifecycleRequest(referral_id, caller, None, None, request)
    key, if_match = headers
    return LifecycleRequest(referral_id, caller, key, version_of(if_match), request)


Lifecycle = Annotated[LifecycleRequest, Depends(lifecycle_request)]


@router.post("/amend", summary="Amend before acceptance (referrer)", **OPERATION)
async def amend_referral(call: Lifecycle, body: ReferralAmend) -> JSONResponse:
    """Change priority, cohort, reason, clinical summary or patient details (not the
    postcode) while the referral is submitted or routed. Creates a new version."""
    changes: dict[str, Any] = {
        name: getattr(body, name)
        for name in ("priority", "clinical_summary")
        if name in body.model_fields_set
    }
    if body.cohort is not None:
        changes["cohort"] = body.cohort.flags()
    if "reason" in body.model_fields_set:
        reason = body.reason or ReasonIn()
        changes["reason_code"], changes["reason_text"] = reason.code, reason.text
    if body.patient is not None:
        changes["patient"] = body.patient.model_dump(exclude_unset=True)
        if body.patient.local_identifier is not None:
            changes["patient"]["local_identifier"] = body.patient.local_identifier.identifier()
    if body.consent is not None:
        changes["consent"] = body.consent.given()
    return await call.act(Action.AMEND, body, **changes)


@router.post("/accept", summary="Accept (assigned organisation)", **OPERATION)
async def accept_referral(call: Lifecycle, body: Empty | None = None) -> JSONResponse:
    """Your organisation takes the referral on. It must be routed to you."""
    return await call.act(Action.ACCEPT, body)


@router.post("/reject", summary="Decline with a reason (assigned organisation)", **OPERATION)
async def reject_referral(call: Lifecycle, body: Reject) -> JSONResponse:
    """Back to routing, which will not choose your organisation for this referral again."""
    return await call.act(Action.REJECT, body, reason=body.reason_code, text=body.reason_text)


@router.post(
    "/redirect",
    summary="Redirect to another type or organisation (assigned organisation)",
    **OPERATION,
)
async def redirect_referral(call: Lifecycle, body: Redirect) -> JSONResponse:
    """Back to routing, towards the provider type or organisation you name."""
    return await call.act(
        Action.REDIRECT,
        body,
        target_provider_type=body.target_provider_type,
        target_org=body.target_org,
        text=body.reason_text,
    )


@router.post("/start", summary="Start work (assigned organisation)", **OPERATION)
async def start_referral(call: Lifecycle, body: Empty | None = None) -> JSONResponse:
    """Work with the patient has begun. The referral must be accepted."""
    return await call.act(Action.START, body)


@router.post("/complete", summary="Complete with an outcome (assigned organisation)", **OPERATION)
async def complete_referral(call: Lifecycle, body: Complete) -> JSONResponse:
    """Finish the referral; work must have started."""
    return await call.act(Action.COMPLETE, body, outcome=body.outcome, summary=body.summary)


@router.post("/cancel", summary="Withdraw (referrer)", **OPERATION)
async def cancel_referral(call: Lifecycle, body: Cancel) -> JSONResponse:
    """The referrer withdraws the referral, from any status but an end (completed, cancelled,
    failed), with a coded reason, text, or both."""
    return await call.act(Action.CANCEL, body, text=body.reason_text, reason=body.reason_code)


@router.post("/reroute", summary="Send back to routing (ops)", **OPERATION)
async def reroute_referral(call: Lifecycle, body: Reroute) -> JSONResponse:
    """Ops only: re-route an unroutable or stuck referral, optionally to a named target."""
    return await call.act(
        Action.REROUTE,
        body,
        target_provider_type=body.target_provider_type,
        target_org=body.target_org,
        text=body.reason_text,
    )


@router.post(
    "/record-nhs-number",
    summary="Record the NHS number, traced after referral (referrer or assigned organisation)",
    **OPERATION,
)
async def record_nhs_number(call: Lifecycle, body: RecordNhsNumber) -> JSONResponse:
    """An amendment of the person's identity with its own event (ReferralNhsNumberRecorded,
    which carries the verification, never the number): add the NHS number of a person referred
    without one, or record that it is now verified. Allowed until the referral ends."""
    return await call.act(
        Action.RECORD_NHS_NUMBER,
        body,
        nhs_number=body.nhs_number,
        verification=NhsNumberVerification(body.verification),
    )


# ---- closing the loop: questions, messages, interim updates, failure ------------------------


@router.post(
    "/request-info", summary="Ask the referrer a question (assigned organisation)", **OPERATION
)
async def request_info(call: Lifecycle, body: RequestInfo) -> JSONResponse:
    """Before accepting: the referral waits in ``info_requested`` (still yours, acceptance
    clock paused) until the referrer answers."""
    return await call.act(Action.REQUEST_INFO, body, question=body.question)


@router.post("/provide-info", summary="Answer the question (referrer)", **OPERATION)
async def provide_info(call: Lifecycle, body: ProvideInfo) -> JSONResponse:
    """The referral goes back to ``routed`` with the same organisation; its acceptance clock
    runs on. Upload a document first (``/attachments``) to send it with the answer."""
    return await call.act(
        Action.PROVIDE_INFO, body, answer=body.answer, attachment_id=body.attachment_id
    )


@router.post("/message", summary="Add a note (referrer or assigned organisation)", **OPERATION)
async def add_message(call: Lifecycle, body: MessageIn) -> JSONResponse:
    """A note to the other party at any status but an end; the status stays. It appears in
    the history and reaches the other party as an event."""
    return await call.act(Action.MESSAGE, body, text=body.text, attachment_id=body.attachment_id)


@router.post(
    "/report-progress", summary="Send an interim update (assigned organisation)", **OPERATION
)
async def report_progress(call: Lifecycle, body: ReportProgress) -> JSONResponse:
    """Between acceptance and the end: what has happened so far; the status stays."""
    return await call.act(Action.REPORT_PROGRESS, body, code=body.progress_code, text=body.text)


@router.post("/fail", summary="End as not delivered (assigned organisation)", **OPERATION)
async def fail_referral(call: Lifecycle, body: Fail) -> JSONResponse:
    """Accepted but could not be delivered (failed contact, did not attend): the referral
    ends ``failed``, distinct from ``completed``."""
    return await call.act(Action.FAIL, body, reason=body.reason_code, text=body.reason_text)
