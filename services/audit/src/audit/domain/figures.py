"""Evaluation figures, computed from the facts folded per referral (``referral_facts.py``).

Every figure is about the referrals *selected*: submitted in the chosen window
``[since, until)`` and, where asked, involving one organisation (it sent or holds or held them),
living in one locality (of the newest routing) or in one cohort:
- time to acceptance: submission to first acceptance, median and 90th percentile (linear
  interpolation between closest ranks), per service type and per accepting organisation;
- rapid response: of the urgent community response referrals whose 2 hours are up or that
  were accepted, the share accepted within 2 hours of submission (the rest are pending);
- rejections by reason code, and by the organisation that declined and its reason;
- question turnaround: of the referrals whose assigned organisation asked the referrer a
  question, how long answers took (median and 90th percentile, overall and per organisation
  that asked) and how many questions are still unanswered;
- failures (accepted, not delivered) by the organisation that failed and its reason code, and
  cancellations by the organisation that cancelled and its reason code (null: text only);
- the outcome mix: how the referrals that ended did (each end state with its outcome or
  reason code, with its share of them all), overall and per service type;
- outcomes of completed referrals by cohort (a referral in several cohorts counts in each;
  ``none`` for none) and by locality (of its last routing);
- flows: each routing of a referral, from the provider type that held it before (``referrer``
  for the first) to the one it went to;
- daily trend: submissions, acceptances, rejections and completions per UTC day they happened.

A new figure is a function of the selected referrals added to :data:`FIGURES` (and a field of
the API's answer)."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from rx_contracts import ServiceType

from .referral_facts import FigureState, ReferralFacts

RAPID_RESPONSE_SERVICE = ServiceType.URGENT_COMMUNITY_RESPONSE.value
RAPID_RESPONSE_STANDARD = timedelta(hours=2)


class Cohort(StrEnum):
    """A cohort to select referrals by, as the figures name them."""

    CARE_HOME_RESIDENT = "care-home-resident"
    FRAILTY = "frailty"
    END_OF_LIFE = "end-of-life"
    NONE = "none"
    """In none of the cohorts."""


def cohort_name(flag: str) -> str:
    """The figures' name of a cohort flag (``care_home_resident`` → ``care-home-resident``)."""
    return flag.replace("_", "-")


@dataclass(frozen=True)
class Selection:
    """Which referrals the figures are about; every given condition must hold."""

    since: datetime | None = None
    """Submitted at or after this time."""
    until: datetime | None = None
    """Submitted before this time."""
    organisation: str | None = None
    """Involving this organisation (the referrals it sent or holds or held)."""
    locality: str | None = None
    """Of patients in this locality."""
    cohort: Cohort | None = None

    def admits(self, facts: ReferralFacts) -> bool:
        """Whether ``facts`` meets the conditions other than the organisation (whose
        referrals come from the read model of the organisation filter)."""
        submitted = facts.submitted_at
        if submitted is None or facts.excluded:
            return False
        if (self.since and submitted < self.since) or (self.until and submitted >= self.until):
            return False
        if self.locality is not None and facts.locality != self.locality:
            return False
        if self.cohort is Cohort.NONE:
            return not facts.cohorts
        if self.cohort is not None:
            return self.cohort.value in (cohort_name(c) for c in facts.cohorts)
        return True


def select(
    state: FigureState, selection: Selection, involving: Collection[str] | None = None
) -> list[ReferralFacts]:
    """The referrals ``selection`` admits; ``involving``: the ids of the referrals of the
    selection's organisation, needed if it names one."""
    if selection.organisation is not None and involving is None:
        raise ValueError("selecting by organisation needs the ids of its referrals")
    if involving is None:
        return [f for f in state.referrals.values() if selection.admits(f)]
    referrals = state.referrals
    return [referrals[r] for r in involving if r in referrals and selection.admits(referrals[r])]


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


def _counts(counter: Counter[tuple[Any, ...]], names: tuple[str, ...]) -> list[dict[str, Any]]:
    return [
        {**dict(zip(names, key, strict=True)), "count": count}
        for key, count in sorted(counter.items(), key=lambda item: (-item[1], _order(item[0])))
    ]


def _order(key: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple("" if part is None else str(part) for part in key)


Selected = list[ReferralFacts]


def time_to_accept(selected: Selected, _now: datetime) -> dict[str, Any]:
    by_service: dict[str, list[float]] = defaultdict(list)
    by_org: dict[str, list[float]] = defaultdict(list)
    for facts in selected:
        if facts.accepted_at is not None and facts.submitted_at is not None:
            waited = (facts.accepted_at - facts.submitted_at).total_seconds()
            by_service[facts.service_type or "unknown"].append(waited)
            by_org[facts.accepted_org or "unknown"].append(waited)
    return {"by_service_type": _durations(by_service), "by_organisation": _durations(by_org)}


def rapid_response(selected: Selected, now: datetime) -> dict[str, Any]:
    within = due = pending = 0
    for facts in selected:
        if facts.service_type != RAPID_RESPONSE_SERVICE or facts.submitted_at is None:
            continue
        deadline = facts.submitted_at + RAPID_RESPONSE_STANDARD
        if facts.accepted_at is not None and facts.accepted_at <= deadline:
            within += 1
            due += 1
        elif facts.accepted_at is not None or now >= deadline:
            due += 1
        else:
            pending += 1
    return {
        "standard_seconds": RAPID_RESPONSE_STANDARD.total_seconds(),
        "answered_within": within,
        "due": due,
        "pending": pending,
        "share": within / due if due else None,
    }


def rejections_by_reason(selected: Selected, _now: datetime) -> list[dict[str, Any]]:
    counts = Counter((r.reason,) for facts in selected for r in facts.rejections)
    return _counts(counts, ("reason",))


def rejections_by_organisation(selected: Selected, _now: datetime) -> list[dict[str, Any]]:
    counts = Counter(
        (r.organisation or "unknown", r.reason) for facts in selected for r in facts.rejections
    )
    return _counts(counts, ("organisation", "reason"))


def outcome_mix(selected: Selected, _now: datetime) -> list[dict[str, Any]]:
    counts = Counter(
        (facts.ending.state, facts.ending.code) for facts in selected if facts.ending is not None
    )
    ended = sum(counts.values())
    return [{**row, "share": row["count"] / ended} for row in _counts(counts, ("state", "outcome"))]


def outcome_mix_by_service_type(selected: Selected, _now: datetime) -> list[dict[str, Any]]:
    counts = Counter(
        (facts.service_type or "unknown", facts.ending.state, facts.ending.code)
        for facts in selected
        if facts.ending is not None
    )
    ended = Counter[str]()
    for (service, _state, _code), count in counts.items():
        ended[service] += count
    rows = _counts(counts, ("service_type", "state", "outcome"))
    rows.sort(key=lambda row: row["service_type"])  # stable: by count within each
    return [{**row, "share": row["count"] / ended[row["service_type"]]} for row in rows]


def question_turnaround(selected: Selected, _now: datetime) -> dict[str, Any]:
    waits: list[float] = []
    by_org: dict[str, list[float]] = defaultdict(list)
    asked = questions = 0
    for facts in selected:
        found = facts.questions
        asked += bool(found)
        questions += len(found)
        for question in found:
            if question.answered_at is not None:
                waited = (question.answered_at - question.asked.at).total_seconds()
                waits.append(waited)
                by_org[question.asked.organisation or "unknown"].append(waited)
    waits.sort()
    return {
        "referrals_asked": asked,
        "questions": questions,
        "answered": len(waits),
        "unanswered": questions - len(waits),
        "median_seconds": percentile(waits, 0.5) if waits else None,
        "p90_seconds": percentile(waits, 0.9) if waits else None,
        "by_organisation": _durations(by_org),
    }


def _ends_by_organisation(selected: Selected, state: str) -> list[dict[str, Any]]:
    counts = Counter(
        (facts.ending.organisation or "unknown", facts.ending.code)
        for facts in selected
        if facts.ending is not None and facts.ending.state == state
    )
    return _counts(counts, ("organisation", "reason"))


def failures_by_organisation(selected: Selected, _now: datetime) -> list[dict[str, Any]]:
    return _ends_by_organisation(selected, "failed")


def cancellations_by_organisation(selected: Selected, _now: datetime) -> list[dict[str, Any]]:
    return _ends_by_organisation(selected, "cancelled")


def outcomes_by_cohort(selected: Selected, _now: datetime) -> list[dict[str, Any]]:
    counts: Counter[tuple[str, ...]] = Counter()
    for facts in selected:
        if (done := facts.completed) is not None and done.code is not None:
            for cohort in facts.cohorts or ("none",):
                counts[(cohort_name(cohort), done.code)] += 1
    return _counts(counts, ("cohort", "outcome"))


def outcomes_by_locality(selected: Selected, _now: datetime) -> list[dict[str, Any]]:
    counts: Counter[tuple[str, ...]] = Counter()
    for facts in selected:
        if (done := facts.completed) is not None and done.code is not None:
            last = facts.last_routing
            counts[((last.locality if last else None) or "unknown", done.code)] += 1
    return _counts(counts, ("locality", "outcome"))


def flows(selected: Selected, _now: datetime) -> list[dict[str, Any]]:
    counts: Counter[tuple[str, ...]] = Counter()
    for facts in selected:
        held = "referrer"
        for routing in facts.routed:
            counts[(held, routing.provider_type)] += 1
            held = routing.provider_type
    return _counts(counts, ("from", "to"))


DAILY = ("submitted", "accepted", "rejected", "completed")


def daily(selected: Selected, _now: datetime) -> list[dict[str, Any]]:
    days: dict[str, Counter[str]] = defaultdict(Counter)
    for facts in selected:
        if facts.submitted_at is not None:
            days[facts.submitted_at.date().isoformat()]["submitted"] += 1
        if facts.accepted_at is not None:
            days[facts.accepted_at.date().isoformat()]["accepted"] += 1
        for rejection in facts.rejections:
            days[rejection.at.date().isoformat()]["rejected"] += 1
        if (done := facts.completed) is not None and done.code is not None:
            days[done.at.date().isoformat()]["completed"] += 1
    return [{"day": day, **{k: days[day][k] for k in DAILY}} for day in sorted(days)]


FIGURES: dict[str, Callable[[Selected, datetime], Any]] = {
    "time_to_accept": time_to_accept,
    "rapid_response": rapid_response,
    "rejections_by_reason": rejections_by_reason,
    "rejections_by_organisation": rejections_by_organisation,
    "question_turnaround": question_turnaround,
    "failures_by_organisation": failures_by_organisation,
    "cancellations_by_organisation": cancellations_by_organisation,
    "outcome_mix": outcome_mix,
    "outcome_mix_by_service_type": outcome_mix_by_service_type,
    "outcomes_by_cohort": outcomes_by_cohort,
    "outcomes_by_locality": outcomes_by_locality,
    "flows": flows,
    "daily": daily,
}
"""Each figure, by its name in the answer."""


def known(state: FigureState) -> dict[str, list[str]]:
    """The localities and organisations there are figures for, to choose a selection from."""
    localities: set[str] = set()
    organisations: set[str] = set()
    for facts in state.referrals.values():
        if facts.submitted_at is None or facts.excluded:
            continue
        if facts.locality:
            localities.add(facts.locality)
        if facts.referrer:
            organisations.add(facts.referrer)
        organisations.update(r.organisation for r in facts.routings if r.organisation)
    return {"localities": sorted(localities), "organisations": sorted(organisations)}


def aggregate(
    state: FigureState,
    selection: Selection,
    now: datetime,
    involving: Collection[str] | None = None,
) -> dict[str, Any]:
    """Every figure for the referrals ``selection`` admits, as of ``now``; ``involving``: the
    referrals of its organisation, if it names one."""
    selected = select(state, selection, involving)
    return {
        "since": selection.since,
        "until": selection.until,
        "organisation": selection.organisation,
        "locality": selection.locality,
        "cohort": selection.cohort,
        "as_of": now,
        **{name: figure(selected, now) for name, figure in FIGURES.items()},
        "known": known(state),
    }
