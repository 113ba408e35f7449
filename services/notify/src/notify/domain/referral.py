"""What notify knows of each referral (a read model fed by the lifecycle events), who may see
it, and in which order its events are applied.

A referral's events come from three topics (referrals.events.v1, routing.decisions.v1,
routing.sla.v1), so they can arrive out of order. Every lifecycle event carries the referral's
gapless per-referral ``sequence``; an event is applied only after its predecessor, and held
back until then. Clock events take no number of their own: they carry the sequence the referral
was at, and are applied once that one was.

Routing numbers its decisions with the number the referrals service reserved for them when the
referral entered ``submitted``. A decision without one (for a referral routing saw before it
kept the number) is placed by its routing attempt instead: attempt n belongs to the n-th time
the referral entered ``submitted`` and takes the next free number; an event of the referrals
service that later claims that number is still applied (late), so nothing is lost."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from .topics import CLOCKS, DECISIONS, ENTRIES, Kind, Topic

TERMINAL = frozenset({"completed", "cancelled", "failed"})


@dataclass(frozen=True)
class LifecycleEvent:
    """One event about a referral, as it arrived (the payload's JSON in ``data``)."""

    event_id: str
    type: str
    kind: Kind
    referral_id: str
    data: dict[str, Any]
    time: datetime
    source: str

    @property
    def sequence(self) -> int | None:
        value = self.data.get("sequence")
        return int(value) if value is not None else None

    @property
    def attempt(self) -> int | None:
        value = self.data.get("attempt") if self.kind in DECISIONS else None
        return int(value) if value is not None else None


@dataclass
class ReferralView:
    """The referral as notify last saw it. No patient data: events never carry any."""

    referral_id: str
    referrer_org: str
    service_type: str
    priority: str
    status: str = "submitted"
    assigned_org: str | None = None
    provider_type: str | None = None
    applied_sequence: int = 1
    """Highest sequence applied with every one before it."""
    entries: list[int] = field(default_factory=lambda: [1])
    """Sequences at which the referral entered ``submitted`` (one routing attempt each)."""
    decided: int = 0
    """Routing attempts whose decision was applied (or found stale)."""
    held: int = 0
    """Its events waiting for a predecessor."""

    @classmethod
    def submitted(cls, event: LifecycleEvent) -> ReferralView:
        data = event.data
        return cls(
            referral_id=event.referral_id,
            referrer_org=data["referrer_org"],
            service_type=data["service_type"],
            priority=data["priority"],
        )

    def state(self) -> dict[str, Any]:
        """What a notification tells of the referral as of an event."""
        return {
            "status": self.status,
            "referrer_org": self.referrer_org,
            "assigned_org": self.assigned_org,
            "provider_type": self.provider_type,
            "service_type": self.service_type,
            "priority": self.priority,
        }


class Placement(StrEnum):
    APPLY = "apply"
    """Its turn: apply it now."""
    HOLD = "hold"
    """An event before it has not arrived: keep it until that one is applied."""
    LATE = "late"
    """Its number was given to an unnumbered decision meanwhile: apply it now, out of turn."""
    STALE = "stale"
    """Nothing to apply: a decision overtaken by the referral's later steps, or a repeat."""


def place(view: ReferralView | None, event: LifecycleEvent) -> Placement:
    """Where ``event`` stands in its referral's order, given what was applied so far."""
    if event.kind is Kind.SUBMITTED:
        return Placement.APPLY if view is None else Placement.STALE
    if view is None:
        return Placement.HOLD  # the referral's first event has not arrived yet
    sequence = event.sequence
    if event.kind in CLOCKS:
        if sequence is None or view.applied_sequence >= sequence:
            return Placement.APPLY
        return Placement.HOLD
    if event.kind in DECISIONS and sequence is None:
        return _place_unnumbered_decision(view, event)
    assert sequence is not None, f"{event.type} carries no sequence"
    if sequence == view.applied_sequence + 1:
        return Placement.APPLY
    if sequence > view.applied_sequence + 1:
        return Placement.HOLD
    return Placement.LATE


def _place_unnumbered_decision(view: ReferralView, event: LifecycleEvent) -> Placement:
    attempt = event.attempt or view.decided + 1
    if attempt <= view.decided:
        return Placement.STALE
    if attempt > len(view.entries):
        return Placement.HOLD  # the step that asked routing for it has not arrived
    if attempt < len(view.entries) or view.status != "submitted":
        return Placement.STALE  # re-routed or cancelled before this decision was applied
    return Placement.APPLY


@dataclass(frozen=True)
class Change:
    """An applied event with the referral before and after it: who may see it decides who
    hears of it."""

    event: LifecycleEvent
    sequence: int | None
    """The referral's sequence this event stands at (None: a clock event)."""
    before: dict[str, Any]
    after: dict[str, Any]

    def entitled(self, topic: Topic) -> set[str]:
        """Organisations that may hear of this event on ``topic``: those that could see the
        referral in that role before or after it. An organisation it was taken from hears of
        the event that took it away, and of nothing after."""
        if topic is Topic.SENT:
            return {self.after["referrer_org"]}
        return {org for org in (self.before["assigned_org"], self.after["assigned_org"]) if org}


def apply(view: ReferralView | None, event: LifecycleEvent, placement: Placement) -> Change:
    """Apply an event ``place`` said to apply (or late); returns the change it made. The
    caller creates the view from the Change of a submitted event."""
    if view is None:
        created = ReferralView.submitted(event)
        return Change(event, 1, created.state(), created.state())
    before = view.state()
    data = event.data
    number: int | None = None
    if event.kind in CLOCKS:
        number = None
    elif event.kind in DECISIONS:
        number = event.sequence or view.applied_sequence + 1
        view.decided = event.attempt or view.decided + 1
        if view.status == "submitted":
            if event.kind is Kind.ROUTED:
                view.status, view.assigned_org = "routed", data["assigned_org"]
                view.provider_type = data["provider_type"]
            else:
                view.status, view.assigned_org, view.provider_type = "unroutable", None, None
        view.priority = data.get("priority", view.priority)
    else:
        number = event.sequence
        view.priority = data.get("priority", view.priority)
        # A late step happened before the decision that took its number: only an end
        # (cancelled) still changes where the referral is.
        if placement is Placement.APPLY or data["status"] in TERMINAL:
            view.status = data["status"]
            view.assigned_org = data.get("assigned_org")
            if view.assigned_org is None:
                view.provider_type = None
            elif data.get("provider_type"):
                view.provider_type = data["provider_type"]
            if event.kind in ENTRIES and number is not None:
                view.entries.append(number)
    if number is not None and placement is Placement.APPLY:
        view.applied_sequence = max(view.applied_sequence, number)
    return Change(event, number, before, view.state())
