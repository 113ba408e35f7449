"""What a case records for the unit of work to store, in the order it happened: clocks
started and stopped, decisions made and what became of them, organisations' day loads, and
events to publish.

Not frozen: several are built for every event, and frozen dataclasses are slower to build."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from rx_contracts import (
    ClockKind,
    Envelope,
    EventPayload,
    ReferralRouted,
    ReferralUnroutable,
)

from .decision import Decision
from .sla import SlaClock


@dataclass(slots=True)
class ClockStarted:
    clock: SlaClock


@dataclass(slots=True)
class ClocksStopped:
    kinds: tuple[ClockKind, ...]
    reason: str
    at: datetime


@dataclass(slots=True)
class ResponseClockResumed:
    """The response clock runs on, if it was stopped because the referral was unroutable."""


@dataclass(slots=True)
class AcceptanceClockResumed:
    """The acceptance clock runs on after a question was answered, its deadline (and warning)
    later by the time it waited."""

    clock_id: str
    at: datetime


@dataclass(slots=True)
class Decided:
    decision: Decision
    event: ReferralRouted | ReferralUnroutable
    topics: tuple[str, ...]


@dataclass(slots=True)
class DecisionAccepted:
    decision_id: str
    at: datetime


@dataclass(slots=True)
class DecisionReleased:
    decision_id: str
    how: str
    at: datetime


@dataclass(slots=True)
class LoadChanged:
    """One more (or fewer) referral given to an organisation on a local day."""

    organisation: str
    day: date
    change: int
    capacity: int | None = None
    """The organisation's daily capacity when it was given the referral: the place is claimed
    only while the day's count is under it, whoever else is routing at the same time."""


@dataclass(slots=True)
class Published:
    """A new event of routing's own (other than a decision)."""

    event: EventPayload
    topics: tuple[str, ...]
    at: datetime


@dataclass(slots=True)
class Forwarded:
    """Another service's event passed on, same id, to more topics."""

    envelope: Envelope
    topics: tuple[str, ...]


Change = (
    ClockStarted
    | ClocksStopped
    | ResponseClockResumed
    | AcceptanceClockResumed
    | Decided
    | DecisionAccepted
    | DecisionReleased
    | LoadChanged
    | Published
    | Forwarded
)
