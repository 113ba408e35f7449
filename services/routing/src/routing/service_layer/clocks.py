"""SLA clocks: started and stopped by the cases as referrals move, fired by the clock worker
(``python -m routing clock``) when their time comes.

Firing stores the clock's new state and its events in the outbox in one transaction, so a
crash never loses or half-fires a clock."""

from __future__ import annotations

from datetime import datetime

from rx_contracts import ClockKind

from .unit_of_work import UnitOfWork


def fire_due_clocks(uow: UnitOfWork, now: datetime, limit: int = 200) -> int:
    """Fire every clock due at ``now`` (up to ``limit``); returns how many clocks fired."""
    with uow:
        clocks = uow.clocks.due(now, limit)
        for clock in clocks:
            holder, sequence = uow.cases.position(clock.referral_id)
            if clock.kind is ClockKind.ACCEPTANCE:
                # Whom the clock's events are for: an acceptance clock's organisation; for a
                # response clock, whoever holds the referral now.
                holder = clock.assigned_org, clock.provider_type
            clock.fire(now, holder, sequence)
        uow.commit()
    return len(clocks)


def next_due(uow: UnitOfWork) -> datetime | None:
    """When the earliest live clock needs attention."""
    with uow:
        return uow.clocks.next_due()
