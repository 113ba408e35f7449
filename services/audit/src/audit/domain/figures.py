"""Evaluation figures, computed from the recorded events.

The figures are a fold over the chain: :class:`FigureState` keeps a few facts per referral and
is brought up to date with the entries recorded since it last looked (chain sequence order), so
a request costs only what is new. Being derived from the deduplicated log, it is the same after
a restart (rebuilt from the log) and whatever Kafka redelivered. Pure: the service layer reads
the entries and folds them in.

Every figure is about the referrals *submitted* in the chosen window ``[since, until)``, less
those of patients with a recorded national data opt-out (the events' ``sharing`` flag):
- time to acceptance: submission to first acceptance, median and 90th percentile (linear
  interpolation between closest ranks), per service type and per accepting organisation;
- rapid response: of the urgent community response referrals whose 2 hours are up or that
  were accepted, the share accepted within 2 hours of submission (the rest are pending);
- rejections by reason code; outcomes of completed referrals by cohort (a referral in several
  cohorts counts in each; ``none`` for none) and by locality (of its last routing);
- flows: each routing of a referral, from the provider type that held it before (``referrer``
  for the first) to the one it went to;
- daily trend: submissions, acceptances, rejections and completions per UTC day they happened.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from rx_contracts import (
    ReferralAccepted,
    ReferralAmended,
    ReferralCompleted,
    ReferralRejected,
    ReferralRouted,
    ReferralSubmitted,
    ServiceType,
)

from .chain import from_us

RAPID_RESPONSE_SERVICE = ServiceType.URGENT_COMMUNITY_RESPONSE.value
RAPID_RESPONSE_STANDARD = timedelta(hours=2)
COHORTS = ("care_home_resident", "frailty", "end_of_life")
RELEVANT = (
    ReferralSubmitted.EVENT_TYPE,
    ReferralAmended.EVENT_TYPE,
    ReferralRouted.EVENT_TYPE,
    ReferralAccepted.EVENT_TYPE,
    ReferralRejected.EVENT_TYPE,
    ReferralCompleted.EVENT_TYPE,
)
"""The event types the figures are folded from."""


@dataclass
class ReferralFacts:
    """What the figures need to know about one referral."""

    submitted_at: datetime | None = None
    service_type: str | None = None
    cohorts: tuple[str, ...] = ()
    routings: list[tuple[int, datetime, str, str | None]] = field(default_factory=list)
    """(attempt, when, provider type, locality) of each routing."""
    accepted_at: datetime | None = None
    accepted_org: str | None = None
    rejections: list[tuple[datetime, str]] = field(default_factory=list)
    completed_at: datetime | None = None
    outcome: str | None = None
    excluded: bool = False
    """The patient has a recorded national data opt-out: left out of every figure."""


class FigureState:
    """Facts per referral, folded from events in any order (chain order can differ from event
    order across topics)."""

    def __init__(self) -> None:
        self.referrals: dict[str, ReferralFacts] = defaultdict(ReferralFacts)
        self.last_sequence = 0

    def apply(self, type_: str, referral_id: str, occurred: datetime, data: dict[str, Any]) -> None:
        """Fold one event in."""
        facts = self.referrals[referral_id]
        sharing = data.get("sharing")
        if isinstance(sharing, dict):  # only the referrals service's events carry it
            facts.excluded = bool(sharing.get("data_opt_out"))
        if type_ == ReferralSubmitted.EVENT_TYPE:
            facts.submitted_at = _time(data.get("submitted_at"), occurred)
            facts.service_type = data.get("service_type")
            facts.cohorts = _cohorts(data.get("cohort"))
        elif type_ == ReferralAmended.EVENT_TYPE:
            facts.cohorts = _cohorts(data.get("cohort"))
        elif type_ == ReferralRouted.EVENT_TYPE:
            facts.routings.append(
                (
                    int(data.get("attempt") or 1),
                    _time(data.get("routed_at"), occurred),
                    str(data.get("provider_type")),
                    data.get("locality"),
                )
            )
        elif type_ == ReferralAccepted.EVENT_TYPE:
            at = _time(data.get("occurred_at"), occurred)
            if facts.accepted_at is None or at < facts.accepted_at:
                actor = data.get("actor") or {}
                facts.accepted_at = at
                facts.accepted_org = data.get("assigned_org") or actor.get("organisation")
        elif type_ == ReferralRejected.EVENT_TYPE:
            facts.rejections.append(
                (_time(data.get("occurred_at"), occurred), str(data.get("reason_code")))
            )
        elif type_ == ReferralCompleted.EVENT_TYPE:
            facts.completed_at = _time(data.get("occurred_at"), occurred)
            facts.outcome = data.get("outcome")


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


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (NumPy's default; the median at 0.5)."""
    position = (len(sorted_values) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def _durations(groups: dict[str, list[float]]) -> list[dict[str, Any]]:
    out = []
    for name in sorted(groups):
        values = sorted(groups[name])
        out.append(
            {
                "group": name,
                "count": len(values),
                "median_seconds": percentile(values, 0.5),
                "p90_seconds": percentile(values, 0.9),
            }
        )
    return out


def _counts(counter: Counter[tuple[str, ...]], names: tuple[str, ...]) -> list[dict[str, Any]]:
    return [
        {**dict(zip(names, key, strict=True)), "count": count}
        for key, count in sorted(counter.items(), key=lambda item: (-item[1], item[0]))
    ]


def aggregate(
    state: FigureState, since: datetime | None, until: datetime | None, now: datetime
) -> dict[str, Any]:
    """Every figure for the referrals submitted in ``[since, until)``, as of ``now``."""
    by_service: dict[str, list[float]] = defaultdict(list)
    by_org: dict[str, list[float]] = defaultdict(list)
    within = due = pending = 0
    rejections: Counter[tuple[str, ...]] = Counter()
    by_cohort: Counter[tuple[str, ...]] = Counter()
    by_locality: Counter[tuple[str, ...]] = Counter()
    flows: Counter[tuple[str, ...]] = Counter()
    daily: dict[str, Counter[str]] = defaultdict(Counter)
    for facts in state.referrals.values():
        submitted = facts.submitted_at
        if submitted is None or facts.excluded:
            continue
        if (since and submitted < since) or (until and submitted >= until):
            continue
        daily[submitted.date().isoformat()]["submitted"] += 1
        if facts.accepted_at is not None:
            waited = (facts.accepted_at - submitted).total_seconds()
            by_service[facts.service_type or "unknown"].append(waited)
            by_org[facts.accepted_org or "unknown"].append(waited)
            daily[facts.accepted_at.date().isoformat()]["accepted"] += 1
        if facts.service_type == RAPID_RESPONSE_SERVICE:
            deadline = submitted + RAPID_RESPONSE_STANDARD
            if facts.accepted_at is not None and facts.accepted_at <= deadline:
                within += 1
                due += 1
            elif facts.accepted_at is not None or now >= deadline:
                due += 1
            else:
                pending += 1
        for at, reason in facts.rejections:
            rejections[(reason,)] += 1
            daily[at.date().isoformat()]["rejected"] += 1
        if facts.outcome is not None and facts.completed_at is not None:
            daily[facts.completed_at.date().isoformat()]["completed"] += 1
            for cohort in facts.cohorts or ("none",):
                by_cohort[(cohort.replace("_", "-"), facts.outcome)] += 1
            routings = sorted(facts.routings)
            locality = (routings[-1][3] if routings else None) or "unknown"
            by_locality[(locality, facts.outcome)] += 1
        held = "referrer"
        for _attempt, _at, provider_type, _locality in sorted(facts.routings):
            flows[(held, provider_type)] += 1
            held = provider_type
    return {
        "since": since,
        "until": until,
        "as_of": now,
        "time_to_accept": {
            "by_service_type": _durations(by_service),
            "by_organisation": _durations(by_org),
        },
        "rapid_response": {
            "standard_seconds": RAPID_RESPONSE_STANDARD.total_seconds(),
            "answered_within": within,
            "due": due,
            "pending": pending,
            "share": within / due if due else None,
        },
        "rejections_by_reason": _counts(rejections, ("reason",)),
        "outcomes_by_cohort": _counts(by_cohort, ("cohort", "outcome")),
        "outcomes_by_locality": _counts(by_locality, ("locality", "outcome")),
        "flows": _counts(flows, ("from", "to")),
        "daily": [
            {
                "day": day,
                **{k: daily[day][k] for k in ("submitted", "accepted", "rejected", "completed")},
            }
            for day in sorted(daily)
        ],
    }


def fold(state: FigureState, rows: Iterable[Any]) -> None:
    """Fold entry rows (sequence, type, referral id, occurred_at_us, payload JSON) in."""
    for sequence, type_, referral_id, occurred_us, payload in rows:
        state.apply(type_, referral_id, from_us(occurred_us), json.loads(payload))
        state.last_sequence = sequence
