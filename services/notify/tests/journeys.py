"""Hand-built lifecycle events for the notify tests: the envelopes the referrals and routing
services publish for one referral, with the sequence numbers they carry."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rx_contracts import (
    Actor,
    ClockKind,
    Envelope,
    FailureReason,
    NhsNumberVerification,
    Outcome,
    Priority,
    ProgressCode,
    ProviderType,
    ReferralAccepted,
    ReferralAmended,
    ReferralCancelled,
    ReferralCompleted,
    ReferralFailed,
    ReferralInfoProvided,
    ReferralInfoRequested,
    ReferralMessageAdded,
    ReferralNhsNumberRecorded,
    ReferralProgressReported,
    ReferralRejected,
    ReferralRerouted,
    ReferralRouted,
    ReferralStarted,
    ReferralStatus,
    ReferralSubmitted,
    ReferralUnroutable,
    RejectionReason,
    ServiceType,
    SlaBreached,
    new_id,
    wrap,
)
from rx_contracts.events import ReferralTransitioned

GP = "B81001"
TEAM = "RXA01"
OTHER_TEAM = "RXA02"
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


class Journey:
    """One referral's events, numbered as the referrals service numbers them."""

    def __init__(
        self, referral_id: str | None = None, priority: Priority = Priority.URGENT
    ) -> None:
        self.id = referral_id or new_id()
        self.priority = priority
        self.sequence = 0
        self.version = 0
        self.assigned: str | None = None
        self.attempt = 0

    def submitted(self) -> Envelope:
        self.sequence, self.version = 1, 1
        return wrap(
            ReferralSubmitted(
                referral_id=self.id,
                sequence=1,
                version=1,
                actor=Actor(organisation=GP),
                referrer_org=GP,
                service_type=ServiceType.URGENT_COMMUNITY_RESPONSE,
                priority=self.priority,
                postcode_district="BS5",
                submitted_at=NOW,
            ),
            source="/services/referrals",
        )

    def routed(self, org: str = TEAM, sequence: bool = True) -> Envelope:
        """Routing's decision; with ``sequence`` it carries the number reserved for it."""
        self.sequence += 1
        self.version += 1
        self.attempt += 1
        self.assigned = org
        data: dict[str, Any] = {"sequence": self.sequence} if sequence else {}
        payload = ReferralRouted(
            referral_id=self.id,
            decision_id=new_id(),
            attempt=self.attempt,
            assigned_org=org,
            provider_type=ProviderType.RAPID_RESPONSE,
            service_type=ServiceType.URGENT_COMMUNITY_RESPONSE,
            priority=self.priority,
            locality="east",
            routed_at=NOW,
        )
        envelope = wrap(payload, source="/services/routing")
        if data:
            envelope = envelope.model_copy(update={"data": {**envelope.data, **data}})
        return envelope

    def unroutable(self) -> Envelope:
        self.sequence += 1
        self.version += 1
        self.attempt += 1
        self.assigned = None
        envelope = wrap(
            ReferralUnroutable(
                referral_id=self.id,
                decision_id=new_id(),
                service_type=ServiceType.URGENT_COMMUNITY_RESPONSE,
                priority=self.priority,
                reason="no organisation",
                decided_at=NOW,
            ),
            source="/services/routing",
        )
        return envelope.model_copy(update={"data": {**envelope.data, "sequence": self.sequence}})

    def _step(
        self, model: type[ReferralTransitioned], status: ReferralStatus, actor: str, **extra: Any
    ) -> Envelope:
        holder = self.assigned
        self.sequence += 1
        self.version += 1
        release = status is ReferralStatus.SUBMITTED or status is ReferralStatus.CANCELLED
        if release:
            self.assigned = None
        return wrap(
            model(
                referral_id=self.id,
                sequence=self.sequence,
                version=self.version,
                actor=Actor(organisation=actor),
                status=status,
                referrer_org=GP,
                assigned_org=self.assigned,
                provider_type=ProviderType.RAPID_RESPONSE if holder else None,
                service_type=ServiceType.URGENT_COMMUNITY_RESPONSE,
                priority=extra.pop("priority", self.priority),
                occurred_at=NOW,
                **extra,
            ),
            source="/services/referrals",
        )

    def accepted(self) -> Envelope:
        return self._step(ReferralAccepted, ReferralStatus.ACCEPTED, self.assigned or TEAM)

    def started(self) -> Envelope:
        return self._step(ReferralStarted, ReferralStatus.IN_PROGRESS, self.assigned or TEAM)

    def completed(self) -> Envelope:
        return self._step(
            ReferralCompleted,
            ReferralStatus.COMPLETED,
            self.assigned or TEAM,
            outcome=Outcome.REMAINED_AT_HOME,
        )

    def rejected(self) -> Envelope:
        org = self.assigned or TEAM
        return self._step(
            ReferralRejected,
            ReferralStatus.SUBMITTED,
            org,
            rejected_by=org,
            reason_code=RejectionReason.NOT_AVAILABLE_WITHIN_TIMESCALE,
        )

    def rerouted(self) -> Envelope:
        return self._step(
            ReferralRerouted, ReferralStatus.SUBMITTED, "RX", reason_code="acceptance-timeout"
        )

    def amended(self, priority: Priority = Priority.ASAP) -> Envelope:
        status = ReferralStatus.ROUTED if self.assigned else ReferralStatus.SUBMITTED
        self.priority = priority
        return self._step(
            ReferralAmended,
            status,
            GP,
            changed=["priority"],
            cohort={"care_home_resident": False, "frailty": False, "end_of_life": False},
            priority=priority,
        )

    def info_requested(self) -> Envelope:
        return self._step(
            ReferralInfoRequested, ReferralStatus.INFO_REQUESTED, self.assigned or TEAM
        )

    def info_provided(self) -> Envelope:
        return self._step(ReferralInfoProvided, ReferralStatus.ROUTED, GP)

    def message(self, status: ReferralStatus) -> Envelope:
        return self._step(ReferralMessageAdded, status, GP)

    def nhs_number_recorded(self, status: ReferralStatus) -> Envelope:
        return self._step(
            ReferralNhsNumberRecorded,
            status,
            GP,
            verification=NhsNumberVerification.VERIFIED,
            previous_verification=NhsNumberVerification.ABSENT,
        )

    def progress(self) -> Envelope:
        return self._step(
            ReferralProgressReported,
            ReferralStatus.IN_PROGRESS,
            self.assigned or TEAM,
            progress_code=ProgressCode.VISIT_BOOKED,
        )

    def failed(self) -> Envelope:
        return self._step(
            ReferralFailed,
            ReferralStatus.FAILED,
            self.assigned or TEAM,
            reason_code=FailureReason.DID_NOT_ATTEND,
        )

    def cancelled(self) -> Envelope:
        return self._step(ReferralCancelled, ReferralStatus.CANCELLED, GP)

    def breached(self, at_sequence: int | None = None) -> Envelope:
        envelope = wrap(
            SlaBreached(
                referral_id=self.id,
                clock_id=f"{self.id}:acceptance:{self.attempt}",
                kind=ClockKind.ACCEPTANCE,
                attempt=self.attempt,
                assigned_org=self.assigned,
                provider_type=ProviderType.RAPID_RESPONSE,
                service_type=ServiceType.URGENT_COMMUNITY_RESPONSE,
                priority=self.priority,
                policy_id="urgent-community-response/urgent",
                started_at=NOW,
                deadline=NOW,
                breached_at=NOW,
                auto_reroute=True,
            ),
            source="/services/routing",
        )
        if at_sequence is not None:
            envelope = envelope.model_copy(
                update={"data": {**envelope.data, "sequence": at_sequence}}
            )
        return envelope
