"""Routing use cases. The consumer calls them inside its inbox transaction."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from rx_contracts import Envelope, ReferralRouted, ReferralSubmitted, ReferralUnroutable, wrap
from rx_contracts.topics import ROUTING_DECISIONS, provider_topic
from rx_messaging.outbox import add_to_outbox
from sqlmodel import Session

from ..adapters.repository import RoutingRepository
from ..adapters.tables import DecisionRow
from ..domain.model import ReferralFacts, Routed, decide

SOURCE = "/services/routing"


def route_referral_event(session: Session, envelope: Envelope, now: datetime | None = None) -> None:
    """Route a newly submitted referral; other referral events need nothing from routing yet."""
    payload = envelope.payload()
    if isinstance(payload, ReferralSubmitted):
        route_submitted(session, payload, envelope.correlationid, now or datetime.now(UTC))


def route_submitted(
    session: Session, event: ReferralSubmitted, correlation_id: str, now: datetime
) -> None:
    """Choose an organisation and stage the decision's event: ReferralRouted goes to
    routing.decisions.v1 and the provider type's topic (one event id), ReferralUnroutable to
    routing.decisions.v1 for ops."""
    repo = RoutingRepository(session)
    facts = ReferralFacts(
        event.referral_id, event.service_type, event.priority, event.postcode_district
    )
    outcome = decide(facts, repo.localities(), repo.active_rules(), repo.organisations())
    decision_id = str(uuid.uuid4())
    attempt = repo.attempts(event.referral_id) + 1
    if isinstance(outcome, Routed):
        payload: ReferralRouted | ReferralUnroutable = ReferralRouted(
            referral_id=event.referral_id,
            decision_id=decision_id,
            attempt=attempt,
            assigned_org=outcome.organisation.ods_code,
            provider_type=outcome.organisation.provider_type,
            service_type=event.service_type,
            priority=event.priority,
            locality=outcome.locality,
            rule_id=outcome.rule.id,
            rule_version=outcome.rule.version,
            routed_at=now,
        )
        topics = [ROUTING_DECISIONS, provider_topic(outcome.organisation.provider_type)]
    else:
        payload = ReferralUnroutable(
            referral_id=event.referral_id,
            decision_id=decision_id,
            service_type=event.service_type,
            priority=event.priority,
            locality=outcome.locality,
            reason=outcome.reason,
            decided_at=now,
        )
        topics = [ROUTING_DECISIONS]
    envelope = wrap(payload, source=SOURCE, correlation_id=correlation_id, time=now)
    repo.add_decision(
        DecisionRow(
            id=decision_id,
            referral_id=event.referral_id,
            attempt=attempt,
            outcome="routed" if isinstance(outcome, Routed) else "unroutable",
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
