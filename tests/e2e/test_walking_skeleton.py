"""A referral travels through all three services over the real broker: submitted at the
referrals API, routed, delivered on the provider type's topic, recorded by referrals and in
the audit log — in order and exactly once."""

from __future__ import annotations

import httpx
import pytest

from .conftest import as_client, audit_entries, gp, read_topic, submit, timeline, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]

SUBMITTED = "rx.referrals.ReferralSubmitted.v1"
ROUTED = "rx.routing.ReferralRouted.v1"


def test_a_referral_reaches_the_provider_topic_and_the_audit_log_once_in_order(
    kafka_bootstrap, shared_stack
) -> None:
    stack = shared_stack
    referral = submit(stack)
    rid = referral["id"]
    assert referral["status"] == "submitted"

    entries = wait_for(
        "both events in the audit log",
        lambda: (e := audit_entries(stack, rid)) and len(e) >= 2 and e,
    )
    delivered = read_topic(
        kafka_bootstrap, "provider.rapid-response.v1", rid, until=lambda seen: len(seen) >= 1
    )

    assert [e.type for e in delivered] == [ROUTED], "exactly one delivery to the provider"
    routed = delivered[0].payload()
    assert (
        routed.assigned_org == "RXA01"
    )  # east locality (BS5), first rapid-response team serving it
    assert routed.locality == "east"

    entries = {e["type"]: e for e in audit_entries(stack, rid)}
    assert len(audit_entries(stack, rid)) == 2 and set(entries) == {SUBMITTED, ROUTED}, "once each"
    assert entries[ROUTED]["event_id"] == delivered[0].id, "the audit log holds the delivered event"
    assert entries[SUBMITTED]["actor_org"] == "B81001"
    assert timeline(stack, rid) == ["ReferralSubmitted", "ReferralRouted"], (
        "in the order they happened"
    )
    assert "nhs_number" not in str(entries), "events carry no patient identifiers"

    stored = wait_for(
        "the referrals service to record the assignment",
        lambda: (
            (r := httpx.get(f"{stack.url('referrals')}/referrals/{rid}", headers=gp(stack)).json())[
                "status"
            ]
            == "routed"
            and r
        ),
    )
    assert stored["assigned_org"] == "RXA01"
    assert stored["assigned_provider_type"] == "rapid-response"
    history = httpx.get(
        f"{stack.url('referrals')}/referrals/{rid}/history", headers=gp(stack)
    ).json()
    assert [(h["action"], h["to_status"]) for h in history] == [
        ("submit", "submitted"),
        ("route", "routed"),
    ]

    ops = as_client(stack, "ops", "audit")
    verified = wait_for(
        "a checkpoint covering both events, and the chain verified against it",
        lambda: (
            (v := httpx.get(f"{stack.url('audit')}/audit/verify", headers=ops).json())["ok"]
            and v["checkpoints"] >= 1
            and v
        ),
    )
    assert verified["entries"] >= 2 and verified["first_broken"] is None


def test_every_service_answers_health_ready_and_openapi(kafka_bootstrap, shared_stack) -> None:
    stack = shared_stack
    for service in ("issuer", "referrals", "routing", "audit"):
        base = stack.url(service)
        assert httpx.get(f"{base}/health").json()["status"] == "ok"
        assert httpx.get(f"{base}/ready").json()["status"] == "ready"
        assert httpx.get(f"{base}/openapi.json").json()["info"]["title"].endswith(service)
