"""The Referral aggregate. Pure Python: it enforces the lifecycle and records the events
each change causes; the unit of work writes those events to the outbox."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from rx_contracts import (
    Actor,
    CohortFlags,
    EventPayload,
    Priority,
    ProviderType,
    ReferralStatus,
    ReferralSubmitted,
    ServiceType,
)

from . import identifiers
from .errors import IllegalTransition


@dataclass
class Patient:
    """Who the referral is for. Never leaves this service in an event."""

    postcode: str
    nhs_number: str | None = None
    name: str | None = None
    birth_date: str | None = None


@dataclass(frozen=True)
class Transition:
    """One step of a referral's history. ``event`` is what this service publishes for it;
    a step caused by another service's event (routing) carries that event's id instead."""

    sequence: int
    action: str
    to_status: ReferralStatus
    actor: Actor
    at: datetime
    event: EventPayload | None = None
    cause_event_id: str | None = None


PLATFORM = Actor(organisation="RX")


@dataclass
class Referral:
    id: str
    referrer_org: str
    practitioner: str | None
    patient: Patient
    service_type: ServiceType
    priority: Priority
    cohort: CohortFlags
    reason_code: str | None
    reason_text: str | None
    clinical_summary: str | None
    created_at: datetime
    status: ReferralStatus = ReferralStatus.SUBMITTED
    version: int = 1
    sequence: int = 1
    assigned_org: str | None = None
    assigned_provider_type: ProviderType | None = None
    pending: list[Transition] = field(default_factory=list, repr=False)
    """Transitions made since loading; the unit of work stores them and their events."""

    @property
    def postcode_district(self) -> str:
        return identifiers.postcode(self.patient.postcode)[1]

    @classmethod
    def submit(
        cls,
        *,
        referral_id: str,
        referrer_org: str,
        practitioner: str | None,
        patient: Patient,
        service_type: ServiceType,
        priority: Priority,
        cohort: CohortFlags,
        reason_code: str | None,
        reason_text: str | None,
        clinical_summary: str | None,
        now: datetime,
    ) -> Referral:
        """A new referral in ``submitted``, with its ReferralSubmitted event recorded."""
        referrer_org = identifiers.ods_code(referrer_org, "referrer.organisation")
        normalised, _ = identifiers.postcode(patient.postcode)
        nhs = identifiers.nhs_number(patient.nhs_number) if patient.nhs_number else None
        patient = Patient(normalised, nhs, patient.name, patient.birth_date)
        referral = cls(
            id=referral_id,
            referrer_org=referrer_org,
            practitioner=practitioner,
            patient=patient,
            service_type=service_type,
            priority=priority,
            cohort=cohort,
            reason_code=reason_code,
            reason_text=reason_text,
            clinical_summary=clinical_summary,
            created_at=now,
        )
        actor = Actor(organisation=referrer_org, practitioner=practitioner)
        event = ReferralSubmitted(
            referral_id=referral_id,
            sequence=1,
            version=1,
            actor=actor,
            referrer_org=referrer_org,
            service_type=service_type,
            priority=priority,
            postcode_district=referral.postcode_district,
            cohort=cohort,
            reason_code=reason_code,
            submitted_at=now,
        )
        referral.pending.append(
            Transition(1, "submit", ReferralStatus.SUBMITTED, actor, now, event)
        )
        return referral

    def record_routing(
        self, assigned_org: str, provider_type: ProviderType, at: datetime, cause_event_id: str
    ) -> None:
        """Routing assigned the referral. Routing's own event is the record of the change,
        so this service publishes nothing for it."""
        self._move("route", ReferralStatus.ROUTED, at, cause_event_id)
        self.assigned_org = assigned_org
        self.assigned_provider_type = provider_type

    def record_unroutable(self, at: datetime, cause_event_id: str) -> None:
        """Routing found no organisation; ops must act."""
        self._move("unroutable", ReferralStatus.UNROUTABLE, at, cause_event_id)

    def _move(self, action: str, to: ReferralStatus, at: datetime, cause_event_id: str) -> None:
        if self.status is not ReferralStatus.SUBMITTED:
            raise IllegalTransition(f"cannot {action} a {self.status.value} referral")
        self.status = to
        self.version += 1
        self.sequence += 1
        self.pending.append(
            Transition(self.sequence, action, to, PLATFORM, at, None, cause_event_id)
        )
