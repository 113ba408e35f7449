"""What-if replay: the referrals routing saw in a time window, routed again under proposed
rule sets, beside what actually happened. Reads routing's own records only and publishes
nothing.

How the replay decides, for each referral in submission order:

- It routes with the proposed rule set of the patient's locality (the live one for localities
  not in the proposal) and today's directory, at the moment the referral was submitted, so
  time-of-day rules and opening hours apply as they would have; daily capacity counts the
  replay's own assignments.
- An organisation that in reality rejected the referral, or let its acceptance clock run
  out, is assumed to do so again; routing then moves on, as it would.
- Predicted acceptance breach: an organisation's observed acceptance time is the median of
  its recorded times from routing to acceptance (all history, not only the window). When that
  median is longer than the policy's acceptance limit, the assignment is predicted to breach
  (and, if the policy re-routes automatically, to move on to the next candidate at the
  deadline). Organisations with no recorded acceptances get no prediction and are counted
  under ``no_observations``.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from rx_contracts import Priority, ServiceType
from sqlmodel import Session, col, select

from ..adapters import directory_store
from ..adapters.tables import CaseRow, ClockRow, DecisionRow
from ..domain.clock import local_day
from ..domain.errors import Collector
from ..domain.model import Directory, ReferralFacts, Routed, decide
from ..domain.rules import RuleSet, parse_rules

DECLINES = frozenset({"rejected", "acceptance-timeout"})
MAX_LISTED = 500
"""Longest list of individual referrals in a report (counts are always complete)."""


@dataclass(frozen=True)
class ProposedRuleSet:
    locality: str
    rules: Sequence[Mapping[str, Any]]


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


def proposal(
    session: Session, rule_sets: Sequence[ProposedRuleSet], field_name: str = "rule_sets"
) -> dict[str, RuleSet]:
    """Check proposed rule sets as an upload would be checked (unknown locality, values,
    candidates…); every broken rule is reported at once."""
    directory = directory_store.load(session, directory_store.version(session))
    known = {row.code for row in directory_store.localities(session)}
    errors = Collector()
    parsed: dict[str, RuleSet] = {}
    for index, proposed in enumerate(rule_sets):
        where = f"{field_name}.{index}"
        if proposed.locality not in known:
            errors.add(
                f"{where}.locality", "unknown_locality", f"{proposed.locality!r} is not a locality"
            )
            continue
        if proposed.locality in parsed:
            errors.add(f"{where}.locality", "duplicate_locality", "one rule set per locality")
        rules = parse_rules(
            proposed.rules, proposed.locality, directory.organisations, errors, f"{where}.rules"
        )
        parsed[proposed.locality] = RuleSet(proposed.locality, 0, rules)
    if not rule_sets:
        errors.add(field_name, "rule_sets_required", "propose at least one rule set")
    errors.raise_if_any()
    return parsed


def replay(
    session: Session,
    proposed: Mapping[str, RuleSet],
    start: datetime,
    end: datetime,
    progress: Callable[[int], object] | None = None,
    on_total: Callable[[int], object] | None = None,
) -> ReplayReport:
    """Route every referral submitted in [start, end) under ``proposed`` and compare."""
    live = directory_store.load(session, directory_store.version(session))
    directory = replace(live, rule_sets={**live.rule_sets, **proposed})
    cases = list(
        session.exec(
            select(CaseRow)
            .where(col(CaseRow.submitted_at) >= start, col(CaseRow.submitted_at) < end)
            .order_by(col(CaseRow.submitted_at), col(CaseRow.referral_id))
        )
    )
    if on_total:
        on_total(len(cases))
    ids = [case.referral_id for case in cases]
    decisions = _by_referral(session, ids)
    report = ReplayReport(start, end, referrals=len(cases))
    medians = _median_acceptance(session)
    report.acceptance_minutes = {
        org: round(m.total_seconds() / 60, 1) for org, m in medians.items()
    }
    breached = _actual_breaches(session, ids)
    load: Counter[tuple[str, date]] = Counter()
    for case in cases:
        history = decisions.get(case.referral_id, [])
        actual_org = history[-1].assigned_org if history else None
        if actual_org:
            report.actual[actual_org] += 1
        elif history:
            report.actual_unroutable.append(case.referral_id)
        report.actual_breaches += breached.get(case.referral_id, [])
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
    case: CaseRow,
    history: list[DecisionRow],
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
    service, priority = ServiceType(case.service_type), Priority(case.priority)
    policy = directory.policy(service, priority)
    facts = ReferralFacts(
        case.referral_id, service, priority, case.postcode_district, frozenset(case.cohorts)
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


def _by_referral(session: Session, ids: list[str]) -> dict[str, list[DecisionRow]]:
    out: dict[str, list[DecisionRow]] = defaultdict(list)
    for chunk in _chunks(ids):
        query = select(DecisionRow).where(col(DecisionRow.referral_id).in_(chunk))
        for row in session.exec(query.order_by(col(DecisionRow.attempt))):
            out[row.referral_id].append(row)
    return out


def _actual_breaches(session: Session, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for chunk in _chunks(ids):
        query = select(ClockRow).where(
            col(ClockRow.referral_id).in_(chunk),
            ClockRow.kind == "acceptance",
            col(ClockRow.breached_at).is_not(None),
        )
        for clock in session.exec(query):
            out[clock.referral_id].append(
                {"referral_id": clock.referral_id, "organisation": clock.assigned_org}
            )
    return out


def _median_acceptance(session: Session) -> dict[str, timedelta]:
    """Each organisation's median time from routing to acceptance, over every recorded
    acceptance."""
    delays: dict[str, list[float]] = defaultdict(list)
    query = select(DecisionRow.assigned_org, DecisionRow.decided_at, DecisionRow.accepted_at).where(
        col(DecisionRow.accepted_at).is_not(None)
    )
    for org, decided, accepted in session.exec(query):
        if org and accepted:
            delays[org].append((accepted - decided).total_seconds())
    return {org: timedelta(seconds=statistics.median(v)) for org, v in delays.items()}


def _chunks(ids: list[str], size: int = 500) -> list[list[str]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]
