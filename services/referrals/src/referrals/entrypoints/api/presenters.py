"""Domain objects to API bodies."""

from __future__ import annotations

from ...adapters.idempotency import StoredResponse
from ...domain.caller import Caller
from ...domain.model import Referral
from .schemas import (
    ConsentPublic,
    LocalIdentifierIn,
    PatientIn,
    ReasonIn,
    ReferralPublic,
    ReferralSummary,
)


def to_public(r: Referral, caller: Caller) -> ReferralPublic:
    """The referral as ``caller`` sees it, with the actions open to it now."""
    reason = (
        ReasonIn(code=r.reason_code, text=r.reason_text) if r.reason_code or r.reason_text else None
    )
    local, consent = r.patient.local_identifier, r.consent
    return ReferralPublic(
        id=r.id,
        status=r.status,
        version=r.version,
        referrer_org=r.referrer_org,
        practitioner=r.practitioner,
        patient=PatientIn(
            nhs_number=r.patient.nhs_number,
            nhs_number_verification=r.patient.nhs_number_verification,
            local_identifier=LocalIdentifierIn(value=local.value, organisation=local.organisation)
            if local
            else None,
            national_data_opt_out=r.patient.national_data_opt_out,
            name=r.patient.name,
            birth_date=r.patient.birth_date,
            postcode=r.patient.postcode,
        ),
        service_type=r.service_type,
        priority=r.priority,
        cohort=r.cohort,
        reason=reason,
        clinical_summary=r.clinical_summary,
        consent=ConsentPublic.model_validate(consent, from_attributes=True) if consent else None,
        assigned_org=r.assigned_org,
        assigned_provider_type=r.assigned_provider_type,
        outcome=r.outcome,
        created_at=r.created_at,
        due_at=r.due_at,
        allowed_actions=r.allowed_actions(caller),
    )


def to_summary(r: Referral, caller: Caller) -> ReferralSummary:
    """The worklist line of ``r`` for ``caller``: no patient identifiers, no clinical text."""
    return ReferralSummary(
        id=r.id,
        status=r.status,
        version=r.version,
        referrer_org=r.referrer_org,
        service_type=r.service_type,
        priority=r.priority,
        cohort=r.cohort,
        reason_code=r.reason_code,
        postcode_district=r.postcode_district,
        assigned_org=r.assigned_org,
        assigned_provider_type=r.assigned_provider_type,
        outcome=r.outcome,
        created_at=r.created_at,
        due_at=r.due_at,
        allowed_actions=r.allowed_actions(caller),
    )


def etag(r: Referral) -> str:
    return f'"{r.version}"'


def referral_response(
    r: Referral, caller: Caller, status_code: int = 200, location: str | None = None
) -> StoredResponse:
    """The answer to a POST that made or changed ``r``: the referral as ``caller`` sees it,
    its ETag and, for a new one, its Location."""
    headers = {"ETag": etag(r)}
    if location is not None:
        headers["Location"] = location
    return StoredResponse(status_code, to_public(r, caller).model_dump(mode="json"), headers)
