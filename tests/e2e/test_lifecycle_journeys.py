"""Whole journeys through the real processes and broker, as provider systems drive them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from devstack.stack import Stack

from .conftest import (
    ACCESS,
    as_client,
    audit_entries,
    gp,
    provider_headers,
    read_topic,
    submit,
    timeline,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]


@pytest.fixture
def journeys_stack(shared_stack: Stack) -> Stack:
    """The shared stack (each journey uses its own referrals)."""
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


def assigned_to(stack: Stack, rid: str, org: str) -> dict[str, Any]:
    return wait_for(
        f"{rid} to be routed to {org}",
        lambda: (r := read(stack, rid, org)).get("status") == "routed" and r,
        timeout=30,
    )


def test_submitted_routed_accepted_started_completed(kafka_bootstrap, journeys_stack) -> None:
    stack = journeys_stack
    rid = submit(stack)["id"]
    assert assigned_to(stack, rid, "RXA01")["allowed_actions"] == [
        "accept",
        "reject",
        "redirect",
        "request-info",
        "message",
        "record-nhs-number",
    ]
    act(stack, rid, "RXA01", "accept")
    act(stack, rid, "RXA01", "start")
    done = act(stack, rid, "RXA01", "complete", {"outcome": "remained-at-home"})
    assert (done["status"], done["outcome"], done["version"]) == (
        "completed",
        "remained-at-home",
        5,
    )

    wanted = [
        "ReferralSubmitted",
        "ReferralRouted",
        "ReferralAccepted",
        "ReferralStarted",
        "ReferralCompleted",
    ]
    wait_for("the whole journey in the audit timeline", lambda: timeline(stack, rid) == wanted)
    on_topic = read_topic(
        kafka_bootstrap, "provider.rapid-response.v1", rid, until=lambda seen: len(seen) >= 4
    )
    assert [e.type.split(".")[2] for e in on_topic] == wanted[1:], (
        "the provider topic carries every later transition, once"
    )


def test_rejected_then_rerouted_to_the_next_team_which_accepts(
    kafka_bootstrap, journeys_stack
) -> None:
    stack = journeys_stack
    rid = submit(stack)["id"]
    assigned_to(stack, rid, "RXA01")
    act(stack, rid, "RXA01", "reject", {"reason_code": "not-available-within-timescale"})
    second = assigned_to(stack, rid, "RXA02")
    assert second["assigned_org"] == "RXA02"
    assert (
        httpx.get(
            f"{stack.url('referrals')}/referrals/{rid}",
            headers=as_client(stack, "rxa01"),
        ).status_code
        == 404
    )
    accepted = act(stack, rid, "RXA02", "accept")
    assert accepted["status"] == "accepted"

    history = httpx.get(
        f"{stack.url('referrals')}/referrals/{rid}/history", headers=gp(stack)
    ).json()
    assert [(h["action"], h["actor_org"]) for h in history] == [
        ("submit", "B81001"),
        ("route", "RX"),
        ("reject", "RXA01"),
        ("route", "RX"),
        ("accept", "RXA02"),
    ]
    assert history[2]["reason_code"] == "not-available-within-timescale"
    wanted = [
        "ReferralSubmitted",
        "ReferralRouted",
        "ReferralRejected",
        "ReferralRouted",
        "ReferralAccepted",
    ]
    wait_for("the journey in the audit timeline", lambda: timeline(stack, rid) == wanted)
    routed = httpx.get(
        f"{stack.url('routing')}/decisions",
        params={"referral_id": rid},
        headers=as_client(stack, "ops", "routing"),
    ).json()
    assert sorted((d["attempt"], d["assigned_org"]) for d in routed) == [(1, "RXA01"), (2, "RXA02")]


def test_reads_of_a_referral_appear_on_the_audit_stream_as_access_events(
    journeys_stack,
) -> None:
    stack = journeys_stack
    rid = submit(stack)["id"]
    assigned_to(stack, rid, "RXA01")  # RXA01 reads it (maybe several times) while waiting
    ops_read = httpx.get(
        f"{stack.url('referrals')}/referrals/{rid}", headers=as_client(stack, "ops")
    )
    assert ops_read.status_code == 200
    refused = httpx.get(
        f"{stack.url('referrals')}/referrals/{rid}", headers=as_client(stack, "scc01")
    )
    assert refused.status_code == 404

    def reads() -> list[dict[str, Any]]:
        return [e for e in audit_entries(stack, rid, with_reads=True) if e["type"] == ACCESS]

    entries = wait_for(
        "the ops read on the audit stream",
        lambda: (found := reads()) and any(e["actor_org"] == "RX0PS" for e in found) and found,
    )
    readers = {e["actor_org"] for e in entries}
    assert readers == {"RXA01", "RX0PS"}, "every read that returned data, and only those"
    ops_entry = next(e for e in entries if e["actor_org"] == "RX0PS")
    assert ops_entry["topic"] == "referrals.access.v1"
    assert ops_entry["payload"]["client_id"] == "ops"
    assert ops_entry["payload"]["accessed"] == "referral"
    assert "9434765919" not in str(entries)


def test_reads_of_what_was_said_appear_on_the_audit_timeline_as_communications_accesses(
    journeys_stack,
) -> None:
    stack = journeys_stack
    rid = submit(stack)["id"]
    assigned_to(stack, rid, "RXA01")
    act(stack, rid, "RXA01", "message", {"text": "Lives alone since March"})
    history = httpx.get(
        f"{stack.url('referrals')}/referrals/{rid}/history", headers=gp(stack), timeout=10
    )
    assert history.status_code == 200
    said = httpx.get(
        f"{stack.url('referrals')}/fhir/R4/Communication",
        params={"based-on": f"ServiceRequest/{rid}"},
        headers=as_client(stack, "ops"),
        timeout=10,
    )
    assert [e["resource"]["payload"][0]["contentString"] for e in said.json()["entry"]] == [
        "Lives alone since March"
    ]

    def communications_read() -> list[tuple[str | None, str | None]]:
        response = httpx.get(
            f"{stack.url('audit')}/audit/referrals/{rid}/timeline",
            headers=as_client(stack, "ops", "audit"),
            timeout=10,
        )
        if response.status_code != 200:
            return []
        steps = response.json()
        return [
            (s["actor_org"], s["accessed"])
            for s in steps
            if s["type"] == ACCESS and s["accessed"] == "communications"
        ]

    readers = wait_for(
        "both reads of what was said on the audit timeline",
        lambda: len(found := communications_read()) == 2 and found,
    )
    assert sorted(readers) == [("B81001", "communications"), ("RX0PS", "communications")]
    entries = [e for e in audit_entries(stack, rid, with_reads=True) if e["type"] == ACCESS]
    assert "Lives alone" not in str(entries), "what was said stays out of the audit stream"
