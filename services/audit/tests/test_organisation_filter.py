"""The organisation filter means what it says: every event of the referrals an organisation
sent or holds or held, whichever organisations each event names, in the entries, the live
stream and the timeline."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from audit.adapters import queries
from audit.config import Settings
from audit.entrypoints.api.app import create_app
from fastapi.testclient import TestClient
from rx_contracts import (
    Actor,
    Envelope,
    ReferralAccepted,
    ReferralRejected,
    ReferralStatus,
    RejectionReason,
    examples,
    wrap,
)
from sqlalchemy.engine import Engine

from .conftest import OPS, T0, record_all, transitioned
from .test_stream import Events, open_stream

REFERRALS = "referrals.events.v1"
DECISIONS = "routing.decisions.v1"


def submitted(rid: str, referrer: str = "B81001") -> Envelope:
    payload = examples.referral_submitted(
        rid, referrer_org=referrer, actor=Actor(organisation=referrer), submitted_at=T0
    )
    return wrap(payload, source="/services/referrals", time=T0, event_id=f"{rid}-submitted")


def routed(rid: str, org: str, attempt: int = 1) -> Envelope:
    """A routing decision: it names the assignee only, not the referrer."""
    payload = examples.referral_routed(
        rid, assigned_org=org, attempt=attempt, decision_id=f"d-{rid}-{attempt}"
    )
    return wrap(
        payload,
        source="/services/routing",
        time=T0 + timedelta(minutes=attempt),
        event_id=f"{rid}-routed-{attempt}",
    )


def rejected(rid: str, org: str) -> Envelope:
    payload = transitioned(
        ReferralRejected,
        rid,
        actor=Actor(organisation=org),
        status=ReferralStatus.SUBMITTED,
        assigned_org=None,
        rejected_by=org,
        reason_code=RejectionReason.OTHER,
    )
    return wrap(payload, source="/services/referrals", time=T0 + timedelta(minutes=5))


def accepted(rid: str, org: str, referrer: str = "B81001") -> Envelope:
    payload = transitioned(
        ReferralAccepted,
        rid,
        actor=Actor(organisation=org),
        assigned_org=org,
        referrer_org=referrer,
    )
    return wrap(payload, source="/services/referrals", time=T0 + timedelta(minutes=9))


def record(engine: Engine, events: list[tuple[str, Envelope]]) -> None:
    for topic, envelope in events:
        record_all(engine, [envelope], topic)


@pytest.fixture(autouse=True, params=["entry by entry", "by index"])
def lookup(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both ways the filter looks an organisation's entries up give the same answers."""
    monkeypatch.setattr(queries, "SCAN_AT_MOST", 10**9 if request.param == "entry by entry" else -1)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Live streams that look for new entries often."""
    return settings.model_copy(update={"stream_poll_s": 0.05, "stream_heartbeat_s": 0.5})


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


def engine_of(client: TestClient) -> Engine:
    return client.app.state.container.engine  # type: ignore[attr-defined,no-any-return]


def events_of(client: TestClient, **params: object) -> list[str]:
    """``<referral>:<short type>`` of every matching entry, in chain order, over every page."""
    found: list[str] = []
    query: dict[str, object] = {"limit": 2, **params}
    while True:
        response = client.get("/audit/entries", params=query, headers=OPS)
        assert response.status_code == 200, response.text
        page = response.json()
        found += [f"{e['referral_id']}:{e['type'].rsplit('.', 2)[-2]}" for e in page["items"]]
        if page["next_cursor"] is None:
            return found
        query["cursor"] = page["next_cursor"]


R1_JOURNEY = [
    "r-1:ReferralSubmitted",
    "r-1:ReferralRouted",
    "r-1:ReferralRejected",
    "r-1:ReferralRouted",
    "r-1:ReferralAccepted",
]


@pytest.fixture
def journeys(client: TestClient) -> TestClient:
    """r-1 from B81001: routed to RXA01, which declines; routed to RXB02, which accepts.
    r-9 from L81001: routed to RXA01. The routing topic of r-9 was read first."""
    record(
        engine_of(client),
        [
            (REFERRALS, submitted("r-1")),
            (DECISIONS, routed("r-1", "RXA01")),
            (DECISIONS, routed("r-9", "RXA01")),
            (REFERRALS, rejected("r-1", "RXA01")),
            (REFERRALS, submitted("r-9", referrer="L81001")),
            (DECISIONS, routed("r-1", "RXB02", attempt=2)),
            (REFERRALS, accepted("r-1", "RXB02")),
        ],
    )
    return client


def test_the_referrer_sees_the_routing_decisions_of_its_referrals(journeys: TestClient) -> None:
    # The issue as a new user met it: the decisions name the assignee only.
    assert events_of(journeys, organisation="B81001") == R1_JOURNEY
    assert events_of(journeys, organisation="B81001", type="rx.routing.ReferralRouted.v1") == [
        "r-1:ReferralRouted",
        "r-1:ReferralRouted",
    ]


def test_an_organisation_sees_every_event_of_the_referrals_it_holds_or_held(
    journeys: TestClient,
) -> None:
    # RXB02 was named for the first time by the fourth event; the earlier ones count too.
    assert events_of(journeys, organisation="RXB02") == R1_JOURNEY
    # RXA01 declined r-1 and holds r-9, whose decision was recorded before its submission.
    assert events_of(journeys, organisation="RXA01") == [
        "r-1:ReferralSubmitted",
        "r-1:ReferralRouted",
        "r-9:ReferralRouted",
        "r-1:ReferralRejected",
        "r-9:ReferralSubmitted",
        "r-1:ReferralRouted",
        "r-1:ReferralAccepted",
    ]
    assert events_of(journeys, organisation="L81001") == [
        "r-9:ReferralRouted",
        "r-9:ReferralSubmitted",
    ]
    assert events_of(journeys, organisation="RXZ99") == []
    assert events_of(journeys, organisation="RXA01", referral_id="r-9") == [
        "r-9:ReferralRouted",
        "r-9:ReferralSubmitted",
    ]


def test_entries_about_no_referral_are_found_by_the_organisations_they_name(
    client: TestClient,
) -> None:
    # An event of a type this service does not know, about an organisation and no referral.
    change = wrap(examples.referral_submitted("unused"), source="/services/routing")
    change = change.model_copy(
        update={
            "type": "rx.routing.OrganisationClosed.v1",
            "subject": "RXA01",
            "data": {"organisation": "RXA01", "actor": {"organisation": "RXOPS"}},
        }
    )
    record(engine_of(client), [(DECISIONS, change), (REFERRALS, submitted("r-1"))])

    assert events_of(client, organisation="RXA01") == ["None:OrganisationClosed"]
    assert events_of(client, organisation="RXOPS") == ["None:OrganisationClosed"]
    assert events_of(client, organisation="B81001") == ["r-1:ReferralSubmitted"]


def test_a_timeline_filtered_by_organisation_answers_only_for_the_referrals_it_involves(
    journeys: TestClient,
) -> None:
    def timeline(rid: str, org: str) -> httpx.Response:
        return journeys.get(
            f"/audit/referrals/{rid}/timeline", params={"organisation": org}, headers=OPS
        )

    for org in ("B81001", "RXA01", "RXB02"):
        response = timeline("r-1", org)
        assert response.status_code == 200, org
        assert len(response.json()) == 5, org
    elsewhere = timeline("r-1", "L81001")
    assert elsewhere.status_code == 404
    assert elsewhere.headers["content-type"] == "application/problem+json"
    assert "L81001" in elsewhere.json()["detail"]
    bad = timeline("r-1", "not an ods code")
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.organisation"


def test_the_live_stream_of_the_referrer_carries_the_routing_decisions(
    live_api: str, engine: Engine
) -> None:
    with (
        httpx.Client(timeout=10) as client,
        open_stream(client, live_api, organisation="B81001") as response,
    ):
        events = Events(response)
        record(
            engine,
            [
                (REFERRALS, submitted("r-1")),
                (REFERRALS, submitted("r-2", referrer="L81001")),
                (DECISIONS, routed("r-2", "RXA01")),
                (DECISIONS, routed("r-1", "RXA01")),
            ],
        )
        live = [events.next(), events.next()]
        record(engine, [(REFERRALS, accepted("r-1", "RXA01"))])
        live.append(events.next())

    assert [(e["data"]["referral_id"], e["data"]["type"].rsplit(".", 2)[-2]) for e in live] == [
        ("r-1", "ReferralSubmitted"),
        ("r-1", "ReferralRouted"),
        ("r-1", "ReferralAccepted"),
    ]
    assert [e["id"] for e in live] == ["1", "4", "5"]
