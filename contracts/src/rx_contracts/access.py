"""Access events: who read a referral's patient-identifying data, and what they read.

Published by the referrals service on ``referrals.access.v1`` in the same transaction as its own
record of the read, so every read that returned data is on the audit stream. Like every event,
they carry no patient data: only who read which referral, when, and which part."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from .events import Actor, EventPayload
from .identity import Role


class AccessedData(StrEnum):
    """Which part of a referral was read."""

    REFERRAL = "referral"
    """The referral itself, with the patient's details and the clinical summary."""
    ATTACHMENT_LIST = "attachment-list"
    """The list of its attachments (file names, types, sizes)."""
    ATTACHMENT = "attachment"
    """One attachment's content."""
    COMMUNICATIONS = "communications"
    """What was said about it: its history with the text of each step (questions, answers,
    messages, interim updates, reasons) or its FHIR Communications. New since the released
    1.0.0 contracts (a new value: compatible), so a subscriber must not treat this set as
    closed."""


class ReferralAccessed(EventPayload):
    """A caller read patient-identifying data of a referral it is entitled to see."""

    EVENT_TYPE: ClassVar[str] = "rx.referrals.ReferralAccessed.v1"

    access_id: str = Field(min_length=1, description="Id of this access in the referrals service.")
    actor: Actor = Field(description="The reading organisation and, where given, practitioner.")
    client_id: str | None = Field(
        default=None, description="The registered client system that read it, where known."
    )
    roles: list[Role] = Field(description="The roles the reader held (provider, ops, …).")
    accessed: AccessedData = Field(description="Which part of the referral was read.")
    attachment_id: str | None = Field(
        default=None, description="The attachment read, when ``accessed`` is attachment."
    )
    accessed_at: datetime = Field(description="When the referrals service served it (UTC).")
