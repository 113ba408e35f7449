"""The referrals service's tables (its own database; no other service reads it)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rx_messaging.tables import InboxMessage, OutboxMessage, tables_of
from sqlalchemy import JSON, Column, LargeBinary
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class ReferralRow(SQLModel, table=True):
    __tablename__ = "referral"

    id: str = Field(primary_key=True, max_length=64)
    status: str = Field(index=True, max_length=32)
    version: int
    sequence: int
    referrer_org: str = Field(index=True, max_length=10)
    practitioner: str | None = Field(default=None, max_length=64)
    patient_nhs_number: str | None = Field(default=None, max_length=10)
    patient_name: str | None = Field(default=None, max_length=200)
    patient_birth_date: str | None = Field(default=None, max_length=10)
    patient_postcode: str = Field(max_length=8)
    # Identity without an NHS number, and the sharing basis (consent) with who recorded it.
    patient_nhs_number_verification: str = Field(default="absent", max_length=16)
    patient_local_id: str | None = Field(default=None, max_length=64)
    patient_local_id_org: str | None = Field(default=None, max_length=10)
    national_data_opt_out: bool = False
    consent_basis: str | None = Field(default=None, max_length=32)
    consent_recorded_by_org: str | None = Field(default=None, max_length=10)
    consent_recorded_by_practitioner: str | None = Field(default=None, max_length=64)
    consent_recorded_at: datetime | None = None
    service_type: str = Field(max_length=64)
    priority: str = Field(max_length=16)
    care_home_resident: bool = False
    frailty: bool = False
    end_of_life: bool = False
    reason_code: str | None = Field(default=None, max_length=18)
    reason_text: str | None = Field(default=None, max_length=2000)
    clinical_summary: str | None = Field(default=None, max_length=10000)
    assigned_org: str | None = Field(default=None, index=True, max_length=10)
    assigned_provider_type: str | None = Field(default=None, max_length=32)
    outcome: str | None = Field(default=None, max_length=32)
    rejected_by: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # The referrer's own identifier for the referral (FHIR ServiceRequest.identifier), if given.
    referrer_identifier_system: str | None = Field(default=None, max_length=200)
    referrer_identifier_value: str | None = Field(default=None, index=True, max_length=200)
    created_at: datetime
    due_at: datetime = Field(index=True)
    updated_at: datetime = Field(default_factory=utcnow)


class TransitionRow(SQLModel, table=True):
    """One line of a referral's history: what happened, who did it, when."""

    __tablename__ = "referral_transition"

    id: int | None = Field(default=None, primary_key=True)
    referral_id: str = Field(index=True, foreign_key="referral.id", max_length=64)
    sequence: int
    action: str = Field(max_length=32)
    to_status: str = Field(max_length=32)
    actor_org: str = Field(max_length=10)
    actor_practitioner: str | None = Field(default=None, max_length=64)
    event_id: str = Field(max_length=64)
    reason_code: str | None = Field(default=None, max_length=64)
    note: str | None = Field(default=None, max_length=2000)
    attachment_id: str | None = Field(
        default=None,
        max_length=64,
        description="A document sent with this step (a message or an answer), if any.",
    )
    at: datetime = Field(default_factory=utcnow)


class AttachmentRow(SQLModel, table=True):
    """A document attached to a referral, kept in this service's database with it."""

    __tablename__ = "referral_attachment"

    id: str = Field(primary_key=True, max_length=64)
    referral_id: str = Field(index=True, foreign_key="referral.id", max_length=64)
    filename: str = Field(max_length=200)
    content_type: str = Field(max_length=64)
    size: int
    sha256: str = Field(max_length=64)
    content: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    uploaded_by: str = Field(max_length=10)
    created_at: datetime = Field(default_factory=utcnow)
    # The uploader's own identifier for the document (FHIR DocumentReference.masterIdentifier).
    identifier_system: str | None = Field(default=None, max_length=200)
    identifier_value: str | None = Field(default=None, index=True, max_length=200)


class IdempotencyRow(SQLModel, table=True):
    """The first response to a POST with an Idempotency-Key, replayed for retries."""

    __tablename__ = "idempotency_key"

    organisation: str = Field(primary_key=True, max_length=10)
    key: str = Field(primary_key=True, max_length=255)
    fingerprint: str = Field(max_length=64)
    status_code: int
    body: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    headers: dict[str, str] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class AccessRecordRow(SQLModel, table=True):
    """One read of a referral's patient data: who, which part, when. Written in the read's
    transaction together with its ReferralAccessed event in the outbox."""

    __tablename__ = "referral_access"

    id: str = Field(primary_key=True, max_length=64)
    referral_id: str = Field(index=True, foreign_key="referral.id", max_length=64)
    organisation: str = Field(max_length=10)
    practitioner: str | None = Field(default=None, max_length=64)
    client_id: str | None = Field(default=None, max_length=64)
    roles: str = Field(max_length=64, description="Comma-separated roles of the reader.")
    accessed: str = Field(max_length=32)
    attachment_id: str | None = Field(default=None, max_length=64)
    event_id: str = Field(max_length=64)
    at: datetime = Field(default_factory=utcnow)


class ReferralVersionRow(SQLModel, table=True):
    """A referral as it was at a version since superseded (the current one is its referral
    row), kept so every version stays readable (FHIR vread). Written by the unit of work in
    the transaction that supersedes it."""

    __tablename__ = "referral_version"

    referral_id: str = Field(primary_key=True, foreign_key="referral.id", max_length=64)
    version: int = Field(primary_key=True)
    state: dict[str, Any] = Field(
        sa_column=Column(JSON, nullable=False),
        description="The referral row's columns at that version (times as ISO 8601).",
    )
    updated_at: datetime


class AssignmentRow(SQLModel, table=True):
    """One assignment of a referral to an organisation, from routing until it ends (accepted
    work completed, declined, withdrawn or cancelled): a FHIR Task. A new assignment after a
    rejection is a new row; the declined one stays as it ended. ``status`` uses the FHIR Task
    status codes, which the lifecycle maps onto one to one."""

    __tablename__ = "referral_assignment"

    id: str = Field(primary_key=True, max_length=64)
    referral_id: str = Field(index=True, foreign_key="referral.id", max_length=64)
    organisation: str = Field(index=True, max_length=10)
    provider_type: str = Field(max_length=32)
    referrer_org: str = Field(index=True, max_length=10)
    status: str = Field(index=True, max_length=32)
    business_status: str = Field(max_length=32)
    reason_code: str | None = Field(default=None, max_length=64)
    reason_text: str | None = Field(default=None, max_length=2000)
    outcome: str | None = Field(default=None, max_length=32)
    outcome_text: str | None = Field(default=None, max_length=10000)
    opened_at: datetime
    first_version: int = Field(description="The referral's version when it was assigned.")
    version: int = Field(description="The referral's version at this assignment's last change.")
    open: bool = Field(index=True)
    updated_at: datetime = Field(index=True)


class AssignmentVersionRow(SQLModel, table=True):
    """What an assignment's own fields were at each version of its referral while it was open
    (the rest of a Task comes from the referral at that version)."""

    __tablename__ = "referral_assignment_version"

    assignment_id: str = Field(
        primary_key=True, foreign_key="referral_assignment.id", max_length=64
    )
    version: int = Field(primary_key=True)
    status: str = Field(max_length=32)
    business_status: str = Field(max_length=32)
    reason_code: str | None = Field(default=None, max_length=64)
    reason_text: str | None = Field(default=None, max_length=2000)
    outcome: str | None = Field(default=None, max_length=32)
    outcome_text: str | None = Field(default=None, max_length=10000)
    updated_at: datetime


TABLES = tables_of(
    ReferralRow,
    TransitionRow,
    AttachmentRow,
    IdempotencyRow,
    AccessRecordRow,
    ReferralVersionRow,
    AssignmentRow,
    AssignmentVersionRow,
    OutboxMessage,
    InboxMessage,
)
"""Everything this service stores, and nothing another service defines."""
