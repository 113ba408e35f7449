"""API request and response bodies. Unknown fields are refused."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, StrictBool
from rx_contracts import (
    CancellationReason,
    CohortFlags,
    FailureReason,
    Outcome,
    Priority,
    ProgressCode,
    ProviderType,
    ReferralStatus,
    RejectionReason,
    ServiceType,
)

from ...domain.lifecycle import Action


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReferrerIn(Strict):
    organisation: str = Field(
        description="ODS code of the referring organisation.", examples=["B81001"]
    )
    practitioner: str | None = Field(
        default=None, max_length=64, description="Professional id of the referring practitioner."
    )


class PatientIn(Strict):
    nhs_number: str | None = Field(
        default=None,
        description="10-digit NHS number with a valid Modulus 11 check digit; optional.",
        examples=["9434765919"],
    )
    name: str | None = Field(default=None, max_length=200, examples=["Alex Smith"])
    birth_date: str | None = Field(
        default=None, pattern=r"^\d{4}-\d{2}-\d{2}$", examples=["1941-03-07"]
    )
    postcode: str = Field(description="UK postcode of the patient's home.", examples=["BS5 0AA"])


class CohortIn(Strict):
    """Cohort flags as a caller sends them: JSON booleans only (not 0/1 or "yes")."""

    care_home_resident: StrictBool = Field(default=False, description="Lives in a care home.")
    frailty: StrictBool = Field(default=False, description="Identified as living with frailty.")
    end_of_life: StrictBool = Field(default=False, description="In the last year of life.")

    def flags(self) -> CohortFlags:
        return CohortFlags(**self.model_dump())


class ReasonIn(Strict):
    code: str | None = Field(
        default=None,
        pattern=r"^[1-9][0-9]{5,17}$",
        description="SNOMED CT concept id.",
        examples=["129839007"],
    )
    text: str | None = Field(default=None, max_length=2000, examples=["Fall at home, no injury"])


class ReferralCreate(Strict):
    """A new referral from a referrer organisation."""

    referrer: ReferrerIn
    patient: PatientIn
    service_type: ServiceType
    priority: Priority = Priority.ROUTINE
    cohort: CohortIn = Field(default_factory=CohortIn)
    reason: ReasonIn | None = None
    clinical_summary: str | None = Field(default=None, max_length=10000)

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "referrer": {"organisation": "B81001", "practitioner": "G1234567"},
                    "patient": {"nhs_number": "9434765919", "postcode": "BS5 0AA"},
                    "service_type": "urgent-community-response",
                    "priority": "urgent",
                    "cohort": {"frailty": True},
                    "reason": {"code": "129839007", "text": "Fall at home, no injury"},
                }
            ]
        },
    )


class PatientAmend(Strict):
    """Patient details that can be corrected; the postcode cannot (cancel and refer again)."""

    nhs_number: str | None = Field(default=None, examples=["9434765919"])
    name: str | None = Field(default=None, max_length=200)
    birth_date: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")


class ReferralAmend(Strict):
    """Fields to change before acceptance; omitted fields stay as they are."""

    priority: Priority | None = None
    cohort: CohortIn | None = None
    reason: ReasonIn | None = None
    clinical_summary: str | None = Field(default=None, max_length=10000)
    patient: PatientAmend | None = None

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"priority": "asap"}]}
    )


class Empty(Strict):
    """No details needed."""


class Reject(Strict):
    reason_code: RejectionReason = Field(description="Why your organisation declines.")
    reason_text: str | None = Field(
        default=None, max_length=2000, description="Required when reason_code is 'other'."
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "reason_code": "not-available-within-timescale",
                    "reason_text": "No capacity before 18:00",
                }
            ]
        },
    )


class Redirect(Strict):
    target_provider_type: ProviderType | None = Field(
        default=None, description="Route to this provider type."
    )
    target_org: str | None = Field(
        default=None, description="Route to this organisation (ODS code)."
    )
    reason_text: str = Field(min_length=1, max_length=2000, description="Why it should go there.")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "target_provider_type": "social-care",
                    "reason_text": "Needs a care package, not clinical input",
                }
            ]
        },
    )


class Complete(Strict):
    outcome: Outcome = Field(
        description="How the referral ended: one of the outcomes of its service type "
        "(docs/api.md lists them)."
    )
    summary: str | None = Field(
        default=None, max_length=10000, description="Required when outcome is 'other'."
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"outcome": "remained-at-home", "summary": "Mobilising safely"}]
        },
    )


class Cancel(Strict):
    reason_code: CancellationReason | None = Field(
        default=None, description="Why the referral is withdrawn, coded."
    )
    reason_text: str | None = Field(
        default=None,
        min_length=1,
        max_length=2000,
        description="Why the referral is withdrawn; required without a reason_code and for "
        "'other'.",
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"reason_code": "recovered", "reason_text": "Mobilising again after a night's rest"}
            ]
        },
    )


class Reroute(Strict):
    target_provider_type: ProviderType | None = Field(
        default=None, description="Route to this provider type."
    )
    target_org: str | None = Field(
        default=None, description="Route to this organisation (ODS code)."
    )
    reason_text: str = Field(min_length=1, max_length=2000)

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"target_org": "RXA02", "reason_text": "Locality cover agreed by phone"}]
        },
    )


class RequestInfo(Strict):
    question: str = Field(
        min_length=1, max_length=2000, description="What the referrer should answer."
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"question": "Is there a key safe, and its code?"}]},
    )


class ProvideInfo(Strict):
    answer: str = Field(min_length=1, max_length=2000, description="The referrer's answer.")
    attachment_id: str | None = Field(
        default=None,
        max_length=64,
        description="A document already attached to this referral that goes with the answer.",
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"answer": "Key safe by the front door, code 4512"}]},
    )


class MessageIn(Strict):
    text: str = Field(min_length=1, max_length=2000, description="The note.")
    attachment_id: str | None = Field(
        default=None,
        max_length=64,
        description="A document already attached to this referral that goes with the note.",
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"text": "Daughter will be at the house from 14:00"}]},
    )


class ReportProgress(Strict):
    progress_code: ProgressCode = Field(description="What the update says.")
    text: str | None = Field(
        default=None,
        max_length=2000,
        description="Details (for example when the visit is booked); required for 'other'.",
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"progress_code": "visit-booked", "text": "Visit booked for 15:30 today"}]
        },
    )


class Fail(Strict):
    reason_code: FailureReason = Field(description="Why the referral could not be delivered.")
    reason_text: str | None = Field(
        default=None, max_length=2000, description="Required when reason_code is 'other'."
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"reason_code": "failed-contact", "reason_text": "Three calls, no answer at door"}
            ]
        },
    )


class ReferralPublic(BaseModel):
    """A referral as its referrer, its assigned organisation or ops see it."""

    id: str
    status: ReferralStatus
    version: int = Field(description="Send as If-Match (quoted) with your next change.")
    referrer_org: str
    practitioner: str | None
    patient: PatientIn
    service_type: ServiceType
    priority: Priority
    cohort: CohortFlags
    reason: ReasonIn | None
    clinical_summary: str | None
    assigned_org: str | None
    assigned_provider_type: ProviderType | None
    outcome: Outcome | None
    created_at: datetime
    due_at: datetime = Field(description="When a response is due, from the priority.")
    allowed_actions: list[Action] = Field(description="What you may do now.")


class ReferralSummary(BaseModel):
    """A worklist line: what a team needs to triage, and no patient identifiers or clinical
    text. Reading the whole referral (GET /referrals/{id}) is recorded as an access; listing
    a worklist is not, so it shows no more than the events carry."""

    id: str
    status: ReferralStatus
    version: int = Field(description="Send as If-Match (quoted) with your next change.")
    referrer_org: str
    service_type: ServiceType
    priority: Priority
    cohort: CohortFlags
    reason_code: str | None = Field(description="SNOMED CT concept id of the reason, if given.")
    postcode_district: str = Field(description="Outward code of the patient's postcode.")
    assigned_org: str | None
    assigned_provider_type: ProviderType | None
    outcome: Outcome | None
    created_at: datetime
    due_at: datetime = Field(description="When a response is due, from the priority.")
    allowed_actions: list[Action] = Field(description="What you may do now.")


class Worklist(BaseModel):
    items: list[ReferralSummary]
    next_cursor: str | None = Field(
        description="Pass as cursor for the next page; null at the end."
    )


class TransitionPublic(BaseModel):
    sequence: int
    action: str
    to_status: ReferralStatus
    actor_org: str
    actor_practitioner: str | None
    reason_code: str | None
    note: str | None = Field(
        description="Free text of the step: a reason, a summary, a question, an answer or a "
        "message."
    )
    attachment_id: str | None = Field(
        default=None, description="A document sent with a message or an answer."
    )
    at: datetime
    event_id: str
