"""Referral routes: parse, call a handler, map the result."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from ...domain.model import Patient, Referral
from ...service_layer import handlers
from ...service_layer.unit_of_work import UnitOfWork
from .schemas import PatientIn, ReasonIn, ReferralCreate, ReferralPublic, TransitionPublic

router = APIRouter(prefix="/referrals", tags=["referrals"])


def get_uow(request: Request) -> UnitOfWork:
    uow: UnitOfWork = request.app.state.container.uow()
    uow.correlation_id = request.headers.get("x-correlation-id")
    return uow


Uow = Annotated[UnitOfWork, Depends(get_uow)]


@router.post("", status_code=201, response_model=ReferralPublic, summary="Submit a referral")
def create_referral(
    body: ReferralCreate, uow: Uow, request: Request, response: Response
) -> ReferralPublic:
    """Store the referral and its ReferralSubmitted event together; routing picks it up from
    ``referrals.events.v1``. Works while Kafka is down: the event waits in the outbox."""
    reason = body.reason or ReasonIn()
    referral = handlers.submit_referral(
        handlers.SubmitReferral(
            referrer_org=body.referrer.organisation,
            practitioner=body.referrer.practitioner,
            patient=Patient(
                body.patient.postcode,
                body.patient.nhs_number,
                body.patient.name,
                body.patient.birth_date,
            ),
            service_type=body.service_type,
            priority=body.priority,
            cohort=body.cohort,
            reason_code=reason.code,
            reason_text=reason.text,
            clinical_summary=body.clinical_summary,
        ),
        uow,
    )
    response.headers["Location"] = str(request.url_for("read_referral", referral_id=referral.id))
    response.headers["ETag"] = f'"{referral.version}"'
    return to_public(referral)


@router.get("/{referral_id}", response_model=ReferralPublic, summary="Read one referral")
def read_referral(referral_id: str, uow: Uow, response: Response) -> ReferralPublic:
    referral = handlers.get_referral(referral_id, uow)
    response.headers["ETag"] = f'"{referral.version}"'
    return to_public(referral)


@router.get(
    "/{referral_id}/history", response_model=list[TransitionPublic], summary="Transition history"
)
def referral_history(referral_id: str, uow: Uow) -> list[TransitionPublic]:
    handlers.get_referral(referral_id, uow)
    with uow:
        rows = uow.referrals.history(referral_id)
    return [TransitionPublic.model_validate(row, from_attributes=True) for row in rows]


@router.get("", response_model=list[ReferralPublic], summary="Most recent referrals")
def list_referrals(
    uow: Uow, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> list[ReferralPublic]:
    with uow:
        return [to_public(r) for r in uow.referrals.list(limit)]


def to_public(r: Referral) -> ReferralPublic:
    reason = (
        ReasonIn(code=r.reason_code, text=r.reason_text) if r.reason_code or r.reason_text else None
    )
    return ReferralPublic(
        id=r.id,
        status=r.status,
        version=r.version,
        referrer_org=r.referrer_org,
        practitioner=r.practitioner,
        patient=PatientIn(
            nhs_number=r.patient.nhs_number,
            name=r.patient.name,
            birth_date=r.patient.birth_date,
            postcode=r.patient.postcode,
        ),
        service_type=r.service_type,
        priority=r.priority,
        cohort=r.cohort,
        reason=reason,
        clinical_summary=r.clinical_summary,
        assigned_org=r.assigned_org,
        assigned_provider_type=r.assigned_provider_type,
        created_at=r.created_at,
    )
