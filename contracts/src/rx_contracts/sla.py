"""Clock and escalation events, published by the routing service.

``SlaWarning`` and ``SlaBreached`` go to ``routing.sla.v1`` (operations, and the referrals
service, which re-routes on an acceptance breach when the policy says so) and to the provider
type's topic of the organisation holding the referral, so it sees its own clocks run out.
``ReferralEscalated`` goes to ``routing.escalations.v1``: something only a person can resolve.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from .events import ODS_CODE, EventPayload
from .vocabulary import Priority, ProviderType, ServiceType


class ClockKind(StrEnum):
    """What an SLA clock measures."""

    ACCEPTANCE = "acceptance"
    """From routing to an organisation until it accepts (one clock per assignment)."""
    RESPONSE = "response"
    """From submission until the assigned organisation starts work with the patient."""


class RerouteReason(StrEnum):
    """Why a referral was sent back to routing without anyone naming a target."""

    ACCEPTANCE_TIMEOUT = "acceptance-timeout"
    """The platform took it from an organisation that did not accept in time."""


class EscalationCause(StrEnum):
    """Why operations staff must act."""

    UNROUTABLE = "unroutable"
    """No organisation could be chosen."""
    SLA_BREACHED = "sla-breached"
    """A clock ran out and the platform will not re-route by itself."""


class _ClockEvent(EventPayload):
    """Fields every clock event carries: which clock, for which assignment, and its times."""

    clock_id: str = Field(
        min_length=1,
        max_length=128,
        description="Id of the clock; a warning and a breach of one clock share it.",
        examples=["0b6f1d2e-6a53-4c4c-9d4e-2f4f5e1a9c10:acceptance:1"],
    )
    kind: ClockKind = Field(description="What the clock measures.")
    sequence: int | None = Field(
        default=None,
        ge=1,
        description="Per-referral sequence number the referral was at when the clock fired: "
        "the event comes after that one in the referral's order and takes no number of its "
        "own. Null when routing does not know it.",
    )
    attempt: int | None = Field(
        default=None,
        ge=1,
        description="Routing attempt the clock belongs to (acceptance clocks; null for response).",
    )
    assigned_org: str | None = Field(
        default=None,
        pattern=ODS_CODE,
        description="ODS code of the organisation holding the referral when the clock fired.",
        examples=["RXA01"],
    )
    provider_type: ProviderType | None = Field(
        default=None, description="Provider type of that organisation."
    )
    service_type: ServiceType = Field(description="Service type of the referral.")
    priority: Priority = Field(description="Priority of the referral.")
    policy_id: str = Field(
        min_length=1,
        max_length=64,
        description="SLA policy that set the deadline.",
        examples=["urgent-community-response/urgent"],
    )
    started_at: datetime = Field(description="When the clock started (UTC).")
    deadline: datetime = Field(description="When the clock runs out (UTC).")


class SlaWarning(_ClockEvent):
    """A clock has used the policy's warning fraction of its time: act before the deadline."""

    EVENT_TYPE: ClassVar[str] = "rx.routing.SlaWarning.v1"

    warned_at: datetime = Field(description="When the warning fired (UTC).")


class SlaBreached(_ClockEvent):
    """A clock ran out. For an acceptance clock with ``auto_reroute`` the referrals service
    takes the referral from the organisation, if that organisation still holds it unaccepted,
    and routing chooses the next one."""

    EVENT_TYPE: ClassVar[str] = "rx.routing.SlaBreached.v1"

    breached_at: datetime = Field(description="When the breach fired (UTC).")
    auto_reroute: bool = Field(
        description="Whether the policy re-routes automatically on this breach "
        "(acceptance clocks only)."
    )


class ReferralEscalated(EventPayload):
    """Operations staff must act on a referral: nobody could be chosen, or a clock ran out
    with no automatic remedy."""

    EVENT_TYPE: ClassVar[str] = "rx.routing.ReferralEscalated.v1"

    cause: EscalationCause = Field(description="Why it is escalated.")
    service_type: ServiceType = Field(description="Service type of the referral.")
    priority: Priority = Field(description="Priority of the referral.")
    locality: str | None = Field(
        default=None, description="Locality of the patient, where the district is known."
    )
    assigned_org: str | None = Field(
        default=None,
        pattern=ODS_CODE,
        description="Organisation holding the referral, if any.",
    )
    detail: str = Field(
        max_length=500,
        description="What happened, for the person who picks it up.",
        examples=["no eligible rapid-response organisation serves east"],
    )
    escalated_at: datetime = Field(description="When it was escalated (UTC).")
