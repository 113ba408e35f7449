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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from ..domain.errors import Collector
from ..domain.replay import ReplayReport, median_acceptance, replay_cases
from ..domain.rules import RuleSet, parse_rules
from .unit_of_work import UnitOfWork


@dataclass(frozen=True)
class ProposedRuleSet:
    locality: str
    rules: Sequence[Mapping[str, Any]]


def proposal(
    rule_sets: Sequence[ProposedRuleSet], uow: UnitOfWork, field_name: str = "rule_sets"
) -> dict[str, RuleSet]:
    """Check proposed rule sets as an upload would be checked (unknown locality, values,
    candidates…); every broken rule is reported at once."""
    with uow:
        organisations = uow.directory.current().organisations
        known = {locality.code for locality in uow.directory.localities()}
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
            proposed.rules, proposed.locality, organisations, errors, f"{where}.rules"
        )
        parsed[proposed.locality] = RuleSet(proposed.locality, 0, rules)
    if not rule_sets:
        errors.add(field_name, "rule_sets_required", "propose at least one rule set")
    errors.raise_if_any()
    return parsed


def replay(
    proposed: Mapping[str, RuleSet],
    start: datetime,
    end: datetime,
    uow: UnitOfWork,
    progress: Callable[[int], object] | None = None,
    on_total: Callable[[int], object] | None = None,
) -> ReplayReport:
    """Route every referral submitted in [start, end) under ``proposed`` and compare."""
    with uow:
        live = uow.directory.current()
        cases = uow.cases.submitted_between(start, end)
        if on_total:
            on_total(len(cases))
        ids = [case.referral_id for case in cases]
        decisions = uow.cases.decisions_of(ids)
        breached = uow.clocks.acceptance_breaches(ids)
        medians = median_acceptance(uow.cases.acceptances())
    directory = replace(live, rule_sets={**live.rule_sets, **proposed})
    return replay_cases(cases, decisions, breached, medians, directory, start, end, progress)
