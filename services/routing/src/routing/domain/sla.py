"""SLA policies and clocks, in pure Python.

A clock has a start, a deadline and, optionally, a warning time at a fraction of the way.
It fires at most one warning and one breach; a warning whose moment has passed together with
the deadline (the clock worker was down) is not sent, since it would arrive with the breach.
Event ids are derived from the clock and what fired, so even a clock fired twice reaches
subscribers as one event."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from rx_contracts import (
    ClockKind,
    EscalationCause,
    EventPayload,
    Priority,
    ProviderType,
    ReferralEscalated,
    ServiceType,
    SlaBreached,
    SlaWarning,
)
from rx_contracts.topics import ROUTING_ESCALATIONS, ROUTING_SLA, provider_topic

from .errors import Collector

PAUSED_FOR_QUESTION = "info-requested"
"""Why an acceptance clock stops while its organisation waits for the referrer's answer."""

_EVENT_IDS = uuid.UUID("6d1c1c55-5a3e-4b8e-9b53-0f3c2b7a51d0")


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
        return f"{self.service_type}/{self.priority or '*'}"  # a StrEnum formats as its value


def check_policy(
    accept_within_seconds: int | None,
    respond_within_seconds: int | None,
    warn_at_fraction: float | None,
    auto_reroute: bool,
    errors: Collector,
) -> None:
    """A policy's limits: at least one, each at least a second; a warning strictly inside
    the time; re-routing only with an acceptance limit to run out."""
    for name, value in (
        ("accept_within_seconds", accept_within_seconds),
        ("respond_within_seconds", respond_within_seconds),
    ):
        if value is not None and value < 1:
            errors.add(name, "positive", "a time limit is at least 1 second")
    if accept_within_seconds is None and respond_within_seconds is None:
        errors.add(
            "accept_within_seconds", "limit_required", "set an acceptance or a response limit"
        )
    if warn_at_fraction is not None and not 0 < warn_at_fraction < 1:
        errors.add("warn_at_fraction", "fraction", "warn at a fraction strictly between 0 and 1")
    if auto_reroute and accept_within_seconds is None:
        errors.add(
            "auto_reroute", "needs_acceptance_limit", "re-routing needs an acceptance time limit"
        )


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


@dataclass(slots=True)
class Schedule:
    """When a clock warns and runs out (built for every clock started: not frozen)."""

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


def acceptance_clock_id(referral_id: str, attempt: int) -> str:
    return f"{referral_id}:acceptance:{attempt}"


def response_clock_id(referral_id: str) -> str:
    return f"{referral_id}:response"


def event_id(clock_id: str, firing: str) -> str:
    """The same id every time this clock fires this way (subscribers dedupe on it)."""
    return str(uuid.uuid5(_EVENT_IDS, f"{clock_id}/{firing}"))


Holder = tuple[str | None, ProviderType | None]
"""The organisation holding a referral, and its provider type (None, None: nobody)."""


@dataclass(frozen=True)
class ClockEvent:
    """An event a clock fired, to publish under its own id."""

    payload: EventPayload
    event_id: str
    topics: tuple[str, ...]
    at: datetime


@dataclass(slots=True)
class SlaClock:
    """One SLA clock of a referral: started by routing as the referral moves, stopped when
    met (or nobody's to meet any more), fired by the clock worker when its time comes."""

    id: str
    referral_id: str
    kind: ClockKind
    attempt: int | None
    """The routing attempt an acceptance clock belongs to (None: a response clock)."""
    assigned_org: str | None
    """An acceptance clock's organisation (a response clock warns whoever holds it then)."""
    provider_type: ProviderType | None
    service_type: ServiceType
    priority: Priority
    policy_id: str
    auto_reroute: bool
    correlation_id: str | None
    started_at: datetime
    deadline_at: datetime
    warn_at: datetime | None
    next_fire_at: datetime | None
    """When the clock worker must next look at it; None once stopped or breached."""
    warned_at: datetime | None = None
    breached_at: datetime | None = None
    stopped_at: datetime | None = None
    stop_reason: str | None = None
    events: list[ClockEvent] = field(default_factory=list)
    """Fired and not yet stored."""

    @classmethod
    def start(
        cls,
        policy: SlaPolicy,
        kind: ClockKind,
        referral_id: str,
        service_type: ServiceType,
        priority: Priority,
        correlation_id: str | None,
        started_at: datetime,
        attempt: int = 0,
        holder: Holder = (None, None),
    ) -> SlaClock | None:
        """A clock of ``kind`` under ``policy``; None if the policy sets no time for it."""
        acceptance = kind is ClockKind.ACCEPTANCE
        within = policy.accept_within if acceptance else policy.respond_within
        if within is None:
            return None
        plan = schedule(started_at, within, policy.warn_at_fraction)
        return cls(
            id=acceptance_clock_id(referral_id, attempt)
            if acceptance
            else response_clock_id(referral_id),
            referral_id=referral_id,
            kind=kind,
            attempt=attempt if acceptance else None,
            assigned_org=holder[0] if acceptance else None,
            provider_type=holder[1] if acceptance else None,
            service_type=service_type,
            priority=priority,
            policy_id=policy.id,
            auto_reroute=policy.auto_reroute and acceptance,
            correlation_id=correlation_id,
            started_at=plan.started_at,
            deadline_at=plan.deadline,
            warn_at=plan.warn_at,
            next_fire_at=next_fire(plan.warn_at, False, plan.deadline, False),
        )

    def resume(self) -> bool:
        """Run on after the referral was unroutable (stopped for that reason only), to the
        original deadline, which may have passed: then it breaches at once. Whether it did."""
        if self.stop_reason != "unroutable":
            return False
        self.stopped_at, self.stop_reason = None, None
        self.next_fire_at = next_fire(
            self.warn_at, self.warned_at is not None, self.deadline_at, self.breached_at is not None
        )
        return True

    def resume_after_pause(self, at: datetime) -> bool:
        """Run on after a pause for a question (stopped for that reason only): the deadline
        and the warning move later by the time it waited, so the organisation keeps the time
        it had left. Whether it resumed."""
        if self.stop_reason != PAUSED_FOR_QUESTION or self.stopped_at is None:
            return False
        waited = max(at - self.stopped_at, timedelta(0))
        self.deadline_at += waited
        if self.warn_at is not None:
            self.warn_at += waited
        self.stopped_at, self.stop_reason = None, None
        self.next_fire_at = next_fire(
            self.warn_at, self.warned_at is not None, self.deadline_at, self.breached_at is not None
        )
        return True

    def fire(self, now: datetime, holder: Holder, sequence: int | None = None) -> None:
        """Fire what is due at ``now``, for ``holder``: a warning or a breach on routing.sla.v1
        and the holder's provider topic; a breach that re-routes nobody is escalated to ops.
        ``sequence``: the referral's sequence as routing last saw it, which the events carry."""
        for firing in due(
            self.warn_at,
            self.warned_at is not None,
            self.deadline_at,
            self.breached_at is not None,
            now,
        ):
            self._fire(firing, now, holder, sequence)
        self.next_fire_at = next_fire(
            self.warn_at, self.warned_at is not None, self.deadline_at, self.breached_at is not None
        )

    def take_events(self) -> list[ClockEvent]:
        """What fired since the last call, in order (for the unit of work to publish)."""
        events, self.events = self.events, []
        return events

    def _fire(self, firing: Firing, now: datetime, holder: Holder, sequence: int | None) -> None:
        org, org_type = holder
        common: dict[str, Any] = {
            "referral_id": self.referral_id,
            "clock_id": self.id,
            "kind": self.kind,
            "sequence": sequence,
            "attempt": self.attempt,
            "assigned_org": org,
            "provider_type": org_type,
            "service_type": self.service_type,
            "priority": self.priority,
            "policy_id": self.policy_id,
            "started_at": self.started_at,
            "deadline": self.deadline_at,
        }
        payload: SlaWarning | SlaBreached
        if firing is Firing.WARNING:
            self.warned_at = now
            payload = SlaWarning(**common, warned_at=now)
        else:
            self.breached_at = now
            payload = SlaBreached(**common, breached_at=now, auto_reroute=self.auto_reroute)
        topics = (ROUTING_SLA, provider_topic(org_type)) if org_type else (ROUTING_SLA,)
        self.events.append(ClockEvent(payload, event_id(self.id, firing.value), topics, now))
        if firing is Firing.BREACH and not self.auto_reroute:
            escalation = ReferralEscalated(
                referral_id=self.referral_id,
                cause=EscalationCause.SLA_BREACHED,
                service_type=self.service_type,
                priority=self.priority,
                assigned_org=org,
                detail=f"{self.kind} deadline {self.deadline_at.isoformat()} of policy "
                f"{self.policy_id} passed" + (f" while {org} held it" if org else ""),
                escalated_at=now,
            )
            self.events.append(
                ClockEvent(escalation, event_id(self.id, "escalation"), (ROUTING_ESCALATIONS,), now)
            )
