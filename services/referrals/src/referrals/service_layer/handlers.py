"""Use cases of the referrals service. Each takes a unit of work and commits it once."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from rx_contracts import (
    CohortFlags,
    Envelope,
    Priority,
    ReferralRouted,
    ReferralUnroutable,
    ServiceType,
)

from ..domain.errors import ReferralNotFound
from ..domain.model import Patient, Referral
from .unit_of_work import UnitOfWork


@dataclass(frozen=True)
class SubmitReferral:
    referrer_org: str
    practitioner: str | None
    patient: Patient
    service_type: ServiceType
    priority: Priority
    cohort: CohortFlags
    reason_code: str | None = None
    reason_text: str | None = None
    clinical_summary: str | None = None


def submit_referral(cmd: SubmitReferral, uow: UnitOfWork, now: datetime | None = None) -> Referral:
    """Store a new referral and stage its ReferralSubmitted event, in one transaction."""
    with uow:
        referral = Referral.submit(
            referral_id=str(uuid.uuid4()),
            referrer_org=cmd.referrer_org,
            practitioner=cmd.practitioner,
            patient=cmd.patient,
            service_type=cmd.service_type,
            priority=cmd.priority,
            cohort=cmd.cohort,
            reason_code=cmd.reason_code,
            reason_text=cmd.reason_text,
            clinical_summary=cmd.clinical_summary,
            now=now or datetime.now(UTC),
        )
        uow.referrals.add(referral)
        uow.commit()
    return referral


def get_referral(referral_id: str, uow: UnitOfWork) -> Referral:
    with uow:
        referral = uow.referrals.get(referral_id)
    if referral is None:
        raise ReferralNotFound(f"no referral {referral_id}")
    return referral


def apply_routing_decision(envelope: Envelope, uow: UnitOfWork) -> None:
    """Record what routing decided (from routing.decisions.v1). Other event types on that
    topic are not ours to act on and are ignored."""
    payload = envelope.payload()
    if not isinstance(payload, ReferralRouted | ReferralUnroutable):
        return
    with uow:
        referral = uow.referrals.get(payload.referral_id)
        if referral is None:
            raise ReferralNotFound(f"routing decision for unknown referral {payload.referral_id}")
        if isinstance(payload, ReferralRouted):
            referral.record_routing(
                payload.assigned_org, payload.provider_type, payload.routed_at, envelope.id
            )
        else:
            referral.record_unroutable(payload.decided_at, envelope.id)
        uow.commit()
