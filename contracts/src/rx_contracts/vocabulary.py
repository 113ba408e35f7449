"""Shared vocabularies: the codes every service and subscriber agrees on."""

from __future__ import annotations

from enum import StrEnum


class ProviderType(StrEnum):
    """Kinds of provider organisation; each has its own topic ``provider.<type>.v1``."""

    PRIMARY_CARE = "primary-care"
    RAPID_RESPONSE = "rapid-response"
    SOCIAL_CARE = "social-care"
    ACUTE = "acute"


class Priority(StrEnum):
    """FHIR request-priority codes, least to most urgent."""

    ROUTINE = "routine"
    URGENT = "urgent"
    ASAP = "asap"
    STAT = "stat"


class ServiceType(StrEnum):
    """What the referrer asks for; routing rules map each to a provider type."""

    URGENT_COMMUNITY_RESPONSE = "urgent-community-response"
    SOCIAL_CARE_ASSESSMENT = "social-care-assessment"
    ACUTE_ASSESSMENT = "acute-assessment"
    GP_REVIEW = "gp-review"


class ReferralStatus(StrEnum):
    """Lifecycle states (names map to FHIR Task status in meaning)."""

    SUBMITTED = "submitted"
    ROUTED = "routed"
    ACCEPTED = "accepted"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    UNROUTABLE = "unroutable"
    INFO_REQUESTED = "info_requested"
    """The assigned organisation asked the referrer a question; its acceptance clock is
    paused until the referrer answers (back to ``routed``, same organisation)."""
    FAILED = "failed"
    """Accepted but could not be delivered (failed contact, did not attend): an end distinct
    from ``completed``."""


class RejectionReason(StrEnum):
    """Why an assigned organisation declined a referral (the BaRS and closed-loop referral
    vocabularies). ``other`` needs free text."""

    NOT_AVAILABLE_WITHIN_TIMESCALE = "not-available-within-timescale"
    AT_CAPACITY = "at-capacity"
    NOT_ELIGIBLE = "not-eligible"
    OUTSIDE_AREA = "outside-area"
    PATIENT_DECLINED = "patient-declined"
    FAILED_CONTACT = "failed-contact"
    CLINICALLY_INAPPROPRIATE = "clinically-inappropriate"
    OUTSIDE_SERVICE_CRITERIA = "outside-service-criteria"
    """Kept for subscribers of the first release; ``not-eligible`` says the same."""
    OTHER = "other"


class CancellationReason(StrEnum):
    """Why the referrer withdrew a referral. ``other`` needs free text."""

    RECOVERED = "recovered"
    REFERRED_ELSEWHERE = "referred-elsewhere"
    PATIENT_DECLINED = "patient-declined"
    ENTERED_IN_ERROR = "entered-in-error"
    DIED = "died"
    OTHER = "other"


class FailureReason(StrEnum):
    """Why an accepted referral could not be delivered (it ends ``failed``). ``other`` needs
    free text."""

    FAILED_CONTACT = "failed-contact"
    DID_NOT_ATTEND = "did-not-attend"
    NO_ACCESS = "no-access"
    OTHER = "other"


class ProgressCode(StrEnum):
    """What an interim update from the assigned organisation says. ``other`` needs text."""

    PATIENT_CONTACTED = "patient-contacted"
    VISIT_BOOKED = "visit-booked"
    VISIT_COMPLETED = "visit-completed"
    AWAITING_ASSESSMENT = "awaiting-assessment"
    OTHER = "other"


class Outcome(StrEnum):
    """How a completed referral ended. Which codes fit a referral depends on its service
    type (``OUTCOMES``); ``other`` needs a summary."""

    REMAINED_AT_HOME = "remained-at-home"
    ADMITTED_TO_HOSPITAL = "admitted-to-hospital"
    REFERRED_ONWARD = "referred-onward"
    DIED = "died"
    DECLINED = "declined"
    OTHER = "other"
    ASSESSMENT_COMPLETED = "assessment-completed"
    PACKAGE_OF_CARE_ARRANGED = "package-of-care-arranged"
    NO_ELIGIBLE_NEEDS = "no-eligible-needs"
    SIGNPOSTED = "signposted"
    DISCHARGED = "discharged"
    MANAGED_IN_PRIMARY_CARE = "managed-in-primary-care"


_ANY_SERVICE = (Outcome.REFERRED_ONWARD, Outcome.DECLINED, Outcome.DIED, Outcome.OTHER)

OUTCOMES: dict[ServiceType, tuple[Outcome, ...]] = {
    ServiceType.URGENT_COMMUNITY_RESPONSE: (
        Outcome.REMAINED_AT_HOME,
        Outcome.ADMITTED_TO_HOSPITAL,
        *_ANY_SERVICE,
    ),
    ServiceType.SOCIAL_CARE_ASSESSMENT: (
        Outcome.ASSESSMENT_COMPLETED,
        Outcome.PACKAGE_OF_CARE_ARRANGED,
        Outcome.NO_ELIGIBLE_NEEDS,
        Outcome.SIGNPOSTED,
        *_ANY_SERVICE,
    ),
    ServiceType.ACUTE_ASSESSMENT: (
        Outcome.ADMITTED_TO_HOSPITAL,
        Outcome.DISCHARGED,
        *_ANY_SERVICE,
    ),
    ServiceType.GP_REVIEW: (
        Outcome.MANAGED_IN_PRIMARY_CARE,
        Outcome.REMAINED_AT_HOME,
        Outcome.ADMITTED_TO_HOSPITAL,
        *_ANY_SERVICE,
    ),
}
"""The outcome codes a completed referral of each service type may carry."""


class SharingBasis(StrEnum):
    """On what basis the patient's details are shared with the receiving organisation."""

    EXPLICIT_CONSENT = "explicit-consent"
    """The person agreed to this referral and the sharing it needs."""
    IMPLIED_DIRECT_CARE = "implied-direct-care"
    """Implied consent: sharing for the person's own direct care, which they expect."""
    BEST_INTERESTS = "best-interests"
    """The person lacks capacity to decide; shared in their best interests (Mental Capacity
    Act 2005)."""
    SAFEGUARDING = "safeguarding"
    """Shared without consent to protect the person or others from harm."""


class NhsNumberVerification(StrEnum):
    """Whether the patient's NHS number is known and traced, as BaRS distinguishes "present and
    verified" from "present but not traced"."""

    VERIFIED = "verified"
    """Present and verified against the national record (PDS)."""
    UNVERIFIED = "unverified"
    """Present but not traced."""
    ABSENT = "absent"
    """No NHS number; a local identifier with its issuing organisation stands in."""
