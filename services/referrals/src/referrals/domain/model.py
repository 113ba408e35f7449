"""The Referral aggregate. Pure Python: it enforces the lifecycle and who may act, and records
the event each change causes; the unit of work writes those to the outbox."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from rx_contracts import (
    OUTCOMES,
    Actor,
    CancellationReason,
    CohortFlags,
    EventPayload,
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
    ReferralRedirected,
    ReferralRejected,
    ReferralRerouted,
    ReferralStarted,
    ReferralStatus,
    ReferralSubmitted,
    ReferralTransitioned,
    RejectionReason,
    RerouteReason,
    ServiceType,
    SharingFlags,
)

from . import identifiers, sharing
from .caller import Caller, Party
from .errors import IllegalTransition, InvalidRequest, NotPermitted, ReferralNotFound, StaleVersion
from .identifiers import Identifier
from .lifecycle import RULES, Action, allowed
from .patient import Patient, valid_patient
from .sharing import Consent, ConsentGiven

RESPONSE_TARGETS: dict[Priority, timedelta] = {
    Priority.STAT: timedelta(hours=1),
    Priority.ASAP: timedelta(hours=2),
    Priority.URGENT: timedelta(hours=24),
    Priority.ROUTINE: timedelta(days=14),
}
"""How soon a referral of each priority is due a response; worklists sort by it."""


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
    reason_code: str | None = None
    note: str | None = None
    attachment_id: str | None = None


@dataclass(frozen=True)
class HistoryEntry:
    """One stored step of a referral's history, as read back: who did what, when, and the id
    of the event that recorded it."""

    sequence: int
    action: str
    to_status: ReferralStatus
    actor_org: str
    actor_practitioner: str | None
    reason_code: str | None
    note: str | None
    at: datetime
    event_id: str
    attachment_id: str | None = None


PLATFORM = Actor(organisation="RX")
PLATFORM_CALLER = Caller(PLATFORM.organisation, frozenset())
"""The platform itself acting (automatic re-routing), recorded as actor ``RX``."""


ReferrerIdentifier = Identifier
"""The referrer's own identifier for a referral: FHIR's ServiceRequest.identifier."""


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
    due_at: datetime
    status: ReferralStatus = ReferralStatus.SUBMITTED
    version: int = 1
    sequence: int = 2
    """The highest per-referral sequence number given or reserved: entering ``submitted`` at
    s reserves s + 1 for routing's decision, so every event a subscriber sees has a number
    and a referrer's change while routing decides comes after the decision."""
    assigned_org: str | None = None
    assigned_provider_type: ProviderType | None = None
    outcome: Outcome | None = None
    rejected_by: list[str] = field(default_factory=list)
    consent: Consent | None = None
    identifier: ReferrerIdentifier | None = None
    """The referrer's own identifier for the referral, if it gave one (never changes)."""
    pending: list[Transition] = field(default_factory=list, repr=False)
    """Transitions made since loading; the unit of work stores them and their events."""

    @property
    def postcode_district(self) -> str:
        return identifiers.postcode(self.patient.postcode)[1]

    @property
    def sharing(self) -> SharingFlags:
        """What events say of the sharing basis: flags, never the details."""
        return SharingFlags(
            consent_recorded=self.consent is not None,
            data_opt_out=self.patient.national_data_opt_out,
        )

    # ---- who may see and do what -------------------------------------------------------

    def parties(self, caller: Caller) -> frozenset[Party]:
        return caller.parties(self.referrer_org, self.assigned_org)

    def visible_to(self, caller: Caller) -> bool:
        return bool(self.parties(caller))

    def allowed_actions(self, caller: Caller) -> list[Action]:
        return allowed(self.status, self.parties(caller))

    def check(self, action: Action, caller: Caller, if_match: int) -> None:
        """Raise unless ``caller`` may do ``action`` now: unseen (404), not theirs (403),
        stale version (412), wrong state (409), in that order."""
        parties = self.parties(caller)
        if not parties:
            raise ReferralNotFound(f"no referral {self.id}")
        names = [a.value for a in allowed(self.status, parties)]
        rule = RULES[action]
        if not rule.by & parties:
            who = " or ".join(sorted(p.value for p in rule.by))
            raise NotPermitted(
                f"only the {who} organisation may {action.value} this referral", names
            )
        if if_match != self.version:
            raise StaleVersion(if_match, self.version)
        if self.status not in rule.from_states:
            raise IllegalTransition(f"cannot {action.value} a {self.status.value} referral", names)

    # ---- creation ------------------------------------------------------------------------

    @classmethod
    def submit(
        cls,
        *,
        referral_id: str,
        caller: Caller,
        referrer_org: str,
        patient: Patient,
        service_type: ServiceType,
        priority: Priority,
        cohort: CohortFlags,
        reason_code: str | None,
        reason_text: str | None,
        clinical_summary: str | None,
        now: datetime,
        consent: ConsentGiven | None = None,
        identifier: ReferrerIdentifier | None = None,
    ) -> Referral:
        """A new referral in ``submitted``, with its ReferralSubmitted event recorded. Only a
        provider may refer, and only on behalf of its own organisation."""
        referrer_org = identifiers.ods_code(referrer_org, "referrer.organisation")
        if not caller.parties(referrer_org, None) & {Party.REFERRER}:
            raise NotPermitted(
                f"{caller.organisation} may not refer on behalf of {referrer_org}", []
            )
        recorded = consent.record(referrer_org, caller.practitioner, now) if consent else None
        sharing.require_for(service_type, recorded)
        referral = cls(
            id=referral_id,
            referrer_org=referrer_org,
            practitioner=caller.practitioner,
            patient=valid_patient(patient),
            service_type=service_type,
            priority=priority,
            cohort=cohort,
            reason_code=reason_code,
            reason_text=reason_text,
            clinical_summary=clinical_summary,
            created_at=now,
            due_at=now + RESPONSE_TARGETS[priority],
            consent=recorded,
            identifier=identifier,
        )
        event = ReferralSubmitted(
            referral_id=referral_id,
            sequence=1,
            version=1,
            actor=caller.actor,
            referrer_org=referrer_org,
            service_type=service_type,
            priority=priority,
            postcode_district=referral.postcode_district,
            cohort=cohort,
            reason_code=reason_code,
            submitted_at=now,
            sharing=referral.sharing,
        )
        referral.pending.append(
            Transition(1, "submit", ReferralStatus.SUBMITTED, caller.actor, now, event)
        )
        return referral  # sequence 2 is routing's

    # ---- transitions by providers and ops -------------------------------------------------

    def amend(self, caller: Caller, if_match: int, now: datetime, **changes: Any) -> list[str]:
        """Change details before acceptance: priority, cohort, reason_code, reason_text,
        clinical_summary, consent, or ``patient`` as a mapping of patient fields to change
        (not the postcode, which decided the routing, nor the NHS number, which has an action
        and an event of its own). Returns the names of the fields that changed."""
        self.check(Action.AMEND, caller, if_match)
        if "patient" in changes:
            patient_changes = dict(changes["patient"])
            if "postcode" in patient_changes:
                raise InvalidRequest(
                    "patient.postcode",
                    "not_amendable",
                    "the postcode cannot be amended; cancel and refer again",
                )
            for name in ("nhs_number", "nhs_number_verification"):
                if patient_changes.get(name, getattr(self.patient, name)) != getattr(
                    self.patient, name
                ):
                    raise InvalidRequest(
                        f"patient.{name}",
                        "use_record_nhs_number",
                        "record an NHS number or its verification with record-nhs-number",
                    )
            changes["patient"] = valid_patient(replace(self.patient, **patient_changes))
        if "consent" in changes:
            given = changes["consent"]
            if isinstance(given, ConsentGiven):
                given = given.record(caller.organisation, caller.practitioner, now)
            sharing.require_for(self.service_type, given)
            changes["consent"] = given
        changed = [name for name, value in changes.items() if getattr(self, name) != value]
        if not changed:
            raise InvalidRequest("body", "no_change", "the amendment changes nothing")
        for name in changed:
            setattr(self, name, changes[name])
        if "priority" in changed:
            self.due_at = self.created_at + RESPONSE_TARGETS[self.priority]
        self._record(
            Action.AMEND,
            caller,
            now,
            ReferralAmended,
            changed=changed,
            cohort=self.cohort,
            reason_code=self.reason_code,
        )
        return changed

    def accept(self, caller: Caller, if_match: int, now: datetime) -> None:
        self.check(Action.ACCEPT, caller, if_match)
        self._record(Action.ACCEPT, caller, now, ReferralAccepted)

    def reject(
        self,
        caller: Caller,
        if_match: int,
        now: datetime,
        reason: RejectionReason,
        text: str | None,
    ) -> None:
        """Decline: back to routing, which will not choose this organisation again."""
        self.check(Action.REJECT, caller, if_match)
        _text_required_for_other(reason, text, "reason_text")
        by = caller.organisation
        self.rejected_by.append(by)
        self._record(
            Action.REJECT,
            caller,
            now,
            ReferralRejected,
            release=True,
            rejected_by=by,
            reason_code=reason,
            history_code=reason.value,
            note=text,
        )

    def redirect(
        self,
        caller: Caller,
        if_match: int,
        now: datetime,
        target_provider_type: ProviderType | None,
        target_org: str | None,
        text: str,
    ) -> None:
        """Send elsewhere: back to routing, towards the named provider type or organisation."""
        self.check(Action.REDIRECT, caller, if_match)
        target_org = _target(target_provider_type, target_org)
        sharing.require_for_target(target_provider_type, self.consent)
        self._record(
            Action.REDIRECT,
            caller,
            now,
            ReferralRedirected,
            release=True,
            redirected_by=caller.organisation,
            target_provider_type=target_provider_type,
            target_org=target_org,
            note=text,
        )

    def start(self, caller: Caller, if_match: int, now: datetime) -> None:
        self.check(Action.START, caller, if_match)
        self._record(Action.START, caller, now, ReferralStarted)

    def complete(
        self, caller: Caller, if_match: int, now: datetime, outcome: Outcome, summary: str | None
    ) -> None:
        self.check(Action.COMPLETE, caller, if_match)
        if outcome not in OUTCOMES[self.service_type]:
            codes = ", ".join(OUTCOMES[self.service_type])
            raise InvalidRequest(
                "outcome",
                "not_for_service_type",
                f"'{outcome.value}' is not an outcome of {self.service_type.value}; use one of "
                f"{codes}",
            )
        _text_required_for_other(outcome, summary, "summary")
        self.outcome = outcome
        self._record(
            Action.COMPLETE,
            caller,
            now,
            ReferralCompleted,
            outcome=outcome,
            history_code=outcome.value,
            note=summary,
        )

    def cancel(
        self,
        caller: Caller,
        if_match: int,
        now: datetime,
        text: str | None,
        reason: CancellationReason | None = None,
    ) -> None:
        """Withdraw the referral, with a coded reason, free text, or both (text is needed
        without a code and for 'other')."""
        self.check(Action.CANCEL, caller, if_match)
        if reason is None:
            _text_required(text, "reason_text", "reason_text or reason_code is required")
        _text_required_for_other(reason, text, "reason_text")
        self._record(
            Action.CANCEL,
            caller,
            now,
            ReferralCancelled,
            reason_code=reason,
            history_code=reason.value if reason else None,
            note=text,
        )

    def reroute(
        self,
        caller: Caller,
        if_match: int,
        now: datetime,
        target_provider_type: ProviderType | None,
        target_org: str | None,
        text: str,
    ) -> None:
        """Ops send the referral back to routing (for example an unroutable one)."""
        self.check(Action.REROUTE, caller, if_match)
        target_org = _target(target_provider_type, target_org, required=False)
        sharing.require_for_target(target_provider_type, self.consent)
        self._record(
            Action.REROUTE,
            caller,
            now,
            ReferralRerouted,
            release=True,
            target_provider_type=target_provider_type,
            target_org=target_org,
            note=text,
        )

    def record_nhs_number(
        self,
        caller: Caller,
        if_match: int,
        now: datetime,
        nhs_number: str,
        verification: NhsNumberVerification,
    ) -> None:
        """The referrer or the assigned organisation records the person's NHS number (one
        referred without, traced later) or a change of its verification: an amendment with
        its own event (its actor says who recorded it), allowed until the referral ends."""
        self.check(Action.RECORD_NHS_NUMBER, caller, if_match)
        if verification is NhsNumberVerification.ABSENT:
            raise InvalidRequest(
                "verification", "absent_with_number", "a recorded NHS number is not absent"
            )
        number = identifiers.nhs_number(nhs_number, "nhs_number")
        previous = self.patient.nhs_number_verification or NhsNumberVerification.ABSENT
        if number == self.patient.nhs_number and verification is previous:
            raise InvalidRequest("body", "no_change", "this NHS number is recorded already")
        self.patient = replace(
            self.patient, nhs_number=number, nhs_number_verification=verification
        )
        self._record(
            Action.RECORD_NHS_NUMBER,
            caller,
            now,
            ReferralNhsNumberRecorded,
            history_code=verification.value,
            verification=verification,
            previous_verification=previous,
        )

    # ---- closing the loop: questions, messages, interim updates, failure -----------------

    def request_info(self, caller: Caller, if_match: int, now: datetime, question: str) -> None:
        """The assigned organisation asks the referrer a question before deciding; it keeps
        the referral, and its acceptance clock pauses until the answer."""
        self.check(Action.REQUEST_INFO, caller, if_match)
        _text_required(question, "question", "the question cannot be empty")
        self._record(Action.REQUEST_INFO, caller, now, ReferralInfoRequested, note=question)

    def provide_info(
        self,
        caller: Caller,
        if_match: int,
        now: datetime,
        answer: str,
        attachment_id: str | None = None,
    ) -> None:
        """The referrer answers: routed to the same organisation again."""
        self.check(Action.PROVIDE_INFO, caller, if_match)
        _text_required(answer, "answer", "the answer cannot be empty")
        self._record(
            Action.PROVIDE_INFO,
            caller,
            now,
            ReferralInfoProvided,
            note=answer,
            attachment_id=attachment_id,
        )

    def message(
        self,
        caller: Caller,
        if_match: int,
        now: datetime,
        text: str,
        attachment_id: str | None = None,
    ) -> None:
        """A note from the referrer or the assigned organisation; the status stays."""
        self.check(Action.MESSAGE, caller, if_match)
        _text_required(text, "text", "the message cannot be empty")
        self._record(
            Action.MESSAGE,
            caller,
            now,
            ReferralMessageAdded,
            note=text,
            attachment_id=attachment_id,
        )

    def report_progress(
        self, caller: Caller, if_match: int, now: datetime, code: ProgressCode, text: str | None
    ) -> None:
        """An interim update from the assigned organisation before it completes."""
        self.check(Action.REPORT_PROGRESS, caller, if_match)
        _text_required_for_other(code, text, "text")
        self._record(
            Action.REPORT_PROGRESS,
            caller,
            now,
            ReferralProgressReported,
            progress_code=code,
            history_code=code.value,
            note=text,
        )

    def fail(
        self,
        caller: Caller,
        if_match: int,
        now: datetime,
        reason: FailureReason,
        text: str | None,
    ) -> None:
        """Accepted, but it could not be delivered: the referral ends ``failed``."""
        self.check(Action.FAIL, caller, if_match)
        _text_required_for_other(reason, text, "reason_text")
        self._record(
            Action.FAIL,
            caller,
            now,
            ReferralFailed,
            reason_code=reason,
            history_code=reason.value,
            note=text,
        )

    def release_on_timeout(self, organisation: str, now: datetime) -> bool:
        """The platform takes the referral back from ``organisation``, whose acceptance clock
        ran out, and sends it to routing, which will not offer it that organisation again.
        Only while that organisation still holds it unaccepted: otherwise (it accepted in time,
        or the referral has moved on) nothing changes and the answer is False."""
        if self.status is not ReferralStatus.ROUTED or self.assigned_org != organisation:
            return False
        reason = RerouteReason.ACCEPTANCE_TIMEOUT.value
        self._record(
            Action.REROUTE,
            PLATFORM_CALLER,
            now,
            ReferralRerouted,
            release=True,
            history_code=reason,
            note=f"{organisation} did not accept in time",
            reason_code=reason,
        )
        return True

    # ---- changes made by routing's decisions ------------------------------------------------

    def record_routing(
        self,
        assigned_org: str,
        provider_type: ProviderType,
        at: datetime,
        cause_event_id: str,
        sequence: int | None = None,
    ) -> None:
        """Routing assigned the referral. Routing's own event is the record of the change,
        so this service publishes nothing for it; ``sequence`` is the decision's number."""
        self._from_routing("route", ReferralStatus.ROUTED, at, cause_event_id, sequence)
        self.assigned_org = assigned_org
        self.assigned_provider_type = provider_type

    def record_unroutable(
        self, at: datetime, cause_event_id: str, sequence: int | None = None
    ) -> None:
        """Routing found no organisation; ops must act."""
        self._from_routing("unroutable", ReferralStatus.UNROUTABLE, at, cause_event_id, sequence)

    def _from_routing(
        self,
        action: str,
        to: ReferralStatus,
        at: datetime,
        cause_event_id: str,
        sequence: int | None,
    ) -> None:
        if self.status is not ReferralStatus.SUBMITTED:
            raise IllegalTransition(f"cannot {action} a {self.status.value} referral", [])
        self.status = to
        self.version += 1
        if sequence is None:  # from a routing service that does not number its decisions
            self.sequence += 1
            sequence = self.sequence
        self.sequence = max(self.sequence, sequence)
        self.pending.append(Transition(sequence, action, to, PLATFORM, at, None, cause_event_id))

    def _record(
        self,
        action: Action,
        caller: Caller,
        now: datetime,
        event_type: type[ReferralTransitioned],
        *,
        release: bool = False,
        history_code: str | None = None,
        note: str | None = None,
        attachment_id: str | None = None,
        **event_fields: Any,
    ) -> None:
        """Move to the action's status, bump version and sequence, record the event. With
        ``release`` the referral leaves its assigned organisation (back to routing, whose
        decision takes the next number)."""
        holder_type = self.assigned_provider_type
        to = RULES[action].to or self.status
        self.status = to
        if release:
            self.assigned_org = None
            self.assigned_provider_type = None
        self.version += 1
        number = self.sequence + 1
        self.sequence = number + 1 if release else number
        event = event_type(
            referral_id=self.id,
            sequence=number,
            version=self.version,
            actor=caller.actor,
            status=to,
            referrer_org=self.referrer_org,
            assigned_org=self.assigned_org,
            provider_type=holder_type,
            service_type=self.service_type,
            priority=self.priority,
            occurred_at=now,
            sharing=self.sharing,
            **event_fields,
            **({"attachment_id": attachment_id} if attachment_id else {}),
        )
        self.pending.append(
            Transition(
                number,
                action.value,
                to,
                caller.actor,
                now,
                event,
                None,
                history_code,
                note,
                attachment_id,
            )
        )


def _text_required(text: str | None, field_name: str, message: str) -> None:
    if not (text and text.strip()):
        raise InvalidRequest(field_name, "required", message)


def _text_required_for_other(code: object, text: str | None, field_name: str) -> None:
    if getattr(code, "value", None) == "other" and not (text and text.strip()):
        raise InvalidRequest(
            field_name, "required_for_other", f"{field_name} is required when the code is 'other'"
        )


def _target(
    provider_type: ProviderType | None, org: str | None, required: bool = True
) -> str | None:
    if org is not None:
        org = identifiers.ods_code(org, "target_org")
    if required and provider_type is None and org is None:
        raise InvalidRequest(
            "target_provider_type", "target_required", "name a target_provider_type or a target_org"
        )
    return org
