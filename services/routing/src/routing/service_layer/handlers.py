"""Routing use cases. The consumer calls them inside its inbox transaction."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from rx_contracts import (
    Envelope,
    Priority,
    ProviderType,
    ReferralCancelled,
    ReferralCompleted,
    ReferralRedirected,
    ReferralRejected,
    ReferralRerouted,
    ReferralRouted,
    ReferralSubmitted,
    ReferralTransitioned,
    ReferralUnroutable,
    ServiceType,
    wrap,
)
from rx_contracts.topics import ROUTING_DECISIONS, provider_topic
from rx_messaging.consumer import PermanentError
from rx_messaging.outbox import add_to_outbox
from sqlmodel import Session

from ..adapters.repository import RoutingRepository
from ..adapters.tables import CaseRow, DecisionRow
from ..domain.model import ReferralFacts, Routed, decide

SOURCE = "/services/routing"


def route_referral_event(session: Session, envelope: Envelope, now: datetime | None = None) -> None:
    """React to one event from referrals.events.v1:
    - submitted: open a case and route it;
    - rejected, redirected, rerouted: route it again (skipping decliners, towards a target);
    - every transition: forward the event, same id, to the provider type's topic, so the
      organisations of that type see what happens to referrals they hold or held."""
    payload = envelope.payload()
    now = now or datetime.now(UTC)
    if isinstance(payload, ReferralSubmitted):
        if session.get(CaseRow, payload.referral_id) is not None:
            return  # already routed under another event id: never route one referral twice
        new_case = CaseRow(
            referral_id=payload.referral_id,
            service_type=payload.service_type.value,
            priority=payload.priority.value,
            postcode_district=payload.postcode_district,
        )
        session.add(new_case)
        route(session, new_case, envelope.correlationid, now)
        return
    if not isinstance(payload, ReferralTransitioned):
        return
    case = session.get(CaseRow, payload.referral_id, with_for_update=True)
    if case is None:
        raise PermanentError(
            f"{envelope.type} for referral {payload.referral_id}, which routing never saw submitted"
        )
    if payload.provider_type is not None:
        add_to_outbox(session, envelope, [provider_topic(payload.provider_type)])
    case.priority = payload.priority.value
    if isinstance(payload, ReferralRejected):
        case.rejected_by = [*case.rejected_by, payload.rejected_by]
    if isinstance(payload, ReferralCancelled | ReferralCompleted):
        case.closed = True
    session.add(case)
    if isinstance(payload, ReferralRejected):
        route(session, case, envelope.correlationid, now)
    elif isinstance(payload, ReferralRedirected | ReferralRerouted):
        route(
            session,
            case,
            envelope.correlationid,
            now,
            payload.target_provider_type,
            payload.target_org,
        )


def route(
    session: Session,
    case: CaseRow,
    correlation_id: str,
    now: datetime,
    target_provider_type: ProviderType | None = None,
    target_org: str | None = None,
) -> None:
    """Choose an organisation and stage the decision's event: ReferralRouted goes to
    routing.decisions.v1 and the provider type's topic (one event id), ReferralUnroutable to
    routing.decisions.v1 for ops."""
    repo = RoutingRepository(session)
    facts = ReferralFacts(
        case.referral_id,
        ServiceType(case.service_type),
        Priority(case.priority),
        case.postcode_district,
        frozenset(case.rejected_by),
        target_provider_type,
        target_org,
    )
    outcome = decide(facts, repo.localities(), repo.active_rules(), repo.organisations())
    decision_id = str(uuid.uuid4())
    attempt = repo.attempts(case.referral_id) + 1
    payload: ReferralRouted | ReferralUnroutable
    if isinstance(outcome, Routed):
        payload = ReferralRouted(
            referral_id=case.referral_id,
            decision_id=decision_id,
            attempt=attempt,
            assigned_org=outcome.organisation.ods_code,
            provider_type=outcome.organisation.provider_type,
            service_type=facts.service_type,
            priority=facts.priority,
            locality=outcome.locality,
            rule_id=outcome.rule.id if outcome.rule else None,
            rule_version=outcome.rule.version if outcome.rule else None,
            routed_at=now,
        )
        topics = [ROUTING_DECISIONS, provider_topic(outcome.organisation.provider_type)]
        case.assigned_org, case.provider_type = payload.assigned_org, payload.provider_type.value
    else:
        payload = ReferralUnroutable(
            referral_id=case.referral_id,
            decision_id=decision_id,
            service_type=facts.service_type,
            priority=facts.priority,
            locality=outcome.locality,
            reason=outcome.reason,
            decided_at=now,
        )
        topics = [ROUTING_DECISIONS]
        case.assigned_org, case.provider_type = None, None
    session.add(case)
    envelope = wrap(payload, source=SOURCE, correlation_id=correlation_id, time=now)
    repo.add_decision(
        DecisionRow(
            id=decision_id,
            referral_id=case.referral_id,
            attempt=attempt,
            outcome="routed" if isinstance(payload, ReferralRouted) else "unroutable",
            assigned_org=getattr(payload, "assigned_org", None),
            provider_type=getattr(payload, "provider_type", None),
            locality=payload.locality,
            rule_id=getattr(payload, "rule_id", None),
            rule_version=getattr(payload, "rule_version", None),
            reason=getattr(payload, "reason", None),
            decided_at=now,
            event_id=envelope.id,
        )
    )
    add_to_outbox(session, envelope, topics)
