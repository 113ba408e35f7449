"""The figures' fold on its own (no database): events in any order, endings other than
completion, and the one switch that leaves a referral out of every figure."""

from __future__ import annotations

import random
from typing import Any

from audit.domain.figures import Cohort, Selection, aggregate, cohort_name
from audit.domain.referral_facts import COHORTS, RELEVANT, FigureState
from rx_contracts import Envelope, ReferralCancelled, ReferralStatus, wrap

from .conftest import transitioned
from .test_figures import DAY1, NOW, at, fixture_events, routed, submitted


def folded(envelopes: list[Envelope]) -> FigureState:
    state = FigureState()
    for envelope in envelopes:
        if envelope.type in RELEVANT:
            state.apply(envelope.type, str(envelope.subject), envelope.time, envelope.data)
    return state


def figures(state: FigureState, **selection: Any) -> dict[str, Any]:
    return aggregate(state, Selection(**selection), NOW)


def test_the_order_events_are_folded_in_does_not_change_the_figures() -> None:
    envelopes = [envelope for _topic, envelope in fixture_events()]
    shuffled = envelopes.copy()
    random.Random(17).shuffle(shuffled)

    assert figures(folded(shuffled)) == figures(folded(envelopes))


def test_an_excluded_referral_is_left_out_of_every_figure() -> None:
    envelopes = [envelope for _topic, envelope in fixture_events()]
    everything = figures(folded(envelopes))
    state = folded(envelopes)
    state.referrals["R3"].excluded = True  # the only referral in the west, held by SCA01

    without = figures(state)

    assert without != everything
    assert "west" not in without["known"]["localities"]
    assert "SCA01" not in without["known"]["organisations"]
    for name in ("rejections_by_organisation", "outcome_mix", "flows", "outcomes_by_locality"):
        assert "SCA01" not in str(without[name]) and "west" not in str(without[name]), name
    assert [d["submitted"] for d in without["daily"]] == [2, 3]
    sca01 = aggregate(state, Selection(organisation="SCA01"), NOW, involving={"R3"})
    assert sca01["daily"] == [] and sca01["outcome_mix"] == []


def test_a_cancelled_referral_ends_without_an_outcome_in_the_mix() -> None:
    cancelled = transitioned(
        ReferralCancelled,
        "C1",
        actor={"organisation": "B81001"},
        status=ReferralStatus.CANCELLED,
        assigned_org=None,
        occurred_at=at(DAY1, "09:40"),
    )
    journey = [
        submitted("C1", at(DAY1, "09:00"), frailty=True),
        routed("C1", at(DAY1, "09:01"), "RXA01", "rapid-response", "east"),
        wrap(cancelled, source="/services/referrals", time=at(DAY1, "09:40")),
    ]

    alone = figures(folded(journey))
    among_others = figures(folded(journey + [e for _topic, e in fixture_events()]))

    assert alone["outcome_mix"] == [
        {"state": "cancelled", "outcome": None, "count": 1, "share": 1.0}
    ]
    assert alone["outcomes_by_cohort"] == [], "a cancellation is no completion"
    assert alone["daily"][0]["completed"] == 0
    assert among_others["outcome_mix"][0] == {
        "state": "cancelled",
        "outcome": None,
        "count": 1,
        "share": 0.25,
    }


def test_the_cohorts_selected_by_are_the_cohort_flags_and_none() -> None:
    assert [c.value for c in Cohort] == [*(cohort_name(flag) for flag in COHORTS), "none"]
