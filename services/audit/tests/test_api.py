"""The audit API as an operations user reads it: entries filtered and paged, a referral's
timeline, verification, and who may read at all."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from audit.config import Settings
from audit.entrypoints.api.app import create_app
from fastapi.testclient import TestClient
from rx_contracts import (
    AccessedData,
    Actor,
    ReferralAccepted,
    ReferralAccessed,
    Role,
    examples,
    wrap,
)
from sqlalchemy.engine import Engine

from .conftest import OPS, T0, record_all, submitted, transitioned


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


def engine_of(client: TestClient) -> Engine:
    return client.app.state.container.engine  # type: ignore[attr-defined,no-any-return]


def journey(referral_id: str, assigned: str = "RXA01") -> list:
    """Submitted at T0, routed 90 s later, accepted 10 min after submission."""
    submitted_event = wrap(
        examples.referral_submitted(referral_id, submitted_at=T0),
        source="/services/referrals",
        time=T0,
    )
    routed = wrap(
        examples.referral_routed(referral_id, assigned_org=assigned, routed_at=T0),
        source="/services/routing",
        time=T0 + timedelta(seconds=90),
    )
    accepted = wrap(
        transitioned(
            ReferralAccepted, referral_id, assigned_org=assigned, actor=Actor(organisation=assigned)
        ),
        source="/services/referrals",
        time=T0 + timedelta(minutes=10),
    )
    return [submitted_event, routed, accepted]


def test_only_operations_staff_may_read_the_log(client: TestClient) -> None:
    assert client.get("/audit/entries").status_code == 401
    provider = client.get("/audit/entries", headers={"X-Organisation": "B81001"})
    assert provider.status_code == 403
    assert provider.headers["content-type"] == "application/problem+json"
    assert "ops" in provider.json()["detail"]
    for path in ("/audit/verify", "/audit/stream", "/audit/referrals/r-1/timeline"):
        assert client.get(path).status_code == 401, path
    assert client.get("/health").status_code == 200, "health needs no identity"


def test_a_timeline_shows_every_event_with_its_actor_and_time_since_submission(
    client: TestClient,
) -> None:
    submitted_event, routed, accepted = journey("r-9")
    # The decision topic was fetched first, as can happen after a broker restart.
    record_all(engine_of(client), [routed, submitted_event, accepted])

    steps = client.get("/audit/referrals/r-9/timeline", headers=OPS).json()

    assert [s["type"].rsplit(".", 2)[-2] for s in steps] == [
        "ReferralSubmitted",
        "ReferralRouted",
        "ReferralAccepted",
    ]
    assert [s["sequence"] for s in steps] == [2, 1, 3], "recorded in another order"
    assert [s["elapsed_seconds"] for s in steps] == [0.0, 90.0, 600.0]
    assert [s["actor_org"] for s in steps] == ["B81001", "RX", "RXA01"]
    assert steps[0]["actor_practitioner"] == "G1234567"
    assert steps[2]["status"] == "accepted" and steps[2]["assigned_org"] == "RXA01"
    missing = client.get("/audit/referrals/nope/timeline", headers=OPS)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


def test_a_read_of_what_was_said_shows_on_the_timeline_as_a_communications_access(
    client: TestClient,
) -> None:
    submitted_event, routed, accepted = journey("r-7")
    read = wrap(
        ReferralAccessed(
            referral_id="r-7",
            access_id="a-1",
            actor=Actor(organisation="RXA01", practitioner="P1"),
            roles=[Role.PROVIDER],
            accessed=AccessedData.COMMUNICATIONS,
            accessed_at=T0 + timedelta(minutes=11),
        ),
        source="/services/referrals",
        time=T0 + timedelta(minutes=11),
    )
    record_all(engine_of(client), [submitted_event, routed, accepted])
    record_all(engine_of(client), [read], topic="referrals.access.v1")

    steps = client.get("/audit/referrals/r-7/timeline", headers=OPS).json()

    assert [(s["type"].rsplit(".", 2)[-2], s["accessed"]) for s in steps] == [
        ("ReferralSubmitted", None),
        ("ReferralRouted", None),
        ("ReferralAccepted", None),
        ("ReferralAccessed", "communications"),
    ]
    assert (steps[-1]["actor_org"], steps[-1]["actor_practitioner"]) == ("RXA01", "P1")
    [entry] = client.get(
        "/audit/entries", params={"type": ReferralAccessed.EVENT_TYPE}, headers=OPS
    ).json()["items"]
    assert (entry["topic"], entry["payload"]["accessed"]) == (
        "referrals.access.v1",
        "communications",
    )


def test_entries_are_filtered_by_referral_organisation_type_and_time(client: TestClient) -> None:
    record_all(engine_of(client), journey("r-1", "RXA01") + journey("r-2", "RXB02"))

    def ids(**params: object) -> list[tuple[str | None, str]]:
        page = client.get("/audit/entries", params=params, headers=OPS).json()
        return [(e["referral_id"], e["type"].rsplit(".", 2)[-2]) for e in page["items"]]

    assert ids(referral_id="r-2") == [
        ("r-2", "ReferralSubmitted"),
        ("r-2", "ReferralRouted"),
        ("r-2", "ReferralAccepted"),
    ]
    # An organisation's filter covers every event of the referrals it sent or holds.
    assert ids(organisation="RXB02") == ids(referral_id="r-2")
    assert ids(organisation="B81001") == ids(referral_id="r-1") + ids(referral_id="r-2")
    assert ids(organisation="RXB02", type="rx.referrals.ReferralSubmitted.v1") == [
        ("r-2", "ReferralSubmitted")
    ]
    assert ids(type="rx.routing.ReferralRouted.v1") == [
        ("r-1", "ReferralRouted"),
        ("r-2", "ReferralRouted"),
    ]
    window = {
        "since": (T0 + timedelta(seconds=60)).isoformat(),
        "until": (T0 + timedelta(minutes=5)).isoformat(),
    }
    assert ids(**window) == [("r-1", "ReferralRouted"), ("r-2", "ReferralRouted")]

    # A mistyped type is named in the answer rather than matching nothing.
    typo = client.get("/audit/entries", params={"type": "ReferralRouted"}, headers=OPS)
    assert typo.status_code == 422
    assert typo.json()["errors"][0]["field"] == "query.type.0"


def test_pages_follow_the_cursor_to_the_end_without_gaps_or_repeats(client: TestClient) -> None:
    record_all(engine_of(client), [submitted(n) for n in range(1, 8)])
    seen: list[int] = []
    params: dict[str, object] = {"limit": 3}
    while True:
        page = client.get("/audit/entries", params=params, headers=OPS).json()
        seen += [e["sequence"] for e in page["items"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert seen == list(range(1, 8))

    bad = client.get("/audit/entries", params={"cursor": "bogus"}, headers=OPS)
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "cursor"


def test_an_entry_shows_its_payload_and_chain_links(client: TestClient) -> None:
    record_all(engine_of(client), [submitted(1), submitted(2)])
    first, second = client.get("/audit/entries", headers=OPS).json()["items"]
    assert first["payload"]["postcode_district"] == "BS5"
    assert (first["topic"], first["partition"], first["offset"]) == ("referrals.events.v1", 0, 0)
    assert first["occurred_at"].startswith("2026-11-22T09:01:00")
    assert second["prev_hash"] == first["hash"]
