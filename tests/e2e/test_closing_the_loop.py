"""Closing the loop through the real processes and broker: a question paused the acceptance
clock until the referrer answered, interim updates and messages before the outcome, and a
referral that ends failed. Each step reaches the provider's topic and the audit timeline."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
from devstack.stack import Stack

from .conftest import (
    REFERRAL,
    as_client,
    gp,
    read_topic,
    running_stack,
    submit,
    timeline,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]

CLOCK_EVENTS = {"SlaWarning", "SlaBreached"}


@pytest.fixture(scope="module")
def loop_stack(kafka_bootstrap, tmp_path_factory, request):
    """One stack for this module (each test uses its own referrals), with an acceptance
    limit of seconds for asap urgent community response referrals only."""
    with running_stack(
        request, tmp_path_factory.mktemp("loop"), kafka_bootstrap, "loop-", timeout=240
    ) as stack:
        policy = httpx.put(
            f"{stack.url('routing')}/sla-policies/urgent-community-response/asap",
            json={"accept_within_seconds": 12, "warn_at_fraction": 0.9, "auto_reroute": True},
            headers=as_client(stack, "admin", "routing"),
        )
        assert policy.status_code == 200, policy.text
        yield stack


def read(stack: Stack, rid: str, org: str) -> dict[str, Any]:
    return httpx.get(
        f"{stack.url('referrals')}/referrals/{rid}", headers=as_client(stack, org.lower())
    ).json()


def act(stack: Stack, rid: str, org: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
    current = read(stack, rid, org)
    headers = as_client(
        stack,
        org.lower(),
        **{"Idempotency-Key": str(uuid.uuid4()), "If-Match": f'"{current["version"]}"'},
    )
    response = httpx.post(
        f"{stack.url('referrals')}/referrals/{rid}/{action}", json=body, headers=headers, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()


def routed_to(stack: Stack, rid: str, org: str) -> dict[str, Any]:
    return wait_for(
        f"{rid} to be routed to {org}",
        lambda: (r := read(stack, rid, org)).get("status") == "routed" and r,
        timeout=30,
    )


def history(stack: Stack, rid: str, org: str) -> list[dict[str, Any]]:
    return httpx.get(
        f"{stack.url('referrals')}/referrals/{rid}/history", headers=as_client(stack, org.lower())
    ).json()


def journey_is(stack: Stack, rid: str, wanted: list[str], what: str) -> None:
    """Wait for the audit timeline to show ``wanted``; if it never does, say what it shows."""
    try:
        wait_for(what, lambda: timeline(stack, rid) == wanted, timeout=60)
    except AssertionError:
        assert timeline(stack, rid) == wanted, what


def provider_events(kafka_bootstrap: str, rid: str, count: int) -> list[str]:
    seen = read_topic(
        kafka_bootstrap, "provider.rapid-response.v1", rid, until=lambda s: len(s) >= count
    )
    return [e.type.split(".")[2] for e in seen]


def test_a_question_pauses_the_clock_and_the_answer_brings_the_same_team_back_to_accept(
    kafka_bootstrap, loop_stack
) -> None:
    stack = loop_stack
    rid = submit(stack, {**REFERRAL, "priority": "asap"})["id"]
    routed_to(stack, rid, "RXA01")
    asked = act(stack, rid, "RXA01", "request-info", {"question": "Is there a key safe?"})
    assert (asked["status"], asked["assigned_org"]) == ("info_requested", "RXA01")
    assert read(stack, rid, "B81001")["allowed_actions"] == [
        "amend",
        "cancel",
        "provide-info",
        "message",
        "record-nhs-number",
    ]

    # The acceptance limit is 12 s (warning at 10.8 s). Waiting well past it while the question
    # is open, no clock event comes: the clock is paused, not running.
    past_the_deadline = time.monotonic() + 15

    def paused_past_the_deadline() -> bool:
        fired = CLOCK_EVENTS & set(timeline(stack, rid))
        assert not fired, f"the acceptance clock ran while paused: {fired}"
        return time.monotonic() > past_the_deadline

    wait_for("the first deadline to pass", paused_past_the_deadline, timeout=40, every=1)
    assert read(stack, rid, "RXA01")["status"] == "info_requested", "nobody took it away"

    answered = act(stack, rid, "B81001", "provide-info", {"answer": "Yes, code 4512"})
    assert (answered["status"], answered["assigned_org"]) == ("routed", "RXA01")
    accepted = act(stack, rid, "RXA01", "accept", {})
    assert accepted["status"] == "accepted"

    wanted = [
        "ReferralSubmitted",
        "ReferralRouted",
        "ReferralInfoRequested",
        "ReferralInfoProvided",
        "ReferralAccepted",
    ]
    journey_is(stack, rid, wanted, "question, answer and acceptance in the timeline")
    assert provider_events(kafka_bootstrap, rid, 4) == wanted[1:], (
        "the team sees its question answered on its topic, and no clock event"
    )
    steps = [(h["action"], h["actor_org"], h["note"]) for h in history(stack, rid, "RXA01")]
    assert steps[2:] == [
        ("request-info", "RXA01", "Is there a key safe?"),
        ("provide-info", "B81001", "Yes, code 4512"),
        ("accept", "RXA01", None),
    ]


def test_interim_updates_and_a_message_come_before_the_outcome(kafka_bootstrap, loop_stack) -> None:
    stack = loop_stack
    rid = submit(stack)["id"]
    routed_to(stack, rid, "RXA01")
    act(stack, rid, "RXA01", "accept", {})
    act(stack, rid, "RXA01", "report-progress", {"progress_code": "patient-contacted"})
    act(
        stack,
        rid,
        "RXA01",
        "report-progress",
        {"progress_code": "visit-booked", "text": "Visit booked for 15:30"},
    )
    upload = httpx.post(
        f"{stack.url('referrals')}/referrals/{rid}/attachments",
        params={"filename": "care-plan.txt"},
        content=b"Care plan: walking frame, daily check",
        headers={**gp(stack), "content-type": "text/plain", "Idempotency-Key": str(uuid.uuid4())},
    )
    assert upload.status_code == 201, upload.text
    note = {"text": "Care plan attached", "attachment_id": upload.json()["id"]}
    assert act(stack, rid, "B81001", "message", note)["status"] == "accepted"
    act(stack, rid, "RXA01", "start", {})
    done = act(
        stack,
        rid,
        "RXA01",
        "complete",
        {"outcome": "remained-at-home", "summary": "Mobilising safely with a frame"},
    )
    assert (done["status"], done["outcome"]) == ("completed", "remained-at-home")

    wanted = [
        "ReferralSubmitted",
        "ReferralRouted",
        "ReferralAccepted",
        "ReferralProgressReported",
        "ReferralProgressReported",
        "ReferralMessageAdded",
        "ReferralStarted",
        "ReferralCompleted",
    ]
    journey_is(stack, rid, wanted, "updates, message and outcome in the timeline")
    assert provider_events(kafka_bootstrap, rid, 7) == wanted[1:]
    seen_by_gp = [(h["action"], h["reason_code"], h["note"]) for h in history(stack, rid, "B81001")]
    assert seen_by_gp[3:] == [
        ("report-progress", "patient-contacted", None),
        ("report-progress", "visit-booked", "Visit booked for 15:30"),
        ("message", None, "Care plan attached"),
        ("start", None, None),
        ("complete", "remained-at-home", "Mobilising safely with a frame"),
    ]
    assert history(stack, rid, "RXA01")[5]["attachment_id"] == upload.json()["id"]


def test_a_failed_contact_ends_the_referral_failed_not_completed(
    kafka_bootstrap, loop_stack
) -> None:
    stack = loop_stack
    rid = submit(stack)["id"]
    routed_to(stack, rid, "RXA01")
    act(stack, rid, "RXA01", "accept", {})
    failed = act(
        stack,
        rid,
        "RXA01",
        "fail",
        {"reason_code": "failed-contact", "reason_text": "Three calls and a visit, no answer"},
    )
    assert (failed["status"], failed["outcome"], failed["allowed_actions"]) == ("failed", None, [])
    assert read(stack, rid, "B81001")["allowed_actions"] == [], "an end for the referrer too"
    wanted = ["ReferralSubmitted", "ReferralRouted", "ReferralAccepted", "ReferralFailed"]
    journey_is(stack, rid, wanted, "the failure in the timeline")
    on_topic = read_topic(
        kafka_bootstrap, "provider.rapid-response.v1", rid, until=lambda s: len(s) >= 3
    )
    last = on_topic[-1].payload()
    assert (type(last).__name__, last.status, last.reason_code) == (
        "ReferralFailed",
        "failed",
        "failed-contact",
    )
    assert "Three calls" not in on_topic[-1].model_dump_json(), "the text stays in the API"
