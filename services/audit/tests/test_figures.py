"""Evaluation figures against a hand-computed fixture: six referrals over two days, delivered
through the real consumer with redeliveries, read over the API, and again after a restart."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from audit.config import EVERY_V1_TOPIC, Settings
from audit.entrypoints.api.app import create_app
from audit.entrypoints.workers import record_event
from fastapi.testclient import TestClient
from rx_contracts import (
    Actor,
    CohortFlags,
    Envelope,
    ReferralAccepted,
    ReferralCompleted,
    ReferralRejected,
    ReferralStatus,
    RejectionReason,
    ServiceType,
    encode,
    examples,
    wrap,
)
from rx_messaging.consumer import InboxConsumer
from rx_messaging.fake import InMemoryBroker, InMemoryPublisher, InMemoryRecordSource
from sqlalchemy.engine import Engine

from .conftest import OPS, transitioned

DAY1 = datetime(2026, 11, 22, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)
NOW = DAY2 + timedelta(hours=12)
UCR = ServiceType.URGENT_COMMUNITY_RESPONSE
TOPICS = {"referrals": "referrals.events.v1", "routing": "routing.decisions.v1"}


def at(day: datetime, hhmm: str) -> datetime:
    hours, minutes = hhmm.split(":")
    return day + timedelta(hours=int(hours), minutes=int(minutes))


def submitted(rid: str, when: datetime, service: ServiceType = UCR, **cohort: bool) -> Envelope:
    payload = examples.referral_submitted(
        rid, service_type=service, cohort=CohortFlags(**cohort), submitted_at=when
    )
    return wrap(payload, source="/services/referrals", time=when)


def routed(
    rid: str, when: datetime, org: str, provider: str, locality: str, attempt: int = 1
) -> Envelope:
    payload = examples.referral_routed(
        rid,
        decision_id=f"d-{rid}-{attempt}",
        attempt=attempt,
        assigned_org=org,
        provider_type=provider,
        locality=locality,
        routed_at=when,
    )
    return wrap(payload, source="/services/routing", time=when)


def by(org: str, model: type, rid: str, when: datetime, **fields: Any) -> Envelope:
    """A transition made by ``org``."""
    payload = transitioned(
        model, rid, actor=Actor(organisation=org), assigned_org=org, occurred_at=when, **fields
    )
    return wrap(payload, source="/services/referrals", time=when)


def accepted(rid: str, when: datetime, org: str, service: ServiceType = UCR) -> Envelope:
    return by(org, ReferralAccepted, rid, when, service_type=service)


def rejected(rid: str, when: datetime, org: str, reason: RejectionReason) -> Envelope:
    return by(
        org,
        ReferralRejected,
        rid,
        when,
        status=ReferralStatus.SUBMITTED,
        rejected_by=org,
        reason_code=reason,
    )


def completed(rid: str, when: datetime, org: str, outcome: str) -> Envelope:
    return by(org, ReferralCompleted, rid, when, status=ReferralStatus.COMPLETED, outcome=outcome)


def fixture_events() -> list[tuple[str, Envelope]]:
    """The six journeys, by hand. Times to acceptance: R1 30 min, R2 3 h, R3 1 h, R4 1 h."""
    r = "referrals"
    return [
        # R1: rapid response, frailty; accepted in 30 min by RXA01; remained at home.
        (r, submitted("R1", at(DAY1, "09:00"), frailty=True)),
        ("routing", routed("R1", at(DAY1, "09:01"), "RXA01", "rapid-response", "east")),
        (r, accepted("R1", at(DAY1, "09:30"), "RXA01")),
        (r, completed("R1", at(DAY1, "11:00"), "RXA01", "remained-at-home")),
        # R2: care home; RXA01 declines, RXB02 accepts after 3 h; admitted to hospital.
        (r, submitted("R2", at(DAY1, "10:00"), care_home_resident=True)),
        ("routing", routed("R2", at(DAY1, "10:01"), "RXA01", "rapid-response", "east")),
        (
            r,
            rejected(
                "R2", at(DAY1, "10:20"), "RXA01", RejectionReason.NOT_AVAILABLE_WITHIN_TIMESCALE
            ),
        ),
        ("routing", routed("R2", at(DAY1, "10:21"), "RXB02", "rapid-response", "east", 2)),
        (r, accepted("R2", at(DAY1, "13:00"), "RXB02")),
        (r, completed("R2", at(DAY1, "15:00"), "RXB02", "admitted-to-hospital")),
        # R3: social care declines, acute accepts in 1 h; referred onward.
        (r, submitted("R3", at(DAY1, "11:00"), ServiceType.SOCIAL_CARE_ASSESSMENT)),
        ("routing", routed("R3", at(DAY1, "11:01"), "SCA01", "social-care", "west")),
        (r, rejected("R3", at(DAY1, "11:30"), "SCA01", RejectionReason.OUTSIDE_SERVICE_CRITERIA)),
        ("routing", routed("R3", at(DAY1, "11:31"), "ACU01", "acute", "west", 2)),
        (r, accepted("R3", at(DAY1, "12:00"), "ACU01", ServiceType.SOCIAL_CARE_ASSESSMENT)),
        (r, completed("R3", at(DAY1, "16:00"), "ACU01", "referred-onward")),
        # R4: end of life, accepted in 1 h by RXA01, not completed yet.
        (r, submitted("R4", at(DAY2, "08:00"), end_of_life=True)),
        ("routing", routed("R4", at(DAY2, "08:01"), "RXA01", "rapid-response", "east")),
        (r, accepted("R4", at(DAY2, "09:00"), "RXA01")),
        # R5: routed, never accepted; its 2 hours were up by noon. R6: still within them.
        (r, submitted("R5", at(DAY2, "09:00"), frailty=True)),
        ("routing", routed("R5", at(DAY2, "09:01"), "RXA01", "rapid-response", "east")),
        (r, submitted("R6", at(DAY2, "11:00"))),
        ("routing", routed("R6", at(DAY2, "11:01"), "RXA01", "rapid-response", "east")),
    ]


NO_QUESTIONS: dict[str, Any] = {
    "referrals_asked": 0,
    "questions": 0,
    "answered": 0,
    "unanswered": 0,
    "median_seconds": None,
    "p90_seconds": None,
    "by_organisation": [],
}

EXPECTED_ALL: dict[str, Any] = {
    "time_to_accept": {
        "by_service_type": [
            # 1 h only.
            {
                "group": "social-care-assessment",
                "count": 1,
                "median_seconds": 3600.0,
                "p90_seconds": 3600.0,
            },
            # 30 min, 1 h, 3 h: median 1 h; p90 at rank 1.8 = 3600 + 0.8 × 7200.
            {
                "group": "urgent-community-response",
                "count": 3,
                "median_seconds": 3600.0,
                "p90_seconds": 9360.0,
            },
        ],
        "by_organisation": [
            {"group": "ACU01", "count": 1, "median_seconds": 3600.0, "p90_seconds": 3600.0},
            # 30 min and 1 h: median 45 min; p90 at rank 0.9 = 1800 + 0.9 × 1800.
            {"group": "RXA01", "count": 2, "median_seconds": 2700.0, "p90_seconds": 3420.0},
            {"group": "RXB02", "count": 1, "median_seconds": 10800.0, "p90_seconds": 10800.0},
        ],
    },
    # R1 and R4 within 2 h; R2 (3 h) and R5 (never) not; R6 pending.
    "rapid_response": {
        "standard_seconds": 7200.0,
        "answered_within": 2,
        "due": 4,
        "pending": 1,
        "share": 0.5,
    },
    "rejections_by_reason": [
        {"reason": "not-available-within-timescale", "count": 1},
        {"reason": "outside-service-criteria", "count": 1},
    ],
    "rejections_by_organisation": [
        {"organisation": "RXA01", "reason": "not-available-within-timescale", "count": 1},
        {"organisation": "SCA01", "reason": "outside-service-criteria", "count": 1},
    ],
    # R1, R2 and R3 ended, each its own way.
    "outcome_mix": [
        {"state": "completed", "outcome": "admitted-to-hospital", "count": 1, "share": 1 / 3},
        {"state": "completed", "outcome": "referred-onward", "count": 1, "share": 1 / 3},
        {"state": "completed", "outcome": "remained-at-home", "count": 1, "share": 1 / 3},
    ],
    "outcome_mix_by_service_type": [
        {
            "service_type": "social-care-assessment",
            "state": "completed",
            "outcome": "referred-onward",
            "count": 1,
            "share": 1.0,
        },
        {
            "service_type": "urgent-community-response",
            "state": "completed",
            "outcome": "admitted-to-hospital",
            "count": 1,
            "share": 0.5,
        },
        {
            "service_type": "urgent-community-response",
            "state": "completed",
            "outcome": "remained-at-home",
            "count": 1,
            "share": 0.5,
        },
    ],
    # No questions, failures or cancellations here (see test_figures_loop.py).
    "question_turnaround": NO_QUESTIONS,
    "failures_by_organisation": [],
    "cancellations_by_organisation": [],
    "outcomes_by_cohort": [
        {"cohort": "care-home-resident", "outcome": "admitted-to-hospital", "count": 1},
        {"cohort": "frailty", "outcome": "remained-at-home", "count": 1},
        {"cohort": "none", "outcome": "referred-onward", "count": 1},
    ],
    "outcomes_by_locality": [
        {"locality": "east", "outcome": "admitted-to-hospital", "count": 1},
        {"locality": "east", "outcome": "remained-at-home", "count": 1},
        {"locality": "west", "outcome": "referred-onward", "count": 1},
    ],
    "flows": [
        {"from": "referrer", "to": "rapid-response", "count": 5},
        {"from": "rapid-response", "to": "rapid-response", "count": 1},
        {"from": "referrer", "to": "social-care", "count": 1},
        {"from": "social-care", "to": "acute", "count": 1},
    ],
    "daily": [
        {"day": "2026-11-22", "submitted": 3, "accepted": 3, "rejected": 2, "completed": 3},
        {"day": "2026-11-23", "submitted": 3, "accepted": 1, "rejected": 0, "completed": 0},
    ],
    "known": {
        "localities": ["east", "west"],
        "organisations": ["ACU01", "B81001", "RXA01", "RXB02", "SCA01"],
    },
}


def deliver(engine: Engine, events: list[tuple[str, Envelope]]) -> None:
    """Through the real consumer, each event twice (and decisions also on a provider topic,
    same id), as Kafka may deliver them."""
    broker = InMemoryBroker()
    for topic in (*TOPICS.values(), "provider.rapid-response.v1"):
        broker.create_topic(topic, 1)
        broker.create_topic(topic + ".dlq", 1)
    for source, envelope in events + events:
        broker.append(TOPICS[source], *encode(envelope))
        if source == "routing":
            broker.append("provider.rapid-response.v1", *encode(envelope))
    source = InMemoryRecordSource(broker, "audit", pattern=EVERY_V1_TOPIC, max_records=1000)
    consumer = InboxConsumer("audit", source, engine, record_event, InMemoryPublisher(broker))
    while consumer.step(timeout=0):
        pass


def figures(client: TestClient, **params: Any) -> dict[str, Any]:
    response = client.get("/audit/figures", headers=OPS, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return {k: v for k, v in body.items() if k not in SELECTION}


SELECTION = ("since", "until", "organisation", "locality", "cohort", "as_of")
"""What the answer echoes of the request (and when it was computed)."""


@pytest.fixture
def frozen_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pending referrals are judged at NOW (noon on the second day)."""
    from audit.service_layer import figures as module

    class Clock(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
            return NOW

    monkeypatch.setattr(module, "datetime", Clock)


@pytest.mark.usefixtures("frozen_now")
def test_figures_match_the_hand_computed_fixture_and_survive_a_restart(
    settings: Settings, engine: Engine
) -> None:
    deliver(engine, fixture_events())

    with TestClient(create_app(settings)) as client:
        assert figures(client) == EXPECTED_ALL
        first_day = figures(client, until=DAY2.isoformat())
    with TestClient(create_app(settings)) as restarted:  # a new process: rebuilt from the log
        assert figures(restarted) == EXPECTED_ALL

    assert first_day["rapid_response"] == {
        "standard_seconds": 7200.0,
        "answered_within": 1,
        "due": 2,
        "pending": 0,
        "share": 0.5,
    }
    assert [d["day"] for d in first_day["daily"]] == ["2026-11-22"]


@pytest.mark.usefixtures("frozen_now")
def test_figures_follow_new_events_without_counting_old_ones_twice(
    settings: Settings, engine: Engine
) -> None:
    events = fixture_events()
    deliver(engine, events[:3])  # R1 submitted, routed, accepted
    with TestClient(create_app(settings)) as client:
        before = figures(client)
        deliver(engine, events)  # everything, R1's three again included
        after = figures(client)

    assert before["time_to_accept"]["by_organisation"] == [
        {"group": "RXA01", "count": 1, "median_seconds": 1800.0, "p90_seconds": 1800.0}
    ]
    assert after == EXPECTED_ALL


# ---- selections: one organisation, locality or cohort ------------------------------------------


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    deliver(engine, fixture_events())
    with TestClient(create_app(settings)) as client:
        yield client


UCR_ONLY_DURATIONS = EXPECTED_ALL["time_to_accept"]["by_service_type"][1:]


@pytest.mark.usefixtures("frozen_now")
def test_a_referrers_figures_are_those_of_every_referral_it_sent(client: TestClient) -> None:
    # B81001 sent all six.
    assert figures(client, organisation="B81001") == EXPECTED_ALL


@pytest.mark.usefixtures("frozen_now")
def test_a_providers_figures_cover_the_referrals_it_holds_or_held(client: TestClient) -> None:
    # RXA01 held R1, R2 (declined), R4, R5 and R6; never R3.
    rxa01 = figures(client, organisation="RXA01")

    assert rxa01["time_to_accept"] == {
        "by_service_type": UCR_ONLY_DURATIONS,
        "by_organisation": [
            {"group": "RXA01", "count": 2, "median_seconds": 2700.0, "p90_seconds": 3420.0},
            {"group": "RXB02", "count": 1, "median_seconds": 10800.0, "p90_seconds": 10800.0},
        ],
    }
    assert rxa01["rapid_response"] == EXPECTED_ALL["rapid_response"]
    assert rxa01["rejections_by_organisation"] == [
        {"organisation": "RXA01", "reason": "not-available-within-timescale", "count": 1}
    ]
    assert rxa01["outcome_mix"] == [
        {"state": "completed", "outcome": "admitted-to-hospital", "count": 1, "share": 0.5},
        {"state": "completed", "outcome": "remained-at-home", "count": 1, "share": 0.5},
    ]
    assert rxa01["flows"] == [
        {"from": "referrer", "to": "rapid-response", "count": 5},
        {"from": "rapid-response", "to": "rapid-response", "count": 1},
    ]
    assert rxa01["known"] == EXPECTED_ALL["known"], "the choices do not narrow"


SOCIAL_CARE_ONLY: dict[str, Any] = {
    "time_to_accept": {
        "by_service_type": EXPECTED_ALL["time_to_accept"]["by_service_type"][:1],
        "by_organisation": EXPECTED_ALL["time_to_accept"]["by_organisation"][:1],
    },
    "rapid_response": {
        "standard_seconds": 7200.0,
        "answered_within": 0,
        "due": 0,
        "pending": 0,
        "share": None,
    },
    "rejections_by_reason": [{"reason": "outside-service-criteria", "count": 1}],
    "rejections_by_organisation": [
        {"organisation": "SCA01", "reason": "outside-service-criteria", "count": 1}
    ],
    "outcome_mix": [{"state": "completed", "outcome": "referred-onward", "count": 1, "share": 1.0}],
    "outcome_mix_by_service_type": EXPECTED_ALL["outcome_mix_by_service_type"][:1],
    "question_turnaround": NO_QUESTIONS,
    "failures_by_organisation": [],
    "cancellations_by_organisation": [],
    "outcomes_by_cohort": [{"cohort": "none", "outcome": "referred-onward", "count": 1}],
    "outcomes_by_locality": [{"locality": "west", "outcome": "referred-onward", "count": 1}],
    "flows": [
        {"from": "referrer", "to": "social-care", "count": 1},
        {"from": "social-care", "to": "acute", "count": 1},
    ],
    "daily": [{"day": "2026-11-22", "submitted": 1, "accepted": 1, "rejected": 1, "completed": 1}],
    "known": EXPECTED_ALL["known"],
}
"""R3 alone: the only referral SCA01 and ACU01 held, and the only one in the west."""


@pytest.mark.usefixtures("frozen_now")
def test_figures_of_one_locality_and_of_its_organisations(client: TestClient) -> None:
    assert figures(client, locality="west") == SOCIAL_CARE_ONLY
    assert figures(client, organisation="SCA01") == SOCIAL_CARE_ONLY
    assert figures(client, organisation="ACU01") == SOCIAL_CARE_ONLY
    east = figures(client, locality="east")
    assert [d["submitted"] for d in east["daily"]] == [2, 3]
    assert figures(client, locality="north")["daily"] == []


@pytest.mark.usefixtures("frozen_now")
def test_figures_of_one_cohort(client: TestClient) -> None:
    # R1 (accepted in 30 min, remained at home) and R5 (never accepted, its 2 hours up).
    frailty = figures(client, cohort="frailty")
    assert frailty["rapid_response"] == {
        "standard_seconds": 7200.0,
        "answered_within": 1,
        "due": 2,
        "pending": 0,
        "share": 0.5,
    }
    assert frailty["outcome_mix"] == [
        {"state": "completed", "outcome": "remained-at-home", "count": 1, "share": 1.0}
    ]
    assert frailty["outcomes_by_cohort"] == [
        {"cohort": "frailty", "outcome": "remained-at-home", "count": 1}
    ]
    # In no cohort: R3 (social care) and R6 (pending).
    none = figures(client, cohort="none")
    assert [d["submitted"] for d in none["daily"]] == [1, 1]
    assert none["rapid_response"]["pending"] == 1
    assert none["outcomes_by_cohort"] == SOCIAL_CARE_ONLY["outcomes_by_cohort"]


@pytest.mark.usefixtures("frozen_now")
def test_conditions_combine_and_the_answer_says_what_was_selected(client: TestClient) -> None:
    response = client.get(
        "/audit/figures",
        params={"organisation": "RXA01", "cohort": "care-home-resident", "until": DAY2.isoformat()},
        headers=OPS,
    )
    body = response.json()
    assert (body["organisation"], body["cohort"], body["locality"]) == (
        "RXA01",
        "care-home-resident",
        None,
    )
    # R2 alone: declined by RXA01, accepted by RXB02 after 3 hours.
    assert body["time_to_accept"]["by_organisation"] == [
        {"group": "RXB02", "count": 1, "median_seconds": 10800.0, "p90_seconds": 10800.0}
    ]
    assert body["rejections_by_organisation"] == [
        {"organisation": "RXA01", "reason": "not-available-within-timescale", "count": 1}
    ]
    assert figures(client, organisation="RXZ99")["daily"] == [], "an organisation never seen"


def test_a_bad_selection_is_refused_naming_the_parameter(client: TestClient) -> None:
    for params, field in (
        ({"cohort": "teenagers"}, "query.cohort"),
        ({"organisation": "rxa01"}, "query.organisation"),
        ({"locality": "east; drop"}, "query.locality"),
    ):
        response = client.get("/audit/figures", params=params, headers=OPS)
        assert response.status_code == 422, params
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["errors"][0]["field"] == field


def test_the_selection_is_documented_with_its_choices(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/audit/figures"]["get"]
    parameters = {p["name"]: p["schema"] for p in operation["parameters"]}

    def choices(schema: dict[str, Any]) -> dict[str, Any]:
        for option in schema.get("anyOf", [schema]):
            if "$ref" in option:
                name = option["$ref"].rsplit("/", 1)[-1]
                return dict(client.get("/openapi.json").json()["components"]["schemas"][name])
            if option.get("type") == "string":
                return dict(option)
        raise AssertionError(schema)

    assert choices(parameters["cohort"])["enum"] == [
        "care-home-resident",
        "frailty",
        "end-of-life",
        "none",
    ]
    assert "pattern" in choices(parameters["organisation"])
    assert "pattern" in choices(parameters["locality"])
