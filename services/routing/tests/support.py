"""Helpers shared by the routing service's tests: a clock moved by hand, events as the
referrals service publishes them, applied as the consumer does, and what routing staged in
its outbox."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from routing.bootstrap import Container
from routing.entrypoints.workers import handle_referral_event
from rx_contracts import (
    Actor,
    Envelope,
    Priority,
    ProviderType,
    ReferralStatus,
    ReferralTransitioned,
    ServiceType,
    decode,
    examples,
    wrap,
)
from rx_contracts.topics import ROUTING_ADMIN
from rx_messaging.records import Record
from rx_messaging.tables import OutboxMessage
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

MONDAY_10AM = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
"""A Monday in winter: 10:00 UTC is 10:00 in London, every demo organisation is open."""


@dataclass
class ManualClock:
    """A clock that moves only when told to."""

    current: datetime = MONDAY_10AM

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> datetime:
        self.current += timedelta(**delta)
        return self.current


def submitted(referral_id: str, at: datetime = MONDAY_10AM, **changes: Any) -> Envelope:
    """ReferralSubmitted (urgent community response, BS5 = east unless changed)."""
    return wrap(
        examples.referral_submitted(referral_id, submitted_at=at, **changes),
        source="/services/referrals",
        correlation_id=f"corr-{referral_id}",
    )


def transition(
    event_type: type[ReferralTransitioned],
    referral_id: str,
    holder: str | None = "RXA01",
    at: datetime = MONDAY_10AM,
    **fields: Any,
) -> Envelope:
    """A later lifecycle event as the referrals service publishes it."""
    common: dict[str, Any] = {
        "referral_id": referral_id,
        "sequence": 3,
        "version": 3,
        "actor": Actor(organisation=holder or "RX0PS"),
        "status": ReferralStatus.SUBMITTED,
        "referrer_org": "B81001",
        "assigned_org": None,
        "provider_type": ProviderType.RAPID_RESPONSE if holder else None,
        "service_type": ServiceType.URGENT_COMMUNITY_RESPONSE,
        "priority": Priority.URGENT,
        "occurred_at": at,
    }
    return wrap(event_type(**(common | fields)), source="/services/referrals")


def consume(container: Container, session: Session, envelope: Envelope) -> None:
    """Apply one event in ``session``'s transaction, as the routing consumer does."""
    record = Record("referrals.events.v1", 0, 0, envelope.subject.encode(), None)
    handle_referral_event(container, session, envelope, record)


def outbox(engine: Engine, topic: str | None = None) -> list[tuple[str, Envelope]]:
    """(topic, event) of every outbox row of ``topic``, oldest first; without a topic, every
    row but the administrative changes (the demo seed's are in every test's database)."""
    with Session(engine) as session:
        query = select(OutboxMessage).order_by(col(OutboxMessage.id))
        if topic:
            query = query.where(OutboxMessage.topic == topic)
        else:
            query = query.where(OutboxMessage.topic != ROUTING_ADMIN)
        return [
            (row.topic, decode(row.key, row.value, [(n, v.encode()) for n, v in row.headers]))
            for row in session.exec(query)
        ]


def short_types(rows: list[tuple[str, Envelope]]) -> list[tuple[str, str]]:
    return [(topic, event.type.split(".")[2]) for topic, event in rows]
