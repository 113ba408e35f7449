"""Routing use cases. The consumer calls them inside its inbox transaction; they never
commit, and they re-read what they change through the session (several events may be applied
in one transaction, one after another)."""

from __future__ import annotations

from datetime import datetime

from rx_contracts import (
    ClockKind,
    Envelope,
    EscalationCause,
    Priority,
    ProviderType,
    ReferralAccepted,
    ReferralAmended,
    ReferralCancelled,
    ReferralCompleted,
    ReferralEscalated,
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
    wrap,
)
from rx_contracts.topics import ROUTING_DECISIONS, ROUTING_ESCALATIONS, provider_topic
from rx_messaging.buffer import flush_buffer, write_buffer
from rx_messaging.consumer import PermanentError
from rx_messaging.outbox import queue_outbox
from sqlmodel import Session

from ..adapters import repository
from ..adapters.cache import DirectoryCache
from ..adapters.tables import CaseRow, DecisionRow, table
from ..domain.clock import local_day
from ..domain.model import Directory, ReferralFacts, Routed, decide
from . import clocks
from .cases import Case, NewCase

SOURCE = "/services/routing"
BOTH = [ClockKind.ACCEPTANCE, ClockKind.RESPONSE]


def route_referral_event(
    session: Session, envelope: Envelope, directory: DirectoryCache, now: datetime
) -> None:
    """React to one event from referrals.events.v1:
    - submitted: open a case, start its response clock, route it;
    - accepted / started: stop the acceptance / response clock (met);
    - rejected, redirected, rerouted: stop the acceptance clock and route it again (skipping
      organisations that declined it or timed out, or towards a named target);
    - completed, cancelled: stop every clock;
    - every transition: forward the event, same id, to the provider type's topic, so the
      organisations of that type see what happens to referrals they hold or held."""
    payload = envelope.payload()
    if isinstance(payload, ReferralSubmitted):
        _submitted(session, envelope, payload, directory.get(session), now)
        return
    if not isinstance(payload, ReferralTransitioned):
        return
    case = repository.case_for_update(session, payload.referral_id)
    if case is None:
        raise PermanentError(
            f"{envelope.type} for referral {payload.referral_id}, which routing never saw submitted"
        )
    if payload.provider_type is not None:
        queue_outbox(session, envelope, [provider_topic(payload.provider_type)])
    case.priority = payload.priority.value
    at = payload.occurred_at
    if isinstance(payload, ReferralAmended):
        case.cohorts = _cohorts(payload.cohort.model_dump())
    elif isinstance(payload, ReferralAccepted):
        case.status = "accepted"
        clocks.stop(session, case.referral_id, [ClockKind.ACCEPTANCE], "accepted", at)
        decision = _current_decision(session, case)
        if decision is not None:
            decision.accepted_at = at
            session.add(decision)
    elif isinstance(payload, ReferralStarted):
        case.status = "started"
        clocks.stop(session, case.referral_id, [ClockKind.RESPONSE], "started", at)
    elif isinstance(payload, ReferralCompleted | ReferralCancelled):
        case.status = "closed"
        clocks.stop(session, case.referral_id, BOTH, payload.status.value, at)
    elif isinstance(payload, ReferralRejected):
        _release(session, case, "rejected", at, declined_by=payload.rejected_by)
        route(session, case, directory.get(session), envelope.correlationid, now)
    elif isinstance(payload, ReferralRedirected | ReferralRerouted):
        if isinstance(payload, ReferralRedirected):
            _release(session, case, "redirected", at)
        else:
            timed_out = payload.reason_code == RerouteReason.ACCEPTANCE_TIMEOUT.value
            holder = case.assigned_org if timed_out else None
            _release(session, case, payload.reason_code or "rerouted", at, declined_by=holder)
        route(
            session,
            case,
            directory.get(session),
            envelope.correlationid,
            now,
            payload.target_provider_type,
            payload.target_org,
        )
    session.add(case)


def _submitted(
    session: Session,
    envelope: Envelope,
    payload: ReferralSubmitted,
    directory: Directory,
    now: datetime,
) -> None:
    if repository.case_exists(session, payload.referral_id):
        return  # already routed under another event id: never route one referral twice
    case = NewCase(
        referral_id=payload.referral_id,
        service_type=payload.service_type.value,
        priority=payload.priority.value,
        postcode_district=payload.postcode_district,
        cohorts=_cohorts(payload.cohort.model_dump()),
        submitted_at=payload.submitted_at,
        correlation_id=envelope.correlationid,
    )
    policy = directory.policy(payload.service_type, payload.priority)
    if policy is not None:
        clocks.start(session, case, policy, ClockKind.RESPONSE, payload.submitted_at)
    route(session, case, directory, envelope.correlationid, now)
    repository.insert_case(session, case.row())


def route(
    session: Session,
    case: Case,
    directory: Directory,
    correlation_id: str,
    now: datetime,
    target_provider_type: ProviderType | None = None,
    target_org: str | None = None,
) -> None:
    """Choose an organisation and stage the decision's events: ReferralRouted goes to
    routing.decisions.v1 and the provider type's topic (one event id) and starts the
    acceptance clock; ReferralUnroutable goes to routing.decisions.v1, with a
    ReferralEscalated for ops, and stops the clocks."""
    facts = ReferralFacts(
        case.referral_id,
        ServiceType(case.service_type),
        Priority(case.priority),
        case.postcode_district,
        frozenset(case.cohorts),
        frozenset(case.declined_by),
        target_provider_type,
        target_org,
    )
    outcome = decide(facts, directory, now, lambda org, day: repository.load_of(session, org, day))
    case.attempt += 1
    decision_id = new_id()
    case.decision_id = decision_id
    payload: ReferralRouted | ReferralUnroutable
    # The decision row's fields, from the outcome (reading absent fields off the payload
    # model costs a pydantic AttributeError each).
    rule_id: str | None = None
    rule_version: int | None = None
    reason: str | None = None
    if isinstance(outcome, Routed):
        org = outcome.organisation
        if outcome.rule:
            rule_id = f"{outcome.locality}/{outcome.rule.id}"
            rule_version = outcome.rule_set_version
        payload = ReferralRouted(
            referral_id=case.referral_id,
            decision_id=decision_id,
            attempt=case.attempt,
            assigned_org=org.ods_code,
            provider_type=org.provider_type,
            service_type=facts.service_type,
            priority=facts.priority,
            locality=outcome.locality,
            rule_id=rule_id,
            rule_version=rule_version,
            routed_at=now,
        )
        topics = [ROUTING_DECISIONS, provider_topic(org.provider_type)]
        was_unroutable = case.status == "unroutable"
        case.assigned_org, case.provider_type = org.ods_code, org.provider_type.value
        case.status = "open"
        repository.add_load(session, org.ods_code, local_day(now), 1)
        policy = directory.policy(facts.service_type, facts.priority)
        if policy is not None:
            clocks.start(session, case, policy, ClockKind.ACCEPTANCE, now)
        if was_unroutable:
            clocks.resume_response(session, case.referral_id)
    else:
        reason = outcome.reason[:500]
        payload = ReferralUnroutable(
            referral_id=case.referral_id,
            decision_id=decision_id,
            service_type=facts.service_type,
            priority=facts.priority,
            locality=outcome.locality,
            reason=reason,
            decided_at=now,
        )
        topics = [ROUTING_DECISIONS]
        case.assigned_org, case.provider_type = None, None
        case.status = "unroutable"
        clocks.stop(session, case.referral_id, BOTH, "unroutable", now)
        escalation = ReferralEscalated(
            referral_id=case.referral_id,
            cause=EscalationCause.UNROUTABLE,
            service_type=facts.service_type,
            priority=facts.priority,
            locality=outcome.locality,
            detail=reason,
            escalated_at=now,
        )
        queue_outbox(
            session,
            wrap(escalation, source=SOURCE, correlation_id=correlation_id, time=now),
            [ROUTING_ESCALATIONS],
        )
    envelope = wrap(payload, source=SOURCE, correlation_id=correlation_id, time=now)
    # Decision and outbox rows are queued in the write buffer (one executemany per table per
    # batch); reading a decision back (_current_decision) flushes the buffer first.
    write_buffer(session).add(
        table(DecisionRow),
        {
            "id": decision_id,
            "referral_id": case.referral_id,
            "attempt": case.attempt,
            "outcome": "routed" if isinstance(outcome, Routed) else "unroutable",
            "assigned_org": case.assigned_org,
            "provider_type": case.provider_type,
            "locality": outcome.locality,
            "rule_id": rule_id,
            "rule_version": rule_version,
            "reason": reason,
            "decided_at": now,
            "event_id": envelope.id,
        },
    )
    queue_outbox(session, envelope, topics)


def _release(
    session: Session, case: CaseRow, how: str, at: datetime, declined_by: str | None = None
) -> None:
    """The holder let the referral go: its acceptance clock stops, its day's load drops
    (it did not take the referral on), and a decliner is never offered it again."""
    clocks.stop(session, case.referral_id, [ClockKind.ACCEPTANCE], how, at)
    decision = _current_decision(session, case)
    if decision is not None and decision.assigned_org and decision.released_at is None:
        decision.released_at, decision.release = at, how
        session.add(decision)
        repository.add_load(session, decision.assigned_org, local_day(decision.decided_at), -1)
    if declined_by and declined_by not in case.declined_by:
        case.declined_by = [*case.declined_by, declined_by]


def _current_decision(session: Session, case: CaseRow) -> DecisionRow | None:
    if not case.decision_id:
        return None
    flush_buffer(session)  # the decision may have been made earlier in this batch
    return session.get(DecisionRow, case.decision_id)


def _cohorts(flags: dict[str, bool]) -> list[str]:
    return sorted(name for name, on in flags.items() if on)
