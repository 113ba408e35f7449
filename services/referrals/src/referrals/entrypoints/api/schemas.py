"""API request and response bodies. Unknown fields are refused."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from rx_contracts import CohortFlags, Priority, ProviderType, ReferralStatus, ServiceType


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
    cohort: CohortFlags = Field(default_factory=CohortFlags)
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


class ReferralPublic(BaseModel):
    """A referral as its referrer and assigned organisation see it."""

    id: str
    status: ReferralStatus
    version: int
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
    created_at: datetime


class TransitionPublic(BaseModel):
    sequence: int
    action: str
    to_status: ReferralStatus
    actor_org: str
    actor_practitioner: str | None
    at: datetime
    event_id: str
