"""Routing's use cases for the events of referrals.events.v1. The consumer runs them in its
inbox transaction (a unit of work joining it), several events of a poll batch one after
another; each commits its unit of work once."""

from __future__ import annotations

from datetime import datetime

from rx_contracts import Envelope, ReferralSubmitted, ReferralTransitioned
from rx_contracts.topics import provider_topic

from ..domain.decision import Decision
from ..domain.errors import CaseNotFound
from ..domain.model import Case
from .unit_of_work import UnitOfWork


def route_referral_event(envelope: Envelope, uow: UnitOfWork, now: datetime) -> None:
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
        open_case(payload, envelope.correlationid, uow, now)
    elif isinstance(payload, ReferralTransitioned):
        follow_case(envelope, payload, uow, now)


def open_case(
    submitted: ReferralSubmitted, correlation_id: str, uow: UnitOfWork, now: datetime
) -> None:
    """Open a case for a submitted referral, start its response clock and route it. A
    referral routed already (under another event id) is never routed twice."""
    with uow:
        if uow.cases.exists(submitted.referral_id):
            return
        directory = uow.directory.current()
        policy = directory.policy(submitted.service_type, submitted.priority)
        case = Case.open(submitted, correlation_id, policy)
        case.route(directory, now, uow.cases.load)
        uow.cases.add(case)
        uow.commit()


def follow_case(
    envelope: Envelope, event: ReferralTransitioned, uow: UnitOfWork, now: datetime
) -> None:
    """Apply a later lifecycle event to the referral's case, forward it to the provider
    type's topic, and route the referral again if its holder let it go."""
    with uow:
        case = uow.cases.get(event.referral_id)
        if case is None:
            raise CaseNotFound(
                f"{envelope.type} for referral {event.referral_id}, which routing never saw "
                "submitted"
            )
        if event.provider_type is not None:
            case.forward(envelope, provider_topic(event.provider_type))
        target = case.follow(event)
        if target is not None:
            case.route(uow.directory.current(), now, uow.cases.load, target)
        uow.commit()


def decisions(referral_id: str | None, limit: int, uow: UnitOfWork) -> list[Decision]:
    """Routing decisions, newest first, optionally of one referral."""
    with uow:
        return uow.cases.decisions(referral_id, limit)
