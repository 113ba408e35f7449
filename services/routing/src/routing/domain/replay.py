"""The what-if replay's arithmetic, in pure Python: recorded referrals routed again under
proposed rules, and the report that compares them with what happened (see
``service_layer.replay`` for how it decides)."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from .clock import local_day
from .decision import Decision, Directory, ReferralFacts, Routed, decide
from .model import Case

DECLINES = frozenset({"rejected", "acceptance-timeout"})
MAX_LISTED = 500
"""Longest list of individual referrals in a report (counts are always complete)."""


@dataclass
class Outcome:
    """Where one referral ends up, and whether an acceptance breach happened on the way."""

    org: str | None
    rule_id: str | None = None
    reason: str | None = None
    breaches: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ReplayReport:
    window_from: datetime
    window_to: datetime
    referrals: int = 0
    actual: Counter[str] = field(default_factory=Counter)
    proposed: Counter[str] = field(default_factory=Counter)
    actual_unroutable: list[str] = field(default_factory=list)
    proposed_unroutable: list[dict[str, str]] = field(default_factory=list)
    actual_breaches: list[dict[str, Any]] = field(default_factory=list)
    predicted_breaches: list[dict[str, Any]] = field(default_factory=list)
    changed: list[dict[str, Any]] = field(default_factory=list)
    no_observations: set[str] = field(default_factory=set)
    acceptance_minutes: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        orgs = sorted(set(self.actual) | set(self.proposed))
        return {
            "window": {"from": self.window_from, "to": self.window_to},
            "referrals": self.referrals,
            "organisations": [
                {
                    "ods_code": org,
                    "actual": self.actual[org],
                    "proposed": self.proposed[org],
                    "change": self.proposed[org] - self.actual[org],
                    "observed_median_acceptance_minutes": self.acceptance_minutes.get(org),
                }
                for org in orgs
            ],
            "unroutable": {
                "actual": len(self.actual_unroutable),
                "proposed": len(self.proposed_unroutable),
                "actual_referrals": self.actual_unroutable[:MAX_LISTED],
                "proposed_referrals": self.proposed_unroutable[:MAX_LISTED],
            },
            "acceptance_breaches": {
                "actual": len(self.actual_breaches),
                "predicted": len(self.predicted_breaches),
                "actual_referrals": self.actual_breaches[:MAX_LISTED],
                "predicted_referrals": self.predicted_breaches[:MAX_LISTED],
                "no_observations": sorted(self.no_observations),
            },
            "changed": {"count": len(self.changed), "referrals": self.changed[:MAX_LISTED]},
        }


def replay_cases(
    cases: Sequence[Case],
    decisions: dict[str, list[Decision]],
    breached: dict[str, list[str | None]],
    medians: dict[str, timedelta],
    directory: Directory,
    start: datetime,
    end: datetime,
    progress: Callable[[int], object] | None = None,
) -> ReplayReport:
    """Route ``cases`` (submitted in [start, end), in submission order) with ``directory``
    and compare with their recorded ``decisions`` and acceptance ``breached`` (organisations
    per referral); ``medians``: each organisation's observed acceptance time."""
    report = ReplayReport(start, end, referrals=len(cases))
    report.acceptance_minutes = {
        org: round(m.total_seconds() / 60, 1) for org, m in medians.items()
    }
    load: Counter[tuple[str, date]] = Counter()
    for case in cases:
        history = decisions.get(case.referral_id, [])
        actual_org = history[-1].assigned_org if history else None
        if actual_org:
            report.actual[actual_org] += 1
        elif history:
            report.actual_unroutable.append(case.referral_id)
        report.actual_breaches += [
            {"referral_id": case.referral_id, "organisation": org}
            for org in breached.get(case.referral_id, [])
        ]
        outcome = _simulate(case, history, directory, medians, load, report)
        if outcome.org:
            report.proposed[outcome.org] += 1
        else:
            report.proposed_unroutable.append(
                {"referral_id": case.referral_id, "reason": outcome.reason or ""}
            )
        report.predicted_breaches += outcome.breaches
        if outcome.org != actual_org:
            report.changed.append(
                {
                    "referral_id": case.referral_id,
                    "actual": actual_org,
                    "proposed": outcome.org,
                    "rule_id": outcome.rule_id,
                }
            )
        if progress:
            progress(1)
    return report


def _simulate(
    case: Case,
    history: list[Decision],
    directory: Directory,
    medians: dict[str, timedelta],
    load: Counter[tuple[str, date]],
    report: ReplayReport,
) -> Outcome:
    declined_at = {
        d.assigned_org: d.released_at or d.decided_at
        for d in history
        if d.assigned_org and d.release in DECLINES
    }
    policy = directory.policy(case.service_type, case.priority)
    facts = ReferralFacts(
        case.referral_id,
        case.service_type,
        case.priority,
        case.postcode_district,
        frozenset(case.cohorts),
    )
    at = case.submitted_at
    outcome = Outcome(None)
    for _ in range(len(directory.organisations) + 1):  # each round declines one organisation
        decision = decide(facts, directory, at, lambda org, day: load[(org, day)])
        if not isinstance(decision, Routed):
            outcome.org, outcome.reason = None, decision.reason
            return outcome
        org = decision.organisation.ods_code
        outcome.org = org
        outcome.rule_id = f"{decision.locality}/{decision.rule.id}" if decision.rule else None
        load[(org, local_day(at))] += 1
        if org in declined_at:  # it declined in reality: assume it would again
            load[(org, local_day(at))] -= 1
            at = max(at, declined_at[org])
            facts = replace(facts, declined_by=facts.declined_by | {org})
            continue
        limit = policy.accept_within if policy else None
        observed = medians.get(org)
        if observed is None:
            report.no_observations.add(org)
        if limit is None or observed is None or observed <= limit:
            return outcome
        outcome.breaches.append(
            {
                "referral_id": case.referral_id,
                "organisation": org,
                "observed_median_minutes": round(observed.total_seconds() / 60, 1),
                "limit_minutes": round(limit.total_seconds() / 60, 1),
            }
        )
        if policy is None or not policy.auto_reroute:
            return outcome
        load[(org, local_day(at))] -= 1
        at += limit
        facts = replace(facts, declined_by=facts.declined_by | {org})
    return outcome


def median_acceptance(
    acceptances: Iterable[tuple[str, datetime, datetime]],
) -> dict[str, timedelta]:
    """Each organisation's median time from routing to acceptance, over ``acceptances``
    (organisation, decided at, accepted at)."""
    delays: dict[str, list[float]] = {}
    for org, decided, accepted in acceptances:
        delays.setdefault(org, []).append((accepted - decided).total_seconds())
    return {org: timedelta(seconds=statistics.median(v)) for org, v in delays.items()}
