"""Figures of the lifecycle beyond acceptance and rejection: questions and their answers
(turnaround), failed ends and coded cancellations by organisation, and the outcome mix per
service type. Folded on their own (any order, opt-outs left out), then delivered through the
real consumer and read over the API with each filter."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from audit.config import Settings
from audit.domain.figures import Selection, aggregate
from audit.domain.referral_facts import RELEVANT, FigureState
from audit.entrypoints.api.app import create_app
from fastapi.testclient import TestClient
from rx_contracts import (
    Actor,
    CancellationReason,
    Envelope,
    FailureReason,
    ReferralCancelled,
    ReferralFailed,
    ReferralInfoProvided,
    ReferralInfoRequested,
    ReferralRejected,
    ReferralStatus,
    RejectionReason,
    ServiceType,
    SharingFlags,
    examples,
    wrap,
)
from sqlalchemy.engine import Engine

from .conftest import OPS, transitioned
from .test_figures import DAY1, DAY2, NOW, accepted, at, completed, deliver, routed, submitted

SOCIAL = ServiceType.SOCIAL_CARE_ASSESSMENT
NEW_FIGURES = (
    "question_turnaround",
    "failures_by_organisation",
    "cancellations_by_organisation",
    "outcome_mix",
    "outcome_mix_by_service_type",
)


def step(
    model: type, rid: str, when: datetime, actor: str, sequence: int, **fields: Any
) -> Envelope:
    """A later event of ``rid`` as the referrals service publishes it (held by RXA01 unless
    ``assigned_org`` says otherwise)."""
    payload = transitioned(
        model,
        rid,
        actor=Actor(organisation=actor),
        occurred_at=when,
        sequence=sequence,
        version=sequence,
        **fields,
    )
    return wrap(payload, source="/services/referrals", time=when)


def asked(rid: str, when: datetime, org: str, sequence: int, **fields: Any) -> Envelope:
    status = ReferralStatus.INFO_REQUESTED
    return step(
        ReferralInfoRequested, rid, when, org, sequence, status=status, assigned_org=org, **fields
    )


def answered(rid: str, when: datetime, org: str, sequence: int, **fields: Any) -> Envelope:
    status = ReferralStatus.ROUTED
    return step(
        ReferralInfoProvided,
        rid,
        when,
        "B81001",
        sequence,
        status=status,
        assigned_org=org,
        **fields,
    )


def failed(
    rid: str, when: datetime, org: str, reason: FailureReason, sequence: int, **fields: Any
) -> Envelope:
    status = ReferralStatus.FAILED
    return step(
        ReferralFailed,
        rid,
        when,
        org,
        sequence,
        status=status,
        assigned_org=org,
        reason_code=reason,
        **fields,
    )


def cancelled(
    rid: str, when: datetime, held_by: str, reason: CancellationReason | None, sequence: int
) -> Envelope:
    """The referrer cancels while ``held_by`` holds the referral."""
    status = ReferralStatus.CANCELLED
    return step(
        ReferralCancelled,
        rid,
        when,
        "B81001",
        sequence,
        status=status,
        assigned_org=held_by,
        reason_code=reason,
    )


def loop_events() -> list[tuple[str, Envelope]]:
    """Five journeys of the first day, by hand, and one of a patient who opted out."""
    r, ucr = "referrals", "rapid-response"
    opted_out = SharingFlags(data_opt_out=True)
    return [
        # L1 (frailty): RXA01 asks twice, answered after 30 min and 2 h; accepts; did not attend.
        (r, submitted("L1", at(DAY1, "09:00"), frailty=True)),
        ("routing", routed("L1", at(DAY1, "09:01"), "RXA01", ucr, "east")),
        (r, asked("L1", at(DAY1, "09:10"), "RXA01", 3)),
        (r, answered("L1", at(DAY1, "09:40"), "RXA01", 4)),
        (r, asked("L1", at(DAY1, "09:50"), "RXA01", 5)),
        (r, answered("L1", at(DAY1, "11:50"), "RXA01", 6)),
        (r, accepted("L1", at(DAY1, "12:00"), "RXA01")),
        (r, failed("L1", at(DAY1, "14:00"), "RXA01", FailureReason.DID_NOT_ATTEND, 8)),
        # L2 (social care, west): SCA01 asks, answered in 1 h, then declines at capacity;
        # SCA02 accepts and arranges a package of care.
        (r, submitted("L2", at(DAY1, "09:30"), SOCIAL)),
        ("routing", routed("L2", at(DAY1, "09:31"), "SCA01", "social-care", "west")),
        (r, asked("L2", at(DAY1, "10:00"), "SCA01", 3, service_type=SOCIAL)),
        (r, answered("L2", at(DAY1, "11:00"), "SCA01", 4, service_type=SOCIAL)),
        (
            r,
            step(
                ReferralRejected,
                "L2",
                at(DAY1, "11:30"),
                "SCA01",
                5,
                status=ReferralStatus.SUBMITTED,
                assigned_org=None,
                service_type=SOCIAL,
                rejected_by="SCA01",
                reason_code=RejectionReason.AT_CAPACITY,
            ),
        ),
        ("routing", routed("L2", at(DAY1, "11:31"), "SCA02", "social-care", "west", 2)),
        (r, accepted("L2", at(DAY1, "12:00"), "SCA02", SOCIAL)),
        (r, completed("L2", at(DAY2, "10:00"), "SCA02", "package-of-care-arranged")),
        # L3 (care home): RXB02 asks, never answered; the patient declines, the referrer cancels.
        (r, submitted("L3", at(DAY1, "11:30"), care_home_resident=True)),
        ("routing", routed("L3", at(DAY1, "11:31"), "RXB02", ucr, "east")),
        (r, asked("L3", at(DAY1, "12:00"), "RXB02", 3)),
        (r, cancelled("L3", at(DAY1, "13:00"), "RXB02", CancellationReason.PATIENT_DECLINED, 4)),
        # L4: accepted by RXA01, no contact.
        (r, submitted("L4", at(DAY1, "13:00"))),
        ("routing", routed("L4", at(DAY1, "13:01"), "RXA01", ucr, "east")),
        (r, accepted("L4", at(DAY1, "13:10"), "RXA01")),
        (r, failed("L4", at(DAY1, "15:00"), "RXA01", FailureReason.FAILED_CONTACT, 5)),
        # L5: cancelled with text only while RXA01 held it.
        (r, submitted("L5", at(DAY1, "14:00"))),
        ("routing", routed("L5", at(DAY1, "14:01"), "RXA01", ucr, "east")),
        (r, cancelled("L5", at(DAY1, "14:30"), "RXA01", None, 3)),
        # L6: a patient with a national data opt-out: in no figure.
        (r, wrap(_opted_out_submission(), source="/services/referrals", time=at(DAY1, "10:00"))),
        ("routing", routed("L6", at(DAY1, "10:01"), "RXA01", ucr, "east")),
        (r, asked("L6", at(DAY1, "10:10"), "RXA01", 3, sharing=opted_out)),
        (r, answered("L6", at(DAY1, "15:10"), "RXA01", 4, sharing=opted_out)),
        (
            r,
            failed("L6", at(DAY1, "16:00"), "RXA01", FailureReason.NO_ACCESS, 6, sharing=opted_out),
        ),
    ]


def _opted_out_submission() -> Any:
    return examples.referral_submitted(
        "L6", submitted_at=at(DAY1, "10:00"), sharing=SharingFlags(data_opt_out=True)
    )


# Answers after 30 min, 2 h (RXA01) and 1 h (SCA01): median 1 h; p90 at rank 1.8 of
# [1800, 3600, 7200] = 3600 + 0.8 × 3600. RXA01's: p90 at rank 0.9 = 1800 + 0.9 × 5400.
RXA01_ANSWERS = {"group": "RXA01", "count": 2, "median_seconds": 4500.0, "p90_seconds": 6660.0}
SCA01_ANSWERS = {"group": "SCA01", "count": 1, "median_seconds": 3600.0, "p90_seconds": 3600.0}
EXPECTED: dict[str, Any] = {
    "question_turnaround": {
        "referrals_asked": 3,
        "questions": 4,
        "answered": 3,
        "unanswered": 1,
        "median_seconds": 3600.0,
        "p90_seconds": 6480.0,
        "by_organisation": [RXA01_ANSWERS, SCA01_ANSWERS],
    },
    "failures_by_organisation": [
        {"organisation": "RXA01", "reason": "did-not-attend", "count": 1},
        {"organisation": "RXA01", "reason": "failed-contact", "count": 1},
    ],
    "cancellations_by_organisation": [
        {"organisation": "B81001", "reason": None, "count": 1},
        {"organisation": "B81001", "reason": "patient-declined", "count": 1},
    ],
    "outcome_mix": [
        {"state": "cancelled", "outcome": None, "count": 1, "share": 0.2},
        {"state": "cancelled", "outcome": "patient-declined", "count": 1, "share": 0.2},
        {"state": "completed", "outcome": "package-of-care-arranged", "count": 1, "share": 0.2},
        {"state": "failed", "outcome": "did-not-attend", "count": 1, "share": 0.2},
        {"state": "failed", "outcome": "failed-contact", "count": 1, "share": 0.2},
    ],
    "outcome_mix_by_service_type": [
        {
            "service_type": "social-care-assessment",
            "state": "completed",
            "outcome": "package-of-care-arranged",
            "count": 1,
            "share": 1.0,
        },
        *(
            {
                "service_type": "urgent-community-response",
                "state": state,
                "outcome": outcome,
                "count": 1,
                "share": 0.25,
            }
            for state, outcome in (
                ("cancelled", None),
                ("cancelled", "patient-declined"),
                ("failed", "did-not-attend"),
                ("failed", "failed-contact"),
            )
        ),
    ],
}


def folded(envelopes: list[Envelope]) -> FigureState:
    state = FigureState()
    for envelope in envelopes:
        if envelope.type in RELEVANT:
            state.apply(envelope.type, str(envelope.subject), envelope.time, envelope.data)
    return state


def new_figures(state: FigureState, **selection: Any) -> dict[str, Any]:
    found = aggregate(state, Selection(**selection), NOW)
    return {name: found[name] for name in NEW_FIGURES}


# ---- the fold on its own ---------------------------------------------------------------------


def test_the_loop_figures_match_the_hand_computed_journeys() -> None:
    assert new_figures(folded([e for _topic, e in loop_events()])) == EXPECTED


def test_answers_pair_with_their_questions_whatever_order_they_are_folded_in() -> None:
    envelopes = [e for _topic, e in loop_events()]
    for seed in range(5):
        shuffled = envelopes.copy()
        random.Random(seed).shuffle(shuffled)
        assert new_figures(folded(shuffled)) == EXPECTED, seed


def test_a_patient_who_opted_out_adds_nothing_to_the_loop_figures() -> None:
    events = [e for _topic, e in loop_events()]
    without = [e for e in events if e.subject != "L6"]
    assert new_figures(folded(events)) == new_figures(folded(without))
    state = folded(events)
    assert state.referrals["L6"].excluded
    assert [q.answered_at for q in state.referrals["L6"].questions] == [at(DAY1, "15:10")]


def test_a_question_still_open_counts_as_unanswered_and_a_later_answer_closes_it() -> None:
    events = [
        submitted("Q1", at(DAY1, "09:00")),
        routed("Q1", at(DAY1, "09:01"), "RXA01", "rapid-response", "east"),
        asked("Q1", at(DAY1, "09:05"), "RXA01", 3),
    ]
    state = folded(events)
    turnaround = new_figures(state)["question_turnaround"]
    assert (turnaround["questions"], turnaround["answered"], turnaround["median_seconds"]) == (
        1,
        0,
        None,
    )

    state.apply(*_fold_args(answered("Q1", at(DAY1, "09:20"), "RXA01", 4)))
    turnaround = new_figures(state)["question_turnaround"]
    assert (turnaround["answered"], turnaround["unanswered"], turnaround["median_seconds"]) == (
        1,
        0,
        900.0,
    )


def _fold_args(envelope: Envelope) -> tuple[str, str, datetime, dict[str, Any]]:
    return envelope.type, str(envelope.subject), envelope.time, envelope.data


# ---- over the API, with each filter ---------------------------------------------------------


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    deliver(engine, loop_events())
    with TestClient(create_app(settings)) as client:
        yield client


def api_figures(client: TestClient, **params: Any) -> dict[str, Any]:
    response = client.get("/audit/figures", headers=OPS, params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    return {name: body[name] for name in NEW_FIGURES}


def test_the_loop_figures_over_the_api_with_each_filter(client: TestClient) -> None:
    assert api_figures(client) == EXPECTED

    # RXA01 held L1, L4 and L5 (and L6, left out).
    rxa01 = api_figures(client, organisation="RXA01")
    assert rxa01["question_turnaround"] == {
        "referrals_asked": 1,
        "questions": 2,
        "answered": 2,
        "unanswered": 0,
        "median_seconds": 4500.0,
        "p90_seconds": 6660.0,
        "by_organisation": [RXA01_ANSWERS],
    }
    assert rxa01["failures_by_organisation"] == EXPECTED["failures_by_organisation"]
    assert rxa01["cancellations_by_organisation"] == [
        {"organisation": "B81001", "reason": None, "count": 1}
    ]

    # The west: L2 alone, as for SCA01 (which asked) and SCA02 (which completed it).
    west = api_figures(client, locality="west")
    assert (
        west
        == api_figures(client, organisation="SCA01")
        == api_figures(client, organisation="SCA02")
    )
    assert west["question_turnaround"]["by_organisation"] == [SCA01_ANSWERS]
    assert west["failures_by_organisation"] == west["cancellations_by_organisation"] == []
    assert west["outcome_mix_by_service_type"] == EXPECTED["outcome_mix_by_service_type"][:1]

    # Care home residents: L3, whose question was never answered.
    care_home = api_figures(client, cohort="care-home-resident")
    assert care_home["question_turnaround"] == {
        "referrals_asked": 1,
        "questions": 1,
        "answered": 0,
        "unanswered": 1,
        "median_seconds": None,
        "p90_seconds": None,
        "by_organisation": [],
    }
    assert care_home["cancellations_by_organisation"] == [
        {"organisation": "B81001", "reason": "patient-declined", "count": 1}
    ]

    # Submitted from 11:00: L3, L4 and L5.
    later = api_figures(client, since=at(DAY1, "11:00").isoformat())
    assert later["question_turnaround"]["questions"] == 1
    assert later["failures_by_organisation"] == EXPECTED["failures_by_organisation"][1:]
    assert [r["state"] for r in later["outcome_mix"]] == ["cancelled", "cancelled", "failed"]
    assert (
        api_figures(client, until=at(DAY1, "11:00").isoformat())["question_turnaround"]["questions"]
        == 3
    )
