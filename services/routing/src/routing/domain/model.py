"""The case routing keeps of each referral: an aggregate whose methods follow the referral's
lifecycle events in the order the lifecycle allows, decide where the referral goes, and record
what must be stored and published (clocks, decisions, day loads, events) for the unit of work.

A case learns everything from events: the referrals service enforces the lifecycle, so a case
only checks that each event fits where the case stands; one that cannot is refused."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from rx_contracts import (
    ClockKind,
    CohortFlags,
    Envelope,
    EscalationCause,
    Priority,
    ProviderType,
    ReferralAccepted,
    ReferralAmended,
    ReferralCancelled,
    ReferralCompleted,
    ReferralEscalated,
    ReferralFailed,
    ReferralInfoProvided,
    ReferralInfoRequested,
    ReferralRedirected,
    ReferralRejected,
    ReferralRerouted,
    ReferralRouted,
    ReferralStarted,
    ReferralSubmitted,
    ReferralTransitioned,
    ReferralUnroutable,
    RerouteReason,
    ServiceType,
    new_id,
)
from rx_contracts.topics import ROUTING_DECISIONS, ROUTING_ESCALATIONS, provider_topic

from .changes import (
    AcceptanceClockResumed,
    Change,
    ClocksStopped,
    ClockStarted,
    Decided,
    DecisionAccepted,
    DecisionReleased,
    Forwarded,
    LoadChanged,
    Published,
    ResponseClockResumed,
)
from .clock import local_day
from .decision import (
    Decision,
    DecisionOutcome,
    Directory,
    Load,
    ReferralFacts,
    Routed,
    Unroutable,
    decide,
)
from .errors import IllegalTransition
from .sla import PAUSED_FOR_QUESTION, SlaClock, SlaPolicy, acceptance_clock_id

COHORT_NAMES = tuple(sorted(CohortFlags.model_fields))
BOTH_CLOCKS = (ClockKind.ACCEPTANCE, ClockKind.RESPONSE)


class CaseStatus(StrEnum):
    OPEN = "open"
    """Offered to an organisation that has not accepted it yet."""
    ACCEPTED = "accepted"
    STARTED = "started"
    UNROUTABLE = "unroutable"
    """No eligible organisation: ops must act (re-route or cancel)."""
    CLOSED = "closed"
    """Completed or cancelled: nothing follows."""


class Step(StrEnum):
    """What can happen to a case: the lifecycle events of referrals.events.v1."""

    AMEND = "amend"
    ACCEPT = "accept"
    REJECT = "reject"
    REDIRECT = "redirect"
    REROUTE = "reroute"
    START = "start"
    COMPLETE = "complete"
    CANCEL = "cancel"
    FAIL = "fail"
    REQUEST_INFO = "request-info"
    PROVIDE_INFO = "provide-info"


_AWAITING = frozenset({CaseStatus.OPEN, CaseStatus.UNROUTABLE})
ALLOWED: dict[Step, frozenset[CaseStatus]] = {
    # Awaiting acceptance includes unroutable: the referrals service applies routing's
    # decisions later, so an event can follow a decision it has not seen yet.
    Step.AMEND: _AWAITING,
    Step.ACCEPT: _AWAITING,
    Step.REJECT: _AWAITING,
    Step.REDIRECT: _AWAITING,
    Step.REROUTE: _AWAITING,
    Step.START: frozenset({CaseStatus.ACCEPTED}),
    Step.COMPLETE: frozenset({CaseStatus.STARTED}),
    Step.CANCEL: _AWAITING | {CaseStatus.ACCEPTED, CaseStatus.STARTED},
    Step.FAIL: frozenset({CaseStatus.ACCEPTED, CaseStatus.STARTED}),
    # A question keeps the referral with its organisation, unaccepted: the case stays open.
    Step.REQUEST_INFO: _AWAITING,
    Step.PROVIDE_INFO: _AWAITING,
}
"""The statuses a case may be in for each step."""


@dataclass(frozen=True)
class Target:
    """Where a redirect or ops sent the referral; nothing named: the rules decide."""

    provider_type: ProviderType | None = None
    organisation: str | None = None


@dataclass(slots=True)
class Case:
    """What routing knows of one referral, from the events alone: enough to route it again,
    to forward its transitions to the right provider topic, and to replay it."""

    referral_id: str
    service_type: ServiceType
    priority: Priority
    postcode_district: str
    cohorts: list[str]
    """Names of the cohort flags that are set, sorted."""
    submitted_at: datetime
    correlation_id: str | None
    """Of the submission, carried by the platform's own events about this referral."""
    declined_by: list[str] = field(default_factory=list)
    """Organisations that rejected it or let its acceptance clock run out."""
    assigned_org: str | None = None
    provider_type: ProviderType | None = None
    attempt: int = 0
    """Number of routing decisions so far."""
    sequence: int | None = None
    """The referral's per-referral sequence as far as routing has seen it, its own decisions
    included; decisions and clock events carry it (None: not known yet)."""
    decision_id: str | None = None
    """The latest decision."""
    decided_at: datetime | None = None
    """When the latest decision was made."""
    status: CaseStatus = CaseStatus.OPEN
    changes: list[Change] = field(default_factory=list)
    """Recorded and not yet stored."""
    _load_changes: dict[tuple[str, date], int] = field(default_factory=dict, repr=False)

    @classmethod
    def open(
        cls, submitted: ReferralSubmitted, correlation_id: str | None, policy: SlaPolicy | None
    ) -> Case:
        """A submitted referral's case, its response clock started (if ``policy`` sets one);
        route it next."""
        case = cls(
            referral_id=submitted.referral_id,
            service_type=submitted.service_type,
            priority=submitted.priority,
            postcode_district=submitted.postcode_district,
            cohorts=cohorts_of(submitted.cohort),
            submitted_at=submitted.submitted_at,
            correlation_id=correlation_id,
            sequence=submitted.sequence,
        )
        if policy is not None:
            case._start_clock(policy, ClockKind.RESPONSE, submitted.submitted_at)
        return case

    # ---- following the referral's lifecycle -------------------------------------------------

    def follow(self, event: ReferralTransitioned) -> Target | None:
        """Apply a later lifecycle event. Returns where to route the referral next when its
        holder let it go (rejected, redirected, re-routed), else None."""
        self.priority = event.priority
        self.sequence = max(self.sequence or 0, event.sequence)
        at = event.occurred_at
        if isinstance(event, ReferralAmended):
            self.amend(event.cohort)
        elif isinstance(event, ReferralAccepted):
            self.accept(at)
        elif isinstance(event, ReferralStarted):
            self.start(at)
        elif isinstance(event, ReferralCompleted):
            self.complete(at, event.status.value)
        elif isinstance(event, ReferralCancelled):
            self.cancel(at, event.status.value)
        elif isinstance(event, ReferralFailed):
            self.fail(at)
        elif isinstance(event, ReferralInfoRequested):
            self.pause_for_question(at)
        elif isinstance(event, ReferralInfoProvided):
            self.resume_after_answer(at)
        elif isinstance(event, ReferralRejected):
            self.reject(event.rejected_by, at)
            return Target()
        elif isinstance(event, ReferralRedirected):
            self.redirect(at)
            return Target(event.target_provider_type, event.target_org)
        elif isinstance(event, ReferralRerouted):
            self.reroute(event.reason_code, at)
            return Target(event.target_provider_type, event.target_org)
        return None

    def amend(self, cohort: CohortFlags) -> None:
        self._check(Step.AMEND)
        self.cohorts = cohorts_of(cohort)

    def accept(self, at: datetime) -> None:
        """The organisation took it on in time or late: its acceptance clock is met."""
        self._check(Step.ACCEPT)
        self.status = CaseStatus.ACCEPTED
        self._stop_clocks((ClockKind.ACCEPTANCE,), "accepted", at)
        if self.decision_id:
            self.changes.append(DecisionAccepted(self.decision_id, at))

    def start(self, at: datetime) -> None:
        """Work with the patient started: the response clock is met."""
        self._check(Step.START)
        self.status = CaseStatus.STARTED
        self._stop_clocks((ClockKind.RESPONSE,), "started", at)

    def complete(self, at: datetime, reason: str = "completed") -> None:
        self._check(Step.COMPLETE)
        self._close(reason, at)

    def cancel(self, at: datetime, reason: str = "cancelled") -> None:
        self._check(Step.CANCEL)
        self._close(reason, at)

    def fail(self, at: datetime) -> None:
        """Accepted but not delivered: an end like completion, every clock stopped."""
        self._check(Step.FAIL)
        self._close("failed", at)

    def pause_for_question(self, at: datetime) -> None:
        """The organisation asked the referrer a question: its acceptance clock waits for the
        answer (the response clock runs on: the patient is still waiting)."""
        self._check(Step.REQUEST_INFO)
        self._stop_clocks((ClockKind.ACCEPTANCE,), PAUSED_FOR_QUESTION, at)

    def resume_after_answer(self, at: datetime) -> None:
        """The referrer answered: the acceptance clock runs on, its deadline moved by the time
        it waited."""
        self._check(Step.PROVIDE_INFO)
        if self.attempt:
            self.changes.append(
                AcceptanceClockResumed(acceptance_clock_id(self.referral_id, self.attempt), at)
            )

    def reject(self, by: str, at: datetime) -> None:
        """``by`` declined it: never offered it again. Route it next."""
        self._release(Step.REJECT, "rejected", at, declined_by=by)

    def redirect(self, at: datetime) -> None:
        """The holder sent it elsewhere. Route it next, to the target it named."""
        self._release(Step.REDIRECT, "redirected", at)

    def reroute(self, reason_code: str | None, at: datetime) -> None:
        """Ops (or the platform, when the acceptance clock ran out) took it from its holder;
        a holder that let the clock run out counts as having declined it. Route it next."""
        timed_out = reason_code == RerouteReason.ACCEPTANCE_TIMEOUT.value
        holder = self.assigned_org if timed_out else None
        self._release(Step.REROUTE, reason_code or "rerouted", at, declined_by=holder)

    def forward(self, envelope: Envelope, topic: str) -> None:
        """Pass another service's event on to ``topic`` under its own id."""
        self.changes.append(Forwarded(envelope, (topic,)))

    # ---- routing ----------------------------------------------------------------------------

    def route(
        self, directory: Directory, now: datetime, load: Load, target: Target | None = None
    ) -> Decision:
        """Choose an organisation (or find that nobody can take it) and record the decision:
        ReferralRouted for routing.decisions.v1 and the provider type's topic (one event id),
        its acceptance clock started; or ReferralUnroutable for routing.decisions.v1 with a
        ReferralEscalated for ops, every clock stopped."""
        if self.status not in _AWAITING:
            raise IllegalTransition(f"referral {self.referral_id} is {self.status}: not routed")
        target = target or Target()
        facts = ReferralFacts(
            self.referral_id,
            self.service_type,
            self.priority,
            self.postcode_district,
            frozenset(self.cohorts),
            frozenset(self.declined_by),
            target.provider_type,
            target.organisation,
        )
        outcome = decide(facts, directory, now, self._counting_releases(load))
        self.attempt += 1
        if self.sequence is not None:
            # The referrals service reserved the number after the step that sent the referral
            # to routing (the latest one seen) for this decision.
            self.sequence += 1
        self.decision_id, self.decided_at = new_id(), now
        if isinstance(outcome, Routed):
            return self._routed(outcome, directory, now)
        return self._unroutable(outcome, now)

    def _routed(self, outcome: Routed, directory: Directory, now: datetime) -> Decision:
        org = outcome.organisation
        rule_id = rule_version = None
        if outcome.rule:
            rule_id = f"{outcome.locality}/{outcome.rule.id}"
            rule_version = outcome.rule_set_version
        assert self.decision_id is not None
        event = ReferralRouted(
            referral_id=self.referral_id,
            decision_id=self.decision_id,
            sequence=self.sequence,
            attempt=self.attempt,
            assigned_org=org.ods_code,
            provider_type=org.provider_type,
            service_type=self.service_type,
            priority=self.priority,
            locality=outcome.locality,
            rule_id=rule_id,
            rule_version=rule_version,
            routed_at=now,
        )
        was_unroutable = self.status is CaseStatus.UNROUTABLE
        self.assigned_org, self.provider_type = org.ods_code, org.provider_type
        self.status = CaseStatus.OPEN
        self._change_load(org.ods_code, local_day(now), 1, org.daily_capacity)
        policy = directory.policy(self.service_type, self.priority)
        if policy is not None:
            self._start_clock(policy, ClockKind.ACCEPTANCE, now)
        if was_unroutable:
            self.changes.append(ResponseClockResumed())
        decision = self._decision(DecisionOutcome.ROUTED, outcome.locality, now)
        decision.rule_id, decision.rule_version = rule_id, rule_version
        topics = (ROUTING_DECISIONS, provider_topic(org.provider_type))
        self.changes.append(Decided(decision, event, topics))
        return decision

    def _unroutable(self, outcome: Unroutable, now: datetime) -> Decision:
        reason = outcome.reason[:500]
        assert self.decision_id is not None
        event = ReferralUnroutable(
            referral_id=self.referral_id,
            decision_id=self.decision_id,
            sequence=self.sequence,
            service_type=self.service_type,
            priority=self.priority,
            locality=outcome.locality,
            reason=reason,
            decided_at=now,
        )
        self.assigned_org, self.provider_type = None, None
        self.status = CaseStatus.UNROUTABLE
        self._stop_clocks(BOTH_CLOCKS, "unroutable", now)
        escalation = ReferralEscalated(
            referral_id=self.referral_id,
            cause=EscalationCause.UNROUTABLE,
            service_type=self.service_type,
            priority=self.priority,
            locality=outcome.locality,
            detail=reason,
            escalated_at=now,
        )
        self.changes.append(Published(escalation, (ROUTING_ESCALATIONS,), now))
        decision = self._decision(DecisionOutcome.UNROUTABLE, outcome.locality, now)
        decision.reason = reason
        self.changes.append(Decided(decision, event, (ROUTING_DECISIONS,)))
        return decision

    def _decision(self, outcome: DecisionOutcome, locality: str | None, now: datetime) -> Decision:
        assert self.decision_id is not None
        return Decision(
            id=self.decision_id,
            referral_id=self.referral_id,
            attempt=self.attempt,
            outcome=outcome,
            assigned_org=self.assigned_org,
            provider_type=self.provider_type,
            locality=locality,
            rule_id=None,
            rule_version=None,
            reason=None,
            decided_at=now,
        )

    def take_changes(self) -> list[Change]:
        """What was recorded since the last call, in order (for the unit of work to store)."""
        changes, self.changes = self.changes, []
        self._load_changes.clear()
        return changes

    # ---- the pieces -------------------------------------------------------------------------

    def _check(self, step: Step) -> None:
        if self.status not in ALLOWED[step]:
            raise IllegalTransition(
                f"{step} of referral {self.referral_id} while its case is {self.status}"
            )

    def _close(self, reason: str, at: datetime) -> None:
        self.status = CaseStatus.CLOSED
        self._stop_clocks(BOTH_CLOCKS, reason, at)

    def _release(self, step: Step, how: str, at: datetime, declined_by: str | None = None) -> None:
        """The holder let the referral go: its acceptance clock stops, its day's load drops
        (it did not take the referral on), and a decliner is never offered it again."""
        self._check(step)
        self._stop_clocks((ClockKind.ACCEPTANCE,), how, at)
        if self.assigned_org and self.decision_id and self.decided_at:
            self.changes.append(DecisionReleased(self.decision_id, how, at))
            self._change_load(self.assigned_org, local_day(self.decided_at), -1)
        if declined_by and declined_by not in self.declined_by:
            self.declined_by = [*self.declined_by, declined_by]

    def _start_clock(self, policy: SlaPolicy, kind: ClockKind, at: datetime) -> None:
        clock = SlaClock.start(
            policy,
            kind,
            self.referral_id,
            self.service_type,
            self.priority,
            self.correlation_id,
            at,
            self.attempt,
            (self.assigned_org, self.provider_type),
        )
        if clock is not None:
            self.changes.append(ClockStarted(clock))

    def _stop_clocks(self, kinds: tuple[ClockKind, ...], reason: str, at: datetime) -> None:
        self.changes.append(ClocksStopped(kinds, reason, at))

    def _change_load(
        self, organisation: str, day: date, change: int, capacity: int | None = None
    ) -> None:
        self.changes.append(LoadChanged(organisation, day, change, capacity))
        key = (organisation, day)
        self._load_changes[key] = self._load_changes.get(key, 0) + change

    def _counting_releases(self, load: Load) -> Load:
        """``load`` as it will be once this case's recorded changes are stored (a release
        gives back its organisation's place before the referral is routed again)."""
        if not self._load_changes:
            return load
        pending = dict(self._load_changes)
        return lambda org, day: load(org, day) + pending.get((org, day), 0)


def cohorts_of(flags: CohortFlags) -> list[str]:
    """Names of the cohort flags that are set, sorted."""
    return [name for name in COHORT_NAMES if getattr(flags, name)]
