"""Create and read referrals: parse, call a handler, map the result."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from rx_contracts import Priority, ReferralStatus, ServiceType
from rx_web.params import IsoDateTime, on_strings
from rx_web.problems import Problem
from rx_web.urls import url_for

from ...adapters.idempotency import StoredResponse
from ...adapters.repository import View, WorklistQuery
from ...domain.model import Referral
from ...service_layer import handlers
from .deps import CallerDep, SubmissionDep, in_transaction, unit_of_work
from .idempotency import run_once
from .links import referral_links
from .presenters import etag, referral_response, to_public, to_summary
from .schemas import ReasonIn, ReferralCreate, ReferralPublic, TransitionPublic, Worklist

router = APIRouter(prefix="/referrals", tags=["referrals"])
WORKLIST_CURSOR = on_strings(format="worklist-cursor", pattern="^[A-Za-z0-9_=-]*$")
"""An opaque cursor: base64url text (its content is ours to read); empty: the first page."""

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No or bad identity"},
    404: {"description": "No such referral, or not yours to see"},
    422: {"description": "Invalid request: the problem names each field and rule broken"},
}
IDEMPOTENT_POST: dict[int | str, dict[str, Any]] = {
    400: {"description": "Missing or malformed Idempotency-Key"},
    413: {"description": "The body is over the size limit"},
}


@router.post(
    "",
    status_code=201,
    response_model=ReferralPublic,
    summary="Submit a referral",
    responses={
        **PROBLEMS,
        **IDEMPOTENT_POST,
        201: {"description": "Submitted", "links": referral_links()},
        403: {"description": "You may only refer for your own organisation"},
    },
)
async def create_referral(
    body: ReferralCreate, submission: SubmissionDep, request: Request
) -> JSONResponse:
    """Store the referral and its ReferralSubmitted event together; routing picks it up from
    ``referrals.events.v1``. Works while Kafka is down: the event waits in the outbox.
    Retrying with the same Idempotency-Key and body returns the original response."""
    caller, key = submission.caller, submission.checked_key()
    reason = body.reason or ReasonIn()
    cmd = handlers.SubmitReferral(
        referrer_org=body.referrer.organisation,
        patient=body.patient.patient(),
        service_type=body.service_type,
        priority=body.priority,
        cohort=body.cohort.flags(),
        reason_code=reason.code,
        reason_text=reason.text,
        clinical_summary=body.clinical_summary,
        consent=body.consent.given() if body.consent else None,
    )

    def created(referral: Referral) -> StoredResponse:
        location = url_for(request, "read_referral", referral_id=referral.id)
        return referral_response(referral, caller, 201, str(location))

    payload = body.model_dump(mode="json")
    return await in_transaction(
        request,
        lambda: run_once(
            request,
            caller,
            key,
            payload,
            None,
            lambda uow: handlers.submit_referral(cmd, caller, uow),
            created,
        ),
    )


@router.get(
    "/{referral_id}",
    response_model=ReferralPublic,
    summary="Read one referral",
    responses={**PROBLEMS, 200: {"description": "The referral", "links": referral_links()}},
)
async def read_referral(referral_id: str, caller: CallerDep, request: Request) -> Response:
    """The referral with its ETag (send it back as If-Match) and the actions open to you."""
    uow = unit_of_work(request)  # not a dependency: a level of solving fewer
    referral = await in_transaction(
        request, lambda: handlers.get_referral(referral_id, caller, uow)
    )
    # Rendered here, once, as the POSTs' answers are: a model returned would be validated
    # again against response_model, in another hop to the thread pool.
    body = to_public(referral, caller).model_dump_json()
    return Response(body, media_type="application/json", headers={"ETag": etag(referral)})


@router.get(
    "/{referral_id}/history",
    response_model=list[TransitionPublic],
    summary="Transition history",
    responses=PROBLEMS,
)
def referral_history(
    referral_id: str, caller: CallerDep, request: Request
) -> list[TransitionPublic]:
    """Every step so far: who did what, when, with reasons and notes."""
    entries = handlers.get_history(referral_id, caller, unit_of_work(request))
    return [TransitionPublic.model_validate(entry, from_attributes=True) for entry in entries]


@router.get(
    "",
    response_model=Worklist,
    summary="Worklist",
    responses={**PROBLEMS, 403: {"description": "view=all is for ops"}},
)
def worklist(
    caller: CallerDep,
    request: Request,
    view: Annotated[
        View, Query(description="assigned to my organisation, sent by it, or all (ops)")
    ] = View.ASSIGNED,
    status: Annotated[list[ReferralStatus] | None, Query()] = None,
    priority: Annotated[list[Priority] | None, Query()] = None,
    service_type: Annotated[list[ServiceType] | None, Query()] = None,
    due_before: Annotated[
        IsoDateTime | None, Query(description="Only referrals due before this time")
    ] = None,
    cursor: Annotated[
        str | None,
        Query(
            description="next_cursor from the previous page, as it was given: its content "
            "cannot be written in this schema, and anything this service did not issue is "
            "refused with 422 (rule cursor_format).",
            json_schema_extra=WORKLIST_CURSOR,
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Worklist:
    """Referrals sorted by due time, soonest first, a page at a time. Each line carries what
    triage needs but no patient identifiers or clinical text: read the referral for those
    (that read is recorded on the audit stream)."""
    query = WorklistQuery(
        view=view,
        organisation=caller.organisation,
        statuses=tuple(status or ()),
        priorities=tuple(priority or ()),
        service_types=tuple(service_type or ()),
        due_before=due_before,
        after=_decode_cursor(cursor) if cursor else None,
        limit=limit + 1,
    )
    found = handlers.worklist(query, caller, unit_of_work(request))
    page = found[:limit]
    more = len(found) > limit
    return Worklist(
        items=[to_summary(r, caller) for r in page],
        next_cursor=_encode_cursor(page[-1].due_at, page[-1].id) if more else None,
    )


def _encode_cursor(due_at: datetime, referral_id: str) -> str:
    return base64.urlsafe_b64encode(f"{due_at.isoformat()}|{referral_id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        due, rid = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return datetime.fromisoformat(due), rid
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise Problem(
            422,
            "Invalid request",
            "cursor: not a cursor this service issued",
            errors=[
                {
                    "field": "cursor",
                    "rule": "cursor_format",
                    "message": "not a cursor this service issued",
                }
            ],
        ) from exc
