"""Mapping SLA clocks to and from their rows. New clocks are queued in the session's write
buffer (the consumer writes a batch's new clocks with one insert); whatever changes clocks
later writes the buffer first.

The clock worker sleeps until the next deadline it knows of, but looks again at least every
:data:`LOOK_EVERY`; a transaction that starts or resumes a clock due sooner than that wakes it
when it commits (``rx_messaging.wake``). A clock due later is found by the next look, in
time: most clocks are minutes or hours away, so most commits wake nobody."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from rx_contracts import ClockKind, Priority, ProviderType, ServiceType
from rx_messaging import fastsql
from rx_messaging.buffer import flush_buffer, write_buffer
from rx_messaging.wake import CLOCKS, announce
from sqlalchemy import Update, bindparam, func, select, update
from sqlalchemy.engine import Row
from sqlmodel import Session

from ..domain.sla import SlaClock
from .repository import chunks, unwritten_referrals
from .tables import ClockRow, table

LOOK_EVERY = timedelta(seconds=10)
"""The longest the clock worker sleeps where commits can wake it."""
_WAKE_WITHIN = 2 * LOOK_EVERY  # a margin for a worker slow to look again

_CLOCKS = table(ClockRow)
_CLOCK = select(_CLOCKS).where(_CLOCKS.c.id == bindparam("clock_id"))
_SAVE = (
    update(_CLOCKS)
    .where(_CLOCKS.c.id == bindparam("key"))
    .values(
        {
            name: bindparam(name)
            for name in (
                "deadline_at",
                "warn_at",
                "warned_at",
                "breached_at",
                "stopped_at",
                "stop_reason",
                "next_fire_at",
            )
        }
    )
)


@functools.cache
def _stop(kinds: int) -> Update:
    """Stop a referral's running clocks of ``kinds`` kinds (``kind0``…): one statement per
    number of kinds, built and compiled once."""
    return (
        update(_CLOCKS)
        .where(
            _CLOCKS.c.referral_id == bindparam("referral_id"),
            _CLOCKS.c.kind.in_([bindparam(f"kind{i}") for i in range(kinds)]),
            _CLOCKS.c.stopped_at.is_(None),
        )
        .values(stopped_at=bindparam("at"), stop_reason=bindparam("reason"), next_fire_at=None)
    )


class ClockRepository:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.fired: list[SlaClock] = []
        """Clocks handed out to fire: stored with their events on commit."""

    def add(self, clock: SlaClock) -> None:
        """Queue a new clock's row in the write buffer (enum members as text with str(), as
        in ``repository``)."""
        write_buffer(self.session).add(
            _CLOCKS,
            {
                "id": clock.id,
                "referral_id": clock.referral_id,
                "kind": str(clock.kind),
                "attempt": clock.attempt,
                "assigned_org": clock.assigned_org,
                "provider_type": str(clock.provider_type) if clock.provider_type else None,
                "service_type": str(clock.service_type),
                "priority": str(clock.priority),
                "policy_id": clock.policy_id,
                "auto_reroute": clock.auto_reroute,
                "correlation_id": clock.correlation_id,
                "started_at": clock.started_at,
                "deadline_at": clock.deadline_at,
                "warn_at": clock.warn_at,
                "next_fire_at": clock.next_fire_at,
            },
        )
        unwritten_referrals(self.session).add(clock.referral_id)
        self._wake_if_soon(clock)

    def stop(self, referral_id: str, kinds: Sequence[ClockKind], reason: str, at: datetime) -> None:
        """Stop the referral's running clocks of ``kinds``. The write buffer is written first
        only if it holds a clock of this referral: otherwise the batch's queued rows (other
        referrals' cases and clocks, the inbox and outbox rows) stay queued for one insert per
        table, where a flush per lifecycle event would write them event by event."""
        if not kinds:
            return
        if referral_id in unwritten_referrals(self.session):
            flush_buffer(self.session)  # its clocks started earlier in this transaction
        params = {f"kind{i}": kind.value for i, kind in enumerate(kinds)}
        fastsql.execute(
            self.session.connection(),
            _stop(len(kinds)),
            {"referral_id": referral_id, "at": at, "reason": reason, **params},
        )

    def get(self, clock_id: str) -> SlaClock | None:
        flush_buffer(self.session)
        row = self.session.connection().execute(_CLOCK, {"clock_id": clock_id}).first()
        if row is None:
            return None
        return _to_clock(row)

    def due(self, now: datetime, limit: int) -> list[SlaClock]:
        """Clocks due at ``now``, earliest first, up to ``limit``; on PostgreSQL locked, those
        another clock worker holds skipped."""
        query = (
            select(_CLOCKS)
            .where(_CLOCKS.c.next_fire_at.is_not(None), _CLOCKS.c.next_fire_at <= now)
            .order_by(_CLOCKS.c.next_fire_at)
            .limit(limit)
            .with_for_update(skip_locked=True)  # SQLite has no row locks and leaves it out
        )
        clocks = [_to_clock(row) for row in self.session.connection().execute(query)]
        self.fired += clocks
        return clocks

    def save(self, clock: SlaClock) -> None:
        """Write what changes on a running clock (fired, stopped, resumed)."""
        self.session.connection().execute(
            _SAVE,
            {
                "key": clock.id,
                "deadline_at": clock.deadline_at,
                "warn_at": clock.warn_at,
                "warned_at": clock.warned_at,
                "breached_at": clock.breached_at,
                "stopped_at": clock.stopped_at,
                "stop_reason": clock.stop_reason,
                "next_fire_at": clock.next_fire_at,
            },
        )
        self._wake_if_soon(clock)  # resumed: it may be due before the worker looks again

    def _wake_if_soon(self, clock: SlaClock) -> None:
        due = clock.next_fire_at
        if due is not None and due - datetime.now(UTC) < _WAKE_WITHIN:
            announce(self.session, CLOCKS)

    def next_due(self) -> datetime | None:
        """When the earliest live clock needs attention (an index lookup)."""
        query = select(func.min(_CLOCKS.c.next_fire_at))
        value: datetime | None = self.session.connection().execute(query).scalar()
        return value

    def acceptance_breaches(self, referral_ids: list[str]) -> dict[str, list[str | None]]:
        """The organisations whose acceptance clock breached, per referral."""
        out: dict[str, list[str | None]] = {}
        for chunk in chunks(referral_ids):
            query = select(_CLOCKS.c.referral_id, _CLOCKS.c.assigned_org).where(
                _CLOCKS.c.referral_id.in_(chunk),
                _CLOCKS.c.kind == ClockKind.ACCEPTANCE.value,
                _CLOCKS.c.breached_at.is_not(None),
            )
            for referral_id, org in self.session.connection().execute(query):
                out.setdefault(referral_id, []).append(org)
        return out


def _to_clock(row: Row[Any]) -> SlaClock:
    return SlaClock(
        id=row.id,
        referral_id=row.referral_id,
        kind=ClockKind(row.kind),
        attempt=row.attempt,
        assigned_org=row.assigned_org,
        provider_type=ProviderType(row.provider_type) if row.provider_type else None,
        service_type=ServiceType(row.service_type),
        priority=Priority(row.priority),
        policy_id=row.policy_id,
        auto_reroute=row.auto_reroute,
        correlation_id=row.correlation_id,
        started_at=row.started_at,
        deadline_at=row.deadline_at,
        warn_at=row.warn_at,
        next_fire_at=row.next_fire_at,
        warned_at=row.warned_at,
        breached_at=row.breached_at,
        stopped_at=row.stopped_at,
        stop_reason=row.stop_reason,
    )
