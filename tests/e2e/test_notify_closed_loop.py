"""The loop closed: a GP practice subscribes, refers, and its endpoint hears routed → accepted
→ started → completed with the outcome; the rapid response team's FHIR endpoint hears the offer.
Real processes, real broker, real receivers on loopback."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from devstack.receiver import Delivery, Receiver
from devstack.stack import Stack

from .conftest import as_client, submit, wait_for
from .test_lifecycle_journeys import act, assigned_to

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"


@pytest.fixture
def loop_stack(shared_stack: Stack) -> Stack:
    """The shared stack (the loop uses its own subscriptions and referral)."""
    return shared_stack


def subscribe_webhook(stack: Stack, org: str, receiver: Receiver) -> dict[str, Any]:
    response = httpx.post(
        f"{stack.url('notify')}/subscriptions",
        json={"topic": "referrals-sent", "endpoint": receiver.url, "content": "full-resource"},
        headers=as_client(stack, org, "notify", **{"Idempotency-Key": str(uuid.uuid4())}),
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return response.json()


def subscribe_fhir(stack: Stack, org: str, receiver: Receiver) -> dict[str, Any]:
    resource = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "offers",
        "criteria": "http://referral-exchange.example.org/fhir/SubscriptionTopic/referrals-offered",
        "channel": {
            "type": "rest-hook",
            "endpoint": receiver.url,
            "payload": "application/fhir+json",
            "_payload": {
                "extension": [
                    {"url": BACKPORT + "backport-payload-content", "valueCode": "full-resource"}
                ]
            },
        },
    }
    response = httpx.post(
        f"{stack.url('notify')}/fhir/R4/Subscription",
        json=resource,
        headers=as_client(stack, org, "notify"),
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return response.json()


def events_of(receiver: Receiver, rid: str) -> list[dict[str, Any]]:
    """The referral's CloudEvents as first received (repeats dropped by webhook-id)."""
    return [
        d.json()
        for d in receiver.unique(lambda d: d.headers["webhook-id"])
        if d.json().get("subject") == rid
    ]


def task_events(delivery: Delivery) -> list[tuple[str, str]]:
    """(referral id, event) of each step (a Task about the referral's ServiceRequest) in a
    FHIR notification."""
    return [
        (
            e["resource"]["focus"]["reference"].rsplit("/", 1)[-1],
            e["resource"]["businessStatus"]["coding"][0]["code"],
        )
        for e in delivery.json()["entry"][1:]
        if e.get("resource", {}).get("resourceType") == "Task"
    ]


def test_the_referrer_hears_back_and_the_provider_hears_the_offer(loop_stack: Stack) -> None:
    stack = loop_stack
    gp, team = Receiver().start(), Receiver().start()
    try:
        webhook = subscribe_webhook(stack, "b81001", gp)
        fhir = subscribe_fhir(stack, "rxa01", team)
        wait_for("the FHIR handshake", lambda: team.received(), timeout=30)
        handshake = team.received()[0].json()["entry"][0]["resource"]["parameter"]
        assert {p["name"]: p.get("valueCode") for p in handshake}["type"] == "handshake"

        rid = submit(stack)["id"]
        assigned_to(stack, rid, "RXA01")
        wait_for(
            "the offer at the provider's endpoint",
            lambda: any((rid, "routed") in task_events(d) for d in team.received()),
            timeout=30,
        )
        act(stack, rid, "RXA01", "accept")
        act(stack, rid, "RXA01", "start")
        act(stack, rid, "RXA01", "complete", {"outcome": "remained-at-home"})

        wait_for(
            "the outcome at the GP's endpoint",
            lambda: [e["event"] for e in events_of(gp, rid)][-1:] == ["completed"],
            timeout=30,
        )
        heard = events_of(gp, rid)
        assert [e["event"] for e in heard] == [
            "submitted",
            "routed",
            "accepted",
            "started",
            "completed",
        ]
        assert heard[-1]["data"]["outcome"] == "remained-at-home"
        assert heard[1]["data"]["referral"]["assigned_org"] == "RXA01"
        numbers = [e["eventnumber"] for e in heard]
        assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
        # The referral's own numbers have no holes: routing numbers its decision (2), which
        # the referrals service reserved for it and records under that number.
        assert [e["sequence"] for e in heard] == [1, 2, 3, 4, 5]
        assert heard[1]["data"]["sequence"] == 2
        history = httpx.get(
            f"{stack.url('referrals')}/referrals/{rid}/history",
            headers=as_client(stack, "b81001"),
            timeout=10,
        ).json()
        assert [(h["sequence"], h["action"]) for h in history] == [
            (1, "submit"),
            (2, "route"),
            (3, "accept"),
            (4, "start"),
            (5, "complete"),
        ]
        assert gp.verified(webhook["secret"])
        secret = fhir["extension"][0]["valueString"]
        assert team.verified(secret)
        # No patient identifier travels in a notification.
        assert not any("9434765919" in d.body.decode() for d in gp.received() + team.received())

        health = httpx.get(
            f"{stack.url('notify')}/subscriptions/{webhook['id']}",
            headers=as_client(stack, "b81001", "notify"),
            timeout=10,
        ).json()["health"]
        wait_for(
            "the webhook's backlog to clear",
            lambda: (
                httpx.get(
                    f"{stack.url('notify')}/subscriptions/{webhook['id']}",
                    headers=as_client(stack, "b81001", "notify"),
                    timeout=10,
                ).json()["health"]["backlog"]
                == 0
            ),
            timeout=30,
        )
        assert health["last_success_at"] is not None
    finally:
        gp.stop()
        team.stop()
