"""What the evaluation figures know of each referral, folded from its recorded events.

:class:`FigureState` keeps a few facts per referral and is brought up to date with the entries
recorded since it last looked (chain sequence order), so a request costs only what is new.
Being derived from the deduplicated log, it is the same after a restart (rebuilt from the log)
and whatever Kafka redelivered. Events of one referral may be folded in any order (chain order
can differ from event order across topics), so each fold keeps what holds whatever came first.

A new event type joins by adding a function to :data:`FOLDS` (and, if it brings a new figure,
a field here and a figure in ``figures.py``). Pure: the service layer reads the entries."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from rx_contracts import (
    ReferralAccepted,
    ReferralAmended,
    ReferralCancelled,
    ReferralCompleted,
    ReferralFailed,
    ReferralInfoProvided,
    ReferralInfoRequested,
    ReferralRejected,
    ReferralRouted,
    ReferralSubmitted,
    ReferralUnroutable,
)

from .chain import from_us

COHORTS = ("care_home_resident", "frailty", "end_of_life")
"""The cohort flags of ``rx_contracts.CohortFlags`` the figures count by."""


class Routing(NamedTuple):
    attempt: int
    at: datetime
    provider_type: str
    locality: str | None
    organisation: str | None


class Rejection(NamedTuple):
    at: datetime
    reason: str
    organisation: str | None


class Ending(NamedTuple):
    """How a referral ended: its end state, the outcome (completed) or reason code (cancelled,
    failed) the event gave (None when it gave none), and the organisation that ended it."""

    state: str
    code: str | None
    at: datetime
    organisation: str | None = None


class Step(NamedTuple):
    """A question asked or answered: its per-referral sequence number orders the two whatever
    order they were folded in."""

    sequence: int
    at: datetime
    organisation: str | None


class Question(NamedTuple):
    """A question the assigned organisation asked, and when the referrer answered it (None:
    not answered)."""

    asked: Step
    answered_at: datetime | None


@dataclass
class ReferralFacts:
    """What the figures need to know about one referral."""

    submitted_at: datetime | None = None
    service_type: str | None = None
    referrer: str | None = None
    cohorts: tuple[str, ...] = ()
    routings: list[Routing] = field(default_factory=list)
    unroutable_locality: str | None = None
    accepted_at: datetime | None = None
    accepted_org: str | None = None
    rejections: list[Rejection] = field(default_factory=list)
    ending: Ending | None = None
    asked: list[Step] = field(default_factory=list)
    answered: list[Step] = field(default_factory=list)
    excluded: bool = False
    """Left out of every figure (see :meth:`FigureState.apply`)."""

    @property
    def routed(self) -> list[Routing]:
        """Its routings in the order they were made."""
        return sorted(self.routings, key=lambda r: (r.attempt, r.at))

    @property
    def last_routing(self) -> Routing | None:
        return max(self.routings, key=lambda r: (r.attempt, r.at)) if self.routings else None

    @property
    def locality(self) -> str | None:
        """Where the patient lives, as its newest routing (or its failed one) said."""
        last = self.last_routing
        return last.locality if last is not None else self.unroutable_locality

    @property
    def completed(self) -> Ending | None:
        """Its ending, if it was completed with an outcome."""
        ending = self.ending
        return ending if ending is not None and ending.state == "completed" else None

    @property
    def questions(self) -> list[Question]:
        """Each question asked, in order, with the answer that followed it (the lifecycle
        allows one open question at a time, so an answer closes the latest one before it)."""
        steps = sorted(
            [(s, True) for s in self.asked] + [(s, False) for s in self.answered],
            key=lambda item: (item[0].sequence, item[0].at),
        )
        found: list[Question] = []
        for step, is_question in steps:
            if is_question:
                found.append(Question(step, None))
            elif found and found[-1].answered_at is None:
                found[-1] = found[-1]._replace(answered_at=step.at)
        return found


Fold = Callable[[ReferralFacts, datetime, dict[str, Any]], None]
"""Folds one event's data in; ``datetime`` is when the event happened (its envelope's time)."""


def _submitted(facts: ReferralFacts, occurred: datetime, data: dict[str, Any]) -> None:
    facts.submitted_at = _time(data.get("submitted_at"), occurred)
    facts.service_type = data.get("service_type")
    facts.referrer = data.get("referrer_org")
    facts.cohorts = _cohorts(data.get("cohort"))


def _amended(facts: ReferralFacts, _occurred: datetime, data: dict[str, Any]) -> None:
    facts.cohorts = _cohorts(data.get("cohort"))


def _routed(facts: ReferralFacts, occurred: datetime, data: dict[str, Any]) -> None:
    facts.routings.append(
        Routing(
            int(data.get("attempt") or 1),
            _time(data.get("routed_at"), occurred),
            str(data.get("provider_type")),
            data.get("locality"),
            data.get("assigned_org"),
        )
    )


def _unroutable(facts: ReferralFacts, _occurred: datetime, data: dict[str, Any]) -> None:
    facts.unroutable_locality = data.get("locality") or facts.unroutable_locality


def _accepted(facts: ReferralFacts, occurred: datetime, data: dict[str, Any]) -> None:
    at = _time(data.get("occurred_at"), occurred)
    if facts.accepted_at is None or at < facts.accepted_at:
        facts.accepted_at = at
        facts.accepted_org = data.get("assigned_org") or _actor(data)


def _rejected(facts: ReferralFacts, occurred: datetime, data: dict[str, Any]) -> None:
    facts.rejections.append(
        Rejection(
            _time(data.get("occurred_at"), occurred),
            str(data.get("reason_code")),
            data.get("rejected_by") or _actor(data),
        )
    )


def _step(occurred: datetime, data: dict[str, Any]) -> Step:
    return Step(
        int(data.get("sequence") or 0), _time(data.get("occurred_at"), occurred), _actor(data)
    )


def _info_requested(facts: ReferralFacts, occurred: datetime, data: dict[str, Any]) -> None:
    facts.asked.append(_step(occurred, data))


def _info_provided(facts: ReferralFacts, occurred: datetime, data: dict[str, Any]) -> None:
    facts.answered.append(_step(occurred, data))


def _ended(state: str, code_field: str) -> Fold:
    """A fold for an event that ends a referral; ``code_field`` names its outcome or reason
    code (which may be absent)."""

    def fold(facts: ReferralFacts, occurred: datetime, data: dict[str, Any]) -> None:
        at = _time(data.get("occurred_at"), occurred)
        facts.ending = Ending(state, data.get(code_field), at, _actor(data))

    return fold


FOLDS: dict[str, Fold] = {
    ReferralSubmitted.EVENT_TYPE: _submitted,
    ReferralAmended.EVENT_TYPE: _amended,
    ReferralRouted.EVENT_TYPE: _routed,
    ReferralUnroutable.EVENT_TYPE: _unroutable,
    ReferralAccepted.EVENT_TYPE: _accepted,
    ReferralRejected.EVENT_TYPE: _rejected,
    ReferralCompleted.EVENT_TYPE: _ended("completed", "outcome"),
    ReferralCancelled.EVENT_TYPE: _ended("cancelled", "reason_code"),
    ReferralFailed.EVENT_TYPE: _ended("failed", "reason_code"),
    ReferralInfoRequested.EVENT_TYPE: _info_requested,
    ReferralInfoProvided.EVENT_TYPE: _info_provided,
}
"""Event type → how it is folded in."""

RELEVANT = tuple(FOLDS)
"""The event types the figures are folded from."""


class FigureState:
    """Facts per referral, and the newest chain sequence folded in."""

    def __init__(self) -> None:
        self.referrals: dict[str, ReferralFacts] = defaultdict(ReferralFacts)
        self.last_sequence = 0

    def apply(self, type_: str, referral_id: str, occurred: datetime, data: dict[str, Any]) -> None:
        """Fold one event in."""
        facts = self.referrals[referral_id]
        FOLDS[type_](facts, occurred, data)
        sharing = data.get("sharing")
        if isinstance(sharing, dict):  # only the referrals service's events carry it
            # A recorded national data opt-out: figures.Selection leaves it out of every figure.
            facts.excluded = bool(sharing.get("data_opt_out"))


def fold(state: FigureState, rows: Iterable[Any]) -> None:
    """Fold entry rows (sequence, type, referral id, occurred_at_us, payload JSON) in."""
    for sequence, type_, referral_id, occurred_us, payload in rows:
        state.apply(type_, referral_id, from_us(occurred_us), json.loads(payload))
        state.last_sequence = sequence


def _actor(data: dict[str, Any]) -> str | None:
    actor = data.get("actor")
    return actor.get("organisation") if isinstance(actor, dict) else None


def _time(value: Any, fallback: datetime) -> datetime:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return fallback
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return fallback


def _cohorts(value: Any) -> tuple[str, ...]:
    flags = value if isinstance(value, dict) else {}
    return tuple(name for name in COHORTS if flags.get(name))
