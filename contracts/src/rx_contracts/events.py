"""Event payloads. Minimum necessary: ids, codes, organisations, locality — never names,
dates of birth or NHS numbers. A subscriber that needs those asks the referrals API."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from .payload import Payload
from .vocabulary import (
    CancellationReason,
    FailureReason,
    NhsNumberVerification,
    Outcome,
    Priority,
    ProgressCode,
    ProviderType,
    ReferralStatus,
    RejectionReason,
    ServiceType,
)

ODS_CODE = r"^[A-Z0-9]{3,10}$"
REFERRAL_ID_EXAMPLE = "0b6f1d2e-6a53-4c4c-9d4e-2f4f5e1a9c10"


class Actor(BaseModel):
    """Who caused an event: an organisation and, where a person acted, the practitioner."""

    model_config = ConfigDict(frozen=True)

    organisation: str = Field(
        description="ODS code of the acting organisation, or 'RX' for the platform itself.",
        pattern=r"^([A-Z0-9]{3,10}|RX)$",
        examples=["B81001"],
    )
    practitioner: str | None = Field(
        default=None,
        description="Professional identifier of the practitioner who acted (no names).",
        max_length=64,
        examples=["G1234567"],
    )


class CohortFlags(BaseModel):
    """Cohorts routing rules and evaluation figures care about."""

    model_config = ConfigDict(frozen=True)

    care_home_resident: bool = Field(default=False, description="Lives in a care home.")
    frailty: bool = Field(default=False, description="Identified as living with frailty.")
    end_of_life: bool = Field(default=False, description="In the last year of life.")


class SharingFlags(BaseModel):
    """What a subscriber may know of a referral's sharing basis: flags, never the details
    (which basis, who recorded it) — those are read from the referrals API."""

    model_config = ConfigDict(frozen=True)

    consent_recorded: bool = Field(
        default=False, description="A sharing basis (consent or its alternative) is recorded."
    )
    data_opt_out: bool = Field(
        default=False,
        description="The patient has a recorded national data opt-out: leave this referral "
        "out of evaluation figures and exports.",
    )


class EventPayload(Payload):
    """Base of every payload about one referral: keyed by its id."""

    referral_id: str = Field(
        description="The referral this event is about; also the Kafka key.",
        examples=[REFERRAL_ID_EXAMPLE],
        min_length=1,
        max_length=64,
    )

    @property
    def key(self) -> str:
        """Kafka key: the referral id, so one referral's events keep their order."""
        return self.referral_id


class ReferralSubmitted(EventPayload):
    """A referrer organisation submitted a new referral; routing should assign it."""

    EVENT_TYPE: ClassVar[str] = "rx.referrals.ReferralSubmitted.v1"

    sequence: int = Field(ge=1, description="Per-referral event sequence number (1 here).")
    version: int = Field(ge=1, description="Referral version after this change (1 here).")
    actor: Actor = Field(description="The referrer organisation and practitioner.")
    referrer_org: str = Field(
        pattern=ODS_CODE, description="ODS code of the referring organisation.", examples=["B81001"]
    )
    service_type: ServiceType = Field(description="What the referrer asks for.")
    priority: Priority = Field(description="FHIR request priority.")
    postcode_district: str = Field(
        pattern=r"^[A-Z]{1,2}[0-9][A-Z0-9]?$",
        description="Outward code of the patient's postcode; routing maps it to a locality.",
        examples=["BS5"],
    )
    cohort: CohortFlags = Field(default_factory=CohortFlags, description="Cohort flags.")
    reason_code: str | None = Field(
        default=None,
        pattern=r"^[1-9][0-9]{5,17}$",
        description="SNOMED CT concept id for the reason for referral, where given.",
        examples=["129839007"],
    )
    submitted_at: datetime = Field(description="When the referrals service accepted it (UTC).")
    sharing: SharingFlags = Field(
        default_factory=SharingFlags, description="Sharing flags (never the details)."
    )


DECISION_SEQUENCE = (
    "Per-referral event sequence number of this decision: the one reserved for routing's "
    "decision when the referral entered 'submitted' at sequence s (s + 1), so a referral's "
    "events have no holes. Null when routing does not know the referral's number (a referral "
    "it saw before it kept numbers)."
)


class ReferralRouted(EventPayload):
    """Routing assigned the referral to an organisation; that organisation should act on it.

    Published to ``routing.decisions.v1`` and to the provider type's topic with one event id."""

    EVENT_TYPE: ClassVar[str] = "rx.routing.ReferralRouted.v1"

    decision_id: str = Field(description="Id of the routing decision.", min_length=1)
    sequence: int | None = Field(
        default=None,
        ge=2,
        description=DECISION_SEQUENCE,
    )
    attempt: int = Field(ge=1, description="1 for the first assignment, 2+ after re-routing.")
    assigned_org: str = Field(
        pattern=ODS_CODE, description="ODS code of the assigned organisation.", examples=["RVJ01"]
    )
    provider_type: ProviderType = Field(description="Type of the assigned organisation.")
    service_type: ServiceType = Field(description="Service type of the referral.")
    priority: Priority = Field(description="Priority of the referral.")
    locality: str = Field(
        description="Locality the patient lives in.", examples=["east-bristol"], min_length=1
    )
    rule_id: str | None = Field(
        default=None,
        description="Routing rule that chose the organisation; null when a redirect or ops named the target.",
    )
    rule_version: int | None = Field(default=None, ge=1, description="Version of that rule.")
    routed_at: datetime = Field(description="When the decision was made (UTC).")


class ReferralUnroutable(EventPayload):
    """No organisation could be chosen; operations staff must act."""

    EVENT_TYPE: ClassVar[str] = "rx.routing.ReferralUnroutable.v1"

    decision_id: str = Field(description="Id of the routing decision.", min_length=1)
    sequence: int | None = Field(default=None, ge=2, description=DECISION_SEQUENCE)
    service_type: ServiceType = Field(description="Service type of the referral.")
    priority: Priority = Field(description="Priority of the referral.")
    locality: str | None = Field(
        default=None, description="Locality, if the postcode district is known."
    )
    reason: str = Field(
        description="Why no organisation was chosen.",
        examples=["no active organisation serves this locality"],
        max_length=500,
    )
    decided_at: datetime = Field(description="When the decision was made (UTC).")


class ReferralTransitioned(EventPayload):
    """Base of every change the referrals service makes after submission: where the referral
    is now, who did it, and when. Subscribers can keep a worklist from these alone."""

    sequence: int = Field(ge=2, description="Per-referral event sequence number.")
    version: int = Field(ge=2, description="Referral version after this change (its ETag).")
    actor: Actor = Field(description="The organisation (and practitioner) that acted.")
    status: ReferralStatus = Field(description="Status after this change.")
    referrer_org: str = Field(pattern=ODS_CODE, description="ODS code of the referrer.")
    assigned_org: str | None = Field(
        default=None, description="ODS code of the organisation assigned after this change."
    )
    provider_type: ProviderType | None = Field(
        default=None, description="Provider type of the organisation that held the referral."
    )
    service_type: ServiceType = Field(description="Service type of the referral.")
    priority: Priority = Field(description="Priority after this change.")
    occurred_at: datetime = Field(description="When the change was made (UTC).")
    sharing: SharingFlags = Field(
        default_factory=SharingFlags,
        description="Sharing flags after this change (never the details).",
    )


class ReferralAmended(ReferralTransitioned):
    """The referrer changed the referral before acceptance; a new version exists."""

    EVENT_TYPE: ClassVar[str] = "rx.referrals.ReferralAmended.v1"

    changed: list[str] = Field(
        description="Names of the fields that changed.", examples=[["priority"]]
    )
    cohort: CohortFlags = Field(description="Cohort flags after the change.")
    reason_code: str | None = Field(default=None, description="SNOMED CT reason after the change.")


class ReferralAccepted(ReferralTransitioned):
    """The assigned organisation accepted the referral."""

    EVENT_TYPE: ClassVar[str] = "rx.referrals.ReferralAccepted.v1"


class ReferralRejected(ReferralTransitioned):
    """The assigned organisation declined; routing chooses the next eligible organisation."""

    EVENT_TYPE: ClassVar[str] = "rx.referrals.ReferralRejected.v1"

    rejected_by: str = Field(
        pattern=ODS_CODE, description="ODS code of the organisation that declined."
    )
    reason_code: RejectionReason = Field(description="Why it declined.")


class ReferralRedirected(ReferralTransitioned):
    """The assigned organisation sent the referral elsewhere: a provider type or organisation."""

    EVENT_TYPE: ClassVar[str] = "rx.referrals.ReferralRedirected.v1"

    redirected_by: str = Field(
        pattern=ODS_CODE, description="ODS code of the redirecting organisation."
    )
    target_provider_type: ProviderType | None = Field(
        default=None, description="Provider type to route to next, if named."
    )
    target_org: str | None = Field(
        default=None, pattern=ODS_CODE, description="Organisation to route to next, if named."
    )


class ReferralStarted(ReferralTransitioned):
    """The assigned organisation started work with the patient."""

    EVENT_TYPE: ClassVar[str] = "rx.referrals.ReferralStarted.v1"


class ReferralCompleted(ReferralTransitioned):
    """The assigned organisation finished; the outcome says how it ended."""

    EVENT_TYPE: ClassVar[str] = "rx.referrals.ReferralCompleted.v1"

    outcome: Outcome = Field(description="How the referral ended.")


class ReferralCancelled(ReferralTransitioned):
    """The referrer withdrew the referral."""

    EVENT_TYPE: ClassVar[str] = "rx.referrals.ReferralCancelled.v1"

    reason_code: CancellationReason | None = Field(
        default=None,
        description="Why it was withdrawn; null when the referrer gave text only.",
        examples=["recovered"],
    )


class ReferralRerouted(ReferralTransitioned):
    """Operations staff sent the referral back to routing, optionally to a named target."""

    EVENT_TYPE: ClassVar[str] = "rx.referrals.ReferralRerouted.v1"

    target_provider_type: ProviderType | None = Field(
        default=None, description="Provider type to route to next, if named."
    )
    target_org: str | None = Field(
        default=None, pattern=ODS_CODE, description="Organisation to route to next, if named."
    )
    reason_code: str | None = Field(
        default=None,
        max_length=64,
        description="Why the platform re-routed it (e.g. 'acceptance-timeout', actor 'RX'); "
        "null when ops did.",
        examples=["acceptance-timeout"],
    )


class ReferralNhsNumberRecorded(ReferralTransitioned):
    """The referrer recorded the patient's NHS number or its verification (for example a
    person referred without one, traced later): an amendment of the patient's identity. The
    number itself is not in the event; entitled parties read it from the referrals API."""

    EVENT_TYPE: ClassVar[str] = "rx.referrals.ReferralNhsNumberRecorded.v1"

    verification: NhsNumberVerification = Field(
        description="Verification of the NHS number now recorded (verified or unverified)."
    )
    previous_verification: NhsNumberVerification = Field(
        description="Verification before the change: absent when the person had no NHS number."
    )


# ---- closing the loop: questions, messages, interim updates, failure ------------------------


class ReferralInfoRequested(ReferralTransitioned):
    """The assigned organisation asked the referrer a question before deciding (status
    ``info_requested``). Its acceptance clock pauses until the referrer answers. The question
    itself is read from the referrals API (history), not carried here."""

    EVENT_TYPE: ClassVar[str] = "rx.referrals.ReferralInfoRequested.v1"


class ReferralInfoProvided(ReferralTransitioned):
    """The referrer answered the assigned organisation's question: the referral is ``routed``
    to the same organisation again and its acceptance clock runs on."""

    EVENT_TYPE: ClassVar[str] = "rx.referrals.ReferralInfoProvided.v1"

    attachment_id: str | None = Field(
        default=None,
        max_length=64,
        description="Id of the document attached to the answer, if any (read it from the "
        "referrals API).",
    )


class ReferralMessageAdded(ReferralTransitioned):
    """The referrer or the assigned organisation added a note to the referral. The text is
    read from the referrals API (history), not carried here."""

    EVENT_TYPE: ClassVar[str] = "rx.referrals.ReferralMessageAdded.v1"

    attachment_id: str | None = Field(
        default=None,
        max_length=64,
        description="Id of the document attached to the message, if any.",
    )


class ReferralProgressReported(ReferralTransitioned):
    """The assigned organisation sent an interim update before completing (for example the
    patient was contacted, or a visit was booked)."""

    EVENT_TYPE: ClassVar[str] = "rx.referrals.ReferralProgressReported.v1"

    progress_code: ProgressCode = Field(description="What the update says.")


class ReferralFailed(ReferralTransitioned):
    """The assigned organisation accepted the referral but could not deliver it (status
    ``failed``, an end distinct from ``completed``)."""

    EVENT_TYPE: ClassVar[str] = "rx.referrals.ReferralFailed.v1"

    reason_code: FailureReason = Field(description="Why it could not be delivered.")
