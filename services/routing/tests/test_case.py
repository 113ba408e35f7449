"""The Case aggregate: which lifecycle events it takes in which status, and what it records
for each (clocks, decisions, day loads, events). Pure domain, no database."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from routing.domain.changes import (
    ClocksStopped,
    ClockStarted,
    Decided,
    DecisionAccepted,
    DecisionReleased,
    Forwarded,
    LoadChanged,
    Published,
)
from routing.domain.decision import Directory
from routing.domain.directory import Organisation
from routing.domain.errors import IllegalTransition
from routing.domain.model import Case, CaseStatus, Target
from routing.domain.rules import Rule, RuleSet
from routing.domain.sla import SlaPolicy
from rx_contracts import (
    ClockKind,
    CohortFlags,
    ProviderType,
    ReferralAccepted,
    ReferralAmended,
    ReferralRejected,
    ReferralRouted,
    ReferralStatus,
    ReferralUnroutable,
    ServiceType,
    examples,
)

from .support import MONDAY_10AM, transition

UCR = ServiceType.URGENT_COMMUNITY_RESPONSE
RR = ProviderType.RAPID_RESPONSE
POLICY = SlaPolicy(UCR, None, timedelta(minutes=30), timedelta(hours=2))
LATER = MONDAY_10AM + timedelta(minutes=5)


def team(code: str, capacity: int | None = None) -> Organisation:
    return Organisation(code, code, RR, frozenset({"east"}), daily_capacity=capacity)


def directory(*teams: Organisation) -> Directory:
    organisations = teams or (team("RXA01"), team("RXA02"))
    return Directory(
        version=1,
        districts={"BS5": "east"},
        organisations={o.ods_code: o for o in organisations},
        rule_sets={
            "east": RuleSet("east", 3, (Rule("ucr", ("RXA01", "RXA02"), frozenset({UCR})),))
        },
        policies=(POLICY,),
    )


def no_load(_org: str, _day: date) -> int:
    return 0


def routed_case(status: CaseStatus = CaseStatus.OPEN) -> Case:
    """r-1 routed to RXA01, moved to ``status``, nothing left recorded."""
    case = Case.open(examples.referral_submitted("r-1", submitted_at=MONDAY_10AM), "c-1", POLICY)
    case.route(directory(), MONDAY_10AM, no_load)
    case.status = status
    case.take_changes()
    return case


def kinds(case: Case) -> list[str]:
    return [type(change).__name__ for change in case.take_changes()]


def test_a_new_case_starts_its_response_clock_and_is_routed_by_the_rules() -> None:
    case = Case.open(
        examples.referral_submitted(
            "r-1", submitted_at=MONDAY_10AM, cohort=CohortFlags(frailty=True, end_of_life=True)
        ),
        "c-1",
        POLICY,
    )
    assert case.cohorts == ["end_of_life", "frailty"]
    decision = case.route(directory(), MONDAY_10AM, no_load)

    assert (case.status, case.assigned_org, case.provider_type, case.attempt) == (
        CaseStatus.OPEN,
        "RXA01",
        RR,
        1,
    )
    assert (decision.assigned_org, decision.rule_id, decision.rule_version) == (
        "RXA01",
        "east/ucr",
        3,
    )
    response, load, acceptance, decided = case.take_changes()
    assert isinstance(response, ClockStarted) and response.clock.id == "r-1:response"
    assert response.clock.deadline_at == MONDAY_10AM + timedelta(hours=2)
    assert load == LoadChanged("RXA01", date(2026, 11, 23), 1)
    assert isinstance(acceptance, ClockStarted) and acceptance.clock.id == "r-1:acceptance:1"
    assert (acceptance.clock.assigned_org, acceptance.clock.attempt) == ("RXA01", 1)
    assert isinstance(decided, Decided) and decided.decision is decision
    assert decided.topics == ("routing.decisions.v1", "provider.rapid-response.v1")
    assert case.take_changes() == [], "taken once"


def test_nobody_eligible_makes_it_unroutable_stops_its_clocks_and_escalates() -> None:
    case = Case.open(
        examples.referral_submitted("r-1", postcode_district="ZZ1"), "c-1", policy=None
    )
    decision = case.route(directory(), MONDAY_10AM, no_load)

    assert (case.status, case.assigned_org, decision.outcome) == (
        CaseStatus.UNROUTABLE,
        None,
        "unroutable",
    )
    stopped, escalated, decided = case.take_changes()
    assert stopped == ClocksStopped(
        (ClockKind.ACCEPTANCE, ClockKind.RESPONSE), "unroutable", MONDAY_10AM
    )
    assert isinstance(escalated, Published) and escalated.topics == ("routing.escalations.v1",)
    assert isinstance(decided, Decided) and isinstance(decided.event, ReferralUnroutable)
    assert "ZZ1" in (decision.reason or "")


def test_acceptance_stops_the_acceptance_clock_and_marks_the_decision() -> None:
    case = routed_case()
    case.accept(LATER)
    assert case.status is CaseStatus.ACCEPTED
    assert case.take_changes() == [
        ClocksStopped((ClockKind.ACCEPTANCE,), "accepted", LATER),
        DecisionAccepted(case.decision_id or "", LATER),
    ]


def test_starting_then_completing_stops_the_response_clock_then_every_clock() -> None:
    case = routed_case(CaseStatus.ACCEPTED)
    case.start(LATER)
    case.complete(LATER)
    assert case.status is CaseStatus.CLOSED
    assert case.take_changes() == [
        ClocksStopped((ClockKind.RESPONSE,), "started", LATER),
        ClocksStopped((ClockKind.ACCEPTANCE, ClockKind.RESPONSE), "completed", LATER),
    ]


def test_a_rejection_gives_back_the_place_and_the_decliner_is_never_offered_it_again() -> None:
    case = routed_case()
    first = case.decision_id
    case.reject("RXA01", LATER)
    case.route(directory(), LATER, no_load)

    assert (case.assigned_org, case.attempt, case.declined_by) == ("RXA02", 2, ["RXA01"])
    changes = case.take_changes()
    assert changes[:3] == [
        ClocksStopped((ClockKind.ACCEPTANCE,), "rejected", LATER),
        DecisionReleased(first or "", "rejected", LATER),
        LoadChanged("RXA01", date(2026, 11, 23), -1),
    ]
    assert [type(c).__name__ for c in changes[3:]] == ["LoadChanged", "ClockStarted", "Decided"]


def test_a_released_place_counts_as_free_when_the_referral_is_routed_again() -> None:
    """RXA01 takes one referral a day and holds this one; redirected to its own provider
    type, the referral may go back to it, as the load it gave back is free again."""
    full = directory(team("RXA01", capacity=1), team("RXA02"))
    case = Case.open(examples.referral_submitted("r-1", submitted_at=MONDAY_10AM), "c-1", POLICY)
    case.route(full, MONDAY_10AM, no_load)
    case.take_changes()
    stored = {("RXA01", date(2026, 11, 23)): 1}

    case.redirect(LATER)
    case.route(full, LATER, lambda org, day: stored.get((org, day), 0), Target(RR))
    assert case.assigned_org == "RXA01"


def test_an_acceptance_timeout_counts_the_holder_as_a_decliner() -> None:
    case = routed_case()
    case.reroute("acceptance-timeout", LATER)
    assert case.declined_by == ["RXA01"]
    other = routed_case()
    other.reroute(None, LATER)
    assert other.declined_by == []
    assert kinds(other)[0:2] == ["ClocksStopped", "DecisionReleased"]


def test_routing_an_unroutable_referral_again_resumes_its_response_clock() -> None:
    case = routed_case(CaseStatus.UNROUTABLE)
    case.assigned_org = None
    case.reroute(None, LATER)
    case.route(directory(), LATER, no_load, Target(organisation="RXA02"))
    assert (case.status, case.assigned_org) == (CaseStatus.OPEN, "RXA02")
    assert "ResponseClockResumed" in kinds(case)


def test_a_forwarded_event_keeps_its_place_among_the_changes() -> None:
    case = routed_case()
    accepted = transition(ReferralAccepted, "r-1", status=ReferralStatus.ACCEPTED)
    case.forward(accepted, "provider.rapid-response.v1")
    case.accept(LATER)
    forwarded, *_ = case.take_changes()
    assert forwarded == Forwarded(accepted, ("provider.rapid-response.v1",))


ALL = set(CaseStatus)
ACCEPTS = {
    "amend": {CaseStatus.OPEN, CaseStatus.UNROUTABLE},
    "accept": {CaseStatus.OPEN, CaseStatus.UNROUTABLE},
    "reject": {CaseStatus.OPEN, CaseStatus.UNROUTABLE},
    "redirect": {CaseStatus.OPEN, CaseStatus.UNROUTABLE},
    "reroute": {CaseStatus.OPEN, CaseStatus.UNROUTABLE},
    "start": {CaseStatus.ACCEPTED},
    "complete": {CaseStatus.STARTED},
    "cancel": ALL - {CaseStatus.CLOSED},
}
"""What the referral lifecycle can bring to a case in each status (the referrals service
applies routing's decisions later than routing makes them, hence unroutable beside open)."""

STEPS = {
    "amend": lambda case: case.amend(CohortFlags(frailty=True)),
    "accept": lambda case: case.accept(LATER),
    "reject": lambda case: case.reject("RXA01", LATER),
    "redirect": lambda case: case.redirect(LATER),
    "reroute": lambda case: case.reroute(None, LATER),
    "start": lambda case: case.start(LATER),
    "complete": lambda case: case.complete(LATER),
    "cancel": lambda case: case.cancel(LATER),
}


@pytest.mark.parametrize("step", sorted(STEPS))
@pytest.mark.parametrize("status", sorted(CaseStatus))
def test_each_event_is_taken_only_where_the_lifecycle_can_bring_it(
    step: str, status: CaseStatus
) -> None:
    case = routed_case(status)
    if status in ACCEPTS[step]:
        STEPS[step](case)
    else:
        with pytest.raises(IllegalTransition, match=f"{step} of referral r-1 while its case is"):
            STEPS[step](case)
        assert case.status is status and case.take_changes() == [], "nothing recorded"


@pytest.mark.parametrize("status", [CaseStatus.ACCEPTED, CaseStatus.STARTED, CaseStatus.CLOSED])
def test_only_a_case_awaiting_acceptance_is_routed(status: CaseStatus) -> None:
    with pytest.raises(IllegalTransition, match="not routed"):
        routed_case(status).route(directory(), LATER, no_load)


def decided(case: Case) -> ReferralRouted:
    [decision] = [c.event for c in case.take_changes() if isinstance(c, Decided)]
    assert isinstance(decision, ReferralRouted)
    return decision


def test_each_decision_takes_the_number_after_the_step_that_sent_the_referral_to_routing() -> None:
    """The referrals service reserves that number for the decision, so the referral's events
    have no holes; amendments and the like only move the count on."""
    case = Case.open(examples.referral_submitted("r-1", submitted_at=MONDAY_10AM), "c-1", POLICY)
    case.route(directory(), MONDAY_10AM, no_load)
    assert (decided(case).sequence, case.sequence) == (2, 2)

    amended = transition(ReferralAmended, "r-1", sequence=3, changed=[], cohort=CohortFlags())
    case.follow(amended.payload())
    rejected = transition(
        ReferralRejected, "r-1", sequence=4, rejected_by="RXA01", reason_code="failed-contact"
    )
    case.route(directory(), LATER, no_load, case.follow(rejected.payload()))
    decision = decided(case)
    assert (decision.attempt, decision.sequence, case.sequence) == (2, 5, 5)

    unknown = routed_case()
    unknown.sequence = None  # a case opened before routing kept the sequence
    unknown.reroute(None, LATER)
    unknown.route(directory(), LATER, no_load)
    assert decided(unknown).sequence is None, "no number rather than a wrong one"
