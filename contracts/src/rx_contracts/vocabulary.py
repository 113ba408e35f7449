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


class RejectionReason(StrEnum):
    """Why an assigned organisation declined a referral (BaRS pattern)."""

    NOT_AVAILABLE_WITHIN_TIMESCALE = "not-available-within-timescale"
    FAILED_CONTACT = "failed-contact"
    OUTSIDE_SERVICE_CRITERIA = "outside-service-criteria"
    OTHER = "other"


class Outcome(StrEnum):
    """How a completed referral ended (rapid response outcomes and the general case)."""

    REMAINED_AT_HOME = "remained-at-home"
    ADMITTED_TO_HOSPITAL = "admitted-to-hospital"
    REFERRED_ONWARD = "referred-onward"
    DIED = "died"
    DECLINED = "declined"
    OTHER = "other"


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
