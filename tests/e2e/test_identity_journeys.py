"""A social-care referral for a person without an NHS number, consent recorded, through the
real processes and broker: routed, accepted, the NHS number traced and recorded on the way
(its own event), completed; no identifier or sharing detail ever on a topic."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from devstack.stack import Stack

from .conftest import (
    as_client,
    gp,
    provider_headers,
    read_topic,
    submit,
    timeline,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]

LOCAL_ID = f"SC-{uuid.uuid4().hex[:8]}"
REFERRAL: dict[str, Any] = {
    "referrer": {"organisation": "B81001", "practitioner": "G1234567"},
    "patient": {
        "name": "Sam Jones",
        "postcode": "BS5 0AA",
        "local_identifier": {"value": LOCAL_ID, "organisation": "SCC01"},
    },
    "service_type": "social-care-assessment",
    "priority": "urgent",
    "consent": {"basis": "explicit-consent"},
}


@pytest.fixture
def identity_stack(shared_stack: Stack) -> Stack:
    """The shared stack (the journey uses its own referral and person)."""
    return shared_stack


def read(stack: Stack, rid: str, org: str) -> dict[str, Any]:
    return httpx.get(
        f"{stack.url('referrals')}/referrals/{rid}", headers=as_client(stack, org.lower())
    ).json()


def act(
    stack: Stack, rid: str, org: str, action: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    current = read(stack, rid, org)
    response = httpx.post(
        f"{stack.url('referrals')}/referrals/{rid}/{action}",
        json=body,
        headers=provider_headers(stack, org, **{"If-Match": f'"{current["version"]}"'}),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_social_care_without_an_nhs_number_with_consent_end_to_end(
    kafka_bootstrap, identity_stack
) -> None:
    stack = identity_stack
    refused = httpx.post(
        f"{stack.url('referrals')}/referrals",
        json={k: v for k, v in REFERRAL.items() if k != "consent"},
        headers={**gp(stack), "Idempotency-Key": str(uuid.uuid4())},
        timeout=10,
    )
    assert refused.status_code == 422
    assert [e["field"] for e in refused.json()["errors"]] == ["consent"]

    rid = submit(stack, REFERRAL)["id"]
    routed = wait_for(
        "the referral to be routed to a social care team",
        lambda: (r := read(stack, rid, "B81001")).get("status") == "routed" and r,
        timeout=30,
    )
    team = routed["assigned_org"]
    assert team in {"SCC01", "SCC03"}, "the council by day, the duty team otherwise"

    offered = read(stack, rid, team)
    assert offered["consent"]["basis"] == "explicit-consent"
    assert (
        offered["consent"]["recorded_by_org"],
        offered["consent"]["recorded_by_practitioner"],
    ) == (
        "B81001",
        "G1234567",
    )
    assert offered["patient"]["nhs_number"] is None
    assert offered["patient"]["nhs_number_verification"] == "absent"
    assert offered["patient"]["local_identifier"] == {"value": LOCAL_ID, "organisation": "SCC01"}

    act(stack, rid, team, "accept")
    traced = act(
        stack,
        rid,
        "B81001",
        "record-nhs-number",
        {"nhs_number": "9434765919", "verification": "verified"},
    )
    assert traced["status"] == "accepted", "recording the number changes no status"
    assert read(stack, rid, team)["patient"]["nhs_number_verification"] == "verified"
    act(stack, rid, team, "start")
    done = act(stack, rid, team, "complete", {"outcome": "other", "summary": "Care package"})
    assert done["status"] == "completed"

    wanted = [
        "ReferralSubmitted",
        "ReferralRouted",
        "ReferralAccepted",
        "ReferralNhsNumberRecorded",
        "ReferralStarted",
        "ReferralCompleted",
    ]
    wait_for(
        "the whole journey in the audit timeline",
        lambda: len(timeline(stack, rid)) >= len(wanted),
        timeout=120,
    )
    assert timeline(stack, rid) == wanted
    on_topic = read_topic(
        kafka_bootstrap,
        "provider.social-care.v1",
        rid,
        until=lambda seen: len(seen) >= 5,
        timeout=120,
    )
    assert [e.type.split(".")[2] for e in on_topic] == wanted[1:], (
        "the social care team hears of the traced NHS number on its topic"
    )
    recorded = next(e for e in on_topic if e.type.endswith("ReferralNhsNumberRecorded.v1"))
    assert (recorded.data["previous_verification"], recorded.data["verification"]) == (
        "absent",
        "verified",
    )
    assert all(e.data["sharing"]["consent_recorded"] for e in on_topic[1:])
    raw = str([e.data for e in on_topic])
    for private in ("9434765919", LOCAL_ID, "explicit-consent", "Sam Jones"):
        assert private not in raw, "events carry flags, never identifiers or the basis"
