"""SLA clocks: started and stopped by the routing consumer as referrals move, fired by the
clock worker (``python -m routing clock``) when their time comes.

Firing writes the clock's new state and its events to the outbox in one transaction, so a
crash never loses or half-fires a clock; event ids are derived from the clock and what fired,
so even a clock fired twice would reach subscribers as one event."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from rx_contracts import (
    ClockKind,
    EscalationCause,
    Priority,
    ProviderType,
    ReferralEscalated,
    ServiceType,
    SlaBreached,
    SlaWarning,
    wrap,
)
from rx_contracts.topics import ROUTING_ESCALATIONS, ROUTING_SLA, provider_topic
from rx_messaging.buffer import flush_buffer, write_buffer
from rx_messaging.database import is_postgres
from rx_messaging.outbox import add_to_outbox
from sqlalchemy import func, update
from sqlmodel import Session, col, select

from ..adapters.tables import CaseRow, ClockRow, table
from ..domain.sla import Firing, SlaPolicy, due, next_fire, schedule
from .cases import Case

SOURCE = "/services/routing"
_EVENT_IDS = uuid.UUID("6d1c1c55-5a3e-4b8e-9b53-0f3c2b7a51d0")


def acceptance_clock_id(referral_id: str, attempt: int) -> str:
    return f"{referral_id}:acceptance:{attempt}"


def response_clock_id(referral_id: str) -> str:
    return f"{referral_id}:response"


def event_id(clock_id: str, firing: str) -> str:
    """The same id every time this clock fires this way (subscribers dedupe on it)."""
    return str(uuid.uuid5(_EVENT_IDS, f"{clock_id}/{firing}"))


def start(
    session: Session,
    case: Case,
    policy: SlaPolicy,
    kind: ClockKind,
    started_at: datetime,
) -> None:
    """Start a clock of ``kind`` for ``case`` under ``policy`` (none if the policy sets no
    time for that kind)."""
    within = policy.accept_within if kind is ClockKind.ACCEPTANCE else policy.respond_within
    if within is None:
        return
    plan = schedule(started_at, within, policy.warn_at_fraction)
    acceptance = kind is ClockKind.ACCEPTANCE
    clock_id = (
        acceptance_clock_id(case.referral_id, case.attempt)
        if acceptance
        else response_clock_id(case.referral_id)
    )
    # Queued in the write buffer: the consumer writes a batch's new clocks with one
    # executemany. Whatever changes clocks later (stop, resume) flushes the buffer first.
    write_buffer(session).add(
        table(ClockRow),
        {
            "id": clock_id,
            "referral_id": case.referral_id,
            "kind": kind.value,
            "attempt": case.attempt if acceptance else None,
            "assigned_org": case.assigned_org if acceptance else None,
            "provider_type": case.provider_type if acceptance else None,
            "service_type": case.service_type,
            "priority": case.priority,
            "policy_id": policy.id,
            "auto_reroute": policy.auto_reroute and acceptance,
            "correlation_id": case.correlation_id,
            "started_at": plan.started_at,
            "deadline_at": plan.deadline,
            "warn_at": plan.warn_at,
            "next_fire_at": next_fire(plan.warn_at, False, plan.deadline, False),
        },
    )


def stop(
    session: Session, referral_id: str, kinds: list[ClockKind], reason: str, at: datetime
) -> None:
    """Stop the referral's running clocks of ``kinds`` (met, or no longer anyone's to meet)."""
    flush_buffer(session)  # clocks started earlier in this transaction may still be queued
    clocks = table(ClockRow)
    session.connection().execute(
        update(clocks)
        .where(
            clocks.c.referral_id == referral_id,
            clocks.c.kind.in_([k.value for k in kinds]),
            clocks.c.stopped_at.is_(None),
        )
        .values(stopped_at=at, stop_reason=reason, next_fire_at=None)
    )


def resume_response(session: Session, referral_id: str) -> None:
    """A referral routed again after being unroutable: its response clock runs on to the
    original deadline (which may already have passed: then it breaches at once)."""
    flush_buffer(session)
    clock = session.get(ClockRow, response_clock_id(referral_id))
    if clock is None or clock.stop_reason != "unroutable":
        return
    clock.stopped_at, clock.stop_reason = None, None
    clock.next_fire_at = next_fire(
        clock.warn_at, clock.warned_at is not None, clock.deadline_at, clock.breached_at is not None
    )
    session.add(clock)


def next_due(session: Session) -> datetime | None:
    """When the earliest live clock needs attention (an index lookup)."""
    return session.exec(select(func.min(ClockRow.next_fire_at))).one()


def fire_due(session: Session, now: datetime, limit: int = 200) -> int:
    """Fire every clock due at ``now`` (up to ``limit``), in the caller's transaction;
    returns how many clocks fired."""
    query = (
        select(ClockRow)
        .where(col(ClockRow.next_fire_at).is_not(None), col(ClockRow.next_fire_at) <= now)
        .order_by(col(ClockRow.next_fire_at))
        .limit(limit)
    )
    if is_postgres(session.get_bind()):  # type: ignore[arg-type]
        query = query.with_for_update(skip_locked=True)  # several clock workers share
    clocks = list(session.exec(query))
    for clock in clocks:
        for firing in due(
            clock.warn_at,
            clock.warned_at is not None,
            clock.deadline_at,
            clock.breached_at is not None,
            now,
        ):
            _fire(session, clock, firing, now)
        clock.next_fire_at = next_fire(
            clock.warn_at,
            clock.warned_at is not None,
            clock.deadline_at,
            clock.breached_at is not None,
        )
        session.add(clock)
    return len(clocks)


def _fire(session: Session, clock: ClockRow, firing: Firing, now: datetime) -> None:
    holder, holder_type = _holder(session, clock)
    common: dict[str, Any] = {
        "referral_id": clock.referral_id,
        "clock_id": clock.id,
        "kind": ClockKind(clock.kind),
        "attempt": clock.attempt,
        "assigned_org": holder,
        "provider_type": holder_type,
        "service_type": ServiceType(clock.service_type),
        "priority": Priority(clock.priority),
        "policy_id": clock.policy_id,
        "started_at": clock.started_at,
        "deadline": clock.deadline_at,
    }
    payload: SlaWarning | SlaBreached
    if firing is Firing.WARNING:
        clock.warned_at = now
        payload = SlaWarning(**common, warned_at=now)
    else:
        clock.breached_at = now
        payload = SlaBreached(**common, breached_at=now, auto_reroute=clock.auto_reroute)
    topics = [ROUTING_SLA] + ([provider_topic(holder_type)] if holder_type else [])
    _publish(session, clock, payload, firing.value, topics, now)
    if firing is Firing.BREACH and not clock.auto_reroute:
        escalation = ReferralEscalated(
            referral_id=clock.referral_id,
            cause=EscalationCause.SLA_BREACHED,
            service_type=ServiceType(clock.service_type),
            priority=Priority(clock.priority),
            assigned_org=holder,
            detail=f"{clock.kind} deadline {clock.deadline_at.isoformat()} of policy "
            f"{clock.policy_id} passed" + (f" while {holder} held it" if holder else ""),
            escalated_at=now,
        )
        _publish(session, clock, escalation, "escalation", [ROUTING_ESCALATIONS], now)


def _holder(session: Session, clock: ClockRow) -> tuple[str | None, ProviderType | None]:
    """Who the warning is for: an acceptance clock's organisation; for a response clock,
    whoever holds the referral now."""
    if clock.kind == ClockKind.ACCEPTANCE.value:
        org, kind = clock.assigned_org, clock.provider_type
    else:
        case = session.get(CaseRow, clock.referral_id)
        org, kind = (case.assigned_org, case.provider_type) if case else (None, None)
    return org, ProviderType(kind) if kind else None


def _publish(
    session: Session,
    clock: ClockRow,
    payload: SlaWarning | SlaBreached | ReferralEscalated,
    firing: str,
    topics: list[str],
    now: datetime,
) -> None:
    envelope = wrap(
        payload,
        source=SOURCE,
        correlation_id=clock.correlation_id,
        event_id=event_id(clock.id, firing),
        time=now,
    )
    add_to_outbox(session, envelope, topics)
