"""The basis on which a referral shares the person's details: consent or its lawful
alternatives, who recorded it and when. Events carry only flags (``rx_contracts.SharingFlags``);
the receiving organisation reads the details with the referral."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from rx_contracts import ProviderType, ServiceType, SharingBasis

from .errors import InvalidRequest

CONSENT_REQUIRED = frozenset({ServiceType.SOCIAL_CARE_ASSESSMENT})
"""Service types whose referrals need a recorded sharing basis: social care works under
different sharing rules from health care, and asks for one."""
CLOCK_SKEW = timedelta(minutes=5)
"""How far ahead of our clock a caller's ``recorded_at`` may be (its clock may run fast)."""


@dataclass(frozen=True)
class Consent:
    """A recorded sharing basis."""

    basis: SharingBasis
    recorded_by_org: str
    """ODS code of the organisation whose practitioner recorded it (the referrer)."""
    recorded_by_practitioner: str | None
    recorded_at: datetime


@dataclass(frozen=True)
class ConsentGiven:
    """A sharing basis as a caller states it: the practitioner who recorded it (the caller's
    own when not given) and when (now when not given)."""

    basis: SharingBasis
    recorded_by: str | None = None
    recorded_at: datetime | None = None

    def record(self, organisation: str, practitioner: str | None, now: datetime) -> Consent:
        """The consent as recorded by ``organisation``; ``recorded_at`` cannot be in the
        future."""
        at = self.recorded_at
        if at is not None and at.tzinfo is None:
            raise InvalidRequest(
                "consent.recorded_at", "timezone_required", "give the time with its UTC offset"
            )
        if at is not None and at > now + CLOCK_SKEW:
            raise InvalidRequest(
                "consent.recorded_at", "in_future", "consent cannot be recorded later than now"
            )
        return Consent(self.basis, organisation, self.recorded_by or practitioner, at or now)


def require_for(service_type: ServiceType, consent: Consent | None) -> None:
    """Refuse a referral of ``service_type`` without a sharing basis when it needs one."""
    if consent is None and service_type in CONSENT_REQUIRED:
        raise InvalidRequest(
            "consent",
            "required_for_social_care",
            f"a {service_type.value} referral needs a recorded consent or sharing basis",
        )


def require_for_target(target: ProviderType | None, consent: Consent | None) -> None:
    """Refuse sending a referral on to social care without a sharing basis; the referrer can
    record one (amend) while it is still routed."""
    if consent is None and target is ProviderType.SOCIAL_CARE:
        raise InvalidRequest(
            "consent",
            "required_for_social_care",
            "a referral into social care needs a recorded consent or sharing basis; "
            "the referrer can add one by amending it",
        )
