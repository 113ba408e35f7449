"""API request and response bodies. Unknown fields are refused."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool
from rx_contracts import (
    CancellationReason,
    CohortFlags,
    FailureReason,
    NhsNumberVerification,
    Outcome,
    Priority,
    ProgressCode,
    ProviderType,
    ReferralStatus,
    RejectionReason,
    ServiceType,
    SharingBasis,
)
from rx_web.params import on_strings

from ...domain.lifecycle import Action
from ...domain.patient import LocalIdentifier, Patient
from ...domain.sharing import CONSENT_REQUIRED, ConsentGiven


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _text_only(value: object) -> object:
    """A JSON time is an RFC 3339 string: a number (read as seconds since 1970 by default)
    is refused rather than guessed at."""
    if not isinstance(value, str):
        raise ValueError("give the time as an RFC 3339 string, for example 2026-12-03T09:30:00Z")
    return value


Instant = Annotated[datetime, BeforeValidator(_text_only)]
"""A date-time a caller sends: text only."""


# What the identifier rules (domain/identifiers.py) accept, before they normalise it: written
# into the schema only, so that the domain's own rule names reach the caller on a refusal.
ODS_CODE: dict[str, Any] = {"pattern": r"^\s*[A-Za-z0-9]{3,10}\s*$"}
NHS_NUMBER = on_strings(pattern=r"^(( *\d){10} *)?$", format="nhs-number")
POSTCODE: dict[str, Any] = {
    "pattern": r"^\s*[A-Za-z]{1,2}[0-9][A-Za-z0-9]?\s*[0-9][ABD-HJLNP-UW-Zabd-hjlnp-uw-z]{2}\s*$"
}
NHS_NUMBER_RULE = (
    "10 digits (spaces ignored; empty: none), the last a Modulus 11 check digit. The check "
    "digit cannot be "
    "written in this schema: a number that fails it is refused with 422 "
    "(rule nhs_number_check_digit)."
)


WORDS: dict[str, Any] = {"pattern": r"\S"}
"""Text the domain refuses when it is only spaces: at least one other character."""


def text_required_for_other(code: str, text: str) -> dict[str, Any]:
    """``text`` must say something when ``code`` is 'other' (as the domain checks)."""
    return {
        "anyOf": [
            {"properties": {code: {"not": {"const": "other"}}}},
            {"required": [text], "properties": {text: {"type": "string", "pattern": r"\S"}}},
        ]
    }


class ReferrerIn(Strict):
    organisation: str = Field(
        description="ODS code of the referring organisation (3-10 letters and digits, read as "
        "capitals; surrounding spaces ignored): your own organisation's.",
        examples=["B81001"],
        json_schema_extra=ODS_CODE,
    )
    practitioner: str | None = Field(
        default=None, max_length=64, description="Professional id of the referring practitioner."
    )


class LocalIdentifierIn(Strict):
    """An identifier the person has at one organisation, for a person without an NHS number."""

    value: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"\S",
        examples=["SC-204817"],
        description="Not only spaces; surrounding spaces are dropped.",
    )
    organisation: str = Field(
        description="ODS code of the organisation that issued it.",
        examples=["SCB01"],
        json_schema_extra=ODS_CODE,
    )

    def identifier(self) -> LocalIdentifier:
        return LocalIdentifier(self.value, self.organisation)


class PatientIn(Strict):
    nhs_number: str | None = Field(
        default=None,
        description=f"NHS number, optional: {NHS_NUMBER_RULE}",
        examples=["9434765919"],
        json_schema_extra=NHS_NUMBER,
    )
    nhs_number_verification: NhsNumberVerification | None = Field(
        default=None,
        description="verified (traced on PDS) or unverified (present but not traced; the "
        "default with a number); absent when there is no NHS number.",
    )
    local_identifier: LocalIdentifierIn | None = Field(
        default=None, description="For a person without an NHS number: who they are locally."
    )
    national_data_opt_out: StrictBool = Field(
        default=False,
        description="The patient has a recorded national data opt-out: the referral is left "
        "out of evaluation figures.",
    )
    name: str | None = Field(default=None, max_length=200, examples=["Alex Smith"])
    birth_date: str | None = Field(
        default=None, pattern=r"^\d{4}-\d{2}-\d{2}$", examples=["1941-03-07"]
    )
    postcode: str = Field(
        description="UK postcode of the patient's home, a BS 7666 shape (A9 9AA, A99 9AA, "
        "AA9 9AA, AA99 9AA, A9A 9AA, AA9A 9AA; any case, the space optional).",
        examples=["BS5 0AA"],
        json_schema_extra=POSTCODE,
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            # The verification status agrees with the number (domain/patient.py): absent
            # exactly when there is none.
            "anyOf": [
                {
                    "required": ["nhs_number"],
                    "properties": {
                        "nhs_number": {"type": "string", "pattern": r"\d"},
                        "nhs_number_verification": {"not": {"const": "absent"}},
                    },
                },
                {
                    "properties": {
                        "nhs_number": {"not": {"type": "string", "pattern": r"\d"}},
                        "nhs_number_verification": {"enum": [None, "absent"]},
                    }
                },
            ]
        },
    )

    def patient(self) -> Patient:
        local = self.local_identifier
        return Patient(
            self.postcode,
            self.nhs_number,
            self.name,
            self.birth_date,
            self.nhs_number_verification,
            local.identifier() if local else None,
            self.national_data_opt_out,
        )


class ConsentIn(Strict):
    """The basis on which the person's details are shared; required for social care."""

    basis: SharingBasis = Field(
        description="explicit-consent, implied-direct-care, best-interests (lacks capacity) "
        "or safeguarding."
    )
    recorded_by: str | None = Field(
        default=None,
        max_length=64,
        description="Professional id of the practitioner who recorded it; yours by default.",
    )
    recorded_at: Instant | None = Field(
        default=None, description="When it was recorded, with its offset; now by default."
    )

    def given(self) -> ConsentGiven:
        return ConsentGiven(self.basis, self.recorded_by, self.recorded_at)


class ConsentPublic(BaseModel):
    """The recorded sharing basis, shown to the referrer and the receiving organisation."""

    basis: SharingBasis
    recorded_by_org: str = Field(description="ODS code of the organisation that recorded it.")
    recorded_by_practitioner: str | None
    recorded_at: datetime


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


NEEDS_CONSENT: list[Any] = sorted(t.value for t in CONSENT_REQUIRED)
"""The service types a referral needs a recorded sharing basis for."""


class ReferralCreate(Strict):
    """A new referral from a referrer organisation."""

    referrer: ReferrerIn
    patient: PatientIn
    service_type: ServiceType
    priority: Priority = Priority.ROUTINE
    cohort: CohortIn = Field(default_factory=CohortIn)
    reason: ReasonIn | None = None
    clinical_summary: str | None = Field(default=None, max_length=10000)
    consent: ConsentIn | None = Field(
        default=None, description="Sharing basis; required for social-care-assessment."
    )

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
            ],
            # A service type that needs a sharing basis (domain/sharing.py) comes with one.
            "anyOf": [
                {"properties": {"service_type": {"not": {"enum": NEEDS_CONSENT}}}},
                {"required": ["consent"], "properties": {"consent": {"type": "object"}}},
            ],
        },
    )


class PatientAmend(Strict):
    """Patient details that can be corrected; the postcode cannot (cancel and refer again)."""

    nhs_number: str | None = Field(
        default=None,
        description=f"NHS number: {NHS_NUMBER_RULE}",
        examples=["9434765919"],
        json_schema_extra=NHS_NUMBER,
    )
    name: str | None = Field(default=None, max_length=200)
    birth_date: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    local_identifier: LocalIdentifierIn | None = None
    national_data_opt_out: StrictBool = False


class ReferralAmend(Strict):
    """Fields to change before acceptance; omitted fields stay as they are."""

    priority: Priority | None = None
    cohort: CohortIn | None = None
    reason: ReasonIn | None = None
    clinical_summary: str | None = Field(default=None, max_length=10000)
    patient: PatientAmend | None = None
    consent: ConsentIn | None = Field(default=None, description="Record or correct the basis.")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"priority": "asap"}],
            # One field at least; that it differs from the stored referral cannot be written
            # here (an amendment that changes nothing is refused with 422, rule no_change).
            "minProperties": 1,
        },
    )


class RecordedVerification(StrEnum):
    """The verifications a recorded NHS number can have: ``absent`` means there is none."""

    VERIFIED = NhsNumberVerification.VERIFIED.value
    UNVERIFIED = NhsNumberVerification.UNVERIFIED.value


class RecordNhsNumber(Strict):
    """The person's NHS number, traced after referral, or a change of its verification."""

    nhs_number: str = Field(
        description=f"NHS number: {NHS_NUMBER_RULE.replace('; empty: none', '')}",
        examples=["9434765919"],
        json_schema_extra=on_strings(pattern=r"^( *\d){10} *$", format="nhs-number"),
    )
    verification: RecordedVerification = Field(
        description="verified (traced on PDS) or unverified (present but not traced)."
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"nhs_number": "9434765919", "verification": "verified"}]},
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
            ],
            **text_required_for_other("reason_code", "reason_text"),
        },
    )


class Redirect(Strict):
    target_provider_type: ProviderType | None = Field(
        default=None, description="Route to this provider type."
    )
    target_org: str | None = Field(
        default=None,
        description="Route to this organisation (ODS code).",
        json_schema_extra=ODS_CODE,
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
            ],
            # Name where it should go: a provider type, an organisation or both.
            "anyOf": [
                {
                    "required": ["target_provider_type"],
                    "properties": {"target_provider_type": {"type": "string"}},
                },
                {"required": ["target_org"], "properties": {"target_org": {"type": "string"}}},
            ],
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
            "examples": [{"outcome": "remained-at-home", "summary": "Mobilising safely"}],
            **text_required_for_other("outcome", "summary"),
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
            ],
            # As the domain checks: a reason_code other than 'other', or words in reason_text.
            "anyOf": [
                {
                    "required": ["reason_code"],
                    "properties": {"reason_code": {"type": "string", "not": {"const": "other"}}},
                },
                {
                    "required": ["reason_text"],
                    "properties": {"reason_text": {"type": "string", "pattern": r"\S"}},
                },
            ],
        },
    )


class Reroute(Strict):
    target_provider_type: ProviderType | None = Field(
        default=None, description="Route to this provider type."
    )
    target_org: str | None = Field(
        default=None,
        description="Route to this organisation (ODS code).",
        json_schema_extra=ODS_CODE,
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
        min_length=1,
        max_length=2000,
        description="What the referrer should answer (not only spaces).",
        json_schema_extra=WORDS,
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"question": "Is there a key safe, and its code?"}]},
    )


class ProvideInfo(Strict):
    answer: str = Field(
        min_length=1,
        max_length=2000,
        description="The referrer's answer (not only spaces).",
        json_schema_extra=WORDS,
    )
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
    text: str = Field(
        min_length=1,
        max_length=2000,
        description="The note (not only spaces).",
        json_schema_extra=WORDS,
    )
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
    consent: ConsentPublic | None = Field(description="The sharing basis, if recorded.")
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
