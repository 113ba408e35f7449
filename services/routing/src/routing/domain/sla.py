"""SLA policies and clock arithmetic, in pure Python.

A clock has a start, a deadline and, optionally, a warning time at a fraction of the way.
It fires at most one warning and one breach; a warning whose moment has passed together with
the deadline (the clock worker was down) is not sent, since it would arrive with the breach."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from rx_contracts import Priority, ServiceType


class Firing(StrEnum):
    WARNING = "warning"
    BREACH = "breach"


@dataclass(frozen=True)
class SlaPolicy:
    """Deadlines for referrals of one service type and priority (``priority`` None: every
    priority that has no policy of its own)."""

    service_type: ServiceType
    priority: Priority | None
    accept_within: timedelta | None
    """From routing to an organisation until it accepts; None: no acceptance clock."""
    respond_within: timedelta | None
    """From submission until work with the patient starts; None: no response clock."""
    warn_at_fraction: float | None = 0.75
    """Warn when this share of the time has gone; None: no warnings."""
    auto_reroute: bool = False
    """On an acceptance breach, take the referral from the organisation and route it on."""
    version: int = 1

    @property
    def id(self) -> str:
        return f"{self.service_type.value}/{self.priority.value if self.priority else '*'}"


def policy_for(
    policies: Iterable[SlaPolicy], service_type: ServiceType, priority: Priority
) -> SlaPolicy | None:
    """The policy for exactly this service type and priority, else the service type's
    catch-all, else None (no clocks)."""
    fallback = None
    for policy in policies:
        if policy.service_type != service_type:
            continue
        if policy.priority == priority:
            return policy
        if policy.priority is None:
            fallback = policy
    return fallback


@dataclass(frozen=True)
class Schedule:
    started_at: datetime
    deadline: datetime
    warn_at: datetime | None


def schedule(started_at: datetime, within: timedelta, warn_at_fraction: float | None) -> Schedule:
    """When a clock started at ``started_at`` warns and runs out."""
    deadline = started_at + within
    warn_at = started_at + within * warn_at_fraction if warn_at_fraction is not None else None
    return Schedule(started_at, deadline, warn_at)


def due(
    warn_at: datetime | None,
    warned: bool,
    deadline: datetime,
    breached: bool,
    now: datetime,
) -> list[Firing]:
    """What a running clock must fire at ``now``, in order."""
    if breached:
        return []
    if now >= deadline:
        return [Firing.BREACH]
    if warn_at is not None and not warned and now >= warn_at:
        return [Firing.WARNING]
    return []


def next_fire(
    warn_at: datetime | None, warned: bool, deadline: datetime, breached: bool
) -> datetime | None:
    """When a running clock next needs attention; None once it has breached."""
    if breached:
        return None
    if warn_at is not None and not warned and warn_at < deadline:
        return warn_at
    return deadline
